package domain

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readAll reads r up to max bytes. From a file or pipe (libvirt's stdin)
// it reads into one anonymous mapping of max bytes, of which only the
// pages written are ever touched: io.ReadAll's doubling buffer touches
// about twice the input, and each page fault costs dearly on a virtual
// machine. The mapping lives as long as the process, which is one call.
func readAll(r io.Reader, max int) ([]byte, error) {
	f, ok := r.(*os.File)
	if !ok {
		return io.ReadAll(io.LimitReader(r, int64(max)))
	}
	buf, err := unix.Mmap(-1, 0, max, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return io.ReadAll(io.LimitReader(r, int64(max)))
	}
	n := 0
	for n < max {
		m, err := f.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf[:n:n], nil
}
