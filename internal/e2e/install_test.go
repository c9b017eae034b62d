//go:build e2e

// Scenarios 15-19: installing with `make install` / `make uninstall` and the
// .deb on a real libvirtd, on a host whose operators already have their own
// /etc/libvirt/hooks/qemu (issue 4). The harness's own hook entry and config
// are taken away for the length of each scenario and put back after it.
package e2e

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	hooksDir       = "/etc/libvirt/hooks"
	foreignHook    = hooksDir + "/qemu"   // the ops team's own hook
	daemonHook     = hooksDir + "/daemon" // the suite's SIGHUP probe
	pkgName        = "libvirt-nvram-hook"
	pkgBin         = "/usr/libexec/" + pkgName
	firstHookFlag  = "/run/libvirt-nvram-hook.first-hook"
	foreignMarker  = "added-by-the-ops-team-hook"
	modeMark       = "mark"   // the foreign filter adds a <description>
	modeEcho       = "echo"   // it prints its stdin back unchanged
	modeSilent     = "silent" // it prints nothing (XML unchanged)
	libvirtNoVarsE = "unable to find any master var store for loader"
)

// undoLater registers fn to run once: as t's cleanup (so the next scenario
// finds the harness's set-up again) or, if the process is interrupted
// first, as a teardown step.
func undoLater(t *testing.T, what string, fn func() error) {
	var once sync.Once
	run := func() error {
		var err error
		once.Do(func() { err = fn() })
		return err
	}
	env.push(what, run)
	t.Cleanup(func() {
		if err := run(); err != nil {
			t.Errorf("cleanup: %s: %v", what, err)
		}
	})
}

// opsHost is a host (A, or a root host) as an operations team has it
// before installing the hook: maybe its own hooks/qemu (a bash script that logs every call and
// can filter restore/migrate XML), no libvirt-nvram-hook, the daemon
// reloaded so that it knows exactly these hooks. A probe in hooks/daemon
// counts the daemon's SIGHUPs (libvirtd runs the daemon hook with "reload"
// on each), so a test can tell whether an installer signalled it.
type opsHost struct {
	h       *host
	dir     string // under the work dir
	prefix  string // PREFIX for make install
	bin     string // PREFIX/libexec/libvirt-nvram-hook
	calls   string // the foreign hook appends "$1 $2 $3 nvram=yes|no" here
	mode    string // file: what the foreign hook prints on migrate/restore
	reloads string // the probe appends "$1 $2 $3 $4" here; "" without probe
	foreign *fileID
}

// fileID is what must not change about a file somebody else owns.
type fileID struct {
	path  string
	data  []byte
	mode  os.FileMode
	uid   uint32
	gid   uint32
	ino   uint64
	mtime syscall.Timespec
	ctime syscall.Timespec
}

func identify(t *testing.T, p string) *fileID {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return &fileID{path: p, data: b, mode: st.Mode(), uid: s.Uid, gid: s.Gid, ino: s.Ino, mtime: s.Mtim, ctime: s.Ctim}
}

// requireUntouched: same bytes, mode, owner, inode (not replaced or moved
// back), mtime and ctime (not written, chmodded or chowned).
func (f *fileID) requireUntouched(t *testing.T, when string) {
	t.Helper()
	now := identify(t, f.path)
	switch {
	case !bytes.Equal(now.data, f.data):
		t.Fatalf("%s: %s changed its contents", when, f.path)
	case now.mode != f.mode || now.uid != f.uid || now.gid != f.gid:
		t.Fatalf("%s: %s changed mode/owner: %v %d:%d, was %v %d:%d", when, f.path, now.mode, now.uid, now.gid, f.mode, f.uid, f.gid)
	case now.ino != f.ino:
		t.Fatalf("%s: %s was replaced (inode %d, was %d)", when, f.path, now.ino, f.ino)
	case now.mtime != f.mtime || now.ctime != f.ctime:
		t.Fatalf("%s: %s was touched (mtime/ctime changed)", when, f.path)
	}
}

// foreignScript is the ops team's hooks/qemu.
func foreignScript(calls, mode string) string {
	return fmt.Sprintf(`#!/bin/bash
# An operations team's own libvirt qemu hook, written by the
# libvirt-nvram-hook e2e suite (internal/e2e), removed at its end.
# It logs every call and, on restore and incoming migration, is a filter:
# what it prints replaces the domain XML (nothing: unchanged).
calls=%s
mode=$(cat %s 2>/dev/null)
xml=$(cat)
nvram=no
case $xml in *"<nvram"*) nvram=yes ;; esac
echo "$1 $2 $3 nvram=$nvram" >>"$calls"
case $2 in
migrate | restore)
	case $mode in
	%s) printf '%%s\n' "$xml" | sed '0,/<\/name>/s||&\n  <description>%s</description>|' ;;
	%s) printf '%%s\n' "$xml" ;;
	esac
	;;
esac
exit 0
`, shq(calls), shq(mode), modeMark, foreignMarker, modeEcho)
}

