package varstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// chunk is each copier's read size. On this kind of virtual machine a
// syscall costs about as much as copying 32 KiB from the page cache, and a
// fresh page of buffer about as much as a syscall: 128 KiB halves the
// reads of 64 KiB for 32 pages more (make bench, issue 6).
const chunk = 128 << 10

// parallelMin is the amount of data from which the copy is split between
// goroutines, one per CPU up to maxCopiers: reading a 64 MiB template from
// the page cache is bound by one core's copy speed, and two copiers take
// 2.4 ms where one takes 6 ms. Below it a second buffer and thread cost
// more than they save.
const (
	parallelMin = 8 << 20
	maxCopiers  = 4
)

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

// extent is a byte range [from, to) of the template.
type extent struct{ from, to int64 }

func sparseCopy(dst, src *os.File, size int64) error {
	data, total := dataExtents(src, size)
	copiers := 1
	if total >= parallelMin {
		copiers = min(runtime.GOMAXPROCS(0), maxCopiers)
	}
	parts := split(data, total, copiers)
	errs := make(chan error, len(parts))
	var failed atomic.Bool
	for _, part := range parts[1:] {
		go func() { errs <- copyExtents(dst, src, part, &failed) }()
	}
	err := copyExtents(dst, src, parts[0], &failed)
	for range parts[1:] {
		if e := <-errs; err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	// The tail may be a hole or skipped zeros: the size still has to match.
	return dst.Truncate(size)
}

// dataExtents lists the regions of src that hold data (SEEK_DATA and
// SEEK_HOLE; everything, where the filesystem cannot tell) and their total.
func dataExtents(src *os.File, size int64) ([]extent, int64) {
	var data []extent
	var total int64
	sfd := int(src.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			start = off // no SEEK_DATA support: treat everything as data
		}
		hole, err := unix.Seek(sfd, start, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if hole > start {
			data = append(data, extent{start, hole})
			total += hole - start
		}
		off = hole
	}
	return data, total
}

// split cuts the extents into n parts of about equal data, at block
// boundaries, so that zero detection stays aligned with the file's blocks.
// It always returns at least one part (empty when there is no data).
func split(data []extent, total int64, n int) [][]extent {
	share := (total + int64(n) - 1) / int64(n)
	share = max((share+block-1)/block*block, block)
	parts := [][]extent{nil}
	left := share
	for _, e := range data {
		for e.from < e.to {
			if left == 0 {
				parts = append(parts, nil)
				left = share
			}
			end := e.from + min(e.to-e.from, left)
			last := len(parts) - 1
			parts[last] = append(parts[last], extent{e.from, end})
			left -= end - e.from
			e.from = end
		}
	}
	return parts
}

// copyExtents copies one copier's extents with its own buffer, stopping
// early once another copier failed.
func copyExtents(dst, src *os.File, part []extent, failed *atomic.Bool) error {
	if len(part) == 0 {
		return nil
	}
	buf := make([]byte, chunk)
	for _, e := range part {
		if failed.Load() {
			return nil
		}
		if err := copyRange(dst, src, buf, e.from, e.to); err != nil {
			failed.Store(true)
			return err
		}
	}
	return nil
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
