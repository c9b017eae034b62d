//go:build e2e

// Root hosts: libvirt 11.3 (Debian 13, trixie) and 12.8 (sid), each a
// libvirtd + virtlogd chrooted into a Debian root that run.sh built with
// mmdebstrap and keeps cached (internal/e2e/roots.sh). The cached root is
// never written: each host runs in an overlay (the cached root below, a
// throwaway upper dir in the work area above), so every change a run makes
// (qemu.conf, the hook, varstores, logs, sockets) goes when the overlay
// does. The daemons run in their own mount namespaces, where /dev, /proc,
// /sys and the work dir are bound in; those mounts end with the namespace.
// The only mount in the machine's namespace is the overlay itself, undone
// at teardown after the daemons (checked by /proc/PID/root) are stopped.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rootGens are the generations the suite runs in roots: libvirt version
// prefix and Debian suite (the directory name in E2E_ROOT_CACHE).
var rootGens = []struct{ gen, suite, tag string }{
	{"11.3", "trixie", "t-"},
	{"12.8", "sid", "s-"},
}

// rootHosts makes the host structs of the root hosts whose cached root
// exists (E2E_ROOT_CACHE/SUITE, built by roots.sh); a missing one is a
// setup failure under CI=true and a recorded skip otherwise.
func (e *environment) rootHosts() ([]*host, error) {
	e.genSkips = map[string]string{}
	cache := os.Getenv("E2E_ROOT_CACHE")
	var hosts []*host
	for _, r := range rootGens {
		lower := filepath.Join(cache, r.suite)
		var why string
		switch {
		case cache == "":
			why = "E2E_ROOT_CACHE is not set (run.sh sets it after building the roots)"
		case !fileExists(filepath.Join(lower, ".nvram-hook-e2e-root")):
			why = fmt.Sprintf("no usable %s root at %s (roots.sh did not build it)", r.suite, lower)
		}
		if why == "" {
			out, err := exec.Command("chroot", lower, "/usr/sbin/libvirtd", "--version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), " "+r.gen+".") {
				why = fmt.Sprintf("%s root at %s does not run libvirtd %s: %v %s", r.suite, lower, r.gen, err, strings.TrimSpace(string(out)))
			}
		}
		if why != "" {
			if os.Getenv("CI") == "true" {
				return nil, fmt.Errorf("libvirt %s: %s; CI=true: a skipped generation is a failure", r.gen, why)
			}
			logf("SKIP libvirt %s: %s", r.gen, why)
			e.genSkips[r.gen] = why
			continue
		}
		base, err := os.MkdirTemp("/var/tmp", "nvhe2e-"+r.suite+"-")
		if err != nil {
			return nil, err
		}
		e.push("remove "+base, func() error { return os.RemoveAll(base) })
		m := filepath.Join(base, "m")
		h := &host{
			name: r.gen, gen: r.gen, suite: r.suite, tag: r.tag, root: m,
			uri:        "qemu+unix:///system?socket=" + filepath.Join(m, "run", "libvirt", "libvirt-sock"),
			pidFile:    filepath.Join(m, "run", "libvirtd.pid"),
			etc:        filepath.Join(m, "etc", "libvirt"),
			nvramDir:   filepath.Join(m, systemNvramDir),
			qemuLogDir: filepath.Join(m, qemuLogDirA),
			hookLog:    filepath.Join(e.work, "log", "hook-"+r.gen+".log"),
		}
		h.hookEntry = filepath.Join(h.etc, "hooks", "qemu.d", hookEntryName)
		h.hookConf = filepath.Join(h.etc, "nvram-hook.conf")
		h.overlay = [3]string{lower, filepath.Join(base, "upper"), filepath.Join(base, "ovl-work")}
		for _, d := range []string{m, h.overlay[1], h.overlay[2]} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if h.qemuUID, h.qemuGID, err = passwdIDs(filepath.Join(lower, "etc"), qemuUserName); err != nil {
			return nil, fmt.Errorf("%s root: %v", r.suite, err)
		}
		hosts = append(hosts, h)
		e.gens = append(e.gens, h)
		e.all = append(e.all, h)
	}
	return hosts, nil
}

