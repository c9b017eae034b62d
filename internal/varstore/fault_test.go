package varstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a fresh tmpfs with opts on a temp dir (root only).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root; run the suite as root to cover disk faults")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestDiskFull: a filesystem too small for the template gives one error
// naming ENOSPC and the varstore, and leaves neither target nor temp file.
func TestDiskFull(t *testing.T) {
	nv := mountTmpfs(t, "size=1m")
	tmpl := writeTemplate(t, t.TempDir(), randomBytes(t, 2<<20))
	_, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), filepath.Join(nv, "vm_VARS.fd")) {
		t.Fatalf("err = %v, want ENOSPC naming the varstore", err)
	}
	entries, _ := os.ReadDir(nv)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestReadOnlyFilesystem: a clear error, nothing created.
func TestReadOnlyFilesystem(t *testing.T) {
	nv := mountTmpfs(t, "size=4m")
	if err := syscall.Mount("tmpfs", nv, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("remount read-only: %v", err)
	}
	tmpl := writeTemplate(t, t.TempDir(), randomBytes(t, 4096))
	_, err := Create(nv, "vm_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("err = %v, want EROFS", err)
	}
	entries, _ := os.ReadDir(nv)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
