package varstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/testbin"
)

// createfile is a separate program calling Create, so the concurrency and
// crash tests race and kill real processes, as libvirtd would run them.
var createfile string

func TestMain(m *testing.M) { testbin.Main(m, "./testdata/createfile", "createfile", &createfile) }

func child(dir, name, tmpl string) *exec.Cmd {
	return exec.Command(createfile, dir, name, tmpl)
}

func writeTemplate(t *testing.T, dir string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, "VARS.fd")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func noTempLeft(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), TempMarker) {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestCreateCopiesWhole(t *testing.T) {
	// Data, a zero run longer than a read, data again, a zero tail: the
	// zero-skipping copy must still reproduce every byte and the size.
	data := randomBytes(t, 3*copyBuffer+123)
	copy(data[copyBuffer/2:], make([]byte, 2*copyBuffer))
	copy(data[len(data)-5000:], make([]byte, 5000))
	tests := []struct {
		name string
		data []byte
	}{
		{"random 540 KiB", randomBytes(t, 540672)},
		{"mixed zero runs", data},
		{"all zeros 2 MiB", make([]byte, 2<<20)},
		{"one byte", []byte{0x55}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw, nv := t.TempDir(), t.TempDir()
			tmpl := writeTemplate(t, fw, tt.data)
			res, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Created || res.Size != int64(len(tt.data)) {
				t.Errorf("result = %+v", res)
			}
			got, err := os.ReadFile(filepath.Join(nv, "vm_VARS.fd"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Error("content differs from the template")
			}
			fi, _ := os.Stat(filepath.Join(nv, "vm_VARS.fd"))
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
			}
			noTempLeft(t, nv)
		})
	}
}

func TestCreateZeroTemplateIsSparse(t *testing.T) {
	fw, nv := t.TempDir(), t.TempDir()
	tmpl := writeTemplate(t, fw, make([]byte, 8<<20))
	if _, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(nv, "vm_VARS.fd"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 8<<20 {
		t.Fatalf("size = %d", st.Size)
	}
	// 512-byte blocks; a reflink or sparse copy of zeros allocates nothing
	// (a few blocks of slack for filesystems that preallocate).
	if st.Blocks*512 > 64<<10 {
		t.Errorf("allocated %d bytes for an all-zero 8 MiB template", st.Blocks*512)
	}
}

func TestCreateNeverTouchesExisting(t *testing.T) {
	fw, nv := t.TempDir(), t.TempDir()
	tmpl := writeTemplate(t, fw, randomBytes(t, 4096))
	target := filepath.Join(nv, "vm_VARS.fd")
	guest := []byte("guest boot entries")
	if err := os.WriteFile(target, guest, 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(target)
	res, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if err != nil || res.Created {
		t.Fatalf("Create = %+v, %v; want not created, no error", res, err)
	}
	got, _ := os.ReadFile(target)
	after, _ := os.Stat(target)
	if !bytes.Equal(got, guest) || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the existing varstore was modified")
	}
	noTempLeft(t, nv)
}

func TestCreateRefusesNonRegularTargets(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, target, victim string)
		want  string
	}{
		{"dangling symlink", func(t *testing.T, target, victim string) {
			os.Symlink(victim, target)
		}, "a symlink"},
		{"symlink to a file", func(t *testing.T, target, victim string) {
			os.WriteFile(victim, []byte("victim"), 0o644)
			os.Symlink(victim, target)
		}, "a symlink"},
		{"directory", func(t *testing.T, target, victim string) {
			os.Mkdir(target, 0o755)
		}, "a directory"},
		{"fifo", func(t *testing.T, target, victim string) {
			if err := unix.Mkfifo(target, 0o600); err != nil {
				t.Skip(err)
			}
		}, "a FIFO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw, nv, other := t.TempDir(), t.TempDir(), t.TempDir()
			tmpl := writeTemplate(t, fw, randomBytes(t, 4096))
			target := filepath.Join(nv, "vm_VARS.fd")
			victim := filepath.Join(other, "victim")
			tt.setup(t, target, victim)
			victimBefore, _ := os.ReadFile(victim)
			_, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrNotRegular mentioning %q", err, tt.want)
			}
			// A symlink to a file is an existing varstore (libvirt follows
			// it), which Create is never asked to make.
			if exists, err := Exists(target); tt.name == "symlink to a file" && (!exists || err != nil) {
				t.Errorf("Exists = %v, %v; want true", exists, err)
			} else if tt.name != "symlink to a file" && !errors.Is(err, ErrNotRegular) {
				t.Errorf("Exists: err = %v, want ErrNotRegular", err)
			}
			victimAfter, _ := os.ReadFile(victim)
			if !bytes.Equal(victimBefore, victimAfter) {
				t.Error("the symlink's destination was changed")
			}
			noTempLeft(t, nv)
		})
	}
}

