package varstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// otherUID stands for the qemu user: not root and not the test's user.
const otherUID = 64999

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns files to another user (CI runs as root)")
	}
}

func chownOther(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
}

func isEmptyDir(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) == 0
}

// TestPlace: where a varstore may be created, and which directory is
// really used. base is the test's own directory; allowed is base/nvram
// unless the case says otherwise; victim is a directory outside.
func TestPlace(t *testing.T) {
	type tree struct{ base, nvram, victim string }
	for _, tt := range []struct {
		name    string
		root    bool // needs root (chowns to otherUID)
		setup   func(t *testing.T, tr tree) (allowed []string, path string)
		wantDir func(tr tree) string // "" = refused
		outside string               // refused as outside, the reason says this
		err     error                // refused with this error, not as outside
	}{
		{name: "in the allowed directory", setup: func(t *testing.T, tr tree) ([]string, string) {
			return []string{tr.nvram}, tr.nvram + "/vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram }},
		{name: "below the allowed directory", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Mkdir(tr.nvram+"/sub", 0o755)
			return []string{tr.nvram}, tr.nvram + "/sub/vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram + "/sub" }},
		{name: "allowed directory named through a symlink of ours", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Symlink(tr.nvram, tr.base+"/link")
			return []string{tr.base + "/link"}, tr.nvram + "/vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram }},
		{name: "varstore named through a symlink of ours", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Symlink(tr.nvram, tr.base+"/link")
			return []string{tr.nvram}, tr.base + "/link/vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram }},
		{name: "relative path", setup: func(t *testing.T, tr tree) ([]string, string) {
			return []string{tr.nvram}, "nvram/vm_VARS.fd"
		}, outside: "is not an absolute path"},
		{name: ".. leading out", setup: func(t *testing.T, tr tree) ([]string, string) {
			return []string{tr.nvram}, tr.nvram + "/../victim/vm_VARS.fd"
		}, outside: "is outside allowed_dirs"},
		{name: ".. staying inside", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Mkdir(tr.nvram+"/sub", 0o755)
			return []string{tr.nvram}, tr.nvram + "/sub/../vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram }},
		{name: ".. after a symlink goes to the symlink target's parent, as the kernel does", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Mkdir(tr.victim+"/sub", 0o755)
			os.Symlink(tr.victim+"/sub", tr.nvram+"/link")
			return []string{tr.nvram}, tr.nvram + "/link/../vm_VARS.fd"
		}, outside: "(directory VICTIM) is outside allowed_dirs"},
		{name: "symlinked parent leading outside", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Symlink(tr.victim, tr.nvram+"/out")
			return []string{tr.nvram}, tr.nvram + "/out/vm_VARS.fd"
		}, outside: "(directory VICTIM) is outside allowed_dirs"},
		{name: "missing directory inside", setup: func(t *testing.T, tr tree) ([]string, string) {
			return []string{tr.nvram}, tr.nvram + "/missing/vm_VARS.fd"
		}, err: os.ErrNotExist},
		{name: "a file where a directory should be, inside", setup: func(t *testing.T, tr tree) ([]string, string) {
			os.WriteFile(tr.nvram+"/file", nil, 0o644)
			return []string{tr.nvram}, tr.nvram + "/file/vm_VARS.fd"
		}, err: unix.ENOTDIR},
		{name: "missing directory outside", setup: func(t *testing.T, tr tree) ([]string, string) {
			return []string{tr.nvram}, tr.victim + "/missing/vm_VARS.fd"
		}, outside: "is outside allowed_dirs"},
		{name: "the allowed directory swapped for the qemu user's symlink", root: true, setup: func(t *testing.T, tr tree) ([]string, string) {
			// On Debian the qemu user owns /var/lib/libvirt/qemu, the
			// parent of the allowed /var/lib/libvirt/qemu/nvram.
			chownOther(t, tr.base)
			os.Rename(tr.nvram, tr.base+"/nvram.old")
			os.Symlink(tr.victim, tr.nvram)
			chownOther(t, tr.nvram)
			return []string{tr.nvram}, tr.nvram + "/vm_VARS.fd"
		}, outside: "NVRAM is a symlink owned by uid 64999 in a directory owned by uid 64999"},
		{name: "the qemu user's symlink inside the allowed directory", root: true, setup: func(t *testing.T, tr tree) ([]string, string) {
			os.Symlink(tr.victim, tr.nvram+"/out")
			chownOther(t, tr.nvram+"/out")
			return []string{tr.nvram}, tr.nvram + "/out/vm_VARS.fd"
		}, outside: "is a symlink owned by uid 64999"},
		{name: "root's symlink in a directory the qemu user owns", root: true, setup: func(t *testing.T, tr tree) ([]string, string) {
			chownOther(t, tr.base)
			os.Symlink(tr.nvram, tr.base+"/link")
			return []string{tr.nvram}, tr.base + "/link/vm_VARS.fd"
		}, outside: "is a symlink owned by uid 0 in a directory owned by uid 64999"},
		{name: "a real directory in a directory the qemu user owns", root: true, setup: func(t *testing.T, tr tree) ([]string, string) {
			chownOther(t, tr.base)
			return []string{tr.nvram}, tr.nvram + "/vm_VARS.fd"
		}, wantDir: func(tr tree) string { return tr.nvram }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t)
			}
			base := t.TempDir()
			tr := tree{base, base + "/nvram", t.TempDir()}
			os.Mkdir(tr.nvram, 0o755)
			allowed, path := tt.setup(t, tr)
			d, name, err := Place(allowed, path)
			var out *OutsideError
			switch {
			case tt.wantDir != nil:
				if err != nil {
					t.Fatalf("Place = %v", err)
				}
				defer d.Close()
				if d.Path != tt.wantDir(tr) || name != "vm_VARS.fd" {
					t.Fatalf("Place = %s, %s; want %s", d.Path, name, tt.wantDir(tr))
				}
				if _, err := d.Create(name, writeTemplate(t, t.TempDir(), []byte("vars")), Options{UID: -1, GID: -1}); err != nil {
					t.Fatal(err)
				}
				if got, err := os.ReadFile(filepath.Join(tt.wantDir(tr), name)); err != nil || string(got) != "vars" {
					t.Errorf("not created in %s: %q, %v", tt.wantDir(tr), got, err)
				}
			case tt.outside != "":
				want := strings.NewReplacer("VICTIM", tr.victim, "NVRAM", tr.nvram).Replace(tt.outside)
				if !errors.As(err, &out) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Place = %v; want an OutsideError saying %q", err, want)
				}
			default:
				if !errors.Is(err, tt.err) || errors.As(err, &out) {
					t.Fatalf("Place = %v; want %v, not an OutsideError", err, tt.err)
				}
			}
			if !isEmptyDir(t, tr.victim) && !strings.Contains(tt.name, "kernel") {
				t.Error("something was created in the victim directory")
			}
		})
	}
}

