package varstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// uefiVarsDoc is a uefi-vars varstore as QEMU writes one (version 2, one
// authenticated variable with time and digest, one plain one).
const uefiVarsDoc = `{
    "version": 2,
    "variables": [
        {
            "guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c",
            "name": "PK",
            "attr": 39,
            "data": "a159c0a5e494a74a87b5ab155c2bf072",
            "time": "e8070c02000000000000000000000000",
            "digest": "00"
        },
        {
            "guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c",
            "name": "Timeout",
            "attr": 7,
            "data": "0500"
        }
    ]
}
`

// TestCreateJSONVarstore: a uefi-vars <varstore> (libvirt 12.1+) is made
// from a JSON template by the same atomic writer, byte for byte, with no
// conversion, and only from a document QEMU's uefi-vars device loads.
func TestCreateJSONVarstore(t *testing.T) {
	for _, tt := range []struct {
		name, doc, err string
	}{
		{"QEMU's own format", uefiVarsDoc, ""},
		{"no variables", `{"version": 2, "variables": []}`, ""},
		{"not JSON", "garbage", "invalid character 'g'"},
		{"a raw OVMF template", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x8d\x2b\xf1\xff", "invalid character"},
		{"truncated", uefiVarsDoc[:100], "unexpected end of JSON input"},
		{"trailing text", `{"version": 2, "variables": []} x`, "invalid character 'x' after top-level value"},
		{"an array", `[]`, "the document: json: cannot unmarshal array"},
		{"a firmware descriptor", `{"description": "OVMF", "interface-types": ["uefi"]}`, `the document has no "version"`},
		{"no variables list", `{"version": 2}`, `the document has no "variables"`},
		{"an unexpected member", `{"version": 2, "variables": [], "extra": 1}`, `unexpected member "extra"`},
		{"version not an integer", `{"version": "2", "variables": []}`, "version: json: cannot unmarshal string"},
		{"a variable without attr", `{"version": 2, "variables": [{"guid": "x", "name": "n", "data": ""}]}`, `variables[0] has no "attr"`},
		{"a null name", `{"version": 2, "variables": [{"guid": "x", "name": null, "attr": 7, "data": ""}]}`, "variables[0].name is null"},
		{"attr a string", `{"version": 2, "variables": [{"guid": "x", "name": "n", "attr": "7", "data": ""}]}`, "variables[0].attr: json: cannot unmarshal string"},
		{"data a number", `{"version": 2, "variables": [{"guid": "x", "name": "n", "attr": 7, "data": 5}]}`, "variables[0].data: json: cannot unmarshal number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fw, nv := t.TempDir(), t.TempDir()
			tmpl := filepath.Join(fw, "VARS.json")
			os.WriteFile(tmpl, []byte(tt.doc), 0o644)
			res, err := Create(nv, "vm.json", tmpl, Options{UID: -1, GID: -1, Format: "json"})
			target := filepath.Join(nv, "vm.json")
			if tt.err != "" {
				if !errors.Is(err, ErrBadTemplate) || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "not a uefi-vars JSON varstore") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v; want one line, ErrBadTemplate, saying %q", err, tt.err)
				}
				if _, err := os.Lstat(target); !os.IsNotExist(err) {
					t.Error("a varstore was created from a bad template")
				}
				noTempLeft(t, nv)
				return
			}
			if err != nil || !res.Created || res.Size != int64(len(tt.doc)) {
				t.Fatalf("Create = %+v, %v", res, err)
			}
			got, _ := os.ReadFile(target)
			if string(got) != tt.doc {
				t.Errorf("varstore = %q, want the template's bytes", got)
			}
			if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode().Perm())
			}
			noTempLeft(t, nv)
		})
	}
}

// TestJSONVarstoreNeverReplaced: an existing JSON varstore is left as it
// is, even when it is not valid JSON (QEMU's business, not the hook's).
func TestJSONVarstoreNeverReplaced(t *testing.T) {
	fw, nv := t.TempDir(), t.TempDir()
	tmpl := filepath.Join(fw, "VARS.json")
	os.WriteFile(tmpl, []byte(uefiVarsDoc), 0o644)
	target := filepath.Join(nv, "vm.json")
	os.WriteFile(target, []byte("{half"), 0o600)
	res, err := Create(nv, "vm.json", tmpl, Options{UID: -1, GID: -1, Format: "json"})
	if err != nil || res.Created {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(target); string(got) != "{half" {
		t.Errorf("the existing varstore changed: %q", got)
	}
}
