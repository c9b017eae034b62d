package domain

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmlscan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmltest"
)

// FuzzRewrite: reading never panics; a document we accept and rewrite
// parses again, says what we wrote, and differs from the unchanged
// document only in the <nvram> element or its template attribute.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/libvirt-9.0/*.xml")
	more, _ := filepath.Glob("../../testdata/golden/*.in.xml")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("<domain><name>x</name><os><loader readonly='yes' type='pflash'>/c</loader></os></domain>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(in)
		if err != nil {
			return
		}
		before, err := d.Bytes()
		if err != nil {
			t.Fatalf("serializing an accepted document: %v", err)
		}
		added := false
		switch {
		case d.Loader != nil && d.NVRAM == nil:
			if err := d.AddNVRAM("/nv/x y_VARS.fd", "/fw/V&'\".fd"); err != nil {
				t.Fatal(err)
			}
			added = true
		case d.NVRAM != nil && d.NVRAM.Template == "":
			if err := d.SetTemplate("/fw/V<>.fd"); err != nil {
				t.Fatal(err)
			}
		default:
			return
		}
		after, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(after)
		if err != nil {
			t.Fatalf("rewritten document does not parse: %v\n%s", err, after)
		}
		if d2.NVRAM == nil || d2.NVRAM.Template != d.NVRAM.Template || (added && d2.NVRAM.Path != "/nv/x y_VARS.fd") {
			t.Fatalf("reparsed nvram %+v, wrote %+v", d2.NVRAM, d.NVRAM)
		}
		// Outside <os> the output is the input byte for byte; inside,
		// undoing the change gives back the input's <os>.
		lin, err := xmlscan.Check(before)
		if err != nil {
			t.Fatal(err)
		}
		lout, err := xmlscan.Check(after)
		if err != nil {
			t.Fatalf("rewritten document does not scan: %v", err)
		}
		if !bytes.Equal(before[:lin.OS.Start], after[:lout.OS.Start]) || !bytes.Equal(before[lin.OS.End:], after[lout.OS.End:]) {
			t.Fatalf("bytes outside <os> changed:\n%q\n%q", before, after)
		}
		docIn, osIn, err := fragment(before, *lin.OS)
		if err != nil {
			t.Fatal(err)
		}
		doc, osEl, err := fragment(after, *lout.OS)
		if err != nil {
			t.Fatal(err)
		}
		var nv *etree.Element
		for _, c := range osEl.ChildElements() {
			if c.Tag == "nvram" && c.Space == "" {
				nv = c
			}
		}
		switch {
		case added:
			i := nv.Index()
			osEl.RemoveChildAt(i)
			osEl.RemoveChildAt(i - 1)
		case hadTemplateAttr(osIn):
			nv.CreateAttr("template", "") // an empty template= was replaced
		default:
			nv.RemoveAttr("template")
		}
		undone, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		want, err := docIn.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		xmltest.Same(t, want, undone)
	})
}

// hadTemplateAttr reports whether <os>'s <nvram> carries a template
// attribute, even an empty one.
func hadTemplateAttr(os *etree.Element) bool {
	for _, c := range os.ChildElements() {
		if c.Tag == "nvram" && c.Space == "" {
			return c.SelectAttr("template") != nil
		}
	}
	return false
}
