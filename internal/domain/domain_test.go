package domain

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmltest"
)

func wrapOS(inner string) string {
	return "<domain type='kvm'>\n  <name>vm1</name>\n  <os>\n    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n" + inner + "\n  </os>\n</domain>\n"
}

func TestParseFirmware(t *testing.T) {
	tests := []struct {
		name      string
		xml       string
		loader    *Loader
		nvram     *NVRAM
		needsVars bool
	}{
		{"bios", wrapOS(""), nil, nil, false},
		{"text nvram", wrapOS(`<loader readonly='yes' type='pflash'>/fw/CODE.fd</loader><nvram>/nv/vm1_VARS.fd</nvram>`),
			&Loader{Path: "/fw/CODE.fd", Type: "pflash", ReadOnly: true},
			&NVRAM{Kind: NVRAMFile, Path: "/nv/vm1_VARS.fd"}, true},
		{"source form with spaces", wrapOS(`<loader readonly='yes' type='pflash'>/fw/CODE.fd</loader><nvram type='file' template='/fw/V.fd'><source file='/nv/a b_VARS.fd'/></nvram>`),
			&Loader{Path: "/fw/CODE.fd", Type: "pflash", ReadOnly: true},
			&NVRAM{Kind: NVRAMFile, Type: "file", Path: "/nv/a b_VARS.fd", Template: "/fw/V.fd"}, true},
		{"formats", wrapOS(`<loader readonly='yes' type='pflash' format='qcow2'>/fw/C.qcow2</loader><nvram template='/fw/V.qcow2' templateFormat='qcow2' format='qcow2'>/nv/x.qcow2</nvram>`),
			&Loader{Path: "/fw/C.qcow2", Type: "pflash", ReadOnly: true, Format: "qcow2"},
			&NVRAM{Kind: NVRAMFile, Path: "/nv/x.qcow2", Template: "/fw/V.qcow2", Format: "qcow2", TemplateFormat: "qcow2"}, true},
		{"block", wrapOS(`<loader readonly='yes' type='pflash'>/fw/C.fd</loader><nvram type='block'><source dev='/dev/sdb'/></nvram>`),
			&Loader{Path: "/fw/C.fd", Type: "pflash", ReadOnly: true},
			&NVRAM{Kind: NVRAMBlock, Type: "block"}, true},
		{"network", wrapOS(`<loader readonly='yes' type='pflash'>/fw/C.fd</loader><nvram type='network'><source protocol='nbd' name='bar'><host name='example.org' port='6000'/></source></nvram>`),
			&Loader{Path: "/fw/C.fd", Type: "pflash", ReadOnly: true},
			&NVRAM{Kind: NVRAMNetwork, Type: "network"}, true},
		{"stateless", wrapOS(`<loader readonly='yes' type='pflash' stateless='yes'>/fw/C.fd</loader>`),
			&Loader{Path: "/fw/C.fd", Type: "pflash", ReadOnly: true, Stateless: true}, nil, false},
		{"read-write solid", wrapOS(`<loader readonly='no' type='pflash'>/fw/BOTH.fd</loader>`),
			&Loader{Path: "/fw/BOTH.fd", Type: "pflash"}, nil, false},
		{"rom", wrapOS(`<loader type='rom'>/usr/share/seabios/bios.bin</loader>`),
			&Loader{Path: "/usr/share/seabios/bios.bin", Type: "rom"}, nil, false},
		{"no type is rom", wrapOS(`<loader readonly='yes'>/fw/C.fd</loader>`),
			&Loader{Path: "/fw/C.fd", ReadOnly: true}, nil, false},
		{"nvram under devices is not the varstore", "<domain><name>p</name><os><type arch='ppc64'>hvm</type></os><devices><nvram><address type='spapr-vio' reg='0x4000'/></nvram></devices></domain>",
			nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.xml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(d.Loader, tt.loader) {
				t.Errorf("Loader = %+v, want %+v", d.Loader, tt.loader)
			}
			if !reflect.DeepEqual(d.NVRAM, tt.nvram) {
				t.Errorf("NVRAM = %+v, want %+v", d.NVRAM, tt.nvram)
			}
			if got := d.NeedsVarstore(); got != tt.needsVars {
				t.Errorf("NeedsVarstore() = %v, want %v", got, tt.needsVars)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty input"},
		{"only spaces", " \n\t", "empty input"},
		{"truncated", "<domain><name>x</name><os>", "invalid domain XML"},
		{"mismatched", "<domain><os></os2></domain>", "invalid domain XML"},
		{"doctype with entities", "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain>&x;</domain>", "invalid domain XML"},
		{"doctype only", "<!DOCTYPE domain><domain/>", "DOCTYPE"},
		{"two roots", "<domain/><domain/>", "2 root elements"},
		{"trailing garbage", "<domain/>garbage", "text outside the root"},
		{"not a domain", "<network/>", "root element is not <domain>"},
		{"two os", "<domain><os/><os/></domain>", "more than one <os>"},
		{"two loaders", wrapOS("<loader>/a</loader><loader>/b</loader>"), "more than one <loader>"},
		{"two nvram", wrapOS("<loader readonly='yes' type='pflash'>/c</loader><nvram>/a</nvram><nvram>/b</nvram>"), "more than one <nvram>"},
		{"two types with a loader", wrapOS("<type>hvm</type><loader readonly='yes' type='pflash'>/c</loader>"), "more than one <type>"},
		{"not utf-8", "<domain><name>\xff\xfe</name></domain>", "not UTF-8"},
		{"binary garbage", "\x00\x01\x02garbage", "invalid domain XML"},
		{"NUL in text", "<domain><devices><c>\x00</c></devices></domain>", "control character"},
		{"U+FFFF", "<domain><name>\uffff</name></domain>", "character U+FFFF"},
		{"unquoted attribute", "<domain type=kvm/>", "not quoted"},
		{"attribute without value", "<domain type/>", "has no value"},
		{"repeated attribute", "<domain a='1' a='2'/>", "repeated"},
		{"attributes run together", "<domain a='1'b='2'/>", "white space"},
		{"< in attribute", "<domain a='<'/>", "'<' in attribute"},
		{"unknown entity in attribute", "<domain a='&nbsp;'/>", "invalid character reference"},
		{"unknown entity in text", "<domain><name>&nbsp;</name></domain>", "invalid character reference"},
		{"bare ampersand", "<domain><name>a & b</name></domain>", "invalid character reference"},
		{"unclosed comment", "<domain><!-- x </domain>", "comment not closed"},
		{"CDATA outside root", "<![CDATA[x]]><domain/>", "CDATA outside"},
		{"unclosed start tag", "<domain", "not closed"},
		{"end tag without start", "</domain>", "unexpected </domain>"},
		{"two os after a name", "<domain><name>a</name><os/><os/></domain>", "more than one <os>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestParseAccepts: what libvirt and people legitimately write.
func TestParseAccepts(t *testing.T) {
	for _, in := range []string{
		"<?xml version='1.0' encoding='UTF-8'?>\n<!-- made by hand -->\n<domain/>\n",
		"<domain a=\"x'y\" b='x\"y' c = 'spaced'><name>a &amp; b &#233;&#xE9;</name></domain>",
		"<domain>\n<metadata><x:y xmlns:x='urn:x'><![CDATA[ <not a tag> & ]]></x:y></metadata><?pi data?></domain>",
		"<domain><os><loader readonly='yes' type='pflash'>/fw/ä ö.fd</loader><nvram>/nv/é_VARS.fd</nvram></os></domain>",
	} {
		d, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if out, _ := d.Bytes(); string(out) != in {
			t.Errorf("unchanged document not returned byte for byte: %q", out)
		}
	}
	// Without a loader nothing in <os> matters: duplicates are not errors.
	for _, in := range []string{
		wrapOS("<nvram>/a</nvram><nvram>/b</nvram>"),
		wrapOS("<type>hvm</type><firmware/><firmware/>"),
	} {
		if _, err := Parse([]byte(in)); err != nil {
			t.Errorf("Parse(%q) without a loader: %v", in, err)
		}
	}
	d, _ := Parse([]byte("<domain><name>a &amp; b &#233;</name></domain>"))
	if d.Name != "a & b é" {
		t.Errorf("name %q: references not decoded", d.Name)
	}
}

// TestRoundTripUnchanged: a document we do not change must come out with
// the same content (compared token by token, since attribute quotes may
// differ) for every sample libvirt produced.
func TestRoundTripUnchanged(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/libvirt-9.0/*.xml")
	files = append(files, "../../testdata/golden/metadata-no-nvram.in.xml")
	if len(files) < 2 {
		t.Fatal("testdata missing")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := d.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if d.Changed() {
				t.Error("Changed() is true without a change")
			}
			xmltest.Same(t, in, out)
		})
	}
}

func TestAddNVRAMKeepsIndentation(t *testing.T) {
	in := wrapOS("    <loader readonly='yes' type='pflash'>/fw/C.fd</loader>\n    <boot dev='hd'/>")
	d, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddNVRAM("/nv/vm1_VARS.fd", "/fw/V.fd"); err != nil {
		t.Fatal(err)
	}
	out, _ := d.Bytes()
	want := strings.Replace(in, "</loader>\n", "</loader>\n    <nvram template='/fw/V.fd'>/nv/vm1_VARS.fd</nvram>\n", 1)
	if string(out) != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if err := d.AddNVRAM("/x", ""); err == nil {
		t.Error("a second AddNVRAM succeeded")
	}
	// The result parses again and says what we wrote.
	d2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if d2.NVRAM == nil || d2.NVRAM.Path != "/nv/vm1_VARS.fd" || d2.NVRAM.Template != "/fw/V.fd" {
		t.Errorf("reparsed NVRAM = %+v", d2.NVRAM)
	}
}

func TestSetTemplate(t *testing.T) {
	d, err := Parse([]byte(wrapOS(`<loader readonly='yes' type='pflash'>/fw/C.fd</loader><nvram>/nv/a.fd</nvram>`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetTemplate("/fw/V.fd"); err != nil {
		t.Fatal(err)
	}
	out, _ := d.Bytes()
	if !bytes.Contains(out, []byte(`<nvram template='/fw/V.fd'>/nv/a.fd</nvram>`)) {
		t.Errorf("output lacks the template: %s", out)
	}
	if err := d.SetTemplate("/other"); err == nil {
		t.Error("SetTemplate replaced an existing template")
	}
}
