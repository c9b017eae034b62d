package xmlscan

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"
)

// MaxSize caps the domain XML we accept on stdin. libvirt's own XML for a
// guest with thousands of disks stays well below a few MiB.
const MaxSize = 64 << 20

// ErrInvalid marks every reason a document is not a domain we can act on.
var ErrInvalid = errors.New("invalid domain XML")

// The package builds its messages without fmt: fmt needs reflect, and an
// import of it here would make internal/early's initialiser wait until
// reflect, encoding/xml and etree (whose import paths sort first) have
// initialised, which is the work early exists to skip.

// invalidError is why a document is not a domain we act on; it wraps
// ErrInvalid.
type invalidError string

func (e invalidError) Error() string { return ErrInvalid.Error() + ": " + string(e) }
func (e invalidError) Unwrap() error { return ErrInvalid }

func invalid(msg string) error { return invalidError(msg) }

// reason is a detail that the caller turns into an invalid() with the
// byte offset.
type reason string

func (r reason) Error() string { return string(r) }

// Check checks data as a whole domain document and returns its layout. It
// rejects what libvirt never sends: a DOCTYPE (and with it entity
// definitions), a root other than <domain>, two <os>, bytes that are not
// UTF-8, characters XML forbids, anything not well-formed.
func Check(data []byte) (*Layout, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalid("empty input")
	}
	if err := checkChars(data); err != nil {
		return nil, err
	}
	l, err := scan(data)
	if err != nil {
		return nil, err
	}
	if l.Root != "domain" {
		return nil, invalid("root element is not <domain>")
	}
	return l, nil
}

const (
	highBits = 0x8080808080808080
	spaceX8  = 0x2020202020202020
)

// checkChars checks, in one pass, that data is UTF-8 and holds none of
// the characters XML 1.0 forbids everywhere: control characters other
// than tab, newline and carriage return, U+FFFE, U+FFFF. Runs of printable
// ASCII, nearly all of a domain XML, go eight bytes at a time.
func checkChars(data []byte) error {
	i := 0
	for i < len(data) {
		for i+8 <= len(data) {
			b := data[i : i+8 : i+8]
			w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
				uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			// No byte >= 0x80 and none < 0x20 (the subtraction borrows
			// into a byte's high bit only for bytes below 0x20).
			if w&highBits != 0 || (w-spaceX8)&^w&highBits != 0 {
				break
			}
			i += 8
		}
		if i >= len(data) {
			break
		}
		switch c := data[i]; {
		case c >= 0x20 && c < utf8.RuneSelf, c == '\t', c == '\n', c == '\r':
			i++
		case c < 0x20:
			return invalid("control character 0x" + strconv.FormatUint(uint64(c), 16) + " at byte " + strconv.Itoa(i))
		default:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return invalid("not UTF-8 at byte " + strconv.Itoa(i))
			}
			if r == 0xFFFE {
				return invalid("character U+FFFE at byte " + strconv.Itoa(i))
			}
			if r == 0xFFFF {
				return invalid("character U+FFFF at byte " + strconv.Itoa(i))
			}
			i += n
		}
	}
	return nil
}
