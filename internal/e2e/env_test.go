//go:build e2e

// The environment of the real-libvirt suite: host A is the machine's own
// libvirtd (system paths), host B a second libvirtd in its own mount
// namespace with private copies of the libvirt directories. TestMain sets both
// up with the freshly built hook installed, runs the tests and undoes
// everything it did, in reverse order, also when a test fails or panics.
package e2e

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
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
	guestPrefix    = "e2e-nvh-" // every guest this suite creates; teardown removes only these
	uriA           = "qemu:///system"
	systemNvramDir = "/var/lib/libvirt/qemu/nvram"
	qemuLogDirA    = "/var/log/libvirt/qemu"
	qemuConf       = "/etc/libvirt/qemu.conf"
	hookEntryName  = "50-nvram"
	qemuUserName   = "libvirt-qemu"
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	ovmf2MCode     = "/usr/share/OVMF/OVMF_CODE.fd"    // Debian's 2 MiB OVMF: no firmware descriptor names it
	ovmf2MVars     = "/usr/share/OVMF/OVMF_VARS.fd"    // its 131072-byte template
	ovmf2MCodeMS   = "/usr/share/OVMF/OVMF_CODE.ms.fd" // a symlink to OVMF_CODE.secboot.fd; named by no descriptor nor libvirt's list
	ovmf2MVarsMS   = "/usr/share/OVMF/OVMF_VARS.ms.fd"
	aavmfCode      = "/usr/share/AAVMF/AAVMF_CODE.fd"
	aavmfVars      = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// host is one libvirt daemon. Paths are as seen from the test process (the
// root mount namespace); for host B they point into its private tree.
type host struct {
	name       string // A, B, or the libvirt version of a root host (11.3, 12.8)
	gen        string // the libvirt generation it stands for (9.0, 11.3, 12.8)
	suite      string // Debian suite of its libvirt
	tag        string // put in guest names so that hosts never share one
	root       string // "" for A and B; the merged overlay a root host runs chrooted in
	uri        string
	pidFile    string
	pid        int
	etc        string // the host's /etc/libvirt
	nvramDir   string // the host's /var/lib/libvirt/qemu/nvram
	qemuLogDir string // the host's /var/log/libvirt/qemu
	hookEntry  string // <etc>/hooks/qemu.d/50-nvram
	hookConf   string // <etc>/nvram-hook.conf
	hookLog    string // [log] target of the hook on this host
	qemuUID    int    // the host's libvirt-qemu user
	qemuGID    int
	// Per-host firmware copies in the work dir (bound into root hosts at
	// the same path): the host's own OVMF 4M and AAVMF at custom paths,
	// mapped in every host's hook config.
	customCode, customVars string
	aaCode, aaVars         string
	vars2M                 string // a 131072-byte (2 MiB-era) OVMF template
	virtlogdPid            int
	extraPairs             []string  // more CODE:VARS pairs for every hook config
	overlay                [3]string // root hosts: lower (the cached root), upper, overlay work dir
	version                string    // what `virsh version` says the daemon runs
}

// local maps a path as the host's libvirt sees it to the path the test
// process reads. The work dir is the same path everywhere.
func (h *host) local(p string) string {
	if env != nil && env.work != "" && (p == env.work || strings.HasPrefix(p, env.work+"/")) {
		return p
	}
	switch {
	case h.root != "":
		return filepath.Join(h.root, p)
	case h.name == "B":
		bdir := filepath.Dir(h.etc)
		for _, m := range [][2]string{{"/etc/libvirt", "etc"}, {"/run/libvirt", "run"}, {"/var/lib/libvirt", "lib"}, {"/var/log/libvirt", "log"}, {"/var/cache/libvirt", "cache"}} {
			if p == m[0] || strings.HasPrefix(p, m[0]+"/") {
				return filepath.Join(bdir, m[1], strings.TrimPrefix(p, m[0]))
			}
		}
	}
	return p
}

