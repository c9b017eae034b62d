package xmlscan

import "bytes"

// Element is a child element of <os> as written: its attributes and its
// text, both only when they are plain (see PlainFirmware).
type Element struct {
	Attrs map[string]string
	Text  string // with surrounding white space removed
	// Source is the file= of a lone <source> child (libvirt's newer
	// <nvram type='file'><source file='...'/></nvram> form).
	Source string
}

// Firmware is what <os> says about the firmware, in the plain cases.
type Firmware struct {
	Loader *Element // nil: no <loader>
	NVRAM  *Element // nil: no <nvram>
}

// PlainFirmware reads <loader> and <nvram> out of the <os> children that
// Check recorded, without a tree. It answers only in the plain cases,
// which are all libvirt writes: at most one <loader>, <nvram>, <type> and
// <firmware>; attributes without namespace prefixes, references or
// white space other than spaces; text without references, comments, CDATA
// or carriage returns; <nvram> holding text or one <source/>. ok is false
// for anything else, and the caller then uses the full parser
// (internal/domain), which decides those cases with etree; the two agree
// wherever this one answers (early's tests compare them over libvirt's
// test domains and fuzzed documents).
func PlainFirmware(data []byte, l *Layout) (fw Firmware, ok bool) {
	seen := map[string]bool{}
	for _, c := range l.OSChildren {
		switch c.Name {
		case "type", "firmware", "loader", "nvram":
			if seen[c.Name] {
				return fw, false // several: the full parser reports it
			}
			seen[c.Name] = true
		}
		if c.Name != "loader" && c.Name != "nvram" {
			continue
		}
		var content []byte
		if c.Elem.End > c.Tag.End { // not empty: content up to </name>
			content = data[c.Tag.End : c.Elem.End-len("</"+c.Name+">")]
		}
		e, ok := plainElement(data[c.Tag.Start:c.Tag.End], content, c.Name == "nvram")
		if !ok {
			return fw, false
		}
		if c.Name == "loader" {
			fw.Loader = e
		} else {
			fw.NVRAM = e
		}
	}
	return fw, true
}

// plainElement reads one <loader> or <nvram>: its start tag and content.
func plainElement(tag, content []byte, nvram bool) (*Element, bool) {
	attrs, ok := plainAttrs(tag)
	if !ok {
		return nil, false
	}
	e := &Element{Attrs: attrs}
	if bytes.IndexByte(content, '<') < 0 {
		if bytes.IndexByte(content, '&') >= 0 || bytes.IndexByte(content, '\r') >= 0 {
			return nil, false
		}
		e.Text = string(bytes.TrimSpace(content))
		return e, true
	}
	// Only <nvram><source file='...'/></nvram>, with white space around.
	inner := bytes.TrimSpace(content)
	if !nvram || !bytes.HasPrefix(inner, []byte("<")) {
		return nil, false
	}
	if name, n, empty, err := startTag(inner, nil); err != nil || string(name) != "source" || !empty || n != len(inner) {
		return nil, false
	}
	src, ok := plainAttrs(inner)
	if !ok {
		return nil, false
	}
	e.Source = src["file"]
	return e, true
}

// plainAttrs returns the attributes of a start tag that Check accepted, or
// false if one has a namespace prefix, a reference or white space that
// XML would normalise.
func plainAttrs(tag []byte) (map[string]string, bool) {
	attrs := map[string]string{}
	ok := true
	_, _, _, err := startTag(tag, func(name, value []byte) {
		if bytes.IndexByte(name, ':') >= 0 || bytes.ContainsAny(value, "&\n\t\r") {
			ok = false
		}
		attrs[string(name)] = string(value)
	})
	if err != nil || !ok {
		return nil, false
	}
	return attrs, true
}
