package varstore

import (
	"bytes"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyContent fills dst (empty, just created) with src's size bytes. It
// tries a reflink first (btrfs, XFS: the new file shares the template's
// blocks), then copies only the data regions of src and leaves holes for
// blocks of zeros, so an all-zero 64 MiB AAVMF template allocates nothing,
// like cp --sparse=always.
func copyContent(dst, src *os.File, size int64) (string, error) {
	if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err == nil {
		return "reflink", nil
	}
	if err := sparseCopy(dst, src, size); err != nil {
		return "", err
	}
	return "sparse copy", nil
}

// sparseCopy walks src's data regions (SEEK_DATA, SEEK_HOLE; the whole file
// where the filesystem cannot tell) and writes what is not zeros.
func sparseCopy(dst, src *os.File, size int64) error {
	buf := make([]byte, copyBuffer)
	sfd := int(src.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			start = off // no SEEK_DATA: everything is data
		}
		end, err := unix.Seek(sfd, start, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		if err := copyRange(dst, src, buf, start, end); err != nil {
			return err
		}
		off = end
	}
	// The tail may be a hole or skipped zeros: the size still has to match.
	return dst.Truncate(size)
}

// copyBuffer is the size of each read.
const copyBuffer = 128 << 10

// copyRange copies [from, to) of src to the same offsets of dst, writing
// only the blocks that are not all zeros.
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

// block is the unit of zero detection: the page and usual filesystem block.
const block = 4096

// writeNonZero writes b at off except for its all-zero blocks, one write
// for each run of neighbouring data blocks.
func writeNonZero(dst *os.File, b []byte, off int64) error {
	start := -1
	for i := 0; i < len(b); i += block {
		end := min(i+block, len(b))
		zero := bytes.Equal(b[i:end], zeros[:end-i])
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

var zeros [block]byte
