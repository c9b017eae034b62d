// Package varstore creates a UEFI varstore from its template so that it
// appears whole or not at all, and never touches one that exists.
//
// The file is built as a hidden temp file in the target's directory
// (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, owned by the qemu user), filled,
// fsynced, then committed with a primitive that cannot replace an existing
// file (renameat2 RENAME_NOREPLACE, else link(2)), and the directory is
// fsynced so the new name survives a crash. Everything happens relative to
// one directory descriptor, so a path swapped under us cannot redirect it.
package varstore

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// MaxTemplateSize caps what we copy: the largest real templates (AAVMF)
// are 64 MiB; anything far beyond is a wrong path, not a varstore.
const MaxTemplateSize = 256 << 20

// Sentinel errors, matched with errors.Is.
var (
	ErrNotRegular  = safeopen.ErrNotRegular
	ErrBadTemplate = errors.New("unusable varstore template")
	ErrFormat      = errors.New("template format does not match the varstore format")
)

// TempMarker is part of every temp file name: hidden, recognisable, and
// ending in .tmp so nothing mistakes it for a varstore.
const TempMarker = ".nvram-hook-"

// Options for Create.
type Options struct {
	UID, GID int // owner of the new file; -1 leaves the creator's
	// Format is the varstore's: "raw" or "qcow2" (a pflash NVRAM file),
	// "json" (a uefi-vars <varstore>, libvirt 12.1+: copied as it is, its
	// template checked to be what QEMU's uefi-vars device loads) or ""
	// (unchecked).
	Format string
	// TemplateFormat is what the template is declared to be (libvirt's
	// templateFormat=); "" trusts its content.
	TemplateFormat string
	// QemuImg finds the qemu-img binary that converts a template whose
	// format differs from Format. It is called only then (a PATH search
	// costs a dozen stats on every create otherwise); nil or "" refuses
	// such a template.
	QemuImg func() string
	MaxSize int64 // 0 = MaxTemplateSize
}

// Result says what Create did.
type Result struct {
	Created bool   // false: the varstore already existed (or appeared meanwhile)
	Size    int64  // bytes in the new varstore
	Method  string // "reflink" or "sparse copy"
	// LockErr is why the temp file could not be locked (ENOLCK: NFS
	// without locks), nil when it was. Had this invocation died, its
	// temp file would stay until removed by hand.
	LockErr error
}

// flock is unix.Flock; tests replace it to act out a filesystem without
// locks.
var flock = unix.Flock

// Exists reports whether a varstore is at path as libvirt and QEMU see
// it: a regular file, or a symlink to one (they follow it; the hook never
// writes there, so it need not judge where it leads). Anything else there
// is an error: a dangling symlink (creating through it would write where
// it points), a directory, a device, a symlink to one of those.
func Exists(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		to, err := os.Stat(path)
		switch {
		case err == nil && to.Mode().IsRegular():
			return true, nil
		case err == nil:
			return false, fmt.Errorf("%s: %w (a symlink to %s)", path, ErrNotRegular, kind(to))
		case errors.Is(err, os.ErrNotExist):
			return false, fmt.Errorf("%s: %w (a dangling symlink); refusing to create a varstore through it", path, ErrNotRegular)
		}
		return false, fmt.Errorf("%s: %w (a symlink that cannot be followed: %v)", path, ErrNotRegular, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(fi))
	}
	return true, nil
}

// kind names what fi is ("a FIFO"), as safeopen does for a descriptor.
func kind(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return safeopen.Kind(st.Mode)
	}
	return "not a regular file"
}

// Create opens dir (OpenDir: symlinks on the way only where root owns
// them) and creates name in it: see Dir.Create.
func Create(dir, name, template string, opt Options) (Result, error) {
	d, err := OpenDir(dir)
	if err != nil {
		return Result{}, err
	}
	defer d.Close()
	return d.Create(name, template, opt)
}

