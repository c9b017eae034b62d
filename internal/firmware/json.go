package firmware

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A small JSON reader for firmware descriptors. encoding/json decodes the
// same documents, but its first use in a process builds reflection caches:
// in the hook, which is a new process for every call, six descriptors
// cost about 0.6 ms to decode that way on a virtual machine, and this
// reader a tenth of it. It parses RFC 8259 JSON into jsonObject ([]member
// in document order), []any, string, jsonNumber, bool and nil, and
// decodeDescriptor then fills descriptorJSON with encoding/json's rules
// (keys matched case-insensitively, null leaves strings and structs alone
// and empties slices, a wrong type is an error). FuzzDescriptorJSON holds
// the two to the same results.

type jsonMember struct {
	key string
	val any
}

type jsonObject []jsonMember

// jsonNumber is a number's text: descriptors have no numeric fields, so
// numbers are only checked, never converted.
type jsonNumber string

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type jsonParser struct {
	data  []byte
	i     int
	depth int
}

func parseJSON(data []byte) (any, error) {
	p := &jsonParser{data: data}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.data) {
		return nil, p.fail("data after the top-level value")
	}
	return v, nil
}

func (p *jsonParser) fail(what string) error {
	return errors.New("invalid JSON at byte " + strconv.Itoa(p.i) + ": " + what)
}

func (p *jsonParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	if p.i >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, lit := range []struct {
		text string
		val  any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(string(p.data[p.i:min(p.i+5, len(p.data))]), lit.text) {
			p.i += len(lit.text)
			return lit.val, nil
		}
	}
	return nil, p.fail("unexpected character")
}

func (p *jsonParser) nest() error {
	if p.depth++; p.depth > maxJSONDepth {
		return p.fail("nested too deeply")
	}
	return nil
}