// guest names a guest of scenario short on this host.
func (h *host) guest(short string) string { return guestPrefix + h.tag + short }

// environment is everything TestMain built; tests read it through env.
type environment struct {
	repo       string
	work       string // temp dir, readable by libvirt-qemu
	hookBin    string // the installed copy of the built hook
	customCode string // OVMF code copy at a path no descriptor names; mapped in the hook config
	customVars string // its template
	orphanCode string // another copy, mapped nowhere
	aaCode     string // AAVMF code copy at a path no descriptor names; mapped in the hook config
	aaVars     string // its template (a copy of AAVMF_VARS.fd)
	altNvram   string // the hook config's [nvram] dir (not libvirt's default)
	shared     string // a varstore dir both hosts see at the same path ("shared storage")
	saveDir    string
	qemuUID    int
	qemuGID    int
	vars2M     string // a copy of the 131072-byte OVMF_VARS.fd (trixie and sid have none)
	a, b       *host
	gens       []*host           // one host per libvirt generation: A (9.0), then the root hosts
	all        []*host           // every host, for cleanups
	genSkips   map[string]string // generation -> why it has no host

	mu       sync.Mutex
	undo     []undoStep
	torndown bool
	keepWork bool
}

type undoStep struct {
	what string
	fn   func() error
}

var env *environment

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		logf("SKIP: the real-libvirt suite needs root (it starts libvirtd and installs the hook under /etc/libvirt)")
		if os.Getenv("CI") == "true" {
			logf("CI=true: a skip is a failure")
			os.Exit(1)
		}
		os.Exit(0)
	}
	env = &environment{}
	start := time.Now()
	if err := env.setup(); err != nil {
		logf("setup failed: %v", err)
		env.teardown()
		os.Exit(1)
	}
	logf("environment ready in %s (work dir %s)", time.Since(start).Round(time.Millisecond), env.work)

	// A -timeout panic or a signal would skip the teardown below: tear down a
	// little before the deadline and on SIGINT/SIGTERM.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > time.Minute {
			time.AfterFunc(d-30*time.Second-time.Since(start), func() {
				logf("the -timeout deadline is 30s away: tearing down now")
				env.teardown()
				os.Exit(1)
			})
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("got %v: tearing down", s)
		env.teardown()
		os.Exit(1)
	}()

	code := m.Run()
	recordTiming("whole suite (setup, scenarios, teardown)", time.Since(start))
	printTable([]string{"9.0", "11.3", "12.8"})
	if code != 0 {
		env.keepWork = true
	}
	env.teardown()
	os.Exit(code)
}

// push records how to undo a setup step.
func (e *environment) push(what string, fn func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.undo = append(e.undo, undoStep{what, fn})
}

// teardown undoes every recorded step, newest first, once. Errors are
// reported and do not stop the rest.
func (e *environment) teardown() {
	e.mu.Lock()
	if e.torndown {
		e.mu.Unlock()
		return
	}
	e.torndown = true
	steps := e.undo
	e.undo = nil
	e.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(); err != nil {
			logf("teardown: %s: %v", steps[i].what, err)
		}
	}
	if e.work != "" {
		if e.keepWork {
			logf("tests failed: keeping %s (hook logs in %s/log)", e.work, e.work)
		} else if err := os.RemoveAll(e.work); err != nil {
			logf("teardown: remove %s: %v", e.work, err)
		}
	}
}