// Create makes the varstore name in d from template. If it exists as a
// regular file, nothing is opened for writing and Created is false.
func (d *Dir) Create(name, template string, opt Options) (res Result, err error) {
	if err := validName(name); err != nil {
		return res, err
	}
	dir, dfd := d.Path, d.fd
	target := filepath.Join(dir, name)

	if exists, err := existsAt(dfd, name, target); err != nil || exists {
		return res, err
	}

	src, size, srcFormat, err := openTemplate(template, opt)
	if err != nil {
		return res, err
	}
	defer src.Close()
	qemuImg := ""
	if opt.Format != "" && srcFormat != opt.Format {
		if opt.QemuImg != nil {
			qemuImg = opt.QemuImg()
		}
		if qemuImg == "" {
			return res, fmt.Errorf("%w: template %s is %s, the varstore is declared %s, and converting needs qemu-img (Debian, Ubuntu: qemu-utils; Fedora: qemu-img)", ErrFormat, template, srcFormat, opt.Format)
		}
	}

	removeStale(dfd)
	tmp, err := tempName(name)
	if err != nil {
		return res, err
	}
	tfd, err := unix.Openat(dfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return res, &os.PathError{Op: "create", Path: filepath.Join(dir, tmp), Err: err}
	}
	dst := os.NewFile(uintptr(tfd), filepath.Join(dir, tmp))
	// The lock tells a later invocation that this temp file is being
	// written; the kernel drops it when we exit, however we exit. Where
	// the filesystem has no locks (NFS mounted nolock: ENOLCK) the copy
	// goes on unlocked: other invocations on that mount cannot lock it
	// either and so never take it for stale (removeStale); Result says so.
	lockErr := flock(tfd, unix.LOCK_EX|unix.LOCK_NB)
	committed := false
	defer func() {
		dst.Close()
		if !committed {
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()

	// Owner and mode before any content, so the data is never readable
	// by anyone but its owner; fchmod because O_CREAT's mode is umasked.
	if opt.UID >= 0 || opt.GID >= 0 {
		if err := dst.Chown(opt.UID, opt.GID); err != nil {
			return res, fmt.Errorf("setting owner %d:%d on %s: %w", opt.UID, opt.GID, dst.Name(), err)
		}
	}
	if err := dst.Chmod(0o600); err != nil {
		return res, err
	}
	var method string
	if qemuImg != "" {
		method, err = "qemu-img convert", convert(qemuImg, src, srcFormat, opt.Format, dst)
		if err == nil {
			size, err = convertedSize(dst, opt.Format)
		}
	} else {
		method, err = copyContent(dst, src, size)
	}
	if err != nil {
		return res, fmt.Errorf("writing %s: %w", target, err)
	}
	// Data must be on disk before the name points at it, or a crash could
	// leave a varstore of the right size full of zeros.
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("syncing %s: %w", target, err)
	}
	if fi, err := dst.Stat(); err != nil {
		return res, err
	} else if fi.Size() != size {
		return res, fmt.Errorf("writing %s: copied %d bytes, template has %d", target, fi.Size(), size)
	}

	won, err := commit(dfd, tmp, name)
	if err != nil {
		return res, fmt.Errorf("committing %s: %w", target, err)
	}
	if !won {
		// Another invocation created it first; theirs is complete
		// (it was committed the same way), ours is discarded.
		return res, nil
	}
	committed = true
	unix.Unlinkat(dfd, tmp, 0) // the link(2) path leaves the temp name behind
	if err := unix.Fsync(dfd); err != nil {
		return res, fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return Result{Created: true, Size: size, Method: method, LockErr: lockErr}, nil
}

func existsAt(dfd int, name, target string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "stat", Path: target, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("%s: %w (%s); refusing to create a varstore there", target, ErrNotRegular, safeopen.Kind(st.Mode))
	}
	return true, nil
}

// openTemplate opens the template (safeopen: never blocks, regular files
// only) and checks what a template must be, on the descriptor that is then
// read: an absolute path (a relative one would be resolved against
// whatever directory the hook runs in), a file only root (or the user the
// hook runs as) can change (owned by one of them, neither group- nor
// world-writable: it becomes the variables, Secure Boot keys included, of
// every new guest), non-empty and of sane size. It returns the template's
// format, from its content, checked against the declared one.
func openTemplate(path string, opt Options) (*os.File, int64, string, error) {
	if !filepath.IsAbs(path) {
		return nil, 0, "", fmt.Errorf("%w %s: not an absolute path", ErrBadTemplate, path)
	}
	f, err := safeopen.File(path)
	if err != nil {
		return nil, 0, "", fmt.Errorf("%w: %w", ErrBadTemplate, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("%w %s: %v", ErrBadTemplate, path, err)
	}
	max := opt.MaxSize
	if max == 0 {
		max = MaxTemplateSize
	}
	format := ""
	switch {
	case !trustedOwner(st.Uid, uint32(os.Geteuid())):
		err = fmt.Errorf("%w %s: owned by uid %d; a template must belong to root (or to the user the hook runs as)", ErrBadTemplate, path, st.Uid)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("%w %s: mode %04o lets others than its owner change it (chmod go-w)", ErrBadTemplate, path, st.Mode&0o7777)
	case st.Size == 0:
		err = fmt.Errorf("%w %s: empty file", ErrBadTemplate, path)
	case st.Size > max:
		err = fmt.Errorf("%w %s: %d bytes, more than the %d MiB a varstore template can be", ErrBadTemplate, path, st.Size, max>>20)
	case opt.Format == "json":
		format, err = "json", checkJSONTemplate(f, path, st.Size)
	default:
		format, err = detectFormat(f, path)
	}
	switch {
	case err != nil:
	case opt.TemplateFormat != "" && opt.TemplateFormat != format:
		err = fmt.Errorf("%w: template %s is %s, declared templateFormat='%s'", ErrFormat, path, format, opt.TemplateFormat)
	}
	if err != nil {
		f.Close()
		return nil, 0, "", err
	}
	return f, st.Size, format, nil
}

var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// FormatOf returns the format of the regular file at path, "raw" or
// "qcow2", by its content.
func FormatOf(path string) (string, error) {
	f, err := safeopen.File(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return detectFormat(f, path)
}

// detectFormat tells qcow2 from raw by the qcow2 magic, as QEMU does.
func detectFormat(f *os.File, path string) (string, error) {
	head := make([]byte, 4)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("%w %s: %v", ErrBadTemplate, path, err)
	}
	if n == 4 && bytes.Equal(head, qcow2Magic) {
		return "qcow2", nil
	}
	return "raw", nil
}

// tempName is hidden, unique per call and recognisable as ours.
func tempName(name string) (string, error) {
	// getrandom(2) directly: crypto/rand would link, and initialise on
	// every hook call, the whole FIPS crypto module for 8 bytes.
	var b [8]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		return "", fmt.Errorf("getrandom: %w", err)
	}
	return "." + name + TempMarker + hex.EncodeToString(b[:]) + ".tmp", nil
}

// renameNoReplace is a variable so tests can take the link(2) path that
// filesystems without RENAME_NOREPLACE (NFS, older kernels) need.
var renameNoReplace = func(dfd int, from, to string) error {
	return unix.Renameat2(dfd, from, dfd, to, unix.RENAME_NOREPLACE)
}

// commit gives tmp the final name unless that name exists. It returns
// false when another file won the name.
func commit(dfd int, tmp, name string) (bool, error) {
	err := renameNoReplace(dfd, tmp, name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP):
		return false, err
	}
	// Filesystems without RENAME_NOREPLACE: link(2) also never replaces.
	err = unix.Linkat(dfd, tmp, dfd, name, 0)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	}
	return false, err
}

