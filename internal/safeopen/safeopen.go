// Package safeopen opens the files the hook reads (templates, its config,
// qemu.conf, firmware descriptors, domain XML files), and the log file it
// appends to, so that no open can block and nothing but a regular file is
// ever read or written.
//
// A plain open(2) of a FIFO waits for a writer, and libvirtd holds the
// domain's job while the hook runs: a FIFO named as a template or a config
// file would hang the guest's start forever. So every file is opened with
// O_NONBLOCK (a FIFO then opens at once), checked with fstat on the
// descriptor (not the name, which may change meanwhile), refused unless it
// is a regular file, and only then switched back to blocking reads.
package safeopen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by the error for anything that is not a regular
// file: a FIFO, a socket, a device, a directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by ReadFile's error for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// File opens path read-only. Errors are *os.PathError, so
// errors.Is(err, os.ErrNotExist) works; a file that is not regular gives
// one that wraps ErrNotRegular and names what it is ("a FIFO").
func File(path string) (*os.File, error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return regularBlocking(fd, path)
}

// AppendAt opens name in the directory dirfd for appending, creating it
// with mode perm if missing, with the same guarantees as File: the open
// cannot block (a FIFO without a reader fails at once, ENXIO), only a
// regular file is kept, and a symlink as name is never followed. Anything
// else already at name (a FIFO, a device, a socket, a symlink) is refused
// before it is opened at all, so no device ever sees an open for writing.
// path names the file in errors, which wrap ErrNotRegular as File's do.
func AppendAt(dirfd int, name, path string, perm uint32) (*os.File, error) {
	notRegular := func(mode uint32) error {
		return &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(mode))}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, notRegular(st.Mode)
	}
	var fd int
	var err error
	for {
		fd, err = unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, perm)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		// Replaced since the check: name what is there now.
		if e := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); e == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, notRegular(st.Mode)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return regularBlocking(fd, path)
}

// regularBlocking keeps the descriptor fd, opened with O_NONBLOCK, only if
// fstat says it is a regular file, and makes it blocking again.
func regularBlocking(fd int, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(st.Mode))}
	}
	// Regular files ignore O_NONBLOCK today, but reads and writes must not
	// see EAGAIN should a filesystem ever honour it (some FUSE and network
	// ones do).
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadFile returns the content of the regular file at path, refusing one
// of more than limit bytes (ErrTooLarge).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := File(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	// One byte more than the limit tells a file that grew meanwhile.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit)
	}
	return data, nil
}

func tooLarge(path string, limit int64) error {
	return &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
}

// ReadDir lists the directory at path, sorted by name like os.ReadDir. A
// FIFO or anything else that is not a directory fails without blocking.
func ReadDir(path string) ([]os.DirEntry, error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	d := os.NewFile(uintptr(fd), path)
	defer d.Close()
	entries, err := d.ReadDir(-1)
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Kind names the file type in mode (a stat st_mode) for error messages.
func Kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFBLK, unix.S_IFCHR:
		return "a device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "of unknown type"
}

// MaxConfigSize caps the small files the hook reads whole: its config,
// qemu.conf and firmware descriptors, a few KiB each.
const MaxConfigSize = 16 << 20
