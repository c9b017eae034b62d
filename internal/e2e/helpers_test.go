//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guest is a minimal domain: TCG, q35, no disks, so UEFI guests just sit in
// the firmware. loader "" makes a BIOS guest; nvram "" lets libvirt fill in
// its default path at define time.
type guest struct {
	name   string
	loader string
	nvram  string
	// nvramXML replaces the <nvram> element made from nvram.
	nvramXML string
	// staticOwner: QEMU runs as libvirt-qemu and libvirt does not chown the
	// guest's files (<seclabel model='dac' relabel='no'>), as on shared
	// storage; the files must be right as created.
	staticOwner bool
	// aarch64: an aarch64 'virt' guest (cortex-a57 under TCG) instead of
	// x86_64 q35.
	aarch64 bool
	// secure: <loader secure='yes'> and SMM on (Secure Boot firmware).
	secure bool
	// uid, gid: the QEMU user of the host it is defined on (staticOwner).
	uid, gid int
	// machine replaces q35 (x86_64).
	machine string
	// arch: "riscv64" or "loongarch64" for a 'virt' guest of that
	// architecture (Debian 13 and sid firmware).
	arch string
}

func (g guest) xml() string {
	var fw string
	features := "<acpi/>"
	if g.loader != "" {
		var secure string
		if g.secure {
			secure = " secure='yes'"
			features += "<smm state='on'/>"
		}
		fw = fmt.Sprintf("\n    <loader readonly='yes'%s type='pflash'>%s</loader>", secure, g.loader)
		if g.nvramXML != "" {
			fw += "\n    " + g.nvramXML
		} else if g.nvram != "" {
			fw += fmt.Sprintf("\n    <nvram>%s</nvram>", g.nvram)
		}
	}
	var sec string
	if g.staticOwner {
		uid, gid := g.uid, g.gid
		if uid == 0 {
			uid, gid = env.qemuUID, env.qemuGID
		}
		sec = fmt.Sprintf("\n  <seclabel type='static' model='dac' relabel='no'><label>+%d:+%d</label></seclabel>", uid, gid)
	}
	if g.arch != "" {
		return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='%s' machine='virt'>hvm</type>%s
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-%s</emulator>
    <memballoon model='none'/>
  </devices>%s
</domain>
`, xmlEscape(g.name), map[string]int{"riscv64": 256, "loongarch64": 1024}[g.arch], g.arch, fw, g.arch, sec)
	}
	if g.aarch64 {
		return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='aarch64' machine='virt'>hvm</type>%s
  </os>
  <cpu mode='custom' match='exact'><model>cortex-a57</model></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-aarch64</emulator>
    <memballoon model='none'/>
  </devices>%s
</domain>
`, xmlEscape(g.name), fw, sec)
	}
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='%s'>hvm</type>%s
  </os>
  <features>%s</features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>%s
