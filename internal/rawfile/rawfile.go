// Package rawfile reads the hook's small input files (its config,
// qemu.conf, firmware descriptors) with plain system calls. os.ReadFile
// first tries to register every file with the runtime's poller, five
// more system calls per file (and the poller's own set-up on the first),
// which on a virtual machine cost about as much as the read itself; the
// hook is a new process on every call, reading up to a dozen such files.
package rawfile

import (
	"os"
	"syscall"
)

// MaxSize caps what Read accepts: these files are a few KiB.
const MaxSize = 16 << 20

// Read returns the content of the file at path, like os.ReadFile, with
// errors as *os.PathError (errors.Is(err, os.ErrNotExist) works). A
// directory fails to read (EISDIR), /dev/null is empty, and a FIFO is
// opened non-blocking, so that it never hangs the hook (without a writer
// it reads as empty, with one as what is there or EAGAIN).
func Read(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Size > MaxSize {
		return nil, &os.PathError{Op: "read", Path: path, Err: syscall.EFBIG}
	}
	buf := make([]byte, 0, st.Size+1) // +1: EOF in the same read loop
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= MaxSize {
				return nil, &os.PathError{Op: "read", Path: path, Err: syscall.EFBIG}
			}
			buf = append(buf, 0)[:len(buf)] // the file grew: more room
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
