package xmlscan

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/bench/benchdata"
)

// refChars is the obvious implementation checkChars must agree with.
func refChars(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// TestCheckCharsEveryPosition puts each interesting character at every
// offset of a word-sized stretch of printable ASCII, so that the
// eight-bytes-at-a-time path is exercised at every byte lane.
func TestCheckCharsEveryPosition(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    string
		ok   bool
	}{
		{"NUL", "\x00", false},
		{"0x01", "\x01", false},
		{"0x1f", "\x1f", false},
		{"tab", "\t", true},
		{"newline", "\n", true},
		{"carriage return", "\r", true},
		{"space", " ", true},
		{"DEL", "\x7f", true},
		{"tilde", "~", true},
		{"e acute", "é", true},
		{"euro", "€", true},
		{"emoji", "😀", true},
		{"U+FFFE", "\uFFFE", false},
		{"U+FFFF", "\uFFFF", false},
		{"U+FFFD", "\uFFFD", true},
		{"lone continuation byte", "\x80", false},
		{"truncated sequence", "\xe2\x82", false},
		{"surrogate", "\xed\xa0\x80", false},
		{"overlong", "\xc0\xaf", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for pos := 0; pos < 24; pos++ {
				data := []byte(strings.Repeat("a", pos) + tt.c + strings.Repeat("b", 24-pos))
				err := checkChars(data)
				if (err == nil) != tt.ok || refChars(data) != tt.ok {
					t.Fatalf("at byte %d: checkChars = %v, reference = %v, want ok = %v", pos, err, refChars(data), tt.ok)
				}
				if err != nil && !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
			}
		})
	}
}

// TestCheckCharsRandom compares with the reference on random documents
// mixing printable ASCII with the bytes that matter.
func TestCheckCharsRandom(t *testing.T) {
	alphabet := []string{"a", "<", " ", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\xff", "\x80", "\uFFFF", "€"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		n := rng.IntN(40)
		for j := 0; j < n; j++ {
			if rng.IntN(8) == 0 {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			} else {
				b.WriteByte('a' + byte(rng.IntN(26)))
			}
		}
		data := []byte(b.String())
		if got, want := checkChars(data) == nil, refChars(data); got != want {
			t.Fatalf("checkChars(%q) ok = %v, reference says %v", data, got, want)
		}
	}
}

func FuzzCheckChars(f *testing.F) {
	f.Add([]byte("<domain>\n\t<name>é</name></domain>"))
	f.Add([]byte("abcdefgh\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := checkChars(data) == nil, refChars(data); got != want {
			t.Fatalf("checkChars(%q) ok = %v, reference says %v", data, got, want)
		}
	})
}

