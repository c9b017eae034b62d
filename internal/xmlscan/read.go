package xmlscan

import (
	"io"
	"strconv"
)

// Read reads a whole document from r, at most MaxSize bytes.
func Read(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, invalid("reading: " + err.Error())
	}
	if len(data) > MaxSize {
		return nil, invalid("larger than " + strconv.Itoa(MaxSize>>20) + " MiB")
	}
	return data, nil
}
