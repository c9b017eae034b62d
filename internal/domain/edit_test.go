package domain

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// edited applies edit to in and returns the program's output.
func edited(t *testing.T, in string, edit func(d *Domain) error) string {
	t.Helper()
	d, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := edit(d); err != nil {
		t.Fatalf("edit: %v", err)
	}
	if !d.Changed() {
		t.Error("Changed() is false after an edit")
	}
	out, err := d.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// replaceOnce is the expected output: in with old replaced by new, where
// old occurs exactly once.
func replaceOnce(t *testing.T, in, old, new string) string {
	t.Helper()
	if n := strings.Count(in, old); n != 1 {
		t.Fatalf("%q occurs %d times in the input", old, n)
	}
	return strings.Replace(in, old, new, 1)
}

// unusualOS is an <os> as people write it by hand: double quotes, an
// element written <x></x>, character references, a comment, CDATA, a
// namespaced element and white space inside tags. None of it may change
// when another element of <os> is edited.
const unusualOS = "<domain type=\"kvm\">\n  <name>vm1</name>\n  <os firmware=\"\" >\n" +
	"    <type arch=\"x86_64\" machine=\"pc-q35-7.2\">hvm</type>\n" +
	"    <!-- boot &#x41; -->\n" +
	"    <loader readonly=\"yes\" type=\"pflash\" >/fw/&#x41;_CODE.fd</loader>\n" +
	"    NVRAM\n" +
	"    <boot dev=\"hd\"></boot>\n" +
	"    <x:meta xmlns:x=\"urn:x\"><![CDATA[<&>]]></x:meta>\n" +
	"    <bootmenu enable = 'no' />\n" +
	"  </os>\n</domain>\n"

// TestEditsChangeOnlyTheElement: the output of every edit is the input
// with exactly the bytes of the changed element (or attribute) replaced.
func TestEditsChangeOnlyTheElement(t *testing.T) {
	noNVRAM := strings.Replace(unusualOS, "    NVRAM\n", "", 1)
	withNVRAM := strings.Replace(unusualOS, "NVRAM", "<nvram format=\"raw\" >/nv/vm1&#95;VARS.fd</nvram>", 1)
	emptyTemplate := strings.Replace(unusualOS, "NVRAM", "<nvram template=\"\">/nv/a.fd</nvram>", 1)
	for _, tt := range []struct {
		name, in string
		edit     func(d *Domain) error
		old, new string
	}{
		{"add nvram", noNVRAM, func(d *Domain) error { return d.AddNVRAM("/nv/vm1_VARS.fd", "/fw/V.fd") },
			"_CODE.fd</loader>\n", "_CODE.fd</loader>\n    <nvram template='/fw/V.fd'>/nv/vm1_VARS.fd</nvram>\n"},
		{"add nvram without template", noNVRAM, func(d *Domain) error { return d.AddNVRAM("/nv/a&b<'c'>.fd", "") },
			"_CODE.fd</loader>\n", "_CODE.fd</loader>\n    <nvram>/nv/a&amp;b&lt;'c'&gt;.fd</nvram>\n"},
		{"add nvram, then its template", noNVRAM, func(d *Domain) error {
			if err := d.AddNVRAM("/nv/x.fd", ""); err != nil {
				return err
			}
			return d.SetTemplate("/fw/it's & <that>.fd")
		}, "_CODE.fd</loader>\n", "_CODE.fd</loader>\n    <nvram template='/fw/it&apos;s &amp; &lt;that>.fd'>/nv/x.fd</nvram>\n"},
		{"add nvram with a qcow2 template", noNVRAM, func(d *Domain) error {
			if err := d.AddNVRAM("/nv/x.qcow2", "/fw/V.qcow2"); err != nil {
				return err
			}
			return d.SetTemplateFormat("qcow2")
		}, "_CODE.fd</loader>\n", "_CODE.fd</loader>\n    <nvram template='/fw/V.qcow2' templateFormat='qcow2'>/nv/x.qcow2</nvram>\n"},
		{"set template and its format", withNVRAM, func(d *Domain) error {
			if err := d.SetTemplate("/fw/V.qcow2"); err != nil {
				return err
			}
			return d.SetTemplateFormat("qcow2")
		}, `<nvram format="raw" >`, `<nvram format="raw" template='/fw/V.qcow2' templateFormat='qcow2' >`},
		{"set template", withNVRAM, func(d *Domain) error { return d.SetTemplate("/fw/V.fd") },
			`<nvram format="raw" >`, `<nvram format="raw" template='/fw/V.fd' >`},
		{"replace an empty template", emptyTemplate, func(d *Domain) error { return d.SetTemplate("/fw/V.fd") },
			`<nvram template="">`, `<nvram template='/fw/V.fd'>`},
		{"set loader", withNVRAM, func(d *Domain) error { return d.SetLoader("/fw/NEW_CODE.fd") },
			">/fw/&#x41;_CODE.fd</loader>", ">/fw/NEW_CODE.fd</loader>"},
		{"set loader and template", withNVRAM, func(d *Domain) error {
			if err := d.SetLoader("/fw/NEW_CODE.fd"); err != nil {
				return err
			}
			return d.SetTemplate("/fw/V.fd")
		}, ">/fw/&#x41;_CODE.fd</loader>\n    <nvram format=\"raw\" >", ">/fw/NEW_CODE.fd</loader>\n    <nvram format=\"raw\" template='/fw/V.fd' >"},
		{"set the path of an empty loader", "<domain><os><loader readonly='yes' type='pflash'/></os></domain>", func(d *Domain) error { return d.SetLoader("/fw/C.fd") },
			"type='pflash'/>", "type='pflash'>/fw/C.fd</loader>"},
		{"add nvram after an empty loader, no white space", "<domain><os><loader type='pflash' readonly='yes'/></os></domain>",
			func(d *Domain) error { return d.AddNVRAM("/nv/a.fd", "") }, "readonly='yes'/>", "readonly='yes'/>\n<nvram>/nv/a.fd</nvram>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := edited(t, tt.in, tt.edit)
			if want := replaceOnce(t, tt.in, tt.old, tt.new); got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
			if _, err := Parse([]byte(got)); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

// TestUnchangedIsTheInput: without an edit the output is the input.
func TestUnchangedIsTheInput(t *testing.T) {
	d, err := Parse([]byte(unusualOS))
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Bytes()
	if err != nil || string(out) != unusualOS || d.Changed() {
		t.Errorf("unchanged output %q (changed %v, %v), want the input", out, d.Changed(), err)
	}
}

// TestParseVarstore reads libvirt 12's <varstore> beside a rom loader,
// as libvirt 12.8 passed it to a hook (testdata/libvirt-12.8).
func TestParseVarstore(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("..", "..", "testdata", "libvirt-12.8", "varstore-rom--prepare-begin.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Varstore{Path: "/var/lib/libvirt/qemu/varstore/custom.json", Template: "/srv/fw/MY_VARS.json"}); !reflect.DeepEqual(d.Varstore, want) {
		t.Errorf("Varstore = %+v, want %+v", d.Varstore, want)
	}
	if want := (&Loader{Path: "/srv/fw/MY_ROM.fd", Type: "rom", ReadOnly: true, Format: "raw"}); !reflect.DeepEqual(d.Loader, want) {
		t.Errorf("Loader = %+v, want %+v", d.Loader, want)
	}
	if d.NVRAM != nil || d.NeedsVarstore() {
		t.Errorf("NVRAM %+v, NeedsVarstore %v: a rom loader has no NVRAM", d.NVRAM, d.NeedsVarstore())
	}
	d, err = Parse([]byte(wrapOS("<loader type='rom'>/r</loader>")))
	if err != nil || d.Varstore != nil {
		t.Errorf("without <varstore>: %+v, %v", d.Varstore, err)
	}
}

// TestVarstoreEdits: the filters set path= and template= on <varstore>,
// changing nothing else; a value already there is never replaced.
func TestVarstoreEdits(t *testing.T) {
	const ld = "    <loader readonly=\"yes\" type=\"rom\">/fw/ROM.fd</loader>\n"
	for _, tt := range []struct {
		name, in string
		edit     func(d *Domain) error
		old, new string
	}{
		{"path and template on an empty varstore", wrapOS(ld + "    <varstore/>"), func(d *Domain) error {
			if err := d.SetVarstorePath("/var/lib/libvirt/qemu/varstore/vm1.json"); err != nil {
				return err
			}
			return d.SetVarstoreTemplate("/fw/VARS.json")
		}, "<varstore/>", "<varstore path='/var/lib/libvirt/qemu/varstore/vm1.json' template='/fw/VARS.json'/>"},
		{"template beside a path", wrapOS(ld + "    <varstore path=\"/v/vm1.json\" ></varstore>"), func(d *Domain) error { return d.SetVarstoreTemplate("/fw/VARS.json") },
			`<varstore path="/v/vm1.json" >`, `<varstore path="/v/vm1.json" template='/fw/VARS.json' >`},
		{"path beside a template", wrapOS(ld + "    <varstore template = \"/fw/V.json\"/>"), func(d *Domain) error { return d.SetVarstorePath("/v/a'b.json") },
			`<varstore template = "/fw/V.json"/>`, `<varstore template = "/fw/V.json" path='/v/a&apos;b.json'/>`},
		{"an empty path is replaced", wrapOS(ld + "    <varstore path='' template='/fw/V.json'/>"), func(d *Domain) error { return d.SetVarstorePath("/v/vm1.json") },
			`path=''`, `path='/v/vm1.json'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := edited(t, tt.in, tt.edit)
			if want := replaceOnce(t, tt.in, tt.old, tt.new); got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
			d, err := Parse([]byte(got))
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			if d.Varstore == nil || d.Varstore.Path == "" && strings.Contains(tt.new, "path=") {
				t.Errorf("reparsed varstore %+v", d.Varstore)
			}
		})
	}
	d, err := Parse([]byte(wrapOS(ld + "<varstore path='/v/a.json' template='/fw/V.json'/>")))
	if err != nil {
		t.Fatal(err)
	}
	if d.SetVarstorePath("/x") == nil || d.SetVarstoreTemplate("/y") == nil || d.Changed() {
		t.Error("a path or template already there was replaced")
	}
	d, err = Parse([]byte(wrapOS(ld)))
	if err != nil {
		t.Fatal(err)
	}
	if d.SetVarstorePath("/x") == nil || d.SetVarstoreTemplate("/y") == nil {
		t.Error("set a varstore attribute without a <varstore>")
	}
}
