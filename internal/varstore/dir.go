package varstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// Dir is a directory opened for creating varstores in it. Everything the
// writer does there (the existence check, the temp file, the commit, the
// fsync) goes through this descriptor, never through the name again, so a
// directory swapped for a symlink after it was opened changes nothing.
type Dir struct {
	fd int
	// Path is the directory really opened: its path with symlinks resolved,
	// at the moment it was opened.
	Path string
}

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// OpenAppend opens the file name in the directory for appending, creating
// it with mode perm: safeopen.AppendAt (no blocking, regular files only,
// no symlink followed).
func (d *Dir) OpenAppend(name string, perm uint32) (*os.File, error) {
	return safeopen.AppendAt(d.fd, name, filepath.Join(d.Path, name), perm)
}

// OutsideError is Place's error for a varstore path the hook must leave
// alone: relative, outside allowed_dirs, or reached through a symlink that
// someone other than root may have planted.
type OutsideError struct{ Reason string }

func (e *OutsideError) Error() string { return e.Reason }

// UntrustedSymlinkError is a symlink OpenDir refuses to follow.
type UntrustedSymlinkError struct {
	Link       string // the symlink, as reached
	UID, DirID uint32 // owners of the symlink and of the directory holding it
}

func (e *UntrustedSymlinkError) Error() string {
	return fmt.Sprintf("%s is a symlink owned by uid %d in a directory owned by uid %d; only symlinks that root owns in directories that root owns are followed", e.Link, e.UID, e.DirID)
}

// trustedOwner says whether a symlink, or the directory holding it, owned
// by uid can only have been made by someone the hook trusts: root, and
// the user the hook runs as (a session daemon's user, whose own symlinks
// are theirs to plant).
func trustedOwner(uid, euid uint32) bool { return uid == 0 || uid == euid }

// maxSymlinks bounds how many symlinks OpenDir follows, as the kernel's
// own path walk does (ELOOP after 40).
const maxSymlinks = 40

// OpenDir opens the directory at path, an absolute path, one component at
// a time and without letting the kernel follow any symlink: a symlink on
// the way is followed only when it and the directory holding it are owned
// by root (or by the user the hook runs as), systemd's rule for safe path
// walking. Anyone else who can write a directory on the way (on Debian
// the qemu user owns /var/lib/libvirt/qemu) could otherwise point the
// walk anywhere. ".." goes to the parent of the directory really reached.
func OpenDir(path string) (*Dir, error) {
	if !filepath.IsAbs(path) {
		return nil, &os.PathError{Op: "open directory", Path: path, Err: errors.New("not an absolute path")}
	}
	euid := uint32(os.Geteuid())
	type step struct {
		fd   int
		uid  uint32
		name string
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open directory", Path: "/", Err: err}
	}
	stack := []step{{fd: root}}
	defer func() {
		for _, s := range stack {
			unix.Close(s.fd)
		}
	}()
	where := func() string {
		names := make([]string, len(stack)-1)
		for i, s := range stack[1:] {
			names[i] = s.name
		}
		return "/" + strings.Join(names, "/")
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: "/", Err: err}
	}
	stack[0].uid = st.Uid
	todo := strings.Split(path, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1].fd)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		parent := stack[len(stack)-1]
		fd, err := unix.Openat(parent.fd, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open directory", Path: filepath.Join(where(), c), Err: err}
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "stat", Path: filepath.Join(where(), c), Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			stack = append(stack, step{fd, st.Uid, c})
			continue
		case unix.S_IFLNK:
		default:
			unix.Close(fd)
			return nil, &os.PathError{Op: "open directory", Path: filepath.Join(where(), c), Err: unix.ENOTDIR}
		}
		link := filepath.Join(where(), c)
		if !trustedOwner(st.Uid, euid) || !trustedOwner(parent.uid, euid) {
			unix.Close(fd)
			return nil, &UntrustedSymlinkError{Link: link, UID: st.Uid, DirID: parent.uid}
		}
		if links++; links > maxSymlinks {
			unix.Close(fd)
			return nil, &os.PathError{Op: "open directory", Path: path, Err: unix.ELOOP}
		}
		// Read the link through the descriptor just checked: the name may
		// have been replaced meanwhile, the descriptor cannot.
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(fd, "", buf)
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "readlink", Path: link, Err: err}
		}
		target := string(buf[:n])
		if strings.HasPrefix(target, "/") {
			for _, s := range stack[1:] {
				unix.Close(s.fd)
			}
			stack = stack[:1]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	// The walk holds O_PATH descriptors; the writer needs one it can list,
	// create in and fsync.
	top := stack[len(stack)-1]
	fd, err := unix.Openat(top.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open directory", Path: where(), Err: err}
	}
	return &Dir{fd: fd, Path: where()}, nil
}

