package domain

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmltest"
)

// FuzzRewrite: reading never panics; for a document we accept, the
// filters' edit gives an output that differs from the input only inside
// the element it changes (compared byte for byte), whose tokens are
// exactly what was asked, and that parses again to the values written.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/libvirt-*/*.xml")
	more, _ := filepath.Glob("../../testdata/golden/*.in.xml")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("<domain><name>x</name><os><loader readonly='yes' type='pflash'>/c</loader></os></domain>"))
	f.Add([]byte("<domain><os><loader type='rom'>/r</loader><varstore template=\"/t\"/></os></domain>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(in)
		if err != nil {
			return
		}
		const path, tmpl = "/nv/x y_VARS.fd", "/fw/V&'\"<>.fd"
		toks := xmltest.Scan(t, in)
		var lo, hi int          // the input bytes the edit may change
		var want []xml.Token    // the output's tokens
		var check func(*Domain) // the values the output must say
		switch {
		case d.Loader != nil && d.NVRAM == nil:
			if err := d.AddNVRAM(path, tmpl); err != nil {
				t.Fatal(err)
			}
			l, ok := xmltest.Find(t, in, "domain", "os", "loader")
			if !ok {
				t.Fatal("no <loader> in <os>")
			}
			lo, hi = l.End, l.End+len(in[l.End:])-len(bytes.TrimLeft(in[l.End:], " \t\r\n"))
			nv := xml.Name{Local: "nvram"}
			want = tokensOf(toks[:l.Close+1])
			want = append(want, nil, // white space, checked below
				xml.StartElement{Name: nv, Attr: []xml.Attr{{Name: xml.Name{Local: "template"}, Value: tmpl}}},
				xml.CharData(path), xml.EndElement{Name: nv})
			want = append(want, tokensOf(toks[l.Close+1:])...)
			check = func(d2 *Domain) {
				if d2.NVRAM == nil || d2.NVRAM.Path != path || d2.NVRAM.Template != tmpl {
					t.Fatalf("reparsed nvram %+v", d2.NVRAM)
				}
			}
		case d.NVRAM != nil && d.NVRAM.Template == "":
			if err := d.SetTemplate(tmpl); err != nil {
				t.Fatal(err)
			}
			want, lo, hi = withAttr(t, in, toks, "nvram", "template", tmpl)
			check = func(d2 *Domain) {
				if d2.NVRAM == nil || d2.NVRAM.Template != tmpl || d2.NVRAM.Path != d.NVRAM.Path {
					t.Fatalf("reparsed nvram %+v, want %+v", d2.NVRAM, d.NVRAM)
				}
			}
		case d.Varstore != nil && d.Varstore.Path == "":
			if err := d.SetVarstorePath(path); err != nil {
				t.Fatal(err)
			}
			want, lo, hi = withAttr(t, in, toks, "varstore", "path", path)
			check = func(d2 *Domain) {
				if d2.Varstore == nil || d2.Varstore.Path != path || d2.Varstore.Template != d.Varstore.Template {
					t.Fatalf("reparsed varstore %+v, want %+v", d2.Varstore, d.Varstore)
				}
			}
		default:
			return
		}
		out, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		check(d2)
		// Bytes: outside [lo, hi) the output is the input.
		if !bytes.HasPrefix(out, in[:lo]) || !bytes.HasSuffix(out[lo:], in[hi:]) {
			t.Fatalf("bytes outside [%d, %d) changed:\n%q\n%q", lo, hi, in, out)
		}
		// Tokens: exactly the ones asked for.
		got := xmltest.Tokens(t, out)
		if len(got) != len(want) {
			t.Fatalf("%d tokens, want %d:\n%q", len(got), len(want), out)
		}
		for i := range got {
			if want[i] == nil { // the added element's indentation
				if cd, ok := got[i].(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
					t.Fatalf("token %d is %#v, want white space", i, got[i])
				}
				continue
			}
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("token %d is %#v, want %#v", i, got[i], want[i])
			}
		}
	})
}

func tokensOf(toks []xmltest.Token) []xml.Token {
	var out []xml.Token
	for _, t := range toks {
		out = append(out, t.Tok)
	}
	return out
}

// withAttr is the edit of setting name=value on <os>'s element elem: the
// input's tokens with the attribute replaced where it is, else added last,
// and the input bytes that may change, the element's start tag.
func withAttr(t *testing.T, in []byte, toks []xmltest.Token, elem, name, value string) ([]xml.Token, int, int) {
	e, ok := xmltest.Find(t, in, "domain", "os", elem)
	if !ok {
		t.Fatalf("no <%s> in <os>", elem)
	}
	want := tokensOf(toks)
	start := want[e.Open].(xml.StartElement)
	attrs := append([]xml.Attr(nil), start.Attr...)
	found := false
	for i := range attrs {
		if attrs[i].Name == (xml.Name{Local: name}) {
			attrs[i].Value, found = value, true
		}
	}
	if !found {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: name}, Value: value})
	}
	start.Attr = attrs
	want[e.Open] = start
	return want, e.Start, e.TagEnd
}

// FuzzSetLoader: replacing the loader path changes only <loader>'s
// content (an empty <loader/> gets opened), and the output reads back the
// new path.
func FuzzSetLoader(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/libvirt-*/*.xml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("<domain><os><loader readonly=\"yes\" type='pflash'/></os></domain>"))
	f.Add([]byte("<domain><os><loader>/a<!-- c --><x/>/b</loader></os></domain>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(in)
		if err != nil || d.Loader == nil {
			return
		}
		const path = "/fw/N&<'\">.fd"
		if err := d.SetLoader(path); err != nil {
			t.Fatal(err)
		}
		out, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(out)
		if err != nil || d2.Loader == nil || d2.Loader.Path != path {
			t.Fatalf("output reads back loader %+v, %v:\n%s", d2, err, out)
		}
		toks := xmltest.Scan(t, in)
		l, _ := xmltest.Find(t, in, "domain", "os", "loader")
		lo, hi := l.TagEnd, toks[l.Close].Start
		if l.TagEnd == l.End {
			lo, hi = l.TagEnd-len("/>"), l.TagEnd
		}
		if !bytes.HasPrefix(out, in[:lo]) || !bytes.HasSuffix(out[lo:], in[hi:]) {
			t.Fatalf("bytes outside [%d, %d) changed:\n%q\n%q", lo, hi, in, out)
		}
		want := append(tokensOf(toks[:l.Open+1]), xml.CharData(path))
		want = append(want, tokensOf(toks[l.Close:])...)
		if got := xmltest.Tokens(t, out); !reflect.DeepEqual(got, want) {
			t.Fatalf("tokens %#v, want %#v", got, want)
		}
	})
}