// newOpsHost takes the harness's hook entry and config away from h, puts
// the foreign hook in place (withForeign) and SIGHUPs h's daemon, which
// then knows the foreign hook, or no qemu hook at all. Everything comes back
// at the test's end. foreignHook and daemonHook are paths as h's libvirt
// sees them.
func newOpsHost(t *testing.T, a *host, withForeign bool) *opsHost {
	t.Helper()
	qd := filepath.Dir(a.hookEntry)
	if ents, err := os.ReadDir(qd); err == nil {
		for _, e := range ents {
			if e.Name() != hookEntryName {
				t.Skipf("%s holds %s, which is not the suite's: the installer scenarios need a host with no other qemu.d hook", qd, e.Name())
			}
		}
	}
	if l, err := os.Readlink(a.hookEntry); err != nil || l != env.hookBin {
		t.Fatalf("%s is not the harness's link to %s (%q, %v)", a.hookEntry, env.hookBin, l, err)
	}
	dir, err := os.MkdirTemp(env.work, "ops-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := &opsHost{
		h:      a,
		dir:    dir,
		prefix: filepath.Join(dir, "prefix"),
		calls:  filepath.Join(dir, "foreign-calls"),
		mode:   filepath.Join(dir, "foreign-mode"),
	}
	o.bin = filepath.Join(o.prefix, "libexec", pkgName)

	harnessConf := filepath.Join(dir, "harness-nvram-hook.conf")
	if a.root != "" {
		// rename(2) stays inside the overlay (which goes at teardown anyway).
		harnessConf = filepath.Join(a.etc, ".e2e-aside-harness-nvram-hook.conf")
	}
	foreignPath, probePath := a.local(foreignHook), a.local(daemonHook)
	var foreignAside, ourForeign, ourProbe string
	undoLater(t, "put the harness's hook entry and config back", func() error {
		var errs []error
		keep := func(err error) {
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		// What the scenario's installation may have left.
		if l, err := os.Readlink(a.hookEntry); err == nil && l != env.hookBin {
			keep(os.Remove(a.hookEntry))
		}
		keep(removeIfExists(o.bin))
		if fileExists(harnessConf) {
			keep(removeIfExists(a.hookConf))
			keep(os.Rename(harnessConf, a.hookConf))
		}
		if ourProbe != "" {
			keep(removeIfExists(ourProbe))
		}
		if ourForeign != "" {
			keep(removeIfExists(ourForeign))
		}
		if foreignAside != "" {
			keep(os.Rename(foreignAside, foreignPath))
		}
		// dpkg -P removes the package's directories when they are empty.
		keep(os.MkdirAll(qd, 0o755))
		if !fileExists(a.hookEntry) {
			keep(os.Symlink(env.hookBin, a.hookEntry))
		}
		keep(syscall.Kill(a.pid, syscall.SIGHUP))
		time.Sleep(time.Second)
		return errors.Join(errs...)
	})
	if err := os.Rename(a.hookConf, harnessConf); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.hookEntry); err != nil {
		t.Fatal(err)
	}
	if fileExists(foreignPath) {
		// The host's own: out of hooks/ for now, where libvirt would run it.
		foreignAside = filepath.Join(a.etc, ".e2e-aside-hooks-qemu")
		if err := os.Rename(foreignPath, foreignAside); err != nil {
			foreignAside = ""
			t.Fatal(err)
		}
		t.Logf("moved host %s's %s aside to %s until the end of the scenario", a.name, foreignPath, foreignAside)
	}
	if !fileExists(probePath) {
		o.reloads = filepath.Join(dir, "daemon-calls")
		ourProbe = probePath
		probe := fmt.Sprintf("#!/bin/sh\n# SIGHUP probe of the libvirt-nvram-hook e2e suite; removed at its end.\necho \"$1 $2 $3 $4\" >>%s\nexit 0\n", shq(o.reloads))
		if err := os.WriteFile(probePath, []byte(probe), 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("%s exists: not probing the daemon's reloads", probePath)
	}
	if withForeign {
		ourForeign = foreignPath
		if err := os.WriteFile(foreignPath, []byte(foreignScript(o.calls, o.mode)), 0o755); err != nil {
			t.Fatal(err)
		}
		o.foreign = identify(t, foreignPath)
	}
	reload(t, a) // the daemon now knows the ops team's hooks and no other
	o.waitReloads(t, 1)
	return o
}

// reloadCount is how many SIGHUPs the daemon has processed since the probe
// went in (-1 without probe).
func (o *opsHost) reloadCount() int {
	if o.reloads == "" {
		return -1
	}
	b, _ := os.ReadFile(o.reloads)
	return strings.Count(string(b), " reload ")
}

// waitReloads waits until the daemon has run the probe for n SIGHUPs: it
// does so after rescanning its hooks.
func (o *opsHost) waitReloads(t *testing.T, n int) {
	t.Helper()
	if o.reloads == "" {
		time.Sleep(time.Second)
		return
	}
	for i := 0; i < 100; i++ {
		if o.reloadCount() >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("libvirtd ran the reload probe %d times, expected %d", o.reloadCount(), n)
}

// requireReloads checks the number of SIGHUPs processed so far.
func (o *opsHost) requireReloads(t *testing.T, n int, why string) {
	t.Helper()
	if o.reloads == "" {
		return
	}
	time.Sleep(300 * time.Millisecond) // a signal just sent is handled in a thread
	if got := o.reloadCount(); got != n {
		b, _ := os.ReadFile(o.reloads)
		t.Fatalf("%s: libvirtd was reloaded %d times, want %d (probe log:\n%s)", why, got, n, b)
	}
}

func (o *opsHost) setMode(t *testing.T, mode string) {
	t.Helper()
	if err := os.WriteFile(o.mode, []byte(mode+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (o *opsHost) callsMark() int64 { return fileSize(o.calls) }

// callsSince lists the foreign hook's calls for domain name after mark, as
// "OP SUBOP nvram=yes|no".
func (o *opsHost) callsSince(mark int64, name string) []string {
	var out []string
	for _, l := range strings.Split(readFrom(o.calls, mark), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// requireCalls checks that the foreign hook ran for name, after mark, with
// each of want (prefixes of "OP SUBOP nvram=..."), in this order.
func (o *opsHost) requireCalls(t *testing.T, mark int64, name string, want ...string) []string {
	t.Helper()
	got := o.callsSince(mark, name)
	i := 0
	for _, c := range got {
		if i < len(want) && strings.HasPrefix(c, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("the foreign hook's calls for %s: %q; want %q in this order", name, got, want)
	}
	return got
}

// makeEnv is the environment for make: the test's, without the make
// variables of an outer `make e2e`.
func makeEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C")
}

// runMake runs make TARGET in the source tree and returns its output and
// exit status.
func runMake(t *testing.T, args ...string) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make not found: the installer scenarios run `make install` and `make uninstall`")
	}
	cmd := exec.Command("make", append([]string{"-C", env.repo, "--no-print-directory"}, args...)...)
	cmd.Env = makeEnv()
	out, err := runWithTimeout(cmd, 2*time.Minute)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		code = ee.ExitCode()
	}
	t.Logf("make %s: exit %d\n%s", strings.Join(args, " "), code, out)
	return string(out), code
}

// makeInstall is `make install PREFIX=o.prefix` on the live system (DESTDIR
// empty). `-o build` with BIN: the binary under test is installed as it
// is, not rebuilt.
func (o *opsHost) makeInstall(t *testing.T) string {
	t.Helper()
	return o.makeInstallOf(t, env.hookBin)
}

func (o *opsHost) makeInstallOf(t *testing.T, bin string) string {
	t.Helper()
	out, code := runMake(t, "-o", "build", "install", "BIN="+bin, "PREFIX="+o.prefix, "DESTDIR=")
	if code != 0 {
		t.Fatalf("make install failed (exit %d):\n%s", code, out)
	}
	return out
}

func (o *opsHost) makeUninstall(t *testing.T) string {
	t.Helper()
	out, code := runMake(t, "uninstall", "PREFIX="+o.prefix, "DESTDIR=")
	if code != 0 {
		t.Fatalf("make uninstall failed (exit %d):\n%s", code, out)
	}
	return out
}

// summaryState is what install.sh's summary says about path
// ("  hook    /etc/libvirt/hooks/qemu: left alone (not ours; ...)").
func summaryState(t *testing.T, out, what, path string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), what+" ")
		if !ok {
			continue
		}
		if state, ok := strings.CutPrefix(strings.TrimSpace(rest), path+": "); ok {
			return state
		}
	}
	t.Fatalf("the installer's summary has no %q line for %s:\n%s", what, path, out)
	return ""
}

// summaryNotes are the summary's lines about what (e.g. "reload").
func summaryNotes(out, what string) string {
	var notes []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), what+" "); ok {
			notes = append(notes, strings.TrimSpace(rest))
		}
	}
	return strings.Join(notes, "\n")
}