func (e *environment) setup() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	e.repo = filepath.Clean(filepath.Join(wd, "..", ".."))
	built := os.Getenv("E2E_HOOK_BIN")
	if built == "" {
		built = filepath.Join(e.repo, "bin", "libvirt-nvram-hook")
	}
	if _, err := os.Stat(built); err != nil {
		return fmt.Errorf("hook binary %s not found: run `make build` (or `make e2e`) first", built)
	}
	for _, c := range []string{"libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-system-aarch64", "qemu-img", "unshare", "mount", "useradd", "userdel"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found: install libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-system-arm qemu-utils passwd (internal/e2e/run.sh does)", c)
		}
	}
	for _, f := range []string{ovmfCode, ovmfVars, ovmf2MCode, ovmf2MVars, ovmf2MCodeMS, ovmf2MVarsMS, aavmfCode, aavmfVars} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: install the ovmf and qemu-efi-aarch64 packages", f)
		}
	}
	u, err := user.Lookup(qemuUserName)
	if err != nil {
		return fmt.Errorf("user %s missing (libvirt-daemon-system creates it): %v", qemuUserName, err)
	}
	e.qemuUID, _ = strconv.Atoi(u.Uid)
	e.qemuGID, _ = strconv.Atoi(u.Gid)
	if g, err := user.LookupGroup(qemuUserName); err == nil {
		e.qemuGID, _ = strconv.Atoi(g.Gid)
	}

	// Never touch someone else's daemon.
	for _, pf := range []string{"/run/libvirtd.pid", "/run/virtqemud.pid"} {
		if pid, ok := livePid(pf); ok {
			return fmt.Errorf("a libvirt daemon is already running (pid %d from %s): stop it first; this suite starts and stops its own", pid, pf)
		}
	}
	if c, err := net.DialTimeout("unix", "/run/libvirt/libvirt-sock", time.Second); err == nil {
		c.Close()
		return errors.New("something already listens on /run/libvirt/libvirt-sock: stop that libvirt daemon first")
	}

	if e.work, err = os.MkdirTemp("", "nvram-hook-e2e-"); err != nil {
		return err
	}
	if err := os.Chmod(e.work, 0o755); err != nil {
		return err
	}
	logf("work dir %s", e.work)
	if err := e.prepareFiles(built); err != nil {
		return err
	}
	if err := setupKVM(); err != nil {
		return err
	}
	if err := e.editQemuConf(); err != nil {
		return err
	}

	e.a = &host{
		name: "A", gen: "9.0", suite: "bookworm", uri: uriA, pidFile: "/run/libvirtd.pid",
		etc: "/etc/libvirt", nvramDir: systemNvramDir, qemuLogDir: qemuLogDirA,
		hookLog: filepath.Join(e.work, "log", "hook-A.log"),
		qemuUID: e.qemuUID, qemuGID: e.qemuGID,
		customCode: e.customCode, customVars: e.customVars, aaCode: e.aaCode, aaVars: e.aaVars,
		vars2M: ovmf2MVars,
	}
	bdir := filepath.Join(e.work, "B")
	e.b = &host{
		name: "B", gen: "9.0", suite: "bookworm", tag: "b-",
		uri:     "qemu+unix:///system?socket=" + filepath.Join(bdir, "run", "libvirt-sock"),
		pidFile: filepath.Join(bdir, "libvirtd.pid"),
		etc:     filepath.Join(bdir, "etc"), nvramDir: filepath.Join(bdir, "lib", "qemu", "nvram"),
		qemuLogDir: filepath.Join(bdir, "log", "qemu"),
		hookLog:    filepath.Join(e.work, "log", "hook-B.log"),
		qemuUID:    e.qemuUID, qemuGID: e.qemuGID,
		customCode: e.customCode, customVars: e.customVars, aaCode: e.aaCode, aaVars: e.aaVars,
		vars2M: ovmf2MVars,
	}
	for _, h := range []*host{e.a, e.b} {
		h.hookEntry = filepath.Join(h.etc, "hooks", "qemu.d", hookEntryName)
		h.hookConf = filepath.Join(h.etc, "nvram-hook.conf")
	}
	e.gens = []*host{e.a}
	e.all = []*host{e.a, e.b}
	roots, err := e.rootHosts()
	if err != nil {
		return err
	}
	for _, h := range roots {
		if err := e.prepareRootFirmware(h); err != nil {
			return err
		}
	}
	// The root hosts start while A and B do (QEMU probing is most of it).
	rootErr := make(chan error, 1)
	go func() { rootErr <- e.startRootHosts(roots) }()
	waitRoots := func(err error) error {
		if rerr := <-rootErr; err == nil {
			err = rerr
		}
		return err
	}

	// The hook goes in before the daemons start, so that they find it.
	if err := e.installHookA(); err != nil {
		return waitRoots(err)
	}
	// virtlogd creates /run/libvirt too: note now whether it was there.
	if _, err := os.Stat("/run/libvirt"); errors.Is(err, fs.ErrNotExist) {
		e.push("remove /run/libvirt", func() error { return os.RemoveAll("/run/libvirt") })
	}
	if err := e.startVirtlogd(); err != nil {
		return waitRoots(err)
	}
	if err := e.suppressAutostart("/run/libvirt"); err != nil {
		return waitRoots(err)
	}
	if err := e.startDaemon(e.a, exec.Command("libvirtd", "-d")); err != nil {
		return waitRoots(err)
	}
	if err := e.buildHostB(bdir); err != nil {
		return waitRoots(err)
	}
	script := strings.Join([]string{
		"set -e",
		"mount --make-rprivate /",
		"mount --bind " + shq(bdir+"/etc") + " /etc/libvirt",
		"mount --bind " + shq(bdir+"/run") + " /run/libvirt",
		"mount --bind " + shq(bdir+"/lib") + " /var/lib/libvirt",
		"mount --bind " + shq(bdir+"/log") + " /var/log/libvirt",
		"mount --bind " + shq(bdir+"/cache") + " /var/cache/libvirt",
		"exec libvirtd -d -p " + shq(e.b.pidFile),
	}, "\n")
	return waitRoots(e.startDaemon(e.b, exec.Command("unshare", "-m", "sh", "-c", script)))
}

