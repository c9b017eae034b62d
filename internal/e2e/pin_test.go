//go:build e2e

package e2e

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// 27 (issue #12 item 3). `pin` writes the hook's template into a custom
// loader's inactive definition through libvirt, so that libvirt alone, the
// hook removed, creates the missing varstore and serves `virsh start
// --reset-nvram`, which no prepare hook can serve. Only <nvram> changes (a
// VNC password in the definition proves that pin reads and defines with
// --security-info); a running guest keeps its live definition; a transient
// guest is refused; on libvirts that keep format='qcow2' (11.3, 12.8) a
// qcow2 varstore whose template is raw is not pinned (libvirt never
// converts a template).
func testPinThenLibvirtAlone(t *testing.T, h *host) {
	name := h.guest("s27-pin")
	lvs := h.varstorePath(name)
	vs := h.local(lvs)
	const secret = "e2eS3crt" // libvirt allows VNC passwords of 8 characters at most
	defineXML(t, h, name, withVNC(guest{name: name, loader: h.customCode}.xml(), secret))
	requireNoFile(t, vs)
	if p, tm := nvramOf(t, h, name, "--inactive"); p != lvs || tm != "" {
		t.Fatalf("libvirt %s defined <nvram template=%q>%s</nvram>, want %s without a template", h.gen, tm, p, lvs)
	}

	// The hook makes the start work.
	mark := h.logMark()
	virsh(t, h, "start", "--paused", name)
	requireState(t, h, name, "paused")
	requireSameFile(t, vs, h.customVars, "varstore the hook created")
	t.Logf("hook log: %s", requireLogMentions(t, h, mark, lvs, "created"))
	virsh(t, h, "destroy", name)
	requireState(t, h, name, "shut off")

	// libvirt itself knows no template: a reset fails, hook or not, and the
	// varstore is left as it was.
	writeMarker(t, vs)
	golden := readBytes(t, vs)
	out := virshFails(t, h, "start", "--reset-nvram", name)
	if !strings.Contains(out, "unable to find any master var store for loader") {
		t.Fatalf("libvirt %s: start --reset-nvram before pin failed, but not for the missing template:\n%s", h.gen, out)
	}
	t.Logf("libvirt %s, start --reset-nvram before pin: %s", h.gen, strings.TrimSpace(out))
	requireState(t, h, name, "shut off")
	requireSameBytes(t, vs, golden, "varstore after the refused --reset-nvram")

	// check --audit flags it and names the way out.
	requireAudit(t, h, name, "PROBLEM", lvs, "exists", h.customVars, "--reset-nvram", "pin "+name)

	before := virsh(t, h, "dumpxml", "--inactive", "--security-info", name)
	if !strings.Contains(before, "passwd='"+secret+"'") {
		t.Fatalf("libvirt %s does not show the VNC password with --security-info:\n%s", h.gen, before)
	}
	// libvirt 10.10 and later read templateFormat=; pin writes it there.
	tf := ""
	if h.gen != "9.0" {
		tf = " templateFormat='raw'"
	}
	what := fmt.Sprintf("template='%s'%s to <nvram> (hook config %s:", h.customVars, tf, "/etc/libvirt/nvram-hook.conf")

	// --dry-run says what it would write and defines nothing.
	stdout, stderr, code := hookCLI(t, h, "pin", "--dry-run", name)
	t.Logf("pin --dry-run %s: exit %d\n%s%s", name, code, stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "dry-run  "+name+": would add "+what) {
		t.Fatalf("pin --dry-run: exit %d, want 0 and a line %q", code, "dry-run  "+name+": would add "+what)
	}
	if now := virsh(t, h, "dumpxml", "--inactive", "--security-info", name); now != before {
		t.Fatalf("pin --dry-run changed the definition:\nbefore:\n%s\nafter:\n%s", before, now)
	}

	t0 := time.Now()
	stdout, stderr, code = hookCLI(t, h, "pin", name)
	took := time.Since(t0)
	t.Logf("pin %s: exit %d in %s\n%s%s", name, code, took.Round(time.Millisecond), stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "pinned   "+name+": added "+what) {
		t.Fatalf("pin: exit %d, want 0 and a line %q", code, "pinned   "+name+": added "+what)
	}
	after := virsh(t, h, "dumpxml", "--inactive", "--security-info", name)
	nv := nvramAttrs(t, after)
	t.Logf("libvirt %s stores, after pin: %s (before: %s)", h.gen, nvramElem(after), nvramElem(before))
	if nv["template"] != h.customVars {
		t.Errorf("after pin, libvirt %s stores template=%q, want %q", h.gen, nv["template"], h.customVars)
	}
	if want := strings.Trim(strings.TrimPrefix(tf, " templateFormat="), "'"); nv["templateFormat"] != want {
		t.Errorf("after pin, libvirt %s stores templateFormat=%q, want %q", h.gen, nv["templateFormat"], want)
	}
	if strings.TrimSpace(nv[""]) != lvs {
		t.Errorf("after pin, libvirt %s stores the varstore path %q, want %q", h.gen, nv[""], lvs)
	}
	if a, b := nvramElemRe.ReplaceAllString(before, "<NVRAM/>"), nvramElemRe.ReplaceAllString(after, "<NVRAM/>"); a != b {
		t.Errorf("pin changed more than <nvram>:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	recordTiming(fmt.Sprintf("27 pin on libvirt %s: wrote %s in %s", h.gen, nvramElem(after), took.Round(time.Millisecond)), 0)
	// Once pinned, nothing more to pin.
	if stdout, _, code := hookCLI(t, h, "pin", name); code != 0 || !strings.Contains(stdout, "ok       "+name+": nothing to pin: the definition names its template already") {
		t.Errorf("pin of a pinned domain: exit %d\n%s", code, stdout)
	}

	// libvirt alone: the hook removed, the varstore missing.
	hookOff(t, h)
	if err := os.Remove(vs); err != nil {
		t.Fatal(err)
	}
	mark = h.logMark()
	startTook := startPausedOnTemplate(t, h, name, vs, "varstore libvirt created itself from the pinned template")

	writeMarker(t, vs)
	if bytes.Equal(readBytes(t, vs), readBytes(t, h.customVars)) {
		t.Fatal("the marker did not change the varstore")
	}
	resetTook := startPausedOnTemplate(t, h, name, vs, "varstore after --reset-nvram (libvirt alone)", "--reset-nvram")
	if log := strings.TrimSpace(h.logSince(mark)); log != "" {
		t.Errorf("the hook was removed, yet it logged:\n%s", log)
	}
	msg := fmt.Sprintf("27 libvirt %s alone, pinned: start --paused creating the varstore %s, start --paused --reset-nvram %s",
		h.gen, startTook.Round(time.Millisecond), resetTook.Round(time.Millisecond))
	t.Log(msg)
	recordTiming(msg, 0)
	requireAudit(t, h, name, "ok", lvs, "exists", h.customVars)
	hookOn(t, h)

	// A running guest: pin changes the inactive definition only.
	t.Run("running", func(t *testing.T) {
		name := h.guest("s27-running")
		defineXML(t, h, name, guest{name: name, loader: h.customCode}.xml())
		virsh(t, h, "start", name)
		requireState(t, h, name, "running")
		live := virsh(t, h, "dumpxml", "--security-info", name)
		stdout, stderr, code := hookCLI(t, h, "pin", name)
		t.Logf("pin %s (running): exit %d\n%s%s", name, code, stdout, stderr)
		if code != 0 || !strings.Contains(stdout, "pinned   "+name+": added template='"+h.customVars+"'") {
			t.Fatalf("pin of a running guest: exit %d\n%s", code, stdout)
		}
		if now := virsh(t, h, "dumpxml", "--security-info", name); now != live {
			t.Errorf("pin changed the live definition of the running guest:\nbefore:\n%s\nafter:\n%s", live, now)
		}
		if _, tm := nvramOf(t, h, name, "--inactive"); tm != h.customVars {
			t.Errorf("the running guest's inactive definition has template %q, want %q", tm, h.customVars)
		}
		requireState(t, h, name, "running")
		virsh(t, h, "destroy", name)
		if _, tm := nvramOf(t, h, name); tm != h.customVars {
			t.Errorf("stopped, the guest's definition has template %q, want %q", tm, h.customVars)
		}
	})

	// A transient guest: refused, with its reason.
	t.Run("transient_refused", func(t *testing.T) {
		name := h.guest("s27-transient")
		p := filepath.Join(env.work, "xml", name+".xml")
		if err := os.WriteFile(p, []byte(guest{name: name, loader: h.customCode}.xml()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeGuest(t, name) })
		virsh(t, h, "create", p)
		requireState(t, h, name, "running")
		live := virsh(t, h, "dumpxml", "--security-info", name)
		stdout, stderr, code := hookCLI(t, h, "pin", name)
		t.Logf("pin %s (transient): exit %d\n%s%s", name, code, stdout, stderr)
		if code != 1 || !strings.Contains(stdout, "REFUSED  "+name+": a transient domain has no inactive definition to pin") {
			t.Fatalf("pin of a transient guest: exit %d, want 1 and a REFUSED line\n%s", code, stdout)
		}
		if now := virsh(t, h, "dumpxml", "--security-info", name); now != live {
			t.Errorf("pin changed the transient guest:\nbefore:\n%s\nafter:\n%s", live, now)
		}
		if info := virsh(t, h, "dominfo", name); !strings.Contains(info, "Persistent:     no") {
			t.Errorf("the transient guest became persistent:\n%s", info)
		}
		virsh(t, h, "destroy", name)
	})

	// A qcow2 varstore whose only template is raw: libvirt never converts
	// a template (12.8 refuses every start of such a definition), so pin
	// refuses and defines nothing.
	if h.gen == "9.0" {
		t.Logf("libvirt 9.0 drops <nvram format='qcow2'> at define (it came in 9.2): no qcow2 varstore to pin there")
		return
	}
	t.Run("qcow2_raw_template_refused", func(t *testing.T) {
		name := h.guest("s27-qcow2")
		lvs := filepath.Join(systemNvramDir, name+"_VARS.qcow2")
		defineXML(t, h, name, guest{name: name, loader: h.customCode, nvramXML: fmt.Sprintf("<nvram format='qcow2'>%s</nvram>", lvs)}.xml())
		before := virsh(t, h, "dumpxml", "--inactive", "--security-info", name)
		if !nvramHasQcow2Format(before) {
			t.Fatalf("libvirt %s dropped <nvram format='qcow2'> at define:\n%s", h.gen, before)
		}
		stdout, stderr, code := hookCLI(t, h, "pin", name)
		t.Logf("pin %s (qcow2, raw template): exit %d\n%s%s", name, code, stdout, stderr)
		want := fmt.Sprintf("FAILED   %s: not pinned: template %s is raw, the varstore is qcow2, and libvirt never converts a template", name, h.customVars)
		if code != 1 || !strings.Contains(stdout, want) {
			t.Fatalf("pin of a qcow2 varstore with a raw template: exit %d, want 1 and %q", code, want)
		}
		if now := virsh(t, h, "dumpxml", "--inactive", "--security-info", name); now != before {
			t.Errorf("the refused pin changed the definition:\nbefore:\n%s\nafter:\n%s", before, now)
		}
	})
}

// defineXML defines domain XML text on h and registers its removal from
// both hosts (removeGuest).
func defineXML(t *testing.T, h *host, name, text string) {
	t.Helper()
	p := filepath.Join(env.work, "xml", name+".xml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeGuest(t, name) })
	virsh(t, h, "define", p)
}

// withVNC adds a VNC display with a password (a secret libvirt shows only
// with --security-info) to a guest's XML.
func withVNC(domXML, passwd string) string {
	return strings.Replace(domXML, "</devices>",
		fmt.Sprintf("  <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='%s'/>\n  </devices>", passwd), 1)
}

// nvramAttrs returns the attributes of the <nvram> element of domXML, and
// its text under "".
func nvramAttrs(t *testing.T, domXML string) map[string]string {
	t.Helper()
	var d struct {
		Nvram struct {
			Attrs []xml.Attr `xml:",any,attr"`
			Text  string     `xml:",chardata"`
		} `xml:"os>nvram"`
	}
	if err := xml.Unmarshal([]byte(domXML), &d); err != nil {
		t.Fatalf("parse domain XML: %v\n%s", err, domXML)
	}
	m := map[string]string{"": d.Nvram.Text}
	for _, a := range d.Nvram.Attrs {
		m[a.Name.Local] = a.Value
	}
	return m
}

// nvramElem is the <nvram> element of domXML as libvirt wrote it.
func nvramElem(domXML string) string {
	return strings.TrimSpace(nvramElemRe.FindString(domXML))
}

// hookCLI runs the hook binary as a person would on h's machine: on a root
// host inside the root and mount namespace of its libvirtd (where its
// virsh, config and firmware are); at most 3 minutes.
func hookCLI(t *testing.T, h *host, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return hookCLIIn(t, h, "", args...)
}

// hookCLIIn is hookCLI with stdin.
func hookCLIIn(t *testing.T, h *host, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(env.hookBin, args...)
	if h.root != "" {
		cmd = exec.Command("nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-m", "-r", "--", env.hookBin}, args...)...)
	}
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := waitTimeout(cmd, 3*time.Minute)
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String(), code
}

// requireAudit runs check --audit over h's definitions and requires name's
// line to have status and mention every word.
func requireAudit(t *testing.T, h *host, name, status string, words ...string) {
	t.Helper()
	out, errOut, code := hookCLI(t, h, "check", "--audit", "/etc/libvirt/qemu")
	l, ok := auditLines(out)[name]
	if !ok {
		t.Fatalf("check --audit (exit %d) does not list %s:\n%s%s", code, name, out, errOut)
	}
	t.Logf("check --audit on libvirt %s: %-8s %s: %s", h.gen, l.status, name, l.text)
	if l.status != status {
		t.Errorf("check --audit says %s for %s, want %s: %s", l.status, name, status, l.text)
	}
	for _, w := range words {
		if !strings.Contains(l.text, w) {
			t.Errorf("check --audit's line for %s does not mention %q: %s", name, w, l.text)
		}
	}
}

// startPausedOnTemplate starts name paused (with the extra virsh options),
// requires its varstore vs to be h's custom template byte for byte, 0600,
// owned by the qemu user, stops it again, and returns how long the start
// took.
func startPausedOnTemplate(t *testing.T, h *host, name, vs, what string, extra ...string) time.Duration {
	t.Helper()
	t0 := time.Now()
	virsh(t, h, append(append([]string{"start", "--paused"}, extra...), name)...)
	took := time.Since(t0)
	requireState(t, h, name, "paused")
	requireSameFile(t, vs, h.customVars, what)
	requireModeOwner(t, vs, 0o600, h.qemuUID)
	virsh(t, h, "destroy", name)
	requireState(t, h, name, "shut off")
	return took
}