func requireContains(t *testing.T, what, text string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Fatalf("%s does not say %q:\n%s", what, w, text)
		}
	}
}

func requireLink(t *testing.T, p, target string) {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil || l != target {
		t.Fatalf("%s: want a symlink to %s, got %q (%v)", p, target, l, err)
	}
}

// writeConfig replaces the hook's config on o's host (the operator edits
// it): the harness's mapping of the custom loaders, logging to that host's
// hook log.
func (o *opsHost) writeConfig(t *testing.T) []byte {
	t.Helper()
	b := []byte(env.hookConfig(o.h))
	if err := os.WriteFile(o.h.hookConf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// nvramSnap is snapshotDirs of the directories holding h's varstores.
type nvramSnap struct {
	h    *host
	rows string
}

func snapshotNvram(t *testing.T, h *host) nvramSnap {
	t.Helper()
	return nvramSnap{h, snapshotDirs(t, h.nvramDir, env.altNvram, env.shared)}
}

// requireSame: not a file in those directories changed (mode, owner, size,
// mtime, ctime, SHA-256), none came or went.
func (s nvramSnap) requireSame(t *testing.T, what string) {
	t.Helper()
	if now := snapshotNvram(t, s.h); now.rows != s.rows {
		t.Fatalf("%s changed the nvram dirs of host %s:\nbefore:\n%s\nafter:\n%s", what, s.h.name, s.rows, now.rows)
	}
}

// requireLibvirtsOwnNoVarsError: the start failed because libvirt found no
// template, with no hook involved in the failure.
func requireLibvirtsOwnNoVarsError(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, libvirtNoVarsE) {
		t.Fatalf("the start failed, but not with libvirt's %q:\n%s", libvirtNoVarsE, out)
	}
	for _, bad := range []string{pkgName, "Hook script execution failed"} {
		if strings.Contains(out, bad) {
			t.Fatalf("the start failed with a hook error (%q), expected libvirt's own:\n%s", bad, out)
		}
	}
}

// startCreatesVarstore starts g paused on a, checks that the varstore was
// made from a's custom template by the hook (0600, libvirt-qemu, its log
// says so), resumes it and stops it.
func startCreatesVarstore(t *testing.T, a *host, g guest) {
	t.Helper()
	vs := a.varstore(g.name)
	requireNoFile(t, vs)
	mark := a.logMark()
	virsh(t, a, "start", "--paused", g.name)
	requireState(t, a, g.name, "paused")
	requireSameFile(t, vs, a.customVars, "varstore created at start")
	requireModeOwner(t, vs, 0o600, a.qemuUID)
	t.Logf("hook log: %s", requireLogMentions(t, a, mark, a.varstorePath(g.name), "created"))
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "destroy", g.name)
	requireState(t, a, g.name, "shut off")
}

