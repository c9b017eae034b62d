// Package xmltest compares XML documents by content for tests: the same
// tokens (names, attributes in order, text, comments, processing
// instructions), whatever quote style each document uses.
package xmltest

import (
	"bytes"
	"encoding/xml"
	"io"
	"reflect"
	"testing"
)

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

// Tokens returns the raw tokens of data.
func Tokens(t testing.TB, data []byte) []xml.Token {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var out []xml.Token
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tokenizing: %v", err)
		}
		out = append(out, xml.CopyToken(tok))
	}
}
