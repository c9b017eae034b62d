package xmlscan

import "bytes"

// Element is a child element of <os> as written: its attributes and its
// text, both only when they are plain (see OSChildren).
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

// PlainFirmware reads <loader> and <nvram> out of the <os> element that
// Check located, without a tree. It answers only in the plain cases, which
// are all libvirt writes: at most one <loader>, <nvram>, <type> and
// <firmware>; attributes without namespace prefixes or references; text
// without references, comments, CDATA or carriage returns; <nvram>
// holding text or one <source/>. ok is false for anything else, and the
// caller then uses the full parser (internal/domain), which decides those
// cases with etree; the two agree wherever this one answers (early's
// tests compare them over libvirt's test domains).
func PlainFirmware(data []byte, l *Layout) (fw Firmware, ok bool) {
	if l.OS == nil {
		return fw, true
	}
	b := data[l.OS.Start:l.OS.End]
	_, n, empty, err := startTag(b)
	if err != nil {
		return fw, false
	}
	if empty {
		return fw, true
	}
	seen := map[string]bool{}
	i := n
	for {
		lt := bytes.IndexByte(b[i:], '<')
		if lt < 0 {
			return fw, false
		}
		i += lt
		rest := b[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("</")):
			return fw, true // </os>
		case bytes.HasPrefix(rest, []byte("<!--")):
			n := special(rest)
			if n < 0 {
				return fw, false
			}
			i += n
			continue
		case bytes.HasPrefix(rest, []byte("<!")), bytes.HasPrefix(rest, []byte("<?")):
			return fw, false // CDATA or a processing instruction directly in <os>
		}
		name, tagLen, empty, err := startTag(rest)
		if err != nil {
			return fw, false
		}
		elemLen := tagLen
		var content []byte
		if !empty {
			end := closing(rest[tagLen:])
			if end < 0 {
				return fw, false
			}
			content = rest[tagLen : tagLen+end]
			elemLen = tagLen + end + len("</") + len(name) + len(">")
		}
		switch tag := string(name); tag {
		case "type", "firmware", "loader", "nvram":
			if seen[tag] {
				return fw, false // several: the full parser reports it
			}
			seen[tag] = true
			if tag == "type" || tag == "firmware" {
				break
			}
			e, ok := plainElement(rest[:tagLen], content, tag == "nvram")
			if !ok {
				return fw, false
			}
			if tag == "loader" {
				fw.Loader = e
			} else {
				fw.NVRAM = e
			}
		}
		i += elemLen
	}
}

// closing returns the offset in b (just after a start tag) of the end tag
// that closes it, or -1; b is well-formed (Check accepted it).
func closing(b []byte) int {
	depth := 0
	for i := 0; i < len(b); {
		lt := bytes.IndexByte(b[i:], '<')
		if lt < 0 {
			return -1
		}
		i += lt
		rest := b[i:]
		if n := special(rest); n != 0 {
			if n < 0 {
				return -1
			}
			i += n
			continue
		}
		switch {
		case bytes.HasPrefix(rest, []byte("</")):
			if depth == 0 {
				return i
			}
			depth--
			i += 2
		default:
			_, n, empty, err := startTag(rest)
			if err != nil {
				return -1
			}
			if !empty {
				depth++
			}
			i += n
		}
	}
	return -1
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
	name, n, empty, err := startTag(inner)
	if err != nil || string(name) != "source" || !empty || n != len(inner) {
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
// false if one has a namespace prefix or a reference.
func plainAttrs(tag []byte) (map[string]string, bool) {
	attrs := map[string]string{}
	i := 1 + nameLen(tag[1:])
	for {
		i += spaces(tag[i:])
		if i >= len(tag) || tag[i] == '>' || tag[i] == '/' {
			return attrs, true
		}
		an := nameLen(tag[i:])
		name := tag[i : i+an]
		if bytes.IndexByte(name, ':') >= 0 {
			return nil, false
		}
		i += an
		i += spaces(tag[i:])
		i++ // '='
		i += spaces(tag[i:])
		q := tag[i]
		end := bytes.IndexByte(tag[i+1:], q)
		v := tag[i+1 : i+1+end]
		if bytes.IndexByte(v, '&') >= 0 || bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\t') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
			return nil, false
		}
		attrs[string(name)] = string(v)
		i += 1 + end + 1
	}
}

// special returns the length of the comment, CDATA section or processing
// instruction at the start of b, 0 if there is none, -1 if it is not
// closed.
func special(b []byte) int {
	for _, m := range [...]struct{ open, close string }{{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}} {
		if bytes.HasPrefix(b, []byte(m.open)) {
			end := bytes.Index(b[len(m.open):], []byte(m.close))
			if end < 0 {
				return -1
			}
			return len(m.open) + end + len(m.close)
		}
	}
	return 0
}