// 15. A host with its own hooks/qemu: `make install` leaves it alone, says
// no reload is needed (libvirt already has a qemu hook and lists qemu.d/ on
// every call) and does not signal the daemon; the next start runs both
// hooks: the foreign one sees prepare/start/started, ours creates the
// varstore. Installing again changes nothing.
func testForeignHookMakeInstall(t *testing.T) {
	a := env.a
	o := newOpsHost(t, a, true)
	g := guest{name: guestPrefix + "s15-foreign", loader: env.customCode}
	defineGuest(t, a, g)
	vs := a.varstore(g.name)

	// Before: the ops team's hook runs, and libvirt cannot start the guest.
	cm := o.callsMark()
	requireLibvirtsOwnNoVarsError(t, virshFails(t, a, "start", g.name))
	o.requireCalls(t, cm, g.name, "prepare begin")
	requireNoFile(t, vs)

	r0 := o.reloadCount()
	out := o.makeInstall(t)
	requireContains(t, "binary line", summaryState(t, out, "binary", o.bin), "installed")
	requireContains(t, "qemu.d line", summaryState(t, out, "hook", a.hookEntry), "created", o.bin)
	requireContains(t, "the line about the foreign hook", summaryState(t, out, "hook", foreignHook), "left alone", "not ours", "libvirt keeps running it")
	requireContains(t, "config line", summaryState(t, out, "config", a.hookConf), "installed")
	reloadNote := summaryNotes(out, "reload")
	requireContains(t, "the reload line", reloadNote, "not needed", "already had a qemu hook")
	t.Logf("install.sh about the reload: %s", reloadNote)
	o.requireReloads(t, r0, "make install with a foreign hook present")
	o.foreign.requireUntouched(t, "after make install")
	requireSameFile(t, o.bin, env.hookBin, "installed binary")
	requireModeOwner(t, o.bin, 0o755, 0)
	requireLink(t, a.hookEntry, o.bin)
	requireSameFile(t, a.hookConf, filepath.Join(env.repo, "install", "nvram-hook.conf"), "installed config")
	requireModeOwner(t, a.hookConf, 0o644, 0)

	// No reload: our hook runs at once. The shipped config maps nothing, so
	// it refuses this loader (its error, not libvirt's).
	cm = o.callsMark()
	out = virshFails(t, a, "start", g.name)
	requireContains(t, "libvirt's error", out, "no varstore template for loader "+env.customCode)
	o.requireCalls(t, cm, g.name, "prepare begin")
	requireNoFile(t, vs)
	t.Logf("installed hook, shipped config: %s", strings.TrimSpace(out))

	// The operator maps the loader: both hooks run, ours makes the varstore.
	o.writeConfig(t)
	cm = o.callsMark()
	startCreatesVarstore(t, a, g)
	t.Logf("the foreign hook's calls: %q", o.requireCalls(t, cm, g.name,
		"prepare begin nvram=yes", "start begin nvram=yes", "started begin nvram=yes", "stopped end", "release end"))
	o.requireReloads(t, r0, "starting the guest")

	// Twice: nothing changes, the binary is not even rewritten.
	binID := identify(t, o.bin)
	out = o.makeInstall(t)
	requireContains(t, "second make install", out, "Nothing changed")
	requireContains(t, "config line", summaryState(t, out, "config", a.hookConf), "kept")
	binID.requireUntouched(t, "second make install")
	o.foreign.requireUntouched(t, "after the second make install")
	o.requireReloads(t, r0, "second make install")

	// An upgrade (a binary with other bytes): renamed into place (a new
	// inode), no reload, and the next start goes through it.
	newer := filepath.Join(o.dir, "libvirt-nvram-hook.newer")
	if err := os.WriteFile(newer, append(readBytes(t, env.hookBin), "\n-- e2e upgrade --\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	out = o.makeInstallOf(t, newer)
	requireContains(t, "binary line", summaryState(t, out, "binary", o.bin), "upgraded", "no restart needed")
	requireContains(t, "reload line", summaryNotes(out, "reload"), "not needed")
	requireSameFile(t, o.bin, newer, "upgraded binary")
	if now := identify(t, o.bin); now.ino == binID.ino {
		t.Fatalf("the upgrade rewrote %s in place (same inode): a hook running at that moment could see a half-written file", o.bin)
	}
	requireLink(t, a.hookEntry, o.bin)
	g2 := guest{name: guestPrefix + "s15-upgraded", loader: env.customCode}
	defineGuest(t, a, g2)
	cm = o.callsMark()
	startCreatesVarstore(t, a, g2)
	o.requireCalls(t, cm, g2.name, "prepare begin", "start begin", "started begin")
	o.requireReloads(t, r0, "upgrade and start")
	o.foreign.requireUntouched(t, "after the upgrade")
}

// domMarked is what scenario 16 reads of `virsh dumpxml`.
type domMarked struct {
	Description string `xml:"description"`
}

// 16. The filter chain on restore: hooks/qemu runs first and its stdout
// feeds qemu.d/50-nvram. restore --xml with <nvram> removed: whatever the
// foreign filter does (adds a <description>, echoes the XML back, prints
// nothing), ours adds <nvram template=...> in its [nvram] dir, keeping the
// foreign change; the varstore is made and the guest runs.
func testFilterChain(t *testing.T) {
	a := env.a
	o := newOpsHost(t, a, true)
	o.makeInstall(t)
	o.writeConfig(t)
	for _, mode := range []string{modeMark, modeSilent, modeEcho} {
		t.Run(mode, func(t *testing.T) {
			o.setMode(t, mode)
			g := guest{name: guestPrefix + "s16-" + mode, loader: env.customCode}
			defineStartSave(t, a, g)
			_, edited, editedPath := savedXMLWithoutNvram(t, a, g.name)
			if strings.Contains(edited, foreignMarker) {
				t.Fatalf("editing the saved XML went wrong:\n%s", edited)
			}
			want := filepath.Join(env.altNvram, g.name+"_VARS.fd")
			requireNoFile(t, want)

			cm, mark, qmark := o.callsMark(), a.logMark(), fileSize(a.qemuLog(g.name))
			virsh(t, a, "restore", savePath(g.name), "--xml", editedPath, "--paused")
			requireState(t, a, g.name, "paused")
			// The foreign hook saw the XML without <nvram>: it ran before ours.
			t.Logf("the foreign hook's calls: %q", o.requireCalls(t, cm, g.name,
				"restore begin nvram=no", "prepare begin nvram=yes", "start begin", "started begin"))
			live := virsh(t, a, "dumpxml", g.name)
			path, tmpl := nvramOf(t, a, g.name)
			if path != want || tmpl != env.customVars {
				t.Fatalf("after restore: <nvram template='%s'>%s</nvram>, want template %s, path %s\n%s", tmpl, path, env.customVars, want, live)
			}
			var d domMarked
			if err := xml.Unmarshal([]byte(live), &d); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(d.Description); (got == foreignMarker) != (mode == modeMark) {
				t.Fatalf("foreign filter mode %s: the restored domain's <description> is %q\n%s", mode, got, live)
			}
			t.Logf("restored domain: <description>%s</description>, <nvram template='%s'>%s</nvram>", d.Description, tmpl, path)
			requireRestoredOnAddedNvram(t, a, g.name, want, mark, qmark)
			virsh(t, a, "destroy", g.name)
		})
	}
	o.foreign.requireUntouched(t, "after the restores")
}

// 17. `make uninstall`: removes our binary and link, removes the config only
// when it is the shipped one, touches no varstore (every file in the nvram
// dirs keeps its bytes, mode, owner, mtime and ctime) and not the foreign
// hook, which runs on the next start; a guest on the custom loader fails
// again with libvirt's own error, not a hook's.
func testUninstall(t *testing.T) {
	a := env.a
	o := newOpsHost(t, a, true)
	sample := filepath.Join(env.repo, "install", "nvram-hook.conf")

	t.Run("shipped_config_removed", func(t *testing.T) {
		o.makeInstall(t)
		requireSameFile(t, a.hookConf, sample, "installed config")
		out := o.makeUninstall(t)
		requireContains(t, "config line", summaryState(t, out, "config", a.hookConf), "removed", "same as the shipped sample")
		requireNoFile(t, a.hookConf)
		requireNoFile(t, o.bin)
		requireNoFile(t, a.hookEntry)
		o.foreign.requireUntouched(t, "after make uninstall")
	})

	o.makeInstall(t)
	conf := o.writeConfig(t) // modified: must survive the uninstall
	g1 := guest{name: guestPrefix + "s17-started", loader: env.customCode}
	g2 := guest{name: guestPrefix + "s17-never-started", loader: env.customCode}
	defineGuest(t, a, g1)
	defineGuest(t, a, g2)
	startCreatesVarstore(t, a, g1)
	if fileSize(a.varstore(g1.name)) == 0 {
		t.Fatal("no varstore to watch")
	}

	before := snapshotNvram(t, a)
	r0 := o.reloadCount()
	out := o.makeUninstall(t)
	requireContains(t, "qemu.d line", summaryState(t, out, "hook", a.hookEntry), "removed")
	requireContains(t, "binary line", summaryState(t, out, "binary", o.bin), "removed")
	requireContains(t, "config line", summaryState(t, out, "config", a.hookConf), "kept", "modified")
	requireContains(t, "nvram line", summaryNotes(out, "nvram"), "not touched")
	requireContains(t, "reload line", summaryNotes(out, "reload"), "not needed")
	before.requireSame(t, "make uninstall")
	requireNoFile(t, o.bin)
	requireNoFile(t, a.hookEntry)
	requireSameBytes(t, a.hookConf, conf, "modified config after make uninstall")
	o.foreign.requireUntouched(t, "after make uninstall")
	o.requireReloads(t, r0, "make uninstall")

	// No reload: the foreign hook runs, ours is gone.
	cm := o.callsMark()
	out = virshFails(t, a, "start", g2.name)
	requireLibvirtsOwnNoVarsError(t, out)
	o.requireCalls(t, cm, g2.name, "prepare begin")
	requireNoFile(t, a.varstore(g2.name))
	t.Logf("after make uninstall: %s", strings.TrimSpace(out))
	// The guest whose varstore exists starts as before.
	cm = o.callsMark()
	virsh(t, a, "start", "--paused", g1.name)
	requireState(t, a, g1.name, "paused")
	o.requireCalls(t, cm, g1.name, "prepare begin", "start begin", "started begin")
	virsh(t, a, "destroy", g1.name)
	o.foreign.requireUntouched(t, "after the starts")
}

// hostCommand is name with args run where h's libvirt runs: on A the
// machine itself (the test's environment); on a root host inside its
// libvirtd's mount namespace, root and working directory (nsenter -m -r
// -w: the daemon's cwd is its root's /; a plain environment), where /proc, /dev, /sys and the work dir are mounted, so
// that a package script sees what that daemon sees and can signal it. The
// root host's libvirtd must still be the process in that root.
func hostCommand(h *host, name string, args ...string) (*exec.Cmd, error) {
	envv := []string{"LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	if h.root == "" {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), envv...)
		return cmd, nil
	}
	if !alive(h.pid) || procRoot(h.pid) != h.root {
		return nil, fmt.Errorf("host %s: libvirtd pid %d no longer runs in %s: nothing to enter", h.name, h.pid, h.root)
	}
	nargs := append([]string{"-t", strconv.Itoa(h.pid), "-m", "-r", "-w", "--", name}, args...)
	cmd := exec.Command("nsenter", nargs...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, envv...)
	return cmd, nil
}

// dpkgRun runs h's own dpkg (or dpkg-query) non-interactively; a dpkg lock
// held by someone else is waited for, up to a minute.
func dpkgRun(h *host, tool string, args ...string) (string, error) {
	var out []byte
	var err error
	for i := 0; i < 30; i++ {
		var cmd *exec.Cmd
		if cmd, err = hostCommand(h, tool, args...); err != nil {
			return "", err
		}
		out, err = runWithTimeout(cmd, 2*time.Minute)
		if err == nil || !bytes.Contains(out, []byte("lock")) || tool != "dpkg" {
			break
		}
		time.Sleep(2 * time.Second)
	}
	return string(out), err
}

// dpkgMust runs dpkg ARGS on h, logs its output and fails the test on error.
func dpkgMust(t *testing.T, h *host, args ...string) string {
	t.Helper()
	t0 := time.Now()
	out, err := dpkgRun(h, "dpkg", args...)
	t.Logf("host %s: dpkg %s (%s):\n%s", h.name, strings.Join(args, " "), time.Since(t0).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("host %s: dpkg %s: %v", h.name, strings.Join(args, " "), err)
	}
	return out
}

// pkgStatus is h's dpkg status abbreviation of the package ("ii", "rc"),
// "" when dpkg does not know it.
func pkgStatus(h *host) (string, error) {
	out, err := dpkgRun(h, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkgName)
	if err != nil {
		if strings.Contains(out, "no packages found") {
			return "", nil
		}
		return "", fmt.Errorf("host %s: dpkg-query -W %s: %v: %s", h.name, pkgName, err, out)
	}
	return strings.TrimSpace(out), nil
}

func requirePkgStatus(t *testing.T, h *host, want, when string) {
	t.Helper()
	st, err := pkgStatus(h)
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Fatalf("%s: the package's status on host %s is %q, want %q", when, h.name, st, want)
	}
}

// buildDeb builds the .deb of the binary under test with the script `make
// deb` runs (install/debian/build-deb.sh), into the work dir rather than
// the source tree's bin/: the one package every host installs (the work dir
// is at the same path in the root hosts).
func buildDeb(t *testing.T) string {
	t.Helper()
	version := "dev"
	if out, err := exec.Command("git", "-C", env.repo, "describe", "--tags", "--always", "--dirty").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		version = string(bytes.TrimSpace(out))
	}
	outDir := filepath.Join(env.work, "deb")
	cmd := exec.Command("bash", filepath.Join(env.repo, "install", "debian", "build-deb.sh"), env.hookBin, outDir)
	cmd.Env = append(makeEnv(), "VERSION="+version)
	out, err := runWithTimeout(cmd, 2*time.Minute)
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(deb, '\n'); i >= 0 {
		deb = deb[i+1:]
	}
	if !strings.HasSuffix(deb, ".deb") || fileSize(deb) == 0 {
		t.Fatalf("build-deb.sh printed %q, no .deb", out)
	}
	t.Logf("built %s", deb)
	return deb
}

