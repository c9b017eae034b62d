package xmlscan

import (
	"io"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), which package
// syscall lacks; golang.org/x/sys/unix has it, but its import path sorts
// after etree's and would delay internal/early's initialiser (see
// check.go).
const madvPopulateWrite = 23

// Read reads a whole document from r, at most MaxSize bytes.
func Read(r io.Reader) ([]byte, error) {
	data, err := readAll(r, MaxSize+1)
	if err != nil {
		return nil, invalid("reading: " + err.Error())
	}
	if len(data) > MaxSize {
		return nil, invalid("larger than " + strconv.Itoa(MaxSize>>20) + " MiB")
	}
	return data, nil
}

// readAll reads r up to max bytes. From a file or pipe (libvirt's stdin)
// it reads into one anonymous mapping of max bytes, of which only the
// pages written are ever touched: io.ReadAll's doubling buffer touches
// about twice the input, and each page fault costs dearly on a virtual
// machine. Before each read, the pages the read will fill (as many bytes
// as FIONREAD (TIOCINQ) says are waiting) are populated with one madvise instead of
// faulting in one by one, which halves their cost there. The mapping
// lives as long as the process, which is one call.
func readAll(r io.Reader, max int) ([]byte, error) {
	f, ok := r.(*os.File)
	if !ok {
		return io.ReadAll(io.LimitReader(r, int64(max)))
	}
	buf, err := syscall.Mmap(-1, 0, max, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return io.ReadAll(io.LimitReader(r, int64(max)))
	}
	const page = 4096
	fd := int(f.Fd())
	n, populated := 0, 0
	for n < max {
		want := page // nothing waiting: wait for data or EOF, touching at most a page
		if avail := waiting(fd); avail > 0 {
			want = avail
		}
		end := min(n+want, max)
		if end > populated {
			// Errors are ignored: the pages then fault in as read fills them.
			top := min((end+page-1)/page*page, max)
			_ = syscall.Madvise(buf[populated:top], madvPopulateWrite)
			populated = top
		}
		m, err := f.Read(buf[n:end])
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

// waiting is FIONREAD (TIOCINQ): the bytes a read of fd would return now
// (a pipe's buffered data, a file's rest), or 0 when unknown.
func waiting(fd int) int {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0
	}
	return int(n)
}
