package domain

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

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
		// Undo the change on the output: it must equal the unchanged input.
		doc := etree.NewDocument()
		doc.ReadSettings.PreserveCData = true
		doc.WriteSettings.AttrSingleQuote = true
		doc.WriteSettings.CanonicalText = true
		if err := doc.ReadFromBytes(after); err != nil {
			t.Fatal(err)
		}
		osEl := doc.Root().SelectElement("os")
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
		case hadTemplateAttr(t, before):
			nv.CreateAttr("template", "") // an empty template= was replaced
		default:
			nv.RemoveAttr("template")
		}
		undone, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		xmltest.Same(t, before, undone)
	})
}

// hadTemplateAttr reports whether the document's <os><nvram> carries a
// template attribute, even an empty one.
func hadTemplateAttr(t *testing.T, doc []byte) bool {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Root().SelectElement("os").ChildElements() {
		if c.Tag == "nvram" && c.Space == "" {
			return c.SelectAttr("template") != nil
		}
	}
	return false
}