// installDeb runs dpkg -i on h and registers the package's purge (also at
// teardown, if the test dies first). It returns dpkg's output and records
// what the postinst said, with how long dpkg -i took, in the table's notes.
func installDeb(t *testing.T, h *host, deb, what string) string {
	t.Helper()
	undoLater(t, "purge the "+pkgName+" package on host "+h.name, func() error {
		st, err := pkgStatus(h)
		if err != nil || st == "" {
			return err
		}
		out, err := dpkgRun(h, "dpkg", "-P", pkgName)
		if err != nil {
			return fmt.Errorf("host %s: dpkg -P %s: %v: %s", h.name, pkgName, err, out)
		}
		logf("purged %s on host %s", pkgName, h.name)
		return nil
	})
	t0 := time.Now()
	out := dpkgMust(t, h, "-i", deb)
	// Under a second: the table's timings round to seconds, so it goes into the text.
	recordTiming(fmt.Sprintf("libvirt %s: dpkg -i (%s) %s, the postinst: %s", h.gen, what, time.Since(t0).Round(time.Millisecond), strings.Join(postinstSaid(out), " / ")), 0)
	requirePkgStatus(t, h, "ii", "after dpkg -i")
	return out
}

// postinstSaid is the postinst's part of dpkg -i's output: the lines after
// "Setting up PACKAGE", up to the next dpkg line.
func postinstSaid(out string) []string {
	var said []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Setting up "+pkgName+" "):
			in = true
		case !in || strings.TrimSpace(l) == "":
		case strings.HasPrefix(l, "Processing triggers ") || strings.HasPrefix(l, "Setting up "):
			in = false
		default:
			said = append(said, strings.TrimSpace(l))
		}
	}
	return said
}

