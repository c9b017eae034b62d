package varstore

import (
	"bytes"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// chunk is the copy unit, as cp's: a larger buffer saves few syscalls but
// costs a page fault per 4 KiB touched, and on a virtual machine a fault
// can cost more than copying its page (make bench measured 36 µs).
const chunk = 64 << 10

// copyContent fills dst (empty, just created) with src's size bytes. It
// tries a reflink first (btrfs, XFS: instant, shares blocks), then copies
// only the data regions of src and skips runs of zeros, so an all-zero
// 64 MiB AAVMF template allocates nothing, like cp --sparse=always.
func copyContent(dst, src *os.File, size int64) (string, error) {
	if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err == nil {
		return "reflink", nil
	}
	if err := sparseCopy(dst, src, size); err != nil {
		return "", err
	}
	return "sparse copy", nil
}

func sparseCopy(dst, src *os.File, size int64) error {
	buf := make([]byte, chunk)
	sfd := int(src.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			data = off // no SEEK_DATA support: treat everything as data
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if err := copyRange(dst, src, buf, data, hole); err != nil {
			return err
		}
		off = hole
	}
	// The tail may be a hole or skipped zeros: the size still has to match.
	return dst.Truncate(size)
}

// copyRange copies [from, to) and writes only the chunks that are not all
// zeros, leaving holes for the rest.
func copyRange(dst, src *os.File, buf []byte, from, to int64) error {
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		m, err := src.ReadAt(buf[:n], off)
		if m == 0 && err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF // the template shrank under us
			}
			return err
		}
		if err := writeNonZero(dst, buf[:m], off); err != nil {
			return err
		}
		off += int64(m)
	}
	return nil
}

// block is the zero-detection unit, the page and usual filesystem block.
const block = 4096

// writeNonZero writes b at off except for its all-zero blocks, coalescing
// neighbouring data blocks into one write.
func writeNonZero(dst *os.File, b []byte, off int64) error {
	start := -1
	for i := 0; i < len(b); i += block {
		end := min(i+block, len(b))
		zero := allZero(b[i:end])
		if !zero && start < 0 {
			start = i
		}
		if zero && start >= 0 {
			if _, err := dst.WriteAt(b[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := dst.WriteAt(b[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}

// zeros is compared against with bytes.Equal, whose assembly is many
// times faster than a Go loop (and not slowed by -race instrumentation).
var zeros [block]byte

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), block)
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