// passwdIDs reads user's uid and the gid of the group named like it (else
// its primary group) from an etc dir.
func passwdIDs(etc, user string) (uid, gid int, err error) {
	pw, err := os.ReadFile(filepath.Join(etc, "passwd"))
	if err != nil {
		return 0, 0, err
	}
	uid = -1
	for _, l := range strings.Split(string(pw), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 4 && f[0] == user {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
		}
	}
	if uid < 0 {
		return 0, 0, fmt.Errorf("no user %s in %s/passwd", user, etc)
	}
	gr, _ := os.ReadFile(filepath.Join(etc, "group"))
	for _, l := range strings.Split(string(gr), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 3 && f[0] == user {
			gid, _ = strconv.Atoi(f[2])
		}
	}
	return uid, gid, nil
}

// prepareRootFirmware copies the root's own OVMF 4M and AAVMF builds to
// custom paths in the work dir.
func (e *environment) prepareRootFirmware(h *host) error {
	dir := filepath.Join(e.work, "fw", h.gen)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lower := h.overlay[0]
	h.customCode = filepath.Join(dir, "CUSTOM_CODE.fd")
	h.customVars = filepath.Join(dir, "CUSTOM_VARS.fd")
	h.aaCode = filepath.Join(dir, "AA_CODE.fd")
	h.aaVars = filepath.Join(dir, "AA_VARS.fd")
	h.vars2M = e.vars2M
	for _, c := range [][2]string{{ovmfCode, h.customCode}, {ovmfVars, h.customVars}} {
		if err := copyFile(filepath.Join(lower, c[0]), c[1], 0o644); err != nil {
			return err
		}
	}
	for arch, fw := range archFirmware {
		code, vars := archCopies(h, arch)
		for _, c := range [][2]string{{fw[0], code}, {fw[1], vars}} {
			if err := copySparse(filepath.Join(lower, c[0]), c[1], 0o644); err != nil {
				return err
			}
		}
		h.extraPairs = append(h.extraPairs, code+":"+vars)
	}
	for _, c := range [][2]string{{aavmfCode, h.aaCode}, {aavmfVars, h.aaVars}} {
		if err := copySparse(filepath.Join(lower, c[0]), c[1], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startRootHosts starts every root host, concurrently.
func (e *environment) startRootHosts(hosts []*host) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if errs[i] = e.startRootHost(h); errs[i] == nil {
				logf("host %s (%s root) ready in %s: %s", h.name, h.suite, time.Since(t0).Round(time.Millisecond), h.version)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *environment) startRootHost(h *host) error {
	m := h.root
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.overlay[0], h.overlay[1], h.overlay[2])
	if err := syscall.Mount("overlay", m, "overlay", 0, opts); err != nil {
		return fmt.Errorf("host %s: mount overlay on %s: %v", h.name, m, err)
	}
	e.push("unmount the overlay "+m, func() error { return unmountWait(m) })

	// Everything below is written into the overlay's upper dir only.
	if err := rootKVMGroup(m); err != nil {
		return fmt.Errorf("host %s: %v", h.name, err)
	}
	if err := appendFile(filepath.Join(h.etc, "qemu.conf"), "\n# e2e root host\nstdio_handler = \"file\"\nsecurity_driver = \"none\"\ncgroup_controllers = [ ]\nnamespaces = [ ]\n"); err != nil {
		return err
	}
	if err := appendHostUUID(filepath.Join(h.etc, "libvirtd.conf"), "e2e root host"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(h.hookEntry), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(e.hookBin, h.hookEntry); err != nil {
		return err
	}
	if err := os.WriteFile(h.hookConf, []byte(e.hookConfig(h)), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(m, e.work), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(m, "run", "libvirt"), 0o755); err != nil {
		return err
	}
	if err := e.suppressAutostart(filepath.Join(m, "run", "libvirt")); err != nil {
		return err
	}

	pid, err := e.runInRoot(h, "virtlogd", filepath.Join(m, "run", "virtlogd.pid"))
	if err != nil {
		return err
	}
	h.virtlogdPid = pid
	e.push(fmt.Sprintf("stop virtlogd of host %s pid %d", h.name, pid), func() error { return stopPidIn(pid, "virtlogd", m) })
	t0 := time.Now()
	if h.pid, err = e.runInRoot(h, "libvirtd", h.pidFile); err != nil {
		return err
	}
	lpid := h.pid
	e.push(fmt.Sprintf("stop libvirtd of host %s pid %d", h.name, lpid), func() error {
		e.removeGuests(h)
		err := stopPidIn(lpid, "libvirtd", m)
		for _, q := range procPids(func(pid int) bool { return procRoot(pid) == m && pid != h.virtlogdPid }) {
			logf("teardown: host %s: stopping leftover pid %d in its root", h.name, q)
			stopPid(q, "")
		}
		return err
	})
	return waitAnswers(h, t0, 3*time.Minute)
}

// runInRoot starts daemon -d chrooted into h's root, in a mount namespace
// of its own with /dev, /proc, /sys and the work dir bound in, and returns
// the pid it writes to pidFile (checked to run in the root).
func (e *environment) runInRoot(h *host, daemon, pidFile string) (int, error) {
	m := h.root
	script := strings.Join([]string{
		"set -e",
		"mount --make-rslave /",
		"mount --rbind /dev " + shq(m+"/dev"),
		"mount --make-rslave " + shq(m+"/dev"),
		"mount -t proc proc " + shq(m+"/proc"),
		"mount --rbind /sys " + shq(m+"/sys"),
		"mount --make-rslave " + shq(m+"/sys"),
		"mount --bind " + shq(e.work) + " " + shq(m+e.work),
		"exec chroot " + shq(m) + " /usr/sbin/" + daemon + " -d",
	}, "\n")
	outPath := filepath.Join(e.work, "log", daemon+"-"+h.name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.Command("unshare", "-m", "--propagation", "slave", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if f := os.Getenv("E2E_LIBVIRTD_LOG_FILTERS"); f != "" && daemon == "libvirtd" {
		cmd.Env = append(cmd.Env, "LIBVIRT_LOG_FILTERS="+f, "LIBVIRT_LOG_OUTPUTS=1:file:"+filepath.Join(e.work, "log", "libvirtd-"+h.name+".log"))
	}
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(outPath)
		return 0, fmt.Errorf("host %s: starting %s: %v: %s", h.name, daemon, err, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if pid, ok := livePid(pidFile); ok && procRoot(pid) == m {
			logf("host %s: started %s pid %d (root %s)", h.name, daemon, pid, m)
			return pid, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(outPath)
	return 0, fmt.Errorf("host %s: %s started but %s names no live process in %s: %s", h.name, daemon, pidFile, m, b)
}

// rootKVMGroup gives the root's kvm group the gid of the machine's
// /dev/kvm, with the QEMU user in it, as udev would on a real host (else
// libvirtd re-probes QEMU on nearly every call).
func rootKVMGroup(m string) error {
	st, err := os.Stat("/dev/kvm")
	if err != nil {
		return nil
	}
	gid := st.Sys().(*syscall.Stat_t).Gid
	p := filepath.Join(m, "etc", "group")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) == 4 && f[0] == "kvm" {
			members := f[3]
			if !regexp.MustCompile(`(^|,)` + qemuUserName + `(,|$)`).MatchString(members) {
				if members != "" {
					members += ","
				}
				members += qemuUserName
			}
			lines[i] = fmt.Sprintf("kvm:%s:%d:%s", f[1], gid, members)
		}
	}
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
}

func appendFile(p, text string) error {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// procRoot is the root directory of pid ("" when unreadable).
func procRoot(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	return s
}

// stopPidIn stops pid only when it is comm running in root.
func stopPidIn(pid int, comm, root string) error {
	if !alive(pid) {
		return nil
	}
	if r := procRoot(pid); r != root {
		return fmt.Errorf("pid %d runs in %q, not in %s: not touching it", pid, r, root)
	}
	return stopPid(pid, comm)
}

// unmountWait unmounts p, retrying while the last processes in it exit.
func unmountWait(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Unmount(p, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("umount %s: %v", p, err)
}

func versionLine(v string) string {
	var parts []string
	for _, l := range strings.Split(v, "\n") {
		if i := strings.Index(l, "Running against daemon: "); i >= 0 {
			parts = append(parts, "libvirt "+strings.TrimSpace(l[i+len("Running against daemon: "):]))
		}
		if i := strings.Index(l, "Running hypervisor: "); i >= 0 {
			parts = append(parts, strings.TrimSpace(l[i+len("Running hypervisor: "):]))
		}
	}
	return strings.Join(parts, ", ")
}
