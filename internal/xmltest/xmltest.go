// Package xmltest reads XML documents for tests with encoding/xml, apart
// from the code under test: their tokens with where each is written, and
// where an element is.
package xmltest

import (
	"bytes"
	"encoding/xml"
	"io"
	"reflect"
	"testing"
)

// Token is one raw token of a document and the bytes [Start, End) it was
// read from. The end element of <x/> is read from no bytes: Start == End.
type Token struct {
	Tok        xml.Token
	Start, End int
}

// Scan returns the raw tokens of data, failing t if it is not well-formed.
func Scan(t testing.TB, data []byte) []Token {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var out []Token
	for {
		start := int(dec.InputOffset())
		tok, err := dec.RawToken()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tokenizing: %v", err)
		}
		out = append(out, Token{xml.CopyToken(tok), start, int(dec.InputOffset())})
	}
}

// Tokens returns the raw tokens of data.
func Tokens(t testing.TB, data []byte) []xml.Token {
	t.Helper()
	var out []xml.Token
	for _, tok := range Scan(t, data) {
		out = append(out, tok.Tok)
	}
	return out
}

// Same fails t unless a and b hold the same XML tokens.
func Same(t testing.TB, a, b []byte) {
	t.Helper()
	ta, tb := Tokens(t, a), Tokens(t, b)
	if len(ta) != len(tb) {
		t.Fatalf("token counts differ: %d vs %d\n%s\n---\n%s", len(ta), len(tb), a, b)
	}
	for i := range ta {
		if !reflect.DeepEqual(ta[i], tb[i]) {
			t.Fatalf("token %d differs: %#v vs %#v", i, ta[i], tb[i])
		}
	}
}

// Element is where an element is written: its start tag [Start, TagEnd)
// and the whole element [Start, End); Open and Close index its start and
// end tokens in Scan's list.
type Element struct {
	Start, TagEnd, End int
	Open, Close        int
}

// Find returns the first element at path, element names without a prefix
// from the root down ("domain", "os", "nvram").
func Find(t testing.TB, data []byte, path ...string) (Element, bool) {
	t.Helper()
	toks := Scan(t, data)
	var stack []string
	var open []int
	for i, tok := range toks {
		switch x := tok.Tok.(type) {
		case xml.StartElement:
			name := x.Name.Local
			if x.Name.Space != "" {
				name = x.Name.Space + ":" + name
			}
			stack = append(stack, name)
			open = append(open, i)
		case xml.EndElement:
			if reflect.DeepEqual(stack, path) {
				o := toks[open[len(open)-1]]
				return Element{Start: o.Start, TagEnd: o.End, End: tok.End, Open: open[len(open)-1], Close: i}, true
			}
			stack, open = stack[:len(stack)-1], open[:len(open)-1]
		}
	}
	return Element{}, false
}
