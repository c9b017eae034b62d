// Package xmlscan reads a domain XML from stdin and checks the whole
// document in one pass at memory speed, recording where the few elements
// the hook reads are, without building a tree. It is the part of the XML
// handling that the hook's early exit (internal/early) runs before the
// rest of the program initialises, so it links nothing heavier than bytes
// and fmt: no etree, no encoding/xml.
package xmlscan

import (
	"bytes"
	"strconv"
)

// Span is the byte range of one element, start tag to end tag inclusive.
type Span struct{ Start, End int }

// Layout is what one scan of a document finds: the root element's name,
// the spans of the root's children the hook reads, and whether <os> has a
// <loader> child (without one there is no varstore, whatever else <os>
// holds).
type Layout struct {
	Root     string
	Name     *Span
	OS       *Span
	Features *Span
	// OSChildren are the child elements of <os>, in document order.
	OSChildren []Child
}

// Child is one child element of <os>: its name, its start tag and the
// whole element (the same span for an empty element).
type Child struct {
	Name      string
	Tag, Elem Span
}

// HasLoader reports whether <os> has a <loader> child.
func (l *Layout) HasLoader() bool {
	for _, c := range l.OSChildren {
		if c.Name == "loader" {
			return true
		}
	}
	return false
}

// scan checks that data is well-formed XML in the subset libvirt writes
// (elements, attributes, text with the predefined and numeric character
// references, comments, CDATA, processing instructions; no DOCTYPE) and
// records where <name>, <os> and <features> are. It runs at memory speed,
// so that a filter over a 1 MiB domain does not pay a full tree build for
// the few elements it reads: etree parses those fragments only.
func scan(data []byte) (*Layout, error) {
	l := &Layout{}
	var stack [][]byte // open element names, slices of data: no copies
	var childStart int // start of the current depth-1 element
	var osChild Child  // the <os> child being read (depth 2)
	roots := 0
	i := 0
	for i < len(data) {
		lt := bytes.IndexByte(data[i:], '<')
		if lt < 0 {
			lt = len(data) - i
		}
		if err := checkText(data[i:i+lt], len(stack) == 0); err != nil {
			return nil, invalid(err.Error() + " at byte " + strconv.Itoa(i))
		}
		i += lt
		if i >= len(data) {
			break
		}
		rest := data[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return nil, invalid("comment not closed at byte " + strconv.Itoa(i))
			}
			i += 4 + end + 3
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			if len(stack) == 0 {
				return nil, invalid("CDATA outside the root element")
			}
			end := bytes.Index(rest[9:], []byte("]]>"))
			if end < 0 {
				return nil, invalid("CDATA not closed at byte " + strconv.Itoa(i))
			}
			i += 9 + end + 3
		case bytes.HasPrefix(rest, []byte("<!")):
			return nil, invalid("DOCTYPE and other declarations are not accepted")
		case bytes.HasPrefix(rest, []byte("<?")):
			if nameLen(rest[2:]) == 0 {
				return nil, invalid("processing instruction without a target at byte " + strconv.Itoa(i))
			}
			end := bytes.Index(rest[2:], []byte("?>"))
			if end < 0 {
				return nil, invalid("processing instruction not closed at byte " + strconv.Itoa(i))
			}
			i += 2 + end + 2
		case bytes.HasPrefix(rest, []byte("</")):
			n := nameLen(rest[2:])
			if n == 0 {
				return nil, invalid("bad end tag at byte " + strconv.Itoa(i))
			}
			name := rest[2 : 2+n]
			j := 2 + n + spaces(rest[2+n:])
			if j >= len(rest) || rest[j] != '>' {
				return nil, invalid("end tag </" + string(name) + " not closed at byte " + strconv.Itoa(i))
			}
			if len(stack) == 0 || !bytes.Equal(stack[len(stack)-1], name) {
				return nil, invalid("unexpected </" + string(name) + "> at byte " + strconv.Itoa(i))
			}
			stack = stack[:len(stack)-1]
			i += j + 1
			if inOS(stack) {
				osChild.Elem.End = i
				l.OSChildren = append(l.OSChildren, osChild)
			}
			if len(stack) == 1 {
				if err := l.record(name, Span{childStart, i}); err != nil {
					return nil, err
				}
			}
		default:
			name, n, empty, err := startTag(rest, nil)
			if err != nil {
				return nil, invalid(err.Error() + " at byte " + strconv.Itoa(i))
			}
			if len(stack) == 0 {
				if roots++; roots > 1 {
					return nil, invalid("2 root elements")
				}
				l.Root = string(name)
			}
			if len(stack) == 1 {
				childStart = i
			}
			if inOS(stack) {
				osChild = Child{Name: string(name), Tag: Span{i, i + n}, Elem: Span{i, i + n}}
				if empty {
					l.OSChildren = append(l.OSChildren, osChild)
				}
			}
			i += n
			if !empty {
				stack = append(stack, name)
			} else if len(stack) == 1 {
				if err := l.record(name, Span{childStart, i}); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(stack) > 0 {
		return nil, invalid("<" + string(stack[len(stack)-1]) + "> not closed at the end of the input")
	}
	if roots == 0 {
		return nil, invalid("no root element")
	}
	return l, nil
}

// inOS reports whether the open elements are the root and an <os> in it,
// so that the element starting or ending there is a child of <os>.
func inOS(stack [][]byte) bool {
	return len(stack) == 2 && string(stack[1]) == "os"
}

// record notes a child of the root the hook reads.
func (l *Layout) record(name []byte, s Span) error {
	switch string(name) {
	case "name":
		if l.Name == nil {
			l.Name = &s
		}
	case "features":
		if l.Features == nil {
			l.Features = &s
		}
	case "os":
		if l.OS != nil {
			return invalid("more than one <os> in <domain>")
		}
		l.OS = &s
	}
	return nil
}

// checkText allows only white space outside the root, and only the
// predefined or numeric character references anywhere.
func checkText(t []byte, outside bool) error {
	if outside {
		if len(bytes.TrimSpace(t)) != 0 {
			return reason("text outside the root element")
		}
		return nil
	}
	return checkRefs(t)
}

func checkRefs(t []byte) error {
	for {
		amp := bytes.IndexByte(t, '&')
		if amp < 0 {
			return nil
		}
		t = t[amp+1:]
		semi := bytes.IndexByte(t, ';')
		if semi < 0 || !validRef(t[:semi]) {
			return reason("invalid character reference")
		}
		t = t[semi+1:]
	}
}

func validRef(r []byte) bool {
	switch string(r) {
	case "lt", "gt", "amp", "apos", "quot":
		return true
	}
	if len(r) < 2 || r[0] != '#' {
		return false
	}
	digits, hex := r[1:], false
	if digits[0] == 'x' {
		digits, hex = digits[1:], true
	}
	if len(digits) == 0 || len(digits) > 8 {
		return false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
			return false
		}
	}
	return true
}

// startTag parses "<name attr='v' ...>" or ".../>" at the start of b and
// returns the name, the tag's length and whether it is empty; visit, when
// not nil, gets each attribute's name and raw value.
func startTag(b []byte, visit func(name, value []byte)) ([]byte, int, bool, error) {
	n := nameLen(b[1:])
	if n == 0 {
		return nil, 0, false, reason("bad tag")
	}
	name := b[1 : 1+n]
	i := 1 + n
	var buf [16][]byte
	attrs := buf[:0]
	for {
		sp := spaces(b[i:])
		i += sp
		if i >= len(b) {
			return nil, 0, false, reason("tag <" + string(name) + " not closed")
		}
		switch b[i] {
		case '>':
			return name, i + 1, false, nil
		case '/':
			if i+1 < len(b) && b[i+1] == '>' {
				return name, i + 2, true, nil
			}
			return nil, 0, false, reason("bad tag <" + string(name))
		}
		if sp == 0 {
			return nil, 0, false, reason("attributes of <" + string(name) + "> need white space between them")
		}
		an := nameLen(b[i:])
		if an == 0 {
			return nil, 0, false, reason("bad attribute in <" + string(name) + ">")
		}
		attr := b[i : i+an]
		for _, a := range attrs {
			if bytes.Equal(a, attr) {
				return nil, 0, false, reason("attribute " + string(attr) + " repeated in <" + string(name) + ">")
			}
		}
		attrs = append(attrs, attr)
		i += an
		i += spaces(b[i:])
		if i >= len(b) || b[i] != '=' {
			return nil, 0, false, reason("attribute " + string(attr) + " of <" + string(name) + "> has no value")
		}
		i++
		i += spaces(b[i:])
		if i >= len(b) || (b[i] != '\'' && b[i] != '"') {
			return nil, 0, false, reason("attribute " + string(attr) + " of <" + string(name) + "> is not quoted")
		}
		q := b[i]
		end := bytes.IndexByte(b[i+1:], q)
		if end < 0 {
			return nil, 0, false, reason("attribute " + string(attr) + " of <" + string(name) + "> not closed")
		}
		v := b[i+1 : i+1+end]
		if bytes.IndexByte(v, '<') >= 0 {
			return nil, 0, false, reason("'<' in attribute " + string(attr) + " of <" + string(name) + ">")
		}
		if err := checkRefs(v); err != nil {
			return nil, 0, false, reason(err.Error() + " in attribute " + string(attr) + " of <" + string(name) + ">")
		}
		if visit != nil {
			visit(attr, v)
		}
		i += 1 + end + 1
	}
}

// nameLen is the length of the XML name at the start of b (ASCII name
// characters and any non-ASCII byte, which UTF-8 validation covers).
func nameLen(b []byte) int {
	i := 0
	for i < len(b) {
		c := b[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80 ||
			i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.')
		if !ok {
			break
		}
		i++
	}
	return i
}

func spaces(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