// prepareFiles lays out the work dir: the hook copy, firmware copies, varstore
// dirs, logs.
func (e *environment) prepareFiles(built string) error {
	for _, d := range []string{"bin", "fw", "log", "save", "backup", "xml"} {
		if err := os.MkdirAll(filepath.Join(e.work, d), 0o755); err != nil {
			return err
		}
	}
	e.hookBin = filepath.Join(e.work, "bin", "libvirt-nvram-hook")
	if err := copyFile(built, e.hookBin, 0o755); err != nil {
		return err
	}
	e.customCode = filepath.Join(e.work, "fw", "CUSTOM_CODE.fd")
	e.customVars = filepath.Join(e.work, "fw", "CUSTOM_VARS.fd")
	e.orphanCode = filepath.Join(e.work, "fw", "ORPHAN_CODE.fd")
	for _, c := range [][2]string{{ovmfCode, e.customCode}, {ovmfVars, e.customVars}, {ovmfCode, e.orphanCode}} {
		if err := copyFile(c[0], c[1], 0o644); err != nil {
			return err
		}
	}
	// 64 MiB each, mostly zeros: copied sparse, to spare the disk.
	e.aaCode = filepath.Join(e.work, "fw", "AA_CODE.fd")
	e.aaVars = filepath.Join(e.work, "fw", "AA_VARS.fd")
	for _, c := range [][2]string{{aavmfCode, e.aaCode}, {aavmfVars, e.aaVars}} {
		if err := copySparse(c[0], c[1], 0o644); err != nil {
			return err
		}
	}
	e.vars2M = filepath.Join(e.work, "fw", "OVMF_VARS_2M.fd")
	if err := copyFile(ovmf2MVars, e.vars2M, 0o644); err != nil {
		return err
	}
	e.altNvram = filepath.Join(e.work, "nvram-alt")
	e.shared = filepath.Join(e.work, "nvram-shared")
	e.saveDir = filepath.Join(e.work, "save")
	for _, d := range []string{e.altNvram, e.shared} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chown(d, e.qemuUID, e.qemuGID); err != nil {
			return err
		}
	}
	return nil
}