func (p *jsonParser) object() (any, error) {
	obj := jsonObject{}
	err := p.elements('}', func() error {
		if p.i >= len(p.data) || p.data[p.i] != '"' {
			return p.fail("expected a key")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return p.fail("expected ':'")
		}
		p.i++
		p.space()
		val, err := p.value()
		if err != nil {
			return err
		}
		obj = append(obj, jsonMember{key.(string), val})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func (p *jsonParser) array() (any, error) {
	arr := []any{}
	err := p.elements(']', func() error {
		val, err := p.value()
		if err != nil {
			return err
		}
		arr = append(arr, val)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return arr, nil
}

// elements reads an object's members or an array's elements, from the
// opening bracket at p.i to the closing one, item reading each.
func (p *jsonParser) elements(closing byte, item func() error) error {
	if err := p.nest(); err != nil {
		return err
	}
	p.i++ // { or [
	p.space()
	if p.i < len(p.data) && p.data[p.i] == closing {
		p.i++
		p.depth--
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		switch p.data[p.i] {
		case ',':
			p.i++
			p.space()
		case closing:
			p.i++
			p.depth--
			return nil
		default:
			return p.fail("expected ',' or '" + string(closing) + "'")
		}
	}
}

// str reads a string. Like encoding/json it turns bytes that are not
// UTF-8 and lone surrogate escapes into U+FFFD.
func (p *jsonParser) str() (any, error) {
	p.i++ // "
	var b []byte
	start := p.i
	for {
		if p.i >= len(p.data) {
			return nil, p.fail("unterminated string")
		}
		c := p.data[p.i]
		switch {
		case c == '"':
			s := string(p.data[start:p.i])
			if b != nil {
				s = string(append(b, p.data[start:p.i]...))
			}
			p.i++
			return s, nil
		case c < 0x20:
			return nil, p.fail("control character in string")
		case c == '\\':
			b = append(b, p.data[start:p.i]...)
			r, err := p.escape()
			if err != nil {
				return nil, err
			}
			b = utf8.AppendRune(b, r)
			start = p.i
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(p.data[p.i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, p.data[start:p.i]...)
				b = utf8.AppendRune(b, utf8.RuneError)
				p.i++
				start = p.i
				continue
			}
			p.i += n
		default:
			p.i++
		}
	}
}

// escape reads one escape sequence at p.i (the backslash).
func (p *jsonParser) escape() (rune, error) {
	if p.i+1 >= len(p.data) {
		return 0, p.fail("unterminated string")
	}
	c := p.data[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return 0, p.fail("bad \\u escape")
		}
		if r < 0xD800 || r > 0xDFFF {
			return r, nil
		}
		// A surrogate: valid only as a high one followed by an escaped
		// low one; anything else is U+FFFD (the next escape is read on
		// its own then).
		if r <= 0xDBFF && p.i+1 < len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
			save := p.i
			p.i += 2
			if lo, ok := p.hex4(); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				return (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000, nil
			}
			p.i = save
		}
		return utf8.RuneError, nil
	}
	return 0, p.fail("bad escape")
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.data[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.i < len(p.data) && p.data[p.i] == '0':
		p.i++
	case digits() == 0:
		return nil, p.fail("bad number")
	}
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail("bad number")
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail("bad number")
		}
	}
	return jsonNumber(p.data[start:p.i]), nil
}

// decodeDescriptor fills j from a parsed document with encoding/json's
// rules for decoding into descriptorJSON.
func decodeDescriptor(v any, j *descriptorJSON) error {
	return decodeObject(v, "", func(key string, val any) error {
		switch {
		case strings.EqualFold(key, "description"):
			return decodeString(val, key, &j.Description)
		case strings.EqualFold(key, "interface-types"):
			return decodeStrings(val, key, &j.InterfaceTypes)
		case strings.EqualFold(key, "features"):
			return decodeStrings(val, key, &j.Features)
		case strings.EqualFold(key, "targets"):
			return decodeTargets(val, j)
		case strings.EqualFold(key, "mapping"):
			m := &j.Mapping
			return decodeObject(val, key, func(key string, val any) error {
				switch {
				case strings.EqualFold(key, "device"):
					return decodeString(val, key, &m.Device)
				case strings.EqualFold(key, "mode"):
					return decodeString(val, key, &m.Mode)
				case strings.EqualFold(key, "executable"):
					return decodeFile(val, key, &m.Executable.Filename, &m.Executable.Format)
				case strings.EqualFold(key, "nvram-template"):
					return decodeFile(val, key, &m.NVRAMTemplate.Filename, &m.NVRAMTemplate.Format)
				}
				return nil
			})
		}
		return nil
	})
}

func typeError(key, want string) error {
	if key == "" {
		return errors.New("the descriptor is not a JSON object")
	}
	return errors.New("field " + strconv.Quote(key) + " is not " + want)
}

// decodeObject calls member for each member of an object in order; null
// leaves everything as it is.
func decodeObject(v any, key string, member func(string, any) error) error {
	if v == nil {
		return nil
	}
	obj, ok := v.(jsonObject)
	if !ok {
		return typeError(key, "an object")
	}
	for _, m := range obj {
		if err := member(m.key, m.val); err != nil {
			return err
		}
	}
	return nil
}

func decodeString(v any, key string, dst *string) error {
	switch s := v.(type) {
	case nil:
		return nil
	case string:
		*dst = s
		return nil
	}
	return typeError(key, "a string")
}

func decodeStrings(v any, key string, dst *[]string) error {
	if v == nil {
		*dst = nil
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		return typeError(key, "an array of strings")
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		if err := decodeString(e, key, &out[i]); err != nil {
			return err
		}
	}
	*dst = out
	return nil
}

func decodeFile(v any, key string, filename, format *string) error {
	return decodeObject(v, key, func(key string, val any) error {
		switch {
		case strings.EqualFold(key, "filename"):
			return decodeString(val, key, filename)
		case strings.EqualFold(key, "format"):
			return decodeString(val, key, format)
		}
		return nil
	})
}

func decodeTargets(v any, j *descriptorJSON) error {
	if v == nil {
		j.Targets = nil
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		return typeError("targets", "an array")
	}
	targets := make([]targetJSON, len(arr))
	for i, e := range arr {
		t := &targets[i]
		err := decodeObject(e, "targets", func(key string, val any) error {
			switch {
			case strings.EqualFold(key, "architecture"):
				return decodeString(val, key, &t.Architecture)
			case strings.EqualFold(key, "machines"):
				return decodeStrings(val, key, &t.Machines)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	j.Targets = targets
	return nil
}
