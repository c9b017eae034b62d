//go:build e2e

package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// session is a throwaway unprivileged user with its own qemu:///session
// libvirtd (started by virsh on first use, as libvirt does).
type session struct {
	h        *host
	name     string
	uid, gid int
	base     string // root's 0755 dir holding home and runtime (local path)
	home     string // 0700, owned by the user (local path)
	runtime  string // XDG_RUNTIME_DIR, 0700, owned by the user (local path)
	once     sync.Once
}

// in is p (a local path) as the session's host sees it.
func (s *session) in(p string) string {
	if s.h.root == "" {
		return p
	}
	return strings.TrimPrefix(p, s.h.root)
}

// newSession creates the user and its directories under the work dir and
// registers their removal (with every process of that user, by pid) both
// as the test's cleanup and as a teardown step.
func newSession(t *testing.T, h *host) *session {
	t.Helper()
	r := make([]byte, 3)
	if _, err := rand.Read(r); err != nil {
		t.Fatal(err)
	}
	// A short base: the session daemon puts QEMU's monitor socket at
	// ~/.config/libvirt/qemu/lib/domain-N-NAME/monitor.sock, and a UNIX
	// socket path has at most 107 bytes.
	base, err := os.MkdirTemp(h.local("/tmp"), "nvhe2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &session{
		h:       h,
		name:    fmt.Sprintf("nvhe2e%x", r),
		base:    base,
		home:    filepath.Join(base, "home"),
		runtime: filepath.Join(base, "run"),
	}
	if _, _, err := passwdIDs(h.local("/etc"), s.name); err == nil {
		os.Remove(base)
		t.Fatalf("user %s exists already", s.name)
	}
	args := []string{"--system", "--user-group", "--no-create-home",
		"--home-dir", s.in(s.home), "--shell", "/usr/sbin/nologin", "--comment", "libvirt-nvram-hook e2e session user"}
	if h.root != "" {
		args = append(args, "--root", h.root) // into the overlay: gone with it
	}
	out, err := exec.Command("useradd", append(args, s.name)...).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", s.name, err, out)
	}
	t.Cleanup(s.cleanup)
	env.push("remove session user "+s.name, func() error { s.cleanup(); return nil })
	if s.uid, s.gid, err = passwdIDs(h.local("/etc"), s.name); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.home, s.runtime} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, s.uid, s.gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("session user %s (uid %d), HOME=%s, XDG_RUNTIME_DIR=%s", s.name, s.uid, s.home, s.runtime)
	return s
}

// mkdirAll creates p and its missing parents below the home, owned by the
// user.
func (s *session) mkdirAll(t *testing.T, p string) {
	t.Helper()
	rel, err := filepath.Rel(s.home, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("%s is not below %s", p, s.home)
	}
	cur := s.home
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o700); err == nil {
			if err := os.Chown(cur, s.uid, s.gid); err != nil {
				t.Fatal(err)
			}
		} else if !os.IsExist(err) {
			t.Fatal(err)
		}
	}
}

// writeFile writes a file owned by the user.
func (s *session) writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	s.mkdirAll(t, filepath.Dir(p))
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
}

// virsh runs virsh -c qemu:///session as the user, with only the
// environment a login would give it.
func (s *session) virsh(args ...string) (string, error) {
	envv := []string{"HOME=" + s.in(s.home), "USER=" + s.name, "LOGNAME=" + s.name,
		"XDG_RUNTIME_DIR=" + s.in(s.runtime), "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"}
	var cmd *exec.Cmd
	if s.h.root != "" {
		// Inside the root host's mount namespace and root (where the
		// work dir, and so the hook, is bound in), as the user.
		nargs := []string{"-t", strconv.Itoa(s.h.pid), "-m", "-r",
			"-S", strconv.Itoa(s.uid), "-G", strconv.Itoa(s.gid), "--", "env", "-i"}
		nargs = append(nargs, envv...)
		cmd = exec.Command("nsenter", append(append(nargs, "virsh", "-c", "qemu:///session"), args...)...)
	} else {
		cmd = exec.Command("virsh", append([]string{"-c", "qemu:///session"}, args...)...)
		cmd.Dir = s.home
		cmd.Env = envv
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid), Groups: []uint32{}}}
	}
	out, err := runWithTimeout(cmd, 3*time.Minute)
	return string(out), err
}

func (s *session) mustVirsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.virsh(args...)
	if err != nil {
		t.Fatalf("session %s: virsh %s: %v\n%s", s.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (s *session) requireState(t *testing.T, name, want string) {
	t.Helper()
	var got string
	for i := 0; i < 50; i++ {
		out, err := s.virsh("domstate", name)
		got = strings.TrimSpace(out)
		if err == nil && got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("session %s: virsh domstate %s = %q, want %q", s.name, name, got, want)
}

// daemonPid is the user's session libvirtd, if it runs.
func (s *session) daemonPid() (int, bool) {
	return livePid(filepath.Join(s.runtime, "libvirt", "libvirtd.pid"))
}

// pids lists the processes running as the user (all started through this
// test: the user is new).
func (s *session) pids() []int {
	return procPids(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
				return f[1] == strconv.Itoa(s.uid) && alive(pid) && (s.h.root == "" || procRoot(pid) == s.h.root)
			}
		}
		return false
	})
}