func TestCreateBadTemplates(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string
		opt   Options
		want  error
		msg   string
	}{
		{"missing", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope.fd") }, Options{}, ErrBadTemplate, "no such file"},
		{"directory", func(t *testing.T, dir string) string { return dir }, Options{}, ErrBadTemplate, "a directory"},
		{"empty", func(t *testing.T, dir string) string { return writeTemplate(t, dir, nil) }, Options{}, ErrBadTemplate, "empty"},
		{"fifo does not hang", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "fifo")
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Skip(err)
			}
			return p
		}, Options{}, ErrBadTemplate, "a FIFO"},
		{"device", func(t *testing.T, dir string) string { return "/dev/null" }, Options{}, ErrBadTemplate, "a device"},
		{"symlink loop", func(t *testing.T, dir string) string {
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.Symlink(b, a)
			os.Symlink(a, b)
			return a
		}, Options{}, ErrBadTemplate, "too many levels"},
		{"too large", func(t *testing.T, dir string) string {
			return writeTemplate(t, dir, make([]byte, 2048))
		}, Options{MaxSize: 1024}, ErrBadTemplate, "more than"},
		{"relative path", func(t *testing.T, dir string) string {
			writeTemplate(t, dir, []byte("vars"))
			return "VARS.fd"
		}, Options{}, ErrBadTemplate, "not an absolute path"},
		{"group-writable", func(t *testing.T, dir string) string {
			p := writeTemplate(t, dir, []byte("vars"))
			os.Chmod(p, 0o664)
			return p
		}, Options{}, ErrBadTemplate, "mode 0664 lets others than its owner change it"},
		{"world-writable", func(t *testing.T, dir string) string {
			p := writeTemplate(t, dir, []byte("vars"))
			os.Chmod(p, 0o646)
			return p
		}, Options{}, ErrBadTemplate, "mode 0646"},
		{"owned by another user", func(t *testing.T, dir string) string {
			needRoot(t)
			p := writeTemplate(t, dir, []byte("vars"))
			chownOther(t, p)
			return p
		}, Options{}, ErrBadTemplate, "owned by uid 64999"},
		{"qcow2 template for raw varstore", func(t *testing.T, dir string) string {
			return writeTemplate(t, dir, append([]byte{'Q', 'F', 'I', 0xfb}, make([]byte, 512)...))
		}, Options{Format: "raw"}, ErrFormat, "is qcow2"},
		{"raw template for qcow2 varstore", func(t *testing.T, dir string) string {
			return writeTemplate(t, dir, make([]byte, 512))
		}, Options{Format: "qcow2"}, ErrFormat, "is raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw, nv := t.TempDir(), t.TempDir()
			t.Chdir(fw) // where a relative template would be found
			tmpl := tt.setup(t, fw)
			tt.opt.UID, tt.opt.GID = -1, -1
			_, err := Create(nv, "vm_VARS.fd", tmpl, tt.opt)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
			if _, err := os.Lstat(filepath.Join(nv, "vm_VARS.fd")); !errors.Is(err, os.ErrNotExist) {
				t.Error("a varstore was created from a bad template")
			}
			noTempLeft(t, nv)
		})
	}
}

func TestCreateRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "a\x00b"} {
		if _, err := Create(t.TempDir(), name, "/dev/null", Options{UID: -1, GID: -1}); err == nil || !strings.Contains(err.Error(), "invalid varstore file name") {
			t.Errorf("Create(name %q): err = %v", name, err)
		}
	}
}

