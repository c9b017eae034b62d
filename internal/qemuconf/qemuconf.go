// Package qemuconf reads the few settings of libvirt's qemu.conf that the
// hook follows: the `nvram = [ "CODE:VARS", ... ]` list and the qemu
// `user` and `group`. It understands libvirt's virconf syntax (strings in
// single or double quotes, numbers, lists across lines, # comments) and
// skips every other key.
package qemuconf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// Pair is one CODE:VARS entry of the nvram list.
type Pair struct {
	Code string
	Vars string
	Line int
}

// Conf holds what the hook reads from qemu.conf.
type Conf struct {
	Path  string
	NVRAM []Pair
	// NVRAMSet: the file sets nvram, even to an empty list. libvirt then
	// drops the loader:nvram list compiled into its build.
	NVRAMSet bool
	User     string
	Group    string
}

// Load reads and parses path. A missing file is returned as an error
// wrapping os.ErrNotExist so that callers can treat it as "not configured".
func Load(path string) (*Conf, error) {
	data, err := safeopen.ReadFile(path, safeopen.MaxConfigSize)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse parses qemu.conf text.
func Parse(data []byte) (*Conf, error) {
	p := &parser{s: string(data), line: 1}
	c := &Conf{}
	for {
		p.skipBlank()
		if p.eof() {
			return c, nil
		}
		key, line, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.eof() || p.s[p.i] != '=' {
			return nil, fmt.Errorf("line %d: expected '=' after %q", line, key)
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if !p.eof() && p.s[p.i] != '\n' && p.s[p.i] != '#' && p.s[p.i] != ';' {
			return nil, fmt.Errorf("line %d: unexpected text after the value of %q", p.line, key)
		}
		switch key {
		case "nvram":
			if v.list == nil {
				return nil, fmt.Errorf("line %d: nvram must be a list of strings", line)
			}
			c.NVRAM, c.NVRAMSet = c.NVRAM[:0], true
			for _, item := range v.list {
				code, vars, ok := SplitPair(item.str)
				if !ok {
					return nil, fmt.Errorf("line %d: nvram entry %q is not CODE:VARS", item.line, item.str)
				}
				c.NVRAM = append(c.NVRAM, Pair{Code: code, Vars: vars, Line: item.line})
			}
		case "user":
			c.User = v.str
		case "group":
			c.Group = v.str
		}
	}
}

// SplitPair splits "CODE:VARS" the way libvirt does: exactly one colon,
// both halves non-empty.
func SplitPair(s string) (code, vars string, ok bool) {
	code, vars, ok = strings.Cut(s, ":")
	if !ok || code == "" || vars == "" || strings.Contains(vars, ":") {
		return "", "", false
	}
	return code, vars, true
}

type value struct {
	str  string
	line int
	list []value // non-nil for a list, even an empty one
}

type parser struct {
	s    string
	i    int
	line int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) skipSpace() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

// skipBlank skips white space, newlines and comments.
func (p *parser) skipBlank() {
	for !p.eof() {
		switch p.s[p.i] {
		case ' ', '\t', '\r', ';':
			p.i++
		case '\n':
			p.line++
			p.i++
		case '#':
			for !p.eof() && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func (p *parser) key() (string, int, error) {
	start := p.i
	for !p.eof() {
		c := p.s[p.i]
		if c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			p.i++
			continue
		}
		break
	}
	if p.i == start {
		return "", p.line, fmt.Errorf("line %d: expected a setting name", p.line)
	}
	return p.s[start:p.i], p.line, nil
}

var errEOF = errors.New("unexpected end of file")

func (p *parser) value() (value, error) {
	p.skipSpace()
	if p.eof() {
		return value{}, fmt.Errorf("line %d: %w", p.line, errEOF)
	}
	switch c := p.s[p.i]; {
	case c == '"' || c == '\'':
		return p.str()
	case c == '[':
		p.i++
		v := value{list: []value{}, line: p.line}
		for {
			p.skipBlank()
			if p.eof() {
				return value{}, fmt.Errorf("line %d: list not closed: %w", v.line, errEOF)
			}
			if p.s[p.i] == ']' {
				p.i++
				return v, nil
			}
			item, err := p.value()
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, item)
			p.skipBlank()
			if !p.eof() && p.s[p.i] == ',' {
				p.i++
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		p.i++
		for !p.eof() && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		return value{str: p.s[start:p.i], line: p.line}, nil
	default:
		return value{}, fmt.Errorf("line %d: expected a string, number or list", p.line)
	}
}

func (p *parser) str() (value, error) {
	q := p.s[p.i]
	line := p.line
	p.i++
	end := strings.IndexByte(p.s[p.i:], q)
	if end < 0 {
		return value{}, fmt.Errorf("line %d: string not closed: %w", line, errEOF)
	}
	s := p.s[p.i : p.i+end]
	if strings.Contains(s, "\n") {
		return value{}, fmt.Errorf("line %d: string not closed on its line", line)
	}
	p.i += end + 1
	return value{str: s, line: line}, nil
}