// Place opens the directory in which the varstore at path may be created
// and returns it with the file name. The directory, walked by OpenDir,
// must be one of allowed (each walked by OpenDir too) or lie below one;
// it is then opened again beneath the allowed directory's descriptor with
// no symlinks at all (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so
// the kernel holds it inside whatever changed since the walk. An error
// that is an *OutsideError means the hook leaves the path to libvirt; any
// other error is a directory inside allowed_dirs that cannot be used.
func Place(allowed []string, path string) (*Dir, string, error) {
	if !filepath.IsAbs(path) {
		return nil, "", &OutsideError{path + " is not an absolute path"}
	}
	// Split without cleaning: "dir/link/../name" is in link's target's
	// parent, as the kernel resolves it, not in dir.
	i := strings.LastIndex(path, "/")
	parent, name := path[:i], path[i+1:]
	if err := validName(name); err != nil {
		return nil, "", &OutsideError{path + " does not name a file"}
	}
	outside := func(detail string) error {
		return &OutsideError{fmt.Sprintf("%s%s is outside allowed_dirs (%s)", path, detail, strings.Join(allowed, ":"))}
	}
	d, err := OpenDir("/" + parent)
	var untrusted *UntrustedSymlinkError
	switch {
	case errors.As(err, &untrusted):
		return nil, "", &OutsideError{path + ": " + err.Error()}
	case err != nil && withinAny(filepath.Clean(path), allowed):
		return nil, "", err // inside by name, but the directory is unusable
	case err != nil:
		return nil, "", outside("")
	}
	defer d.Close()
	for _, a := range allowed {
		ad, err := OpenDir(a)
		if err != nil {
			continue // an allowed directory that cannot be walked safely allows nothing
		}
		rel, ok := below(d.Path, ad.Path)
		if !ok {
			ad.Close()
			continue
		}
		fd, err := openBeneath(ad.fd, rel)
		ad.Close()
		if err != nil {
			return nil, "", &os.PathError{Op: "open directory", Path: d.Path, Err: fmt.Errorf("%w (changed while it was opened?)", err)}
		}
		return &Dir{fd: fd, Path: d.Path}, name, nil
	}
	return nil, "", outside(" (directory " + d.Path + ")")
}

// openBeneath opens rel, a relative path without "..", beneath the
// directory dfd, following no symlink and never leaving dfd.
func openBeneath(dfd int, rel string) (int, error) {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(dfd, rel, &how)
	if err != unix.ENOSYS {
		return fd, err
	}
	// Before Linux 5.6: the same, one component at a time.
	fd, err = unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for _, c := range strings.Split(rel, "/") {
		if err != nil || c == "." {
			continue
		}
		next, e := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		fd, err = next, e
	}
	return fd, err
}

// below returns dir relative to base when dir is base or lies below it
// (both clean absolute paths).
func below(dir, base string) (string, bool) {
	if dir == base {
		return ".", true
	}
	rest, ok := strings.CutPrefix(dir, strings.TrimSuffix(base, "/")+"/")
	return rest, ok && rest != ""
}

func withinAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if _, ok := below(path, filepath.Clean(d)); ok {
			return true
		}
	}
	return false
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid varstore file name %q", name)
	}
	return nil
}