// pkgFiles lists the package's files and links (not directories) on h, as
// paths there.
func pkgFiles(t *testing.T, h *host) []string {
	t.Helper()
	out, err := dpkgRun(h, "dpkg-query", "-L", pkgName)
	if err != nil {
		t.Fatalf("host %s: dpkg-query -L: %v: %s", h.name, err, out)
	}
	var files []string
	for _, p := range strings.Split(out, "\n") {
		p = strings.TrimSpace(p)
		if st, err := os.Lstat(h.local(p)); err == nil && !st.IsDir() {
			files = append(files, p)
		}
	}
	return files
}

// policyBlocksReload tells whether policy-rc.d on h (found as the package
// scripts find it, on PATH) forbids reloading libvirtd there.
func policyBlocksReload(t *testing.T, h *host) bool {
	t.Helper()
	cmd, err := hostCommand(h, "/bin/sh", "-c", `p=$(command -v policy-rc.d) || exit 0; exec "$p" libvirtd reload`)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Run()
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 101
}

var hupRe = regexp.MustCompile(`kill -HUP (\d+)`)

// 18 (host A) and 26 (the root hosts: Debian 13's and sid's own dpkg,
// inside the root). The .deb: with the foreign hook, dpkg -i needs no
// reload (postinst says so and signals nothing), a start runs both hooks
// through /usr/libexec/libvirt-nvram-hook; dpkg -r keeps the modified
// conffile, dpkg -P removes it; the package's files go, the foreign hook
// and every varstore stay as they were. On a host with no qemu hook the
// postinst must have libvirtd rescan its hooks: where policy-rc.d forbids
// it (host A), it says what to run; done, the start works.
func testDeb(t *testing.T, h *host) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: not a Debian host", tool)
		}
	}
	st, err := pkgStatus(h)
	if err != nil {
		t.Fatal(err)
	}
	if st != "" {
		t.Skipf("the %s package is known to dpkg on host %s already (%q): not touching it", pkgName, h.name, st)
	}
	if fileExists(h.local(pkgBin)) {
		t.Skipf("%s exists already on host %s: not touching it", pkgBin, h.name)
	}
	deb := buildDeb(t)
	t.Run("foreign_hook", func(t *testing.T) { debWithForeignHook(t, h, deb) })
	t.Run("first_hook_reload", func(t *testing.T) { debFirstHook(t, h, deb) })
}