// hookConfig is the hook's config for host h: file log at debug level, the
// custom loader mapped to its VARS, varstores for filter-added <nvram> in
// altNvram, and every dir the suite uses allowed.
func (e *environment) hookConfig(h *host) string {
	var pairs []string
	seen := map[string]bool{}
	for _, o := range e.all {
		for _, p := range append([]string{o.customCode + ":" + o.customVars, o.aaCode + ":" + o.aaVars}, o.extraPairs...) {
			if !seen[p] {
				seen[p] = true
				pairs = append(pairs, "nvram = "+p)
			}
		}
	}
	return fmt.Sprintf(`; written by the libvirt-nvram-hook e2e suite (internal/e2e); removed at its end
[nvram]
dir = %s
allowed_dirs = %s:%s:%s

[templates]
%s

[log]
target = file:%s
level = debug
`, e.altNvram, systemNvramDir, e.altNvram, e.shared, strings.Join(pairs, "\n"), h.hookLog)
}

func setupKVM() error {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return nil // TCG guests need no /dev/kvm
	}
	// What udev does on a normal host; without it libvirtd re-probes QEMU
	// on nearly every call (see shared/docs/real-libvirt.md).
	if out, err := exec.Command("chgrp", "kvm", "/dev/kvm").CombinedOutput(); err != nil {
		return fmt.Errorf("chgrp kvm /dev/kvm: %v: %s", err, out)
	}
	return os.Chmod("/dev/kvm", 0o660)
}

// editQemuConf makes sure qemu.conf has stdio_handler = "file" (host B has no
// virtlogd socket) and security_driver = "none"; the original comes back at
// teardown.
func (e *environment) editQemuConf() error {
	orig, err := os.ReadFile(qemuConf)
	if err != nil {
		return err
	}
	st, err := os.Stat(qemuConf)
	if err != nil {
		return err
	}
	want := []struct{ key, val string }{{"stdio_handler", `"file"`}, {"security_driver", `"none"`}}
	text := string(orig)
	var add []string
	for _, w := range want {
		ok := regexp.MustCompile(`(?m)^\s*` + w.key + `\s*=\s*` + regexp.QuoteMeta(w.val) + `\s*$`).MatchString(text)
		if ok {
			continue
		}
		// An active setting with another value would win (first match): comment it out.
		text = regexp.MustCompile(`(?m)^(\s*`+w.key+`\s*=.*)$`).ReplaceAllString(text, "#e2e# $1")
		add = append(add, w.key+" = "+w.val)
	}
	if len(add) == 0 {
		return nil
	}
	backup := filepath.Join(e.work, "backup", "qemu.conf")
	if err := os.WriteFile(backup, orig, 0o600); err != nil {
		return err
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += "# added by the libvirt-nvram-hook e2e suite; the original is restored at its end\n" + strings.Join(add, "\n") + "\n"
	if err := os.WriteFile(qemuConf, []byte(text), st.Mode().Perm()); err != nil {
		return err
	}
	logf("qemu.conf: added %s (backup %s)", strings.Join(add, ", "), backup)
	e.push("restore "+qemuConf, func() error { return os.WriteFile(qemuConf, orig, st.Mode().Perm()) })
	return nil
}

// installHookA installs the hook on host A the way users do: an entry in
// /etc/libvirt/hooks/qemu.d pointing at the binary, and the config file.
// Pre-existing files are moved aside and put back at teardown.
func (e *environment) installHookA() error {
	h := e.a
	qd := filepath.Dir(h.hookEntry)
	if _, err := os.Stat(qd); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(qd, 0o755); err != nil {
			return err
		}
		e.push("remove "+qd, func() error { return os.Remove(qd) })
	}
	for _, p := range []string{h.hookEntry, h.hookConf} {
		if err := e.moveAside(p); err != nil {
			return err
		}
	}
	if err := os.Symlink(e.hookBin, h.hookEntry); err != nil {
		return err
	}
	e.push("remove "+h.hookEntry, func() error { return removeIfExists(h.hookEntry) })
	if err := os.WriteFile(h.hookConf, []byte(e.hookConfig(h)), 0o644); err != nil {
		return err
	}
	e.push("remove "+h.hookConf, func() error { return removeIfExists(h.hookConf) })
	if qemuHook := filepath.Join(h.etc, "hooks", "qemu"); fileExists(qemuHook) {
		logf("note: %s exists and will run before the hook under test", qemuHook)
	}
	return nil
}

