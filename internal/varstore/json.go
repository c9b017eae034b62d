package varstore

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// MaxJSONTemplateSize caps a uefi-vars JSON template, which the check
// reads whole. QEMU's store holds a few hundred KiB of variables at most,
// hex-encoded.
const MaxJSONTemplateSize = 16 << 20

// checkJSONTemplate checks that the template is a document QEMU's
// uefi-vars device loads (hw/uefi/var-service-json.c with qapi/uefi.json's
// UefiVarStore): one JSON object with an integer "version" and a list of
// "variables", each with string "guid", "name" and "data", an integer
// "attr", and optionally string "time" and "digest"; QEMU's QAPI visitor
// refuses other members, missing ones and nulls, and so does this. A
// template that is not such a document would be copied, then fail the
// guest's start in QEMU.
func checkJSONTemplate(f *os.File, path string, size int64) error {
	if size > MaxJSONTemplateSize {
		return fmt.Errorf("%w %s: %d bytes, more than the %d MiB a uefi-vars JSON template can be", ErrBadTemplate, path, size, MaxJSONTemplateSize>>20)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		return fmt.Errorf("%w %s: %v", ErrBadTemplate, path, err)
	}
	if err := checkUEFIVars(data); err != nil {
		return fmt.Errorf("%w %s: not a uefi-vars JSON varstore: %v", ErrBadTemplate, path, err)
	}
	return nil
}

func checkUEFIVars(data []byte) error {
	if !json.Valid(data) {
		var v any
		return json.Unmarshal(data, &v) // the syntax error, with its offset
	}
	store, err := members(data, "the document", []string{"version", "variables"}, nil)
	if err != nil {
		return err
	}
	var version int64
	if err := value(store["version"], "version", &version); err != nil {
		return err
	}
	var vars []json.RawMessage
	if err := value(store["variables"], "variables", &vars); err != nil {
		return err
	}
	for i, raw := range vars {
		where := fmt.Sprintf("variables[%d]", i)
		v, err := members(raw, where, []string{"guid", "name", "attr", "data"}, []string{"time", "digest"})
		if err != nil {
			return err
		}
		for name, raw := range v {
			var s string
			var n int64
			var dst any = &s
			if name == "attr" {
				dst = &n
			}
			if err := value(raw, where+"."+name, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// members decodes a JSON object and checks its member names: every one of
// required present, nothing beyond required and optional.
func members(raw json.RawMessage, where string, required, optional []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := value(raw, where, &m); err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, k := range required {
		known[k] = true
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s has no %q", where, k)
		}
	}
	for _, k := range optional {
		known[k] = true
	}
	for k := range m {
		if !known[k] {
			return nil, fmt.Errorf("%s has an unexpected member %q", where, k)
		}
	}
	return m, nil
}

// value decodes raw into dst, refusing null (which encoding/json would
// take for "leave as it is").
func value(raw json.RawMessage, where string, dst any) error {
	if string(raw) == "null" {
		return fmt.Errorf("%s is null", where)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	return nil
}