// cleanup destroys the user's guests, stops its libvirtd and whatever else
// runs as the user (by pid), then deletes the user, its group and files.
func (s *session) cleanup() {
	s.once.Do(func() {
		if s.uid != 0 {
			if _, ok := s.daemonPid(); ok {
				out, _ := s.virsh("list", "--all", "--name")
				for _, n := range strings.Fields(out) {
					if strings.HasPrefix(n, guestPrefix) {
						s.virsh("destroy", n)
						s.virsh("undefine", "--nvram", n)
					}
				}
			}
			if pid, ok := s.daemonPid(); ok {
				if err := stopPid(pid, "libvirtd"); err != nil {
					logf("session cleanup: %v", err)
				}
			}
			for i := 0; i < 3; i++ {
				pids := s.pids()
				if len(pids) == 0 {
					break
				}
				for _, pid := range pids {
					comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
					logf("session cleanup: stopping pid %d (%s) of user %s", pid, strings.TrimSpace(string(comm)), s.name)
					stopPid(pid, "")
				}
			}
		}
		var rootArgs []string
		if s.h.root != "" {
			rootArgs = []string{"--root", s.h.root}
		}
		if out, err := exec.Command("userdel", append(rootArgs, s.name)...).CombinedOutput(); err != nil {
			logf("session cleanup: userdel %s: %v: %s", s.name, err, out)
		}
		if s.h.root == "" {
			if _, err := user.LookupGroup(s.name); err == nil {
				exec.Command("groupdel", s.name).Run()
			}
		}
		os.RemoveAll(s.base)
	})
}

// 13. A session daemon: an unprivileged user's qemu:///session libvirtd runs
// the same hook as that user. The loader is mapped only in the user's
// ~/.config/libvirt/nvram-hook.conf: before that file exists the start
// fails, after it the varstore appears in the session's nvram dir, owned by
// the user, equal to the template, and the guest runs.
func testSession(t *testing.T, h *host) {
	s := newSession(t, h)
	code := filepath.Join(s.home, "fw", "SESSION_CODE.fd")
	vars := filepath.Join(s.home, "fw", "SESSION_VARS.fd")
	s.writeFile(t, code, readBytes(t, h.local(ovmfCode)), 0o644)
	s.writeFile(t, vars, readBytes(t, h.local(ovmfVars)), 0o644)

	name := h.guest("s13-session")
	g := guest{name: name, loader: s.in(code)}
	xmlPath := filepath.Join(s.home, name+".xml")
	s.writeFile(t, xmlPath, []byte(g.xml()), 0o644)
	t0 := time.Now()
	s.mustVirsh(t, "define", s.in(xmlPath))
	t.Logf("session: first virsh (daemon start, QEMU probe, define) took %s", time.Since(t0).Round(time.Millisecond))
	if pid, ok := s.daemonPid(); ok {
		t.Logf("session libvirtd pid %d", pid)
	} else {
		t.Errorf("no session libvirtd pid in %s/libvirt/libvirtd.pid", s.runtime)
	}
	d := parseDom(t, s.mustVirsh(t, "dumpxml", "--inactive", name))
	vs := filepath.Join(s.home, ".config", "libvirt", "qemu", "nvram", name+"_VARS.fd")
	if d.Nvram == nil || strings.TrimSpace(d.Nvram.Path) != s.in(vs) {
		t.Fatalf("the session daemon filled in %+v, want <nvram>%s</nvram>", d.Nvram, vs)
	}
	requireNoFile(t, vs)

	// No mapping anywhere yet.
	out, err := s.virsh("start", name)
	if err == nil {
		t.Fatalf("session start without a template succeeded:\n%s", out)
	}
	if !strings.Contains(out, "no varstore template for loader") && !strings.Contains(out, "unable to find any master var store for loader") {
		t.Fatalf("session start failed, but with neither the hook's nor libvirt's missing-template error:\n%s", out)
	}
	t.Logf("without the user's mapping: %s", strings.TrimSpace(out))
	s.requireState(t, name, "shut off")
	requireNoFile(t, vs)

	hookLog := filepath.Join(s.home, "hook.log")
	conf := filepath.Join(s.home, ".config", "libvirt", "nvram-hook.conf")
	s.writeFile(t, conf, []byte(fmt.Sprintf("[templates]\nnvram = %s:%s\n\n[log]\ntarget = file:%s\nlevel = debug\n", s.in(code), s.in(vars), s.in(hookLog))), 0o644)

	s.mustVirsh(t, "start", "--paused", name)
	s.requireState(t, name, "paused")
	requireSameFile(t, vs, vars, "session varstore created at start")
	requireModeOwner(t, vs, 0o600, s.uid)
	log, _ := os.ReadFile(hookLog)
	var line string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, s.in(vs)) && strings.Contains(l, "created") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, `template_source="hook config"`) {
		t.Fatalf("the hook's log (%s) has no line saying it created %s from the hook config:\n%s", hookLog, vs, log)
	}
	t.Logf("hook log: %s", line)
	if pids := qemuPidsOf(name); len(pids) != 1 {
		t.Errorf("expected one QEMU for %s, found %v", name, pids)
	} else if uid := procUID(pids[0]); uid != s.uid {
		t.Errorf("the session QEMU pid %d runs as uid %d, want %d", pids[0], uid, s.uid)
	}
	s.mustVirsh(t, "resume", name)
	s.requireState(t, name, "running")
	s.mustVirsh(t, "destroy", name)
	s.requireState(t, name, "shut off")
	requireModeOwner(t, vs, 0o600, s.uid)
	s.mustVirsh(t, "undefine", "--nvram", name)
	requireNoFile(t, vs)
}

func qemuPidsOf(name string) []int {
	var out []int
	for _, pid := range ourQemuPids() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(b), "guest="+name+",") || strings.Contains(string(b), "guest="+name+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

func procUID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[2]) // effective
			return n
		}
	}
	return -1
}
