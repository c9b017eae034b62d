package varstore

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memDir is a temp dir on tmpfs when there is one: a kill test is about
// what a dying process leaves behind, not about the disk, and 200 fsyncs
// of 64 MiB would only make it slow.
func memDir(t *testing.T) string {
	t.Helper()
	if d, err := os.MkdirTemp("/dev/shm", "varstore-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if IsTemp(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestKillDuringCopy kills a process at random moments while it copies a
// 64 MiB template, 200 times. Afterwards the varstore is either absent or
// byte-identical to the template, never partial; the temp files the kills
// left are recognised, kept while they could still be live, and removed by
// a later invocation once stale.
func TestKillDuringCopy(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 20
	}
	fw, nv := memDir(t), memDir(t)
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32() | 1) // no zero runs: every byte is written
	}
	tmpl := writeTemplate(t, fw, data)
	want := sha256.Sum256(data)

	// How long an undisturbed run takes (median of three) bounds the
	// random kill moment.
	var runs []time.Duration
	for range 3 {
		t0 := time.Now()
		if out, err := child(nv, "probe_VARS.fd", tmpl).CombinedOutput(); err != nil {
			t.Fatalf("probe run: %v: %s", err, out)
		}
		runs = append(runs, time.Since(t0))
		os.Remove(filepath.Join(nv, "probe_VARS.fd"))
	}
	slices.Sort(runs)
	full := runs[1]

	var absent, whole int
	for i := range kills {
		cmd := child(nv, "vm_VARS.fd", tmpl)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) * 11 / 10)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		got, err := os.ReadFile(filepath.Join(nv, "vm_VARS.fd"))
		switch {
		case os.IsNotExist(err):
			absent++
		case err != nil:
			t.Fatal(err)
		case sha256.Sum256(got) != want:
			t.Fatalf("kill %d: the varstore exists but differs from the template (%d bytes)", i, len(got))
		default:
			whole++
			os.Remove(filepath.Join(nv, "vm_VARS.fd"))
		}
	}
	left := temps(t, nv)
	t.Logf("%d kills over a %v copy: %d varstores absent, %d whole, 0 partial; %d temp files left", kills, full.Round(time.Millisecond), absent, whole, len(left))
	if absent+whole != kills {
		t.Fatal("unaccounted outcomes")
	}
	// A new invocation keeps fresh temp files: they could belong to live
	// writers as far as it can tell from their age. (Made fresh first: on
	// a busy machine the kills take longer than StaleAge.)
	now := time.Now()
	for _, n := range left {
		os.Chtimes(filepath.Join(nv, n), now, now)
	}
	if _, err := Create(nv, "other_VARS.fd", tmpl, Options{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if got := temps(t, nv); len(got) != len(left) {
		t.Errorf("fresh temp files removed: %d left of %d", len(got), len(left))
	}
	old := time.Now().Add(-2 * StaleAge)
	for _, n := range left {
		os.Chtimes(filepath.Join(nv, n), old, old)
	}
	if _, err := Create(nv, "third_VARS.fd", tmpl, Options{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if got := temps(t, nv); len(got) != 0 {
		t.Errorf("stale temp files not removed: %v", got)
	}
}

// TestLiveTempIsKept: a temp file whose writer still holds its lock is
// never removed, however old it looks.
func TestLiveTempIsKept(t *testing.T) {
	nv := t.TempDir()
	live := filepath.Join(nv, ".vm_VARS.fd"+TempMarker+"0123456789abcdef.tmp")
	f, err := os.OpenFile(live, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(live, old, old)
	// Not ours: a look-alike without the hex suffix must survive too.
	foreign := filepath.Join(nv, ".vm_VARS.fd"+TempMarker+"backup.tmp")
	os.WriteFile(foreign, []byte("x"), 0o600)
	os.Chtimes(foreign, old, old)

	tmpl := writeTemplate(t, t.TempDir(), []byte("vars"))
	if _, err := Create(nv, "vm2_VARS.fd", tmpl, Options{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{live, foreign} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".vm_VARS.fd.nvram-hook-0123456789abcdef.tmp":  true,
		".a b_VARS.fd.nvram-hook-ffffffffffffffff.tmp": true,
		"vm_VARS.fd.nvram-hook-0123456789abcdef.tmp":   false,
		".vm_VARS.fd.nvram-hook-0123456789abcdeg.tmp":  false,
		".vm_VARS.fd.nvram-hook-0123.tmp":              false,
		".vm_VARS.fd":                                  false,
		"vm_VARS.fd":                                   false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v", name, got)
		}
	}
	name, _ := tempName("x y_VARS.fd")
	if !IsTemp(name) || strings.Contains(name, "/") {
		t.Errorf("tempName gives %q", name)
	}
}

// TestNoLocks acts out a filesystem without locks (NFS mounted nolock,
// where flock fails with ENOLCK): the writer still creates the varstore
// and says its temp file was not locked, and an old temp file that cannot
// be locked is kept, since nothing tells whether its writer is alive.
func TestNoLocks(t *testing.T) {
	orig := flock
	flock = func(int, int) error { return syscall.ENOLCK }
	t.Cleanup(func() { flock = orig })
	nv := t.TempDir()
	old := filepath.Join(nv, ".vm_VARS.fd"+TempMarker+"0123456789abcdef.tmp")
	os.WriteFile(old, []byte("partial"), 0o600)
	hour := time.Now().Add(-time.Hour)
	os.Chtimes(old, hour, hour)
	tmpl := writeTemplate(t, t.TempDir(), []byte("vars"))
	res, err := Create(nv, "vm2_VARS.fd", tmpl, Options{UID: -1, GID: -1})
	if err != nil || !res.Created {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	if !errors.Is(res.LockErr, syscall.ENOLCK) {
		t.Errorf("LockErr = %v, want ENOLCK", res.LockErr)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("a temp file that cannot be locked was removed: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(nv, "vm2_VARS.fd")); string(got) != "vars" {
		t.Errorf("varstore = %q", got)
	}
}
