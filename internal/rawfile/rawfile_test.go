package rawfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if f, err := os.Create(big); err == nil {
		f.Truncate(MaxSize + 1)
		f.Close()
	}
	for _, tt := range []struct {
		name, path string
		want       []byte
		err        error
	}{
		{"empty", write("empty", nil), []byte{}, nil},
		{"small", write("small", []byte("[nvram]\ndir = /x\n")), []byte("[nvram]\ndir = /x\n"), nil},
		{"64 KiB", write("64k", bytes.Repeat([]byte("x"), 64<<10)), bytes.Repeat([]byte("x"), 64<<10), nil},
		{"missing", filepath.Join(dir, "missing"), nil, os.ErrNotExist},
		{"directory", dir, nil, syscall.EISDIR},
		{"FIFO without a writer: empty, no hang", fifo, []byte{}, nil},
		{"/dev/null", "/dev/null", []byte{}, nil},
		{"over MaxSize", big, nil, syscall.EFBIG},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(tt.path)
			if tt.err != nil {
				var pe *os.PathError
				if !errors.Is(err, tt.err) || !errors.As(err, &pe) || pe.Path != tt.path {
					t.Fatalf("Read = %v, want a *os.PathError for %s wrapping %v", err, tt.path, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("Read = %d bytes, %v; want %d bytes", len(got), err, len(tt.want))
			}
		})
	}
}