</domain>
`, xmlEscape(g.name), firstOf(g.machine, "q35"), fw, features, sec)
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// defineGuest defines g on h and registers its removal from both hosts,
// together with every file the suite may have made for it.
func defineGuest(t *testing.T, h *host, g guest) {
	t.Helper()
	if g.uid == 0 {
		g.uid, g.gid = h.qemuUID, h.qemuGID
	}
	defineXML(t, h, g.name, g.xml())
}

func removeGuest(t *testing.T, name string) {
	for i := len(env.all) - 1; i >= 0; i-- {
		h := env.all[i]
		virshRaw(h, "destroy", name)
		virshRaw(h, "undefine", "--nvram", name)
		for _, p := range []string{
			h.varstore(name),
			filepath.Join(h.qemuLogDir, name+".log"),
		} {
			removeIfExists(p)
		}
	}
	for _, p := range []string{
		filepath.Join(env.altNvram, name+"_VARS.fd"),
		filepath.Join(env.shared, name+"_VARS.fd"),
		savePath(name),
	} {
		removeIfExists(p)
	}
}

// varstore is libvirt's default varstore of name on h, as the test process
// reads it; varstorePath the same as h's libvirt names it.
func (h *host) varstore(name string) string { return filepath.Join(h.nvramDir, name+"_VARS.fd") }

func (h *host) varstorePath(name string) string {
	return filepath.Join(systemNvramDir, name+"_VARS.fd")
}

func savePath(name string) string { return filepath.Join(env.saveDir, name+".save") }

// virsh runs virsh against h and fails the test on error.
func virsh(t *testing.T, h *host, args ...string) string {
	t.Helper()
	out, err := virshRaw(h, args...)
	if err != nil {
		t.Fatalf("host %s: virsh %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
	return out
}

// virshFails runs virsh against h, expects it to fail and returns its output.
func virshFails(t *testing.T, h *host, args ...string) string {
	t.Helper()
	out, err := virshRaw(h, args...)
	if err == nil {
		t.Fatalf("host %s: virsh %s succeeded, expected a failure\n%s", h.name, strings.Join(args, " "), out)
	}
	return out
}

// requireState waits up to 10 s for the state libvirt reports.
func requireState(t *testing.T, h *host, name, want string) {
	t.Helper()
	var got string
	for i := 0; i < 50; i++ {
		out, err := virshRaw(h, "domstate", name)
		got = strings.TrimSpace(out)
		if err == nil && got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("host %s: virsh domstate %s = %q, want %q", h.name, name, got, want)
}

// domNvram is the part of `virsh dumpxml` the suite looks at.
type domNvram struct {
	Loader struct {
		Path     string `xml:",chardata"`
		Type     string `xml:"type,attr"`
		ReadOnly string `xml:"readonly,attr"`
	} `xml:"os>loader"`
	Nvram *struct {
		Path     string `xml:",chardata"`
		Template string `xml:"template,attr"`
		Source   struct {
			File string `xml:"file,attr"`
		} `xml:"source"`
	} `xml:"os>nvram"`
}

func parseDom(t *testing.T, x string) domNvram {
	t.Helper()
	var d domNvram
	if err := xml.Unmarshal([]byte(x), &d); err != nil {
		t.Fatalf("parse domain XML: %v\n%s", err, x)
	}
	return d
}

// nvramOf returns the varstore path and template libvirt shows for name.
func nvramOf(t *testing.T, h *host, name string, extra ...string) (path, template string) {
	t.Helper()
	d := parseDom(t, virsh(t, h, append([]string{"dumpxml", name}, extra...)...))
	if d.Nvram == nil {
		return "", ""
	}
	path = strings.TrimSpace(d.Nvram.Path)
	if path == "" {
		path = d.Nvram.Source.File
	}
	return path, d.Nvram.Template
}

// hookOff removes the hook entry from h and reloads the daemon, hookOn puts
// it back. libvirt rescans hooks on SIGHUP (and scans qemu.d on each call
// once it found a hook at start-up).
func hookOff(t *testing.T, h *host) {
	t.Helper()
	if err := os.Remove(h.hookEntry); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !fileExists(h.hookEntry) {
			hookOn(t, h)
		}
	})
	reload(t, h)
}

func hookOn(t *testing.T, h *host) {
	t.Helper()
	if err := os.Symlink(env.hookBin, h.hookEntry); err != nil {
		t.Fatal(err)
	}
	reload(t, h)
}

func reload(t *testing.T, h *host) {
	t.Helper()
	if err := syscall.Kill(h.pid, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP libvirtd %s pid %d: %v", h.name, h.pid, err)
	}
	time.Sleep(time.Second)
	virsh(t, h, "version")
}

// logMark/logSince read what the hook logged on h after a point.
func (h *host) logMark() int64 { return fileSize(h.hookLog) }

func (h *host) logSince(mark int64) string { return readFrom(h.hookLog, mark) }

// qemuLog is libvirt's per-guest log (taint messages land there).
func (h *host) qemuLog(name string) string { return filepath.Join(h.qemuLogDir, name+".log") }

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFrom(p string, off int64) string {
	b, err := os.ReadFile(p)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// requireLogMentions checks that the hook's log on h since mark has a line
// containing all of words.
func requireLogMentions(t *testing.T, h *host, mark int64, words ...string) string {
	t.Helper()
	log := h.logSince(mark)
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			return line
		}
	}
	t.Fatalf("host %s: no line of the hook's log mentions %q; the log since the operation:\n%s", h.name, words, log)
	return ""
}

func readBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read varstore: %v", err)
	}
	return b
}

// requireSameBytes compares a file with expected contents and reports the
// first difference.
func requireSameBytes(t *testing.T, path string, want []byte, what string) {
	t.Helper()
	got := readBytes(t, path)
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: %s differs from %s: %d bytes vs %d, first difference at offset %#x", what, path, "the expected contents", len(got), len(want), i)
}

func requireSameFile(t *testing.T, path, wantPath, what string) {
	t.Helper()
	want, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	got := readBytes(t, path)
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %s is not byte for byte %s: %d bytes vs %d, first difference at offset %#x", what, path, wantPath, len(got), len(want), i)
	}
}

func requireNoFile(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s exists, expected no file there", p)
	}
}

// requireModeOwner checks permission bits and owning user.
func requireModeOwner(t *testing.T, p string, mode os.FileMode, uid int) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != mode || int(sys.Uid) != uid {
		want := strconv.Itoa(uid)
		if u, err := user.LookupId(want); err == nil {
			want += " (" + u.Username + ")"
		}
		t.Fatalf("%s: mode %#o uid %d, want mode %#o uid %s", p, st.Mode().Perm(), sys.Uid, mode, want)
	}
	t.Logf("%s: mode %#o owner %d:%d", p, st.Mode().Perm(), sys.Uid, sys.Gid)
}

// migrate live-migrates name from A to B over loopback.
func migrate(t *testing.T, name string, flags ...string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{"migrate", "--live"}, flags...)
	args = append(args, name, env.b.uri, "--migrateuri", fmt.Sprintf("tcp://127.0.0.1:%d", port))
	t0 := time.Now()
	virsh(t, env.a, args...)
	t.Logf("virsh %s took %s", strings.Join(args, " "), time.Since(t0).Round(time.Millisecond))
}

// descriptorTemplate finds the varstore template QEMU's firmware
// descriptors give for loader, the way libvirt does: /etc/qemu/firmware
// overrides /usr/share/qemu/firmware by file name, sorted by name, first
// match wins.
func descriptorTemplate(t *testing.T, h *host, loader string) string {
	t.Helper()
	if tmpl := descriptorTemplateIn(h, loader); tmpl != "" {
		return tmpl
	}
	t.Fatalf("no firmware descriptor names %s", loader)
	return ""
}

// descriptorTemplateIn is descriptorTemplate's answer, "" when no
// descriptor names loader.
func descriptorTemplateIn(h *host, loader string) string {
	files := map[string]string{}
	for _, dir := range []string{h.local("/usr/share/qemu/firmware"), h.local("/etc/qemu/firmware")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".json") {
				files[e.Name()] = filepath.Join(dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(files[n])
		if err != nil || len(b) == 0 {
			continue
		}
		var d struct {
			Mapping struct {
				Device     string `json:"device"`
				Executable struct {
					Filename string `json:"filename"`
				} `json:"executable"`
				NvramTemplate struct {
					Filename string `json:"filename"`
				} `json:"nvram-template"`
			} `json:"mapping"`
		}
		if json.Unmarshal(b, &d) != nil {
			continue
		}
		if d.Mapping.Device == "flash" && d.Mapping.Executable.Filename == loader && d.Mapping.NvramTemplate.Filename != "" {
			return d.Mapping.NvramTemplate.Filename
		}
	}
	return ""
}

// logLevelRe finds the level of a hook log line in the usual spellings
// (level=info, [INFO], INFO:, " info ").
var logLevelRe = regexp.MustCompile(`(?i)(?:level=|\[|\b)(debug|info|warning|warn|error|fatal)\b`)

func logLevel(line string) string {
	m := logLevelRe.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1])
}

// runHook runs the installed hook binary directly, as libvirt would, with
// host A's config.
func runHook(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	// By the path libvirt runs it by (qemu.d/50-nvram, a link to the
	// binary): the hook tells libvirt's calls from a person's by its path.
	cmd := exec.Command(env.a.hookEntry, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIBVIRT_NVRAM_HOOK_CONFIG=" + env.a.hookConf}
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			t.Fatalf("run %s: %v", env.hookBin, err)
		}
	}
	return o.String(), e.String(), code
}

// defineFailingWithoutHook defines g, checks libvirt filled in its default varstore
// path with no file there, and proves that without our hook a start fails
// with libvirt's own missing-template error: the scenario means something.
// It returns the varstore path, hook back on.
func defineFailingWithoutHook(t *testing.T, a *host, g guest) string {
	t.Helper()
	defineGuest(t, a, g)
	vs, _ := nvramOf(t, a, g.name, "--inactive")
	if want := a.varstorePath(g.name); vs != want {
		t.Fatalf("libvirt filled <nvram>%s</nvram>, expected %s", vs, want)
	}
	requireNoFile(t, a.local(vs))

	hookOff(t, a)
	out := virshFails(t, a, "start", g.name)
	// 9.0 and 11.3 name the loader, 12.8 the varstore.
	named := g.loader
	if a.gen == "12.8" {
		named = vs
	}
	if !strings.Contains(out, "unable to find any master var store for loader: "+named) {
		t.Fatalf("without the hook, start failed but not with libvirt %s's missing-template error naming %s:\n%s", a.gen, named, out)
	}
	requireState(t, a, g.name, "shut off")
	requireNoFile(t, a.local(vs))
	t.Logf("without the hook: %s", strings.TrimSpace(out))
	hookOn(t, a)
	return vs
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