func debWithForeignHook(t *testing.T, a *host, deb string) {
	o := newOpsHost(t, a, true)
	g := guest{name: a.guest("deb-foreign"), loader: a.customCode}
	defineGuest(t, a, g)
	r0 := o.reloadCount()
	out := installDeb(t, a, deb, "foreign hook")
	requireContains(t, "the postinst", out, "libvirt already had a qemu hook", "no reload needed")
	if strings.Contains(out, "first qemu hook") {
		t.Fatalf("the postinst thinks this is the first qemu hook:\n%s", out)
	}
	o.requireReloads(t, r0, "dpkg -i with a foreign hook present")
	requireNoFile(t, a.local(firstHookFlag))
	requireSameFile(t, a.local(pkgBin), env.hookBin, "packaged binary")
	requireModeOwner(t, a.local(pkgBin), 0o755, 0)
	requireLink(t, a.hookEntry, pkgBin)
	requireSameFile(t, a.hookConf, filepath.Join(env.repo, "install", "nvram-hook.conf"), "conffile")
	o.foreign.requireUntouched(t, "after dpkg -i")
	files := pkgFiles(t, a)
	t.Logf("package files: %q", files)

	conf := o.writeConfig(t)
	cm := o.callsMark()
	startCreatesVarstore(t, a, g)
	o.requireCalls(t, cm, g.name, "prepare begin nvram=yes", "start begin", "started begin")
	o.requireReloads(t, r0, "starting the guest")

	before := snapshotNvram(t, a)
	dpkgMust(t, a, "-r", pkgName)
	requirePkgStatus(t, a, "rc", "after dpkg -r (config files kept)")
	for _, f := range files {
		if a.local(f) != a.hookConf {
			requireNoFile(t, a.local(f))
		}
	}
	requireSameBytes(t, a.hookConf, conf, "modified conffile after dpkg -r")
	o.foreign.requireUntouched(t, "after dpkg -r")
	before.requireSame(t, "dpkg -r")

	dpkgMust(t, a, "-P", pkgName)
	requirePkgStatus(t, a, "", "after dpkg -P")
	for _, f := range files {
		requireNoFile(t, a.local(f))
	}
	if m, _ := filepath.Glob(a.hookConf + "*"); len(m) > 0 {
		t.Fatalf("dpkg -P left %q", m)
	}
	o.foreign.requireUntouched(t, "after dpkg -P")
	before.requireSame(t, "dpkg -P")
	o.requireReloads(t, r0, "dpkg -r and -P")

	// The ops team's hook still runs; the existing varstore serves the start.
	cm = o.callsMark()
	virsh(t, a, "start", "--paused", g.name)
	requireState(t, a, g.name, "paused")
	o.requireCalls(t, cm, g.name, "prepare begin", "start begin", "started begin")
	virsh(t, a, "destroy", g.name)
}

