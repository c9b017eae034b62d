package varstore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// crashFS is an in-memory FUSE filesystem that keeps, beside what a
// process sees, what a power loss would leave: a file's data as of its
// last fsync, and a directory's entries as of its last fsync (POSIX makes
// a new name durable only by an fsync of its directory). Nothing else is
// ever durable, so a writer that leaves out either fsync leaves a state
// after the "crash" that shows it.
type crashFS struct{ mu sync.Mutex } // guards every node's durable state

type crashFile struct {
	fs.Inode
	c       *crashFS
	mu      sync.Mutex
	data    []byte
	durable []byte
	mode    uint32
}

type crashDir struct {
	fs.Inode
	c       *crashFS
	durable map[string]*crashFile
}

var (
	_ fs.NodeCreater   = (*crashDir)(nil)
	_ fs.NodeRenamer   = (*crashDir)(nil)
	_ fs.NodeLinker    = (*crashDir)(nil)
	_ fs.NodeUnlinker  = (*crashDir)(nil)
	_ fs.NodeFsyncer   = (*crashDir)(nil)
	_ fs.NodeGetattrer = (*crashDir)(nil)
	_ fs.NodeOpener    = (*crashFile)(nil)
	_ fs.NodeReader    = (*crashFile)(nil)
	_ fs.NodeWriter    = (*crashFile)(nil)
	_ fs.NodeSetattrer = (*crashFile)(nil)
	_ fs.NodeFsyncer   = (*crashFile)(nil)
	_ fs.NodeGetattrer = (*crashFile)(nil)
)

func (d *crashDir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (d *crashDir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if d.GetChild(name) != nil {
		return nil, nil, 0, syscall.EEXIST
	}
	f := &crashFile{c: d.c, mode: mode & 0o7777}
	return d.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG}), nil, 0, 0
}

func (d *crashDir) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	switch {
	case flags&^unix.RENAME_NOREPLACE != 0:
		return syscall.EINVAL
	case flags&unix.RENAME_NOREPLACE != 0 && newParent.EmbeddedInode().GetChild(newName) != nil:
		return syscall.EEXIST
	}
	return 0 // go-fuse moves the entry
}

func (d *crashDir) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	return target.EmbeddedInode(), 0
}

func (d *crashDir) Unlink(ctx context.Context, name string) syscall.Errno { return 0 }

// Fsync of the directory makes its entries as they are now durable.
func (d *crashDir) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	d.durable = map[string]*crashFile{}
	for name, ch := range d.Children() {
		if f, ok := ch.Operations().(*crashFile); ok {
			d.durable[name] = f
		}
	}
	return 0
}

func (f *crashFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *crashFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	out.Mode = syscall.S_IFREG | f.mode
	out.Size = uint64(len(f.data))
	return 0
}

func (f *crashFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	if sz, ok := in.GetSize(); ok {
		f.data = append(f.data[:min(int(sz), len(f.data))], make([]byte, max(0, int(sz)-len(f.data)))...)
	}
	if m, ok := in.GetMode(); ok {
		f.mode = m & 0o7777
	}
	f.mu.Unlock()
	return f.Getattr(ctx, fh, out)
}

func (f *crashFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	off = min(off, int64(len(f.data)))
	return fuse.ReadResultData(bytes.Clone(f.data[off:min(int(off)+len(dest), len(f.data))])), 0
}

func (f *crashFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := int(off) + len(data); end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
	copy(f.data[off:], data)
	return uint32(len(data)), 0
}

// Fsync of the file makes its data as it is now durable.
func (f *crashFile) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.durable = bytes.Clone(f.data)
	return 0
}

// afterCrash returns what a power loss now would leave at name: whether
// the name would exist, and the data it would hold.
func (d *crashDir) afterCrash(name string) (bool, []byte) {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	f, ok := d.durable[name]
	if !ok {
		return false, nil
	}
	return true, bytes.Clone(f.durable)
}

// mountCrashFS mounts a crashFS with one directory, nvram, made durable.
func mountCrashFS(t *testing.T) (mnt string, nvram *crashDir) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a FUSE filesystem (CI runs as root)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse: durability not tested")
	}
	c := &crashFS{}
	root := &crashDir{c: c}
	nvram = &crashDir{c: c}
	mnt = t.TempDir()
	zero := time.Duration(0)
	srv, err := fs.Mount(mnt, root, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMountStrict: true, FsName: "crashfs", Name: "crashfs"},
		OnAdd: func(ctx context.Context) {
			root.AddChild("nvram", root.NewPersistentInode(ctx, nvram, fs.StableAttr{Mode: syscall.S_IFDIR}), false)
		},
	})
	if err != nil {
		t.Skipf("cannot mount a FUSE filesystem here (%v): durability not tested", err)
	}
	t.Cleanup(func() { srv.Unmount() })
	return filepath.Join(mnt, "nvram"), nvram
}

// TestDurableAfterCrash runs the writer (a separate process, as the hook
// is) on crashFS and looks, at random moments while it runs and after it
// reported success, at what a power loss would leave: never a partial
// varstore, and once created, the whole one. The same look at two writers
// that each leave out one fsync finds what they lose, so the test can see
// a missing fsync.
func TestDurableAfterCrash(t *testing.T) {
	dir, nvram := mountCrashFS(t)
	data := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32() | 1)
	}
	tmpl := writeTemplate(t, t.TempDir(), data)

	partial, looks := 0, 0
	for i := range 20 {
		name := "vm" + string(rune('a'+i)) + "_VARS.fd"
		cmd := exec.Command(createfile, dir, name, tmpl)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
	watch:
		for {
			select {
			case err = <-done:
				break watch
			case <-time.After(time.Duration(rng.IntN(500)) * time.Microsecond):
				looks++
				if ok, got := nvram.afterCrash(name); ok && !bytes.Equal(got, data) {
					partial++
				}
			}
		}
		if err != nil {
			t.Fatalf("writer: %v: %s", err, out.String())
		}
		if ok, got := nvram.afterCrash(name); !ok || !bytes.Equal(got, data) {
			t.Fatalf("%s: reported created, but after a crash it would be present=%v with %d of %d bytes right", name, ok, len(got), len(data))
		}
	}
	t.Logf("20 writes, %d looks at what a crash would leave while they ran: %d partial", looks, partial)
	if partial != 0 {
		t.Fatalf("%d looks during the writes found a partial varstore a crash would leave", partial)
	}

	// Two broken writers: the same steps with one fsync left out.
	for _, skip := range []string{"file", "directory"} {
		name := "broken-" + skip + "_VARS.fd"
		brokenWrite(t, dir, name, data, skip)
		ok, got := nvram.afterCrash(name)
		switch {
		case skip == "file" && !(ok && !bytes.Equal(got, data)):
			t.Errorf("without the file's fsync a crash would leave present=%v, %d bytes: the test cannot see it", ok, len(got))
		case skip == "directory" && ok:
			t.Errorf("without the directory's fsync a crash would still leave the name: the test cannot see it")
		}
	}
}

// brokenWrite does what Create does, temp file, data, fsync, no-replace
// commit, directory fsync, but leaves out the fsync named by skip.
func brokenWrite(t *testing.T, dir, name string, data []byte, skip string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if skip != "file" {
		f.Sync()
	}
	f.Close()
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, filepath.Join(dir, name), unix.RENAME_NOREPLACE); err != nil {
		t.Fatal(err)
	}
	if skip != "directory" {
		d.Sync()
	}
}