func TestCreateMissingAndReadOnlyDirectory(t *testing.T) {
	fw := t.TempDir()
	tmpl := writeTemplate(t, fw, randomBytes(t, 4096))
	_, err := Create(filepath.Join(fw, "no-such-dir"), "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing dir: err = %v", err)
	}
	if os.Geteuid() == 0 {
		return // root writes anyway
	}
	ro := t.TempDir()
	os.Chmod(ro, 0o555)
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	_, err = Create(ro, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("read-only dir: err = %v", err)
	}
}

// TestConcurrentProcesses: 64 processes provisioning the same varstore at
// once produce exactly one complete file, and all of them succeed.
func TestConcurrentProcesses(t *testing.T) {
	const procs = 64
	fw, nv := t.TempDir(), t.TempDir()
	data := randomBytes(t, 1<<20)
	tmpl := writeTemplate(t, fw, data)
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := child(nv, "race_VARS.fd", tmpl).CombinedOutput()
			outs[i], errs[i] = strings.TrimSpace(string(out)), err
		}()
	}
	wg.Wait()
	created := 0
	for i := range procs {
		if errs[i] != nil {
			t.Errorf("process %d: %v: %s", i, errs[i], outs[i])
		}
		if b, _ := strconv.ParseBool(outs[i]); b {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d processes report creating the file, want exactly 1", created)
	}
	got, _ := os.ReadFile(filepath.Join(nv, "race_VARS.fd"))
	if !bytes.Equal(got, data) {
		t.Error("content differs from the template")
	}
	entries, _ := os.ReadDir(nv)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestCommitNeverReplaces(t *testing.T) {
	for _, viaLink := range []bool{false, true} {
		t.Run(fmt.Sprintf("link=%v", viaLink), func(t *testing.T) {
			if viaLink {
				orig := renameNoReplace
				renameNoReplace = func(int, string, string) error { return unix.EINVAL }
				t.Cleanup(func() { renameNoReplace = orig })
			}
			commitTwice(t)
		})
	}
}

func commitTwice(t *testing.T) {
	dir := t.TempDir()
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	os.WriteFile(filepath.Join(dir, "tmp1"), []byte("one"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp2"), []byte("two"), 0o600)
	if won, err := commit(dfd, "tmp1", "final"); err != nil || !won {
		t.Fatalf("first commit = %v, %v", won, err)
	}
	if won, err := commit(dfd, "tmp2", "final"); err != nil || won {
		t.Fatalf("second commit = %v, %v; want lost, no error", won, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "final")); string(got) != "one" {
		t.Errorf("final = %q, the second commit replaced it", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp2")); err != nil {
		t.Errorf("the losing temp file must stay for the caller to remove: %v", err)
	}
}

// TestCreateSparseTemplate: a large template with data scattered between
// holes, zero runs inside the data and an odd last byte comes out byte for
// byte and allocates no more blocks than the template.
func TestCreateSparseTemplate(t *testing.T) {
	fw, nv := t.TempDir(), t.TempDir()
	tmpl := filepath.Join(fw, "BIG_VARS.fd")
	const size = 48 << 20
	f, err := os.Create(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	want := make([]byte, size)
	// 12 MiB of data at 1 MiB, 2 MiB of zeros written in the middle of it,
	// 5 MiB at 30 MiB + 3 bytes, and a last odd byte.
	for _, w := range []struct {
		off int64
		n   int
	}{{1 << 20, 12 << 20}, {30<<20 + 3, 5 << 20}, {size - 1, 1}} {
		b := randomBytes(t, w.n)
		if w.n > 6<<20 {
			clear(b[4<<20 : 6<<20])
		}
		copy(want[w.off:], b)
		if _, err := f.WriteAt(b, w.off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	res, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if err != nil || !res.Created || res.Size != size {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	got, err := os.ReadFile(filepath.Join(nv, "vm_VARS.fd"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("content differs from the template (%v)", err)
	}
	var src, dst syscall.Stat_t
	syscall.Stat(tmpl, &src)
	syscall.Stat(filepath.Join(nv, "vm_VARS.fd"), &dst)
	if dst.Blocks > src.Blocks {
		t.Errorf("copy allocates %d blocks, the template %d", dst.Blocks, src.Blocks)
	}
	noTempLeft(t, nv)
}