// TestDirSwappedAfterPlace: once Place has opened the directory, swapping
// it for a symlink to another directory changes nothing: the varstore is
// made in the directory that was opened (now under another name).
func TestDirSwappedAfterPlace(t *testing.T) {
	base, victim := t.TempDir(), t.TempDir()
	nvram := base + "/nvram"
	os.Mkdir(nvram, 0o755)
	tmpl := writeTemplate(t, t.TempDir(), []byte("vars"))
	d, name, err := Place([]string{nvram}, nvram+"/vm_VARS.fd")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Rename(nvram, base+"/moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, nvram); err != nil {
		t.Fatal(err)
	}
	res, err := d.Create(name, tmpl, Options{UID: -1, GID: -1})
	if err != nil || !res.Created {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	if !isEmptyDir(t, victim) {
		t.Error("the varstore went through the swapped-in symlink")
	}
	if got, _ := os.ReadFile(base + "/moved/vm_VARS.fd"); string(got) != "vars" {
		t.Errorf("the opened directory holds %q", got)
	}
}

// TestSwapRace: while the qemu user swaps the allowed directory for a
// symlink to another directory and back, as fast as it can, every Place
// and Create either refuses or creates inside the real directory; nothing
// ever appears in the other one.
func TestSwapRace(t *testing.T) {
	needRoot(t)
	base, victim := t.TempDir(), t.TempDir()
	chownOther(t, base)
	nvram, evil := base+"/nvram", base+"/evil"
	os.Mkdir(nvram, 0o755)
	os.Symlink(victim, evil)
	chownOther(t, evil)
	tmpl := writeTemplate(t, t.TempDir(), []byte("vars"))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// RENAME_EXCHANGE swaps the two names atomically: nvram is, by
		// turns, the real directory and the qemu user's symlink.
		for !stop.Load() {
			unix.Renameat2(unix.AT_FDCWD, nvram, unix.AT_FDCWD, evil, unix.RENAME_EXCHANGE)
		}
	}()
	created, refused := 0, 0
	for i := range 2000 {
		name := "vm" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "_VARS.fd"
		d, n, err := Place([]string{nvram}, nvram+"/"+name)
		if err != nil {
			refused++
			continue
		}
		if res, err := d.Create(n, tmpl, Options{UID: -1, GID: -1}); err == nil && res.Created {
			created++
		}
		d.Close()
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("2000 tries while swapping: %d created, %d refused", created, refused)
	if !isEmptyDir(t, victim) {
		t.Fatal("a varstore was created in the other directory")
	}
	if created == 0 {
		t.Error("nothing was ever created: the race was not exercised")
	}
}

func TestTrustedOwner(t *testing.T) {
	for _, tt := range []struct {
		uid, euid uint32
		want      bool
	}{
		{0, 0, true},            // root's, as root
		{otherUID, 0, false},    // the qemu user's, as root
		{1000, 1000, true},      // a session daemon's own
		{0, 1000, true},         // root's, in a session daemon
		{otherUID, 1000, false}, // someone else's, in a session daemon
	} {
		if got := trustedOwner(tt.uid, tt.euid); got != tt.want {
			t.Errorf("trustedOwner(%d, euid %d) = %v", tt.uid, tt.euid, got)
		}
	}
}