func debFirstHook(t *testing.T, a *host, deb string) {
	o := newOpsHost(t, a, false)
	g := guest{name: a.guest("deb-first-hook"), loader: a.customCode}
	defineGuest(t, a, g)
	requireLibvirtsOwnNoVarsError(t, virshFails(t, a, "start", g.name))

	r0 := o.reloadCount()
	out := installDeb(t, a, deb, "first qemu hook")
	requireContains(t, "the postinst", out, "first qemu hook on this host")
	requireNoFile(t, a.local(firstHookFlag))
	m := hupRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the postinst names no `kill -HUP PID` for libvirtd:\n%s", out)
	}
	if pid, _ := strconv.Atoi(m[1]); pid != a.pid {
		t.Fatalf("the postinst names pid %d, host %s's libvirtd is %d", pid, a.name, a.pid)
	}
	o.writeConfig(t)
	if policyBlocksReload(t, a) {
		requireContains(t, "the postinst", out, "not reloaded: libvirtd runs, but policy-rc.d forbids service actions here; reload it yourself (kill -HUP "+m[1]+")")
		o.requireReloads(t, r0, "dpkg -i under a policy-rc.d that forbids it")
		// Rightly so: until the daemon rescans, the new hook does not run.
		requireLibvirtsOwnNoVarsError(t, virshFails(t, a, "start", g.name))
		// What the postinst said to do.
		if err := syscall.Kill(a.pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		t.Logf("did what the postinst said: kill -HUP %d", a.pid)
	} else {
		requireContains(t, "the postinst", out, "reloaded libvirtd: kill -HUP "+m[1])
	}
	o.waitReloads(t, r0+1)
	o.requireReloads(t, r0+1, "dpkg -i and the reload it asked for")
	startCreatesVarstore(t, a, g)

	before := snapshotNvram(t, a)
	dpkgMust(t, a, "-P", pkgName)
	requirePkgStatus(t, a, "", "after dpkg -P")
	requireNoFile(t, a.local(pkgBin))
	requireNoFile(t, a.hookEntry)
	requireNoFile(t, a.hookConf)
	before.requireSame(t, "dpkg -P")
}

// 19. `make install` on a host with no qemu hook at all: libvirtd cached
// "no qemu hook", so the installer reloads it (SIGHUP to the pid in
// /run/libvirtd.pid after checking it is libvirtd, no systemd here) and
// says so; the next start runs the hook. `make uninstall` needs no reload.
func testFirstHookMakeInstall(t *testing.T) {
	a := env.a
	o := newOpsHost(t, a, false)
	g := guest{name: guestPrefix + "s19-first", loader: env.customCode}
	defineGuest(t, a, g)
	requireLibvirtsOwnNoVarsError(t, virshFails(t, a, "start", g.name))

	conf := o.writeConfig(t) // prepared before the install: kept
	r0 := o.reloadCount()
	out := o.makeInstall(t)
	requireContains(t, "config line", summaryState(t, out, "config", a.hookConf), "kept")
	reloadNote := summaryNotes(out, "reload")
	requireContains(t, "the reload lines", reloadNote, "needed: this is the host's first qemu hook", fmt.Sprintf("reloaded libvirtd: kill -HUP %d", a.pid))
	t.Logf("install.sh about the reload:\n%s", reloadNote)
	o.waitReloads(t, r0+1)
	o.requireReloads(t, r0+1, "make install on a host with no qemu hook")
	if !alive(a.pid) {
		t.Fatalf("libvirtd pid %d is gone after the installer's reload", a.pid)
	}
	requireLink(t, a.hookEntry, o.bin)
	requireSameBytes(t, a.hookConf, conf, "config after make install")
	startCreatesVarstore(t, a, g)

	before := snapshotNvram(t, a)
	out = o.makeUninstall(t)
	requireContains(t, "reload line", summaryNotes(out, "reload"), "not needed")
	o.requireReloads(t, r0+1, "make uninstall")
	g2 := guest{name: guestPrefix + "s19-after", loader: env.customCode}
	defineGuest(t, a, g2)
	before.requireSame(t, "make uninstall")
	requireLibvirtsOwnNoVarsError(t, virshFails(t, a, "start", g2.name))
}
