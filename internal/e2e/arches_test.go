//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// 23, 24 (issue #16). riscv64 and loongarch64 'virt' guests under TCG on
// the Debian 13 and sid firmware: on a copy of the distribution's CODE file
// at a custom path (mapped in the hook config: libvirt alone fails, with the
// hook the varstore is the template, sparse where the template is all
// zeros, and QEMU has it open), and on the distribution's own path (the
// varstore is the descriptor's template, whoever made it).

var archFirmware = map[string][2]string{
	"riscv64":     {"/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd", "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd"},
	"loongarch64": {"/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd", "/usr/share/qemu-efi-loongarch64/QEMU_VARS.fd"},
}

// archCopies are the custom-path copies of a root host's riscv64 and
// loongarch64 firmware (work dir), mapped in every hook config.
func archCopies(h *host, arch string) (code, vars string) {
	dir := filepath.Join(env.work, "fw", h.gen)
	return filepath.Join(dir, arch+"_CODE.fd"), filepath.Join(dir, arch+"_VARS.fd")
}

func testRiscv64(t *testing.T, h *host)     { testOtherArch(t, h, "riscv64") }
func testLoongarch64(t *testing.T, h *host) { testOtherArch(t, h, "loongarch64") }

func testOtherArch(t *testing.T, h *host, arch string) {
	fw := archFirmware[arch]
	t.Run("custom_path", func(t *testing.T) {
		code, vars := archCopies(h, arch)
		g := guest{name: h.guest("s23-" + arch + "-custom"), loader: code, arch: arch}
		lvs := defineFailingWithoutHook(t, h, g)
		archStart(t, h, g, lvs, vars, "hook config")
	})
	t.Run("distribution_path", func(t *testing.T) {
		g := guest{name: h.guest("s23-" + arch + "-dist"), loader: fw[0], arch: arch}
		defineGuest(t, h, g)
		d := parseDom(t, virsh(t, h, "dumpxml", "--inactive", g.name))
		loader := strings.TrimSpace(d.Loader.Path)
		lvs, tmpl := nvramOf(t, h, g.name, "--inactive")
		t.Logf("libvirt %s defined loader %s, <nvram template=%q>%s", h.gen, loader, tmpl, lvs)
		if want := descriptorTemplate(t, h, loader); tmpl != want {
			t.Errorf("libvirt %s defined template %q for %s, want the descriptor's %s", h.gen, tmpl, loader, want)
		}
		requireNoFile(t, h.local(lvs))
		archStart(t, h, g, lvs, h.local(fw[1]), "")
	})
}

// archStart starts g paused: the varstore is the template byte for byte,
// sparse when the template is all zeros, and QEMU holds it open; then the
// firmware runs.
func archStart(t *testing.T, h *host, g guest, lvs, tmplPath, source string) {
	t.Helper()
	vs := h.local(lvs)
	tmpl := readBytes(t, tmplPath)
	mark := h.logMark()
	t0 := time.Now()
	virsh(t, h, "start", "--paused", g.name)
	took := time.Since(t0)
	requireState(t, h, g.name, "paused")
	requireSameBytes(t, vs, tmpl, g.arch+" varstore at start")
	requireModeOwner(t, vs, 0o600, h.qemuUID)
	alloc := allocated(t, vs)
	// Sparse: no more than cp --sparse=always of the template allocates
	// (plus 256 KiB of slack for block-size rounding).
	ref := filepath.Join(env.work, "sparse-ref-"+g.name)
	defer os.Remove(ref)
	if out, err := exec.Command("cp", "--sparse=always", tmplPath, ref).CombinedOutput(); err != nil {
		t.Fatalf("cp --sparse=always: %v: %s", err, out)
	}
	want := allocated(t, ref)
	if alloc > want+256<<10 {
		t.Errorf("%s allocates %d bytes, cp --sparse=always of the template %d: not sparse", vs, alloc, want)
	}
	log := h.logSince(mark)
	if source != "" {
		requireLogMentions(t, h, mark, lvs, "created", `template_source="`+source+`"`)
	}
	requireHeldOpen(t, g.name, lvs)
	msg := fmt.Sprintf("%s on libvirt %s (%s): virsh start --paused took %s; varstore %d bytes, %d allocated (cp --sparse=always: %d)",
		g.arch, h.gen, filepath.Base(g.loader), took.Round(time.Millisecond), len(tmpl), alloc, want)
	t.Log(msg)
	recordTiming(msg, 0)
	t.Logf("hook log:\n%s", strings.TrimSpace(log))
	virsh(t, h, "resume", g.name)
	requireState(t, h, g.name, "running")
	virsh(t, h, "destroy", g.name)
	requireState(t, h, g.name, "shut off")
}

// procOpen lists what pid's file descriptors point at.
func procOpen(pid int) []string {
	var out []string
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// hasSuffixIn: one of links ends in p (a process in a root host's
// namespace may show its path with or without the root in front).
func hasSuffixIn(links []string, p string) bool {
	for _, l := range links {
		if strings.HasSuffix(l, p) {
			return true
		}
	}
	return false
}