// moveAside renames an existing file next to /etc/libvirt (outside hooks/,
// where libvirt would run it) and registers putting it back.
func (e *environment) moveAside(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	aside := filepath.Join("/etc/libvirt", ".e2e-aside-"+filepath.Base(p))
	if err := os.Rename(p, aside); err != nil {
		return err
	}
	logf("moved %s aside to %s until the end", p, aside)
	e.push("put back "+p, func() error {
		if err := removeIfExists(p); err != nil {
			return err
		}
		return os.Rename(aside, p)
	})
	return nil
}

func (e *environment) startVirtlogd() error {
	if pid, ok := livePid("/run/virtlogd.pid"); ok {
		logf("virtlogd already running (pid %d): using it, will not stop it", pid)
		return nil
	}
	cmd := exec.Command("virtlogd", "-d")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("virtlogd -d: %v: %s", err, out)
	}
	var pid int
	for i := 0; i < 50; i++ {
		if p, ok := livePid("/run/virtlogd.pid"); ok {
			pid = p
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pid == 0 {
		return errors.New("virtlogd started but /run/virtlogd.pid names no live process")
	}
	logf("started virtlogd pid %d", pid)
	e.push(fmt.Sprintf("stop virtlogd pid %d", pid), func() error { return stopPid(pid, "virtlogd") })
	return nil
}

// suppressAutostart creates the <state dir>/autostarted markers libvirt
// checks, so that our daemon does not autostart the machine's networks,
// pools or guests. Markers we created are removed at teardown.
func (e *environment) suppressAutostart(runDir string) error {
	for _, d := range []string{"qemu", "network", "storage"} {
		dir := filepath.Join(runDir, d)
		f := filepath.Join(dir, "autostarted")
		if fileExists(f) {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return err
		}
		e.push("remove "+f, func() error { return removeIfExists(f) })
	}
	return nil
}

// startDaemon runs cmd (which daemonizes libvirtd), reads the daemon's pid
// and waits until it answers.
func (e *environment) startDaemon(h *host, cmd *exec.Cmd) error {
	outPath := filepath.Join(e.work, "log", "libvirtd-"+h.name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if f := os.Getenv("E2E_LIBVIRTD_LOG_FILTERS"); f != "" {
		// e.g. "1:security 1:qemu.qemu_migration 3:*" for debugging the suite
		cmd.Env = append(os.Environ(), "LIBVIRT_LOG_FILTERS="+f,
			"LIBVIRT_LOG_OUTPUTS=1:file:"+filepath.Join(e.work, "log", "libvirtd-"+h.name+".log"))
	}
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(outPath)
		return fmt.Errorf("starting libvirtd %s: %v: %s", h.name, err, b)
	}
	for i := 0; i < 100 && h.pid == 0; i++ {
		if p, ok := livePid(h.pidFile); ok {
			h.pid = p
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if h.pid == 0 {
		return fmt.Errorf("libvirtd %s: no live pid in %s", h.name, h.pidFile)
	}
	pid := h.pid
	e.push(fmt.Sprintf("stop libvirtd %s pid %d", h.name, pid), func() error {
		e.removeGuests(h)
		return stopPid(pid, "libvirtd")
	})
	return waitAnswers(h, t0, 90*time.Second)
}

// waitAnswers waits until h's libvirtd (pid h.pid, started at t0) answers
// `virsh version --daemon`, at most until t0+limit, and notes its version.
func waitAnswers(h *host, t0 time.Time, limit time.Duration) error {
	var last []byte
	var err error
	for time.Since(t0) < limit {
		c := exec.Command("virsh", "-c", h.uri, "version", "--daemon")
		c.Env = virshEnv()
		if last, err = runWithTimeout(c, time.Minute); err == nil {
			h.version = versionLine(string(last))
			logf("libvirtd %s pid %d answers after %s", h.name, h.pid, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("libvirtd %s (pid %d) does not answer on %s: %s", h.name, h.pid, h.uri, last)
}

// appendHostUUID gives a libvirtd its own host_uuid (random, version 4) at
// the end of its libvirtd.conf: daemons on one machine would otherwise
// share the machine's, and libvirt refuses to migrate to the same host.
func appendHostUUID(conf, comment string) error {
	uuid := make([]byte, 16)
	if _, err := rand.Read(uuid); err != nil {
		return err
	}
	uuid[6] = uuid[6]&0x0f | 0x40
	uuid[8] = uuid[8]&0x3f | 0x80
	return appendFile(conf, fmt.Sprintf("\n# %s\nhost_uuid = \"%x-%x-%x-%x-%x\"\n", comment, uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:]))
}

// buildHostB makes B's private tree: etc (a copy of /etc/libvirt without
// guests, networks' autostart or hooks, with a distinct host_uuid and our
// hook), lib (the directory skeleton of /var/lib/libvirt), run, log, cache.
func (e *environment) buildHostB(bdir string) error {
	skip := func(rel string, d fs.DirEntry) bool {
		switch {
		case rel == "hooks", rel == "nvram-hook.conf", strings.HasPrefix(rel, ".e2e-aside-"):
			return true
		case rel == "qemu/autostart", rel == "qemu/networks/autostart":
			return true
		case filepath.Dir(rel) == "qemu" && strings.HasSuffix(rel, ".xml"):
			return true // guest definitions
		}
		return false
	}
	if err := copyTree("/etc/libvirt", filepath.Join(bdir, "etc"), skip, false); err != nil {
		return err
	}
	noGuests := func(rel string, d fs.DirEntry) bool {
		return strings.HasPrefix(filepath.Base(rel), "domain-")
	}
	if err := copyTree("/var/lib/libvirt", filepath.Join(bdir, "lib"), noGuests, true); err != nil {
		return err
	}
	if err := os.MkdirAll(e.b.nvramDir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(e.b.nvramDir, e.qemuUID, e.qemuGID); err != nil {
		return err
	}
	for _, d := range []string{"run", "log/qemu", "cache"} {
		if err := os.MkdirAll(filepath.Join(bdir, d), 0o755); err != nil {
			return err
		}
	}
	// A's capabilities cache saves B a QEMU probe; same binaries, same host.
	if err := copyTree("/var/cache/libvirt", filepath.Join(bdir, "cache"), nil, false); err != nil {
		return err
	}
	if err := e.suppressAutostart(filepath.Join(bdir, "run")); err != nil {
		return err
	}
	if err := appendHostUUID(filepath.Join(e.b.etc, "libvirtd.conf"), "e2e host B"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(e.b.hookEntry), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(e.hookBin, e.b.hookEntry); err != nil {
		return err
	}
	return os.WriteFile(e.b.hookConf, []byte(e.hookConfig(e.b)), 0o644)
}

// removeGuests destroys and undefines every guest of this suite on h, kills
// any of our QEMU processes the daemon lost track of, and removes our
// varstores and QEMU logs from h's directories.
func (e *environment) removeGuests(h *host) {
	out, err := virshRaw(h, "list", "--all", "--name")
	if err != nil {
		logf("teardown: list guests on %s: %v: %s", h.name, err, out)
	}
	for _, name := range strings.Split(out, "\n") {
		name = strings.TrimSpace(name)
		if !strings.HasPrefix(name, guestPrefix) {
			continue
		}
		virshRaw(h, "destroy", name)
		virshRaw(h, "undefine", "--nvram", name)
	}
	for _, pid := range ourQemuPids() {
		// A goes last: then whatever is left of ours goes too.
		if (h == e.a && h.root == "") || procNamespaceMatches(pid, h) {
			logf("teardown: killing leftover QEMU pid %d", pid)
			stopPid(pid, "")
		}
	}
	for _, dir := range []string{h.nvramDir, h.qemuLogDir} {
		matches, _ := filepath.Glob(filepath.Join(dir, guestPrefix+"*"))
		for _, m := range matches {
			os.Remove(m)
		}
	}
}

// ourQemuPids lists QEMU processes running a guest of this suite.
func ourQemuPids() []int {
	return procPids(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		s := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		return err == nil && strings.Contains(s, "qemu-system") && strings.Contains(s, "guest="+guestPrefix)
	})
}

// procPids lists the running processes for which keep returns true.
func procPids(keep func(pid int) bool) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if pid, err := strconv.Atoi(d.Name()); err == nil && keep(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procNamespaceMatches tells whether pid belongs to host h: B's QEMUs live in
// B's mount namespace (the one of B's libvirtd).
func procNamespaceMatches(pid int, h *host) bool {
	if h.root != "" {
		return procRoot(pid) == h.root
	}
	ns := func(p int) string { s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p)); return s }
	want := ns(os.Getpid()) // host A's
	if h.name == "B" {
		if h.pid == 0 || ns(h.pid) == "" {
			return false
		}
		want = ns(h.pid)
	}
	return ns(pid) == want
}

// livePid reads a pid file and tells whether that process is alive.
func livePid(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid)
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// stopPid sends SIGTERM to pid (checking its name first when comm is set),
// waits up to 20 s, then SIGKILL.
func stopPid(pid int, comm string) error {
	if !alive(pid) {
		return nil
	}
	if comm != "" {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if got := strings.TrimSpace(string(b)); got != comm {
			return fmt.Errorf("pid %d is %q, not %s: not touching it", pid, got, comm)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for i := 0; i < 200; i++ {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("pid %d ignored SIGTERM for 20s: SIGKILL", pid)
	syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

func virshEnv() []string { return append(os.Environ(), "LC_ALL=C") }

// virshRaw runs virsh against h and returns combined output.
func virshRaw(h *host, args ...string) (string, error) {
	cmd := exec.Command("virsh", append([]string{"-c", h.uri}, args...)...)
	cmd.Env = virshEnv()
	out, err := runWithTimeout(cmd, 3*time.Minute)
	return string(out), err
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := waitTimeout(cmd, d)
	return buf.Bytes(), err
}

// waitTimeout runs cmd (its output goes where the caller set it) and kills
// it if it has not ended after d.
func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: timed out after %s", strings.Join(cmd.Args, " "), d)
	}
}

// copyTree copies src to dst keeping modes and owners; symlinks stay
// symlinks. dirsOnly copies the directory skeleton only.
func copyTree(src, dst string, skip func(rel string, d fs.DirEntry) bool, dirsOnly bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skip != nil && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case info.IsDir():
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case dirsOnly:
			return nil
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
			return os.Lchown(target, int(st.Uid), int(st.Gid))
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		return os.Chown(target, int(st.Uid), int(st.Gid))
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	return copyWith(src, dst, mode, func(in, out *os.File) error {
		_, err := io.Copy(out, in)
		return err
	})
}

// copySparse copies src to dst leaving holes where src has zero blocks.
func copySparse(src, dst string, mode os.FileMode) error {
	return copyWith(src, dst, mode, func(in, out *os.File) error {
		buf := make([]byte, 64<<10)
		var off int64
		for {
			n, rerr := io.ReadFull(in, buf)
			if n > 0 {
				if !isZero(buf[:n]) {
					if _, err := out.WriteAt(buf[:n], off); err != nil {
						return err
					}
				}
				off += int64(n)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return out.Truncate(off)
			}
			if rerr != nil {
				return rerr
			}
		}
	})
}

// copyWith creates dst (which must not exist) with mode, fills it from src
// with fill, and closes both.
func copyWith(src, dst string, mode os.FileMode, fill func(in, out *os.File) error) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := fill(in, out); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