// StaleAge is how old an unlocked temp file must be before a later
// invocation removes it. The lock alone decides liveness; the age only
// covers the instant between a writer's create and its flock.
const StaleAge = time.Minute

// IsTemp reports whether a directory entry is one of our temp files.
func IsTemp(name string) bool {
	i := strings.Index(name, TempMarker)
	if !strings.HasPrefix(name, ".") || i < 0 || !strings.HasSuffix(name, ".tmp") {
		return false
	}
	h := name[i+len(TempMarker) : len(name)-len(".tmp")]
	if len(h) != 16 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// removeStale deletes temp files left by invocations that died (killed,
// crashed, power loss): ours, older than StaleAge, and that we can lock. A
// temp file we cannot lock is left alone, whatever the reason: EWOULDBLOCK
// is a live writer, and ENOLCK (NFS without locks) means liveness cannot
// be told, so it is held too. Errors are ignored: cleanup must never fail a
// VM start.
func removeStale(dfd int) {
	// Read the entries through a duplicate: closing it keeps dfd open.
	nfd, err := unix.Dup(dfd)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(nfd), "")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	for _, name := range names {
		if !IsTemp(name) {
			continue
		}
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
			time.Since(time.Unix(st.Mtim.Unix())) > StaleAge &&
			flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			unix.Unlinkat(dfd, name, 0)
		}
		unix.Close(fd)
	}
}
