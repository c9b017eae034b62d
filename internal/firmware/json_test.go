package firmware

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// decodeStd is what ReadDescriptor used to do, and what decodeDescriptor
// must agree with.
func decodeStd(data []byte) (descriptorJSON, error) {
	var j descriptorJSON
	err := json.Unmarshal(data, &j)
	return j, err
}

func decodeOurs(data []byte) (descriptorJSON, error) {
	var j descriptorJSON
	v, err := parseJSON(data)
	if err == nil {
		err = decodeDescriptor(v, &j)
	}
	return j, err
}

// repeatsKeys reports whether some object repeats a key (compared as
// encoding/json compares them, case-insensitively). encoding/json then
// merges the values in ways no descriptor relies on (the second
// "targets" array is decoded into the first one's elements); ours takes
// the last value whole. The comparison leaves those documents out.
func repeatsKeys(v any) bool {
	switch v := v.(type) {
	case jsonObject:
		for i, m := range v {
			for _, n := range v[:i] {
				if strings.EqualFold(m.key, n.key) {
					return true
				}
			}
			if repeatsKeys(m.val) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if repeatsKeys(e) {
				return true
			}
		}
	}
	return false
}

func compareDecoders(t *testing.T, data []byte) {
	t.Helper()
	std, errStd := decodeStd(data)
	ours, errOurs := decodeOurs(data)
	if (errStd == nil) != (errOurs == nil) {
		if errOurs == nil {
			if v, _ := parseJSON(data); repeatsKeys(v) {
				return
			}
		}
		t.Fatalf("%q: encoding/json error %v, ours %v", data, errStd, errOurs)
	}
	if errStd != nil {
		return
	}
	if v, _ := parseJSON(data); repeatsKeys(v) {
		return
	}
	if !reflect.DeepEqual(std, ours) {
		t.Fatalf("%q:\nencoding/json %+v\nours          %+v", data, std, ours)
	}
}

func TestDescriptorJSONAgrees(t *testing.T) {
	files, _ := filepath.Glob("/usr/share/qemu/firmware/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		compareDecoders(t, data)
		if d, err := decodeOurs(data); err != nil || d.Mapping.Executable.Filename == "" && d.Mapping.Device == "flash" {
			t.Errorf("%s: %+v, %v", f, d, err)
		}
	}
	t.Logf("%d descriptors of this host", len(files))
	for _, in := range jsonCases {
		compareDecoders(t, []byte(in))
	}
}

var jsonCases = []string{
	descriptor("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
	`{}`, `null`, ` [] `, `"x"`, `1`, `true`, ``, ` `, `{`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`,
	`{"description":null,"mapping":null,"targets":null,"features":null}`,
	`{"description":"a","description":null}`,
	`{"features":[]}`, `{"features":["a",null,"b"]}`, `{"features":[1]}`, `{"features":"a"}`,
	`{"DESCRIPTION":"up","Mapping":{"DEVICE":"flash","Executable":{"FileName":"/x"}}}`,
	`{"ſeatures":["long s"],"interface-typeſ":["x"]}`, `{"description":"\u212a"}`,
	`{"mapping":{"device":1}}`, `{"mapping":[]}`, `{"targets":{}}`, `{"targets":[null,{"machines":null},{"architecture":"x86_64","machines":["pc-*"]}]}`,
	`{"targets":[1]}`, `{"mapping":{"executable":{"filename":"/a","format":"raw","x":[1,{"y":null}]}}}`,
	`{"x":1e400,"y":-0.5E-3,"z":0,"w":[true,false,null]}`, `{"x":01}`, `{"x":-}`, `{"x":1.}`, `{"x":.5}`, `{"x":1e}`, `{"x":+1}`,
	`{"description":"tab\tin string"}`, `{"description":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`,
	`{"description":"\uD83D"}`, `{"description":"\uD83Dx"}`, `{"description":"\uDE00\uD83D"}`, `{"description":"\uD83D\u0041"}`,
	`{"description":"\x"}`, `{"description":"\u12"}`, `{"description":"\u12G4"}`,
	"{\"description\":\"\xff\xfe bytes\"}", "{\"description\":\"\xed\xa0\x80\"}", "\xef\xbb\xbf{}",
	`{"a":1} x`, `{"a":1}{}`, `truex`, `nul`, `[[[[]]]]`,
	"{\"description\":\"a\"}\n\t\r ",
}

// FuzzDescriptorJSON holds the JSON reader to encoding/json, document by
// document: the same documents accepted, the same descriptor fields.
func FuzzDescriptorJSON(f *testing.F) {
	for _, in := range jsonCases {
		f.Add([]byte(in))
	}
	files, _ := filepath.Glob("/usr/share/qemu/firmware/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareDecoders(t, data)
	})
}

// TestJSONDepth: encoding/json's nesting limit, ours too.
func TestJSONDepth(t *testing.T) {
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	compareDecoders(t, []byte(deep))
	ok := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, err := parseJSON([]byte(ok)); err != nil {
		t.Errorf("depth %d refused: %v", maxJSONDepth, err)
	}
}