func TestCheckLayout(t *testing.T) {
	for _, tt := range []struct {
		name, in        string
		loader          bool
		os, named, feat string
	}{
		{"BIOS", "<domain><name>vm</name><os><type>hvm</type><boot dev='hd'/></os></domain>", false, "<os><type>hvm</type><boot dev='hd'/></os>", "<name>vm</name>", ""},
		{"UEFI", "<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/c</loader></os><features><smm/></features></domain>", true, "<os><loader readonly='yes' type='pflash'>/c</loader></os>", "<name>vm</name>", "<features><smm/></features>"},
		{"empty loader", "<domain><os><loader/></os></domain>", true, "<os><loader/></os>", "", ""},
		{"firmware auto", "<domain><os firmware='efi'><type>hvm</type></os></domain>", false, "<os firmware='efi'><type>hvm</type></os>", "", ""},
		{"no os", "<domain><name>vm</name></domain>", false, "", "<name>vm</name>", ""},
		{"empty os", "<domain><os/></domain>", false, "<os/>", "", ""},
		{"loader deeper than os", "<domain><os><x><loader/></x></os></domain>", false, "<os><x><loader/></x></os>", "", ""},
		{"loader outside os", "<domain><loader/><devices><os><loader/></os></devices><os/></domain>", false, "<os/>", "", ""},
		{"loader in a comment", "<domain><os><!-- <loader/> --></os></domain>", false, "<os><!-- <loader/> --></os>", "", ""},
		{"loader in CDATA", "<domain><os><![CDATA[<loader/>]]></os></domain>", false, "<os><![CDATA[<loader/>]]></os>", "", ""},
		{"prefixed loader", "<domain><os><x:loader xmlns:x='urn:x'/></os></domain>", false, "<os><x:loader xmlns:x='urn:x'/></os>", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.in)
			l, err := Check(data)
			if err != nil {
				t.Fatal(err)
			}
			if l.HasLoader() != tt.loader {
				t.Errorf("HasLoader() = %v, want %v", l.HasLoader(), tt.loader)
			}
			for _, c := range []struct {
				what string
				s    *Span
				want string
			}{{"os", l.OS, tt.os}, {"name", l.Name, tt.named}, {"features", l.Features, tt.feat}} {
				got := ""
				if c.s != nil {
					got = string(data[c.s.Start:c.s.End])
				}
				if got != c.want {
					t.Errorf("%s span = %q, want %q", c.what, got, c.want)
				}
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"empty", " \n", "empty input"},
		{"other root", "<network/>", "root element is not <domain>"},
		{"two os", "<domain><os/><os/></domain>", "more than one <os>"},
		{"control character", "<domain>\x01</domain>", "control character 0x1 at byte 8"},
		{"not UTF-8", "<domain>\xff</domain>", "not UTF-8 at byte 8"},
		{"DOCTYPE", "<!DOCTYPE domain><domain/>", "DOCTYPE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check([]byte(tt.in))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check(%q) = %v, want an ErrInvalid containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestReadFileAndLimit(t *testing.T) {
	p := t.TempDir() + "/in.xml"
	want := []byte("<domain><name>vm</name></domain>\n")
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := Read(f); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read(file) = %q, %v", got, err)
	}
	big := io.MultiReader(strings.NewReader("<domain>"), io.LimitReader(blanks{}, MaxSize+10))
	if _, err := Read(big); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Fatalf("Read of an oversized input: %v", err)
	}
}

type blanks struct{}

func (blanks) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// largeDomain is the migrate filter's worst case: libvirt's migrate XML
// with 2,000 disks, about 1 MiB.
func largeDomain(b *testing.B) []byte {
	b.Helper()
	base, err := os.ReadFile("../../testdata/libvirt-9.0/uefi-custom--migrate.xml")
	if err != nil {
		b.Fatal(err)
	}
	data, err := benchdata.LargeDomain(base)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkCheckLarge is the whole-document check of the migrate filter's
// worst case, the 1 MiB domain with 2,000 disks.
func BenchmarkCheckLarge(b *testing.B) {
	data := largeDomain(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Check(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckChars is the character check alone on the same document.
func BenchmarkCheckChars(b *testing.B) {
	data := largeDomain(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := checkChars(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOSChildren: the one scan records every child of <os> with its start
// tag and whole element, and nothing deeper or outside.
func TestOSChildren(t *testing.T) {
	in := "<domain><devices><os><loader/></os></devices><os firmware='efi'>\n <type arch='x86_64'>hvm</type><!-- c --><loader readonly='yes' type='pflash'>/c<x/></loader><nvram/>\n</os></domain>"
	l, err := Check([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range l.OSChildren {
		got = append(got, c.Name+"|"+in[c.Tag.Start:c.Tag.End]+"|"+in[c.Elem.Start:c.Elem.End])
	}
	want := []string{
		"type|<type arch='x86_64'>|<type arch='x86_64'>hvm</type>",
		"loader|<loader readonly='yes' type='pflash'>|<loader readonly='yes' type='pflash'>/c<x/></loader>",
		"nvram|<nvram/>|<nvram/>",
	}
	if !slices.Equal(got, want) {
		t.Errorf("OSChildren:\n%q\nwant\n%q", got, want)
	}
}
