package safeopen

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/nohang"
)

// noHang runs f and fails the test if it has not returned after a minute:
// the open of a FIFO without a writer blocks forever.
func noHang(t *testing.T, f func()) {
	t.Helper()
	nohang.Run(t, time.Minute, "the open waits (for a FIFO's writer?)", f)
}

func TestFileRefusesWhatIsNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop)
	for _, tt := range []struct {
		name, path string
		want       error
		msg        string
	}{
		{"FIFO without a writer", fifo, ErrNotRegular, "a FIFO"},
		{"directory", dir, ErrNotRegular, "a directory"},
		{"device", "/dev/null", ErrNotRegular, "a device"},
		{"socket", sock, unix.ENXIO, "no such device or address"}, // open(2) refuses sockets itself
		{"missing", filepath.Join(dir, "missing"), os.ErrNotExist, "no such file"},
		{"symlink loop", loop, unix.ELOOP, "too many levels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noHang(t, func() {
				f, err := File(tt.path)
				if err == nil {
					f.Close()
				}
				var pe *os.PathError
				if !errors.Is(err, tt.want) || !errors.As(err, &pe) || pe.Path != tt.path || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("File(%s) = %v; want a *os.PathError for it wrapping %v, saying %q", tt.path, err, tt.want, tt.msg)
				}
				_, err = ReadFile(tt.path, 1<<20)
				if !errors.Is(err, tt.want) {
					t.Errorf("ReadFile(%s) = %v; want %v", tt.path, err, tt.want)
				}
			})
		})
	}
}

// TestFIFOWithWriter: even with a writer holding the FIFO open (where a
// blocking open would succeed and a read would wait for data) the FIFO is
// refused.
func TestFIFOWithWriter(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	noHang(t, func() {
		if _, err := ReadFile(fifo, 1<<20); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadFile = %v, want ErrNotRegular", err)
		}
	})
}

func TestFileIsBlockingAndCloseOnExec(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o644)
	f, err := File(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("status flags %#x, %v: O_NONBLOCK still set", fl, err)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor flags %#x, %v: not close-on-exec", fd, err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name  string
		data  []byte
		limit int64
		err   error
	}{
		{"empty", nil, 10, nil},
		{"small", []byte("[nvram]\ndir = /x\n"), 100, nil},
		{"exactly the limit", bytes.Repeat([]byte("x"), 64<<10), 64 << 10, nil},
		{"one byte over", bytes.Repeat([]byte("x"), 64<<10+1), 64 << 10, ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := write(tt.name, tt.data)
			got, err := ReadFile(p, tt.limit)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ReadFile = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("ReadFile = %d bytes, %v; want %d bytes", len(got), err, len(tt.data))
			}
		})
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.json", "a.json", "c"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	entries, err := ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != "a.json b.json c" {
		t.Errorf("ReadDir = %v, %v", names, err)
	}
	fifo := filepath.Join(dir, "fifo")
	unix.Mkfifo(fifo, 0o644)
	noHang(t, func() {
		if _, err := ReadDir(fifo); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("ReadDir(FIFO) = %v, want ENOTDIR", err)
		}
	})
	if _, err := ReadDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadDir(missing) = %v", err)
	}
}
