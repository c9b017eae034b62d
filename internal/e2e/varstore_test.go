//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// varstoreDir is where libvirt 12.1+ keeps uefi-vars <varstore> JSON files.
const varstoreDir = "/var/lib/libvirt/qemu/varstore"

// minimalVarstore is the smallest store QEMU's uefi-vars device loads.
const minimalVarstore = `{"version": 2, "variables": []}` + "\n"

// A store with one non-volatile variable (attr 7: NV, BS, RT), to tell a
// file QEMU loaded from a copy of the empty template.
const markedVarstore = `{"version": 2, "variables": [{"guid": "5e2e0000-1111-4222-8333-444455556666", "name": "E2eNvramHookMarker", "attr": 7, "data": "6b656570206d65"}]}` + "\n"

// 28 (issue #12 item 1). A uefi-vars guest (libvirt 12.1+): a rom loader at
// a custom path with <varstore/>, its JSON template mapped in the hook
// config (varstore = ROM:TEMPLATE). Without the hook libvirt cannot start
// it; with it the JSON file appears from the template, libvirt accepts it
// and QEMU's uefi-vars device holds it; an existing file is used as it is;
// explain and check --audit show the varstore.
func testUEFIVarsVarstore(t *testing.T, h *host) {
	caps := virsh(t, h, "domcapabilities", "--virttype", "qemu", "--arch", "x86_64", "--machine", "q35")
	capsVarstore := strings.Join(regexp.MustCompile(`<varstore[^>]*/>|<varstore[^>]*>(?s:.*?</varstore>)`).FindAllString(caps, -1), " ")
	t.Logf("libvirt %s domcapabilities (qemu, x86_64, q35): %s", h.gen, capsVarstore)
	recordTiming(fmt.Sprintf("28 libvirt %s domcapabilities (qemu, x86_64, q35) says %s, and starts the guest below", h.gen, capsVarstore), 0)

	// The rom: a copy of sid's unified OVMF.fd (code and its own flash
	// variables in one image, which OVMF runs from ROM as -bios too);
	// Debian builds no OVMF with QEMU_PV_VARS, so the firmware itself never
	// talks to the uefi-vars device: what the device does with the file is
	// QEMU's own (it loads it at realize and writes it back at every
	// reset). Mapped to a JSON template in the hook config only.
	dir := filepath.Join(env.work, "fw", h.gen)
	rom := filepath.Join(dir, "UEFIVARS_ROM.fd")
	tmpl := filepath.Join(dir, "UEFIVARS_VARS.json")
	if !fileExists(rom) {
		if err := copyFile(h.local("/usr/share/ovmf/OVMF.fd"), rom, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tmpl, []byte(minimalVarstore), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := env.hookConfig(h)
	conf = strings.Replace(conf, "[templates]\n", "[templates]\nvarstore = "+rom+":"+tmpl+"\n", 1)
	conf = regexp.MustCompile(`(?m)^(allowed_dirs = .*)$`).ReplaceAllString(conf, "${1}:"+varstoreDir)
	if err := os.WriteFile(h.hookConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(h.hookConf, []byte(env.hookConfig(h)), 0o644) })
	if out, errOut, code := hookCLI(t, h, "check"); !strings.Contains(out, rom) {
		t.Fatalf("check with the varstore pair: exit %d\n%s%s", code, out, errOut)
	}

	name := h.guest("s28-uefivars")
	lvs := filepath.Join(varstoreDir, name+".json")
	vs := h.local(lvs)
	t.Cleanup(func() { removeIfExists(vs) })
	defineXML(t, h, name, uefiVarsGuestXML(name, rom))
	inactive := virsh(t, h, "dumpxml", "--inactive", name)
	v := varstoreOf(t, inactive)
	t.Logf("libvirt %s defined: %s %s", h.gen, strings.TrimSpace(regexp.MustCompile(`<loader[^>]*>[^<]*</loader>`).FindString(inactive)), strings.TrimSpace(regexp.MustCompile(`<varstore[^>]*/>`).FindString(inactive)))
	if v.Path != lvs || v.Template != "" {
		t.Fatalf("libvirt %s defined <varstore path=%q template=%q>, want path %s and no template", h.gen, v.Path, v.Template, lvs)
	}
	if st, err := os.Stat(h.local(varstoreDir)); err != nil {
		t.Logf("%s does not exist yet (%v)", varstoreDir, err)
	} else {
		t.Logf("%s exists: %v", varstoreDir, st.Mode())
	}
	requireNoFile(t, vs)

	// Without the hook: libvirt's own error, naming the JSON path.
	hookOff(t, h)
	out := virshFails(t, h, "start", name)
	t.Logf("without the hook: %s", strings.TrimSpace(out))
	if want := "unable to find any master var store for loader: " + lvs; !strings.Contains(out, want) {
		t.Fatalf("without the hook, start failed but not with %q:\n%s", want, out)
	}
	requireState(t, h, name, "shut off")
	requireNoFile(t, vs)
	hookOn(t, h)

	// With the hook.
	mark := h.logMark()
	t0 := time.Now()
	out, err := virshRaw(h, "start", "--paused", name)
	took := time.Since(t0)
	t.Logf("start --paused with the hook: %v %s (%s)\nhook log:\n%s", err, strings.TrimSpace(out), took.Round(time.Millisecond), strings.TrimSpace(h.logSince(mark)))
	if err != nil {
		t.Fatalf("libvirt %s: the start with the hook failed:\n%s\nQEMU log:\n%s", h.gen, out, tailFile(h.qemuLog(name), 2000))
	}
	requireState(t, h, name, "paused")
	t.Logf("hook log: %s", requireLogMentions(t, h, mark, lvs, "action=created", "template="+tmpl, `template_source="hook config"`, fmt.Sprintf("bytes=%d", len(minimalVarstore))))
	requireModeOwner(t, vs, 0o600, h.qemuUID)
	pid := requireHeldOpen(t, name, lvs)
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		var fw []string
		args := strings.Split(string(cmdline), "\x00")
		for i, a := range args {
			if (a == "-bios" || a == "-device" || a == "-drive" || a == "-blockdev") && i+1 < len(args) &&
				(strings.Contains(args[i+1], rom) || strings.Contains(args[i+1], "uefi-vars") || strings.Contains(args[i+1], lvs)) {
				fw = append(fw, a+" "+args[i+1])
			}
		}
		t.Logf("QEMU pid %d runs with: %s", pid, strings.Join(fw, " "))
		recordTiming(fmt.Sprintf("28 libvirt %s gives QEMU: %s", h.gen, strings.Join(fw, " ")), 0)
	}
	atPaused := fileState(t, vs)
	t.Logf("paused (QEMU pid %d): %s", pid, atPaused)
	// QEMU has rewritten the file already (the device loads it at realize
	// and saves it at the machine's first reset, before any guest code).
	if bytes.Equal(readBytes(t, vs), []byte(minimalVarstore)) {
		t.Errorf("QEMU left the template's bytes as they were: %s", atPaused)
	}
	requireStore(t, vs, qemuAuthVars...)
	virsh(t, h, "resume", name)
	requireState(t, h, name, "running")
	time.Sleep(3 * time.Second) // the firmware runs
	atRunning := fileState(t, vs)
	t.Logf("running 3 s: %s", atRunning)
	requireStore(t, vs, qemuAuthVars...)
	virsh(t, h, "destroy", name)
	requireState(t, h, name, "shut off")
	atStopped := fileState(t, vs)
	t.Logf("stopped: %s", atStopped)
	requireStore(t, vs, qemuAuthVars...)
	requireModeOwner(t, vs, 0o600, h.qemuUID)
	recordTiming(fmt.Sprintf("28 libvirt %s uefi-vars: start --paused with the hook creating %s in %s", h.gen, filepath.Base(lvs), took.Round(time.Millisecond)), 0)

	// The hook's file as it is before QEMU opens it: prepare begin, run as
	// libvirt runs it, with libvirt's XML of the guest.
	t.Run("hook_creates_template_bytes", func(t *testing.T) {
		if err := os.Remove(vs); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := hookCLIIn(t, h, virsh(t, h, "dumpxml", name), name, "prepare", "begin", "-")
		if code != 0 || stdout != "" {
			t.Fatalf("hook %s prepare begin -: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
		requireSameFile(t, vs, tmpl, "the varstore the hook created")
		requireModeOwner(t, vs, 0o600, h.qemuUID)
		before := fileState(t, vs)
		virsh(t, h, "start", "--paused", name)
		requireState(t, h, name, "paused")
		requireHeldOpen(t, name, lvs)
		after := fileState(t, vs)
		t.Logf("created by the hook: %s\nafter QEMU started on it: %s", before, after)
		if inode(before) != inode(after) {
			t.Errorf("QEMU's file is not the one the hook created: %s -> %s", before, after)
		}
		requireStore(t, vs, qemuAuthVars...)
		virsh(t, h, "destroy", name)
		requireState(t, h, name, "shut off")
	})

	// A store that exists is used as it is: the hook leaves its bytes
	// alone, and QEMU loads that file, not a copy of the template.
	t.Run("existing_store_used_as_is", func(t *testing.T) {
		if err := os.WriteFile(vs, []byte(markedVarstore), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(vs, h.qemuUID, h.qemuGID); err != nil {
			t.Fatal(err)
		}
		before := fileState(t, vs)
		// The hook alone first: nothing changes, not even the times.
		stdout, stderr, code := hookCLIIn(t, h, virsh(t, h, "dumpxml", name), name, "prepare", "begin", "-")
		if code != 0 || stdout != "" {
			t.Fatalf("hook %s prepare begin -: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
		if now := fileState(t, vs); now != before {
			t.Fatalf("the hook changed an existing store:\nbefore: %s\nafter:  %s", before, now)
		}
		mark := h.logMark()
		virsh(t, h, "start", "--paused", name)
		requireState(t, h, name, "paused")
		if log := h.logSince(mark); strings.Contains(log, "action=created") {
			t.Errorf("the hook created a varstore over an existing one:\n%s", log)
		}
		requireHeldOpen(t, name, lvs)
		after := fileState(t, vs)
		t.Logf("existing store before start: %s\nafter QEMU started on it: %s", before, after)
		if inode(before) != inode(after) {
			t.Errorf("the existing store was replaced by another file: %s -> %s", before, after)
		}
		// QEMU loaded this file: its variable is there, beside QEMU's own.
		requireStore(t, vs, append([]string{"E2eNvramHookMarker"}, qemuAuthVars...)...)
		virsh(t, h, "destroy", name)
		requireState(t, h, name, "shut off")
		t.Logf("after stop: %s\n%s", fileState(t, vs), readBytes(t, vs))
	})

	// explain and check --audit show the varstore.
	t.Run("explain_and_audit", func(t *testing.T) {
		stdout, stderr, code := hookCLIIn(t, h, virsh(t, h, "dumpxml", "--inactive", name), "explain")
		t.Logf("explain (varstore exists): exit %d\n%s%s", code, stdout, stderr)
		if code != 0 || !strings.Contains(stdout, "varstore: "+lvs+" (uefi-vars JSON)") || !strings.Contains(stdout, tmpl) {
			t.Errorf("explain: exit %d, want 0, the varstore %s and the template %s", code, lvs, tmpl)
		}
		// libvirt itself knows no JSON template for this rom (no
		// descriptor has one): a reset fails, hook or not, and the store
		// is left as it was; check --audit says so and names pin.
		golden := readBytes(t, vs)
		out := virshFails(t, h, "start", "--paused", "--reset-nvram", name)
		if !strings.Contains(out, "unable to find any master var store for loader") {
			t.Fatalf("libvirt %s: start --reset-nvram of the unpinned <varstore> failed, but not for the missing template:\n%s", h.gen, out)
		}
		t.Logf("libvirt %s, start --reset-nvram before pin: %s", h.gen, strings.TrimSpace(out))
		requireState(t, h, name, "shut off")
		requireSameBytes(t, vs, golden, "the store after the refused --reset-nvram")
		requireAudit(t, h, name, "PROBLEM", lvs, "exists", tmpl, "--reset-nvram", "pin "+name)
		if err := os.Remove(vs); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code = hookCLIIn(t, h, virsh(t, h, "dumpxml", "--inactive", name), "explain")
		t.Logf("explain (varstore missing): exit %d\n%s%s", code, stdout, stderr)
		if code != 0 || !strings.Contains(stdout, "create "+lvs+" from "+tmpl+" (hook config") {
			t.Errorf("explain of the missing store: exit %d, want 0 and create %s from %s", code, lvs, tmpl)
		}
		requireAudit(t, h, name, "PROBLEM", lvs, "missing", tmpl, "--reset-nvram")
	})

	// pin writes the template into <varstore>; then libvirt alone (the
	// hook removed) creates the store, and --reset-nvram resets it.
	t.Run("pin_then_libvirt_alone", func(t *testing.T) {
		before := virsh(t, h, "dumpxml", "--inactive", "--security-info", name)
		stdout, stderr, code := hookCLI(t, h, "pin", name)
		t.Logf("pin %s: exit %d\n%s%s", name, code, stdout, stderr)
		want := fmt.Sprintf("pinned   %s: added template='%s' to <varstore> (hook config /etc/libvirt/nvram-hook.conf:", name, tmpl)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("pin: exit %d, want 0 and %q", code, want)
		}
		after := virsh(t, h, "dumpxml", "--inactive", "--security-info", name)
		t.Logf("libvirt %s stores, after pin: %s (before: %s)", h.gen, varstoreElemRe.FindString(after), varstoreElemRe.FindString(before))
		if v := varstoreOf(t, after); v.Template != tmpl || v.Path != lvs {
			t.Errorf("after pin, libvirt stores <varstore template=%q path=%q>, want template %s, path %s", v.Template, v.Path, tmpl, lvs)
		}
		if a, b := varstoreElemRe.ReplaceAllString(before, "<VARSTORE/>"), varstoreElemRe.ReplaceAllString(after, "<VARSTORE/>"); a != b {
			t.Errorf("pin changed more than <varstore>:\nbefore:\n%s\nafter:\n%s", before, after)
		}

		hookOff(t, h)
		removeIfExists(vs)
		mark := h.logMark()
		virsh(t, h, "start", "--paused", name)
		requireState(t, h, name, "paused")
		requireHeldOpen(t, name, lvs)
		t.Logf("created by libvirt %s alone, QEMU started on it: %s", h.gen, fileState(t, vs))
		requireModeOwner(t, vs, 0o600, h.qemuUID)
		requireStore(t, vs, qemuAuthVars...)
		virsh(t, h, "destroy", name)
		requireState(t, h, name, "shut off")

		if err := os.WriteFile(vs, []byte(markedVarstore), 0o600); err != nil {
			t.Fatal(err)
		}
		virsh(t, h, "start", "--paused", "--reset-nvram", name)
		requireState(t, h, name, "paused")
		t.Logf("after start --paused --reset-nvram (libvirt alone): %s", fileState(t, vs))
		requireStore(t, vs, qemuAuthVars...)
		virsh(t, h, "destroy", name)
		requireState(t, h, name, "shut off")
		if log := strings.TrimSpace(h.logSince(mark)); log != "" {
			t.Errorf("the hook was removed, yet it logged:\n%s", log)
		}
		hookOn(t, h)
		requireAudit(t, h, name, "ok", lvs, "exists", tmpl, "domain XML")
	})
}

var varstoreElemRe = regexp.MustCompile(`<varstore\b[^>]*/>`)

func uefiVarsGuestXML(name, rom string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader type='rom'>%s</loader>
    <varstore/>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
`, xmlEscape(name), rom)
}

type varstoreElem struct {
	Path     string `xml:"path,attr"`
	Template string `xml:"template,attr"`
}

func varstoreOf(t *testing.T, domXML string) varstoreElem {
	t.Helper()
	var d struct {
		V *varstoreElem `xml:"os>varstore"`
	}
	if err := xml.Unmarshal([]byte(domXML), &d); err != nil {
		t.Fatalf("parse domain XML: %v\n%s", err, domXML)
	}
	if d.V == nil {
		t.Fatalf("no <varstore> in the domain XML:\n%s", domXML)
	}
	return *d.V
}

// qemuAuthVars are the non-volatile variables QEMU's uefi-vars device
// itself sets at every reset (uefi_vars_auth_init), before any firmware
// runs, and writes into the JSON file with the rest.
var qemuAuthVars = []string{"CustomMode", "VendorKeysNv"}

// requireStore checks that p is a uefi-vars JSON store (version 2) holding
// exactly the variables named (in any order).
func requireStore(t *testing.T, p string, names ...string) {
	t.Helper()
	var s struct {
		Version   *int `json:"version"`
		Variables []struct {
			Name string `json:"name"`
		} `json:"variables"`
	}
	b := readBytes(t, p)
	if err := json.Unmarshal(b, &s); err != nil || s.Version == nil || *s.Version != 2 {
		t.Fatalf("%s is not a version 2 uefi-vars store (%v):\n%s", p, err, b)
	}
	var got []string
	for _, v := range s.Variables {
		got = append(got, v.Name)
	}
	want := append([]string(nil), names...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s holds the variables %q, want %q:\n%s", p, got, want, b)
	}
}

// requireHeldOpen finds the one QEMU of name and requires it to hold
// the file lvs open; it returns the pid.
func requireHeldOpen(t *testing.T, name, lvs string) int {
	t.Helper()
	pids := qemuPidsOf(name)
	if len(pids) != 1 {
		t.Fatalf("expected one QEMU for %s, found %v", name, pids)
	}
	if links := procOpen(pids[0]); !hasSuffixIn(links, lvs) {
		t.Fatalf("QEMU pid %d of %s does not hold %s open; its open files: %s", pids[0], name, lvs, strings.Join(links, " "))
	}
	return pids[0]
}

// fileState describes p: inode, mode, owner, size, mtime, ctime, contents.
func fileState(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	b := readBytes(t, p)
	return fmt.Sprintf("inode=%d mode=%#o owner=%d:%d size=%d mtime=%d.%09d ctime=%d.%09d content=%q",
		s.Ino, st.Mode().Perm(), s.Uid, s.Gid, st.Size(), s.Mtim.Sec, s.Mtim.Nsec, s.Ctim.Sec, s.Ctim.Nsec, b)
}

func inode(state string) string {
	return strings.Fields(state)[0]
}

func tailFile(p string, n int) string {
	b, _ := os.ReadFile(p)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
