//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHook holds every scenario; they share the daemons TestMain started
// and run one after the other (2 cores, TCG guests). Add new scenarios here,
// not as new top-level tests: the environment is torn down when TestHook
// ends (also on a panic, through its cleanup).
func TestHook(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			env.keepWork = true
		}
		env.teardown()
	})
	// Per generation: the scenario list on each libvirt.
	perGen := []struct {
		name string
		run  func(t *testing.T, h *host)
	}{
		{"01_custom_loader_needs_the_hook", testCustomLoader},
		{"02_descriptor_loader_left_alone", testKnownLoader},
		{"03_existing_varstore_untouched", testChangedVarstoreSurvives},
		{"04_save_delete_restore", testSaveDeleteRestore},
		{"05_restore_xml_without_nvram", testRestoreXMLWithoutNvram},
		{"07_bios_guest_untouched", testBIOSGuest},
		{"08_no_template_fails_clearly", testNoTemplate},
		{"09_aarch64_sparse_varstore", testAarch64},
		{"11_template_size_guard", testSizeGuard},
		{"12_qcow2_varstore", testQcow2Varstore},
		{"13_session_daemon", testSession},
		{"14_check_audit", testAudit},
		{"23_riscv64_guest", testRiscv64},
		{"24_loongarch64_guest", testLoongarch64},
		{"25_qcow2_add_template_restore", testQcow2AddTemplate},
		{"26_deb_package_on_root", testDeb}, // 18 on 9.0
		{"27_pin_then_libvirt_alone", testPinThenLibvirtAlone},
		{"28_uefi_vars_json_varstore", testUEFIVarsVarstore},
		{"29_one_answer_snakeoil", testOneAnswerSnakeoil},
	}
	// Only on the machine's own libvirt (A, with B for migration): the
	// installer, the package and Debian 12's 2 MiB firmware.
	only90 := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"06_migrate_to_host_without_varstore", testMigrateToEmptyHost},
		{"10_builtin_distro_table", testBuiltinTable},
		{"15_foreign_hook_make_install", testForeignHookMakeInstall},
		{"16_filter_chain_after_foreign_hook", testFilterChain},
		{"17_make_uninstall", testUninstall},
		{"18_deb_package", func(t *testing.T) { testDeb(t, env.a) }},
		{"19_first_hook_make_install_reloads", testFirstHookMakeInstall},
	}
	for _, gen := range rootGens {
		if why, ok := env.genSkips[gen.gen]; ok {
			for _, s := range perGen {
				recordCell(gen.gen, s.name, result{status: "skipped", reason: why})
			}
		}
	}
	for _, h := range env.gens {
		t0 := time.Now()
		t.Run(h.gen, func(t *testing.T) {
			for _, s := range perGen {
				if s.name == "13_session_daemon" && h.gen == "12.8" {
					continue // the session daemon runs on 9.0 and 11.3
				}
				if strings.HasPrefix(s.name, "23_") || strings.HasPrefix(s.name, "24_") || strings.HasPrefix(s.name, "25_") || strings.HasPrefix(s.name, "26_") {
					if h.root == "" {
						continue // Debian 12: no riscv64/loongarch64 UEFI firmware; libvirt 9.0 drops format='qcow2'; the .deb on 9.0 is 18
					}
				}
				if strings.HasPrefix(s.name, "28_") && h.gen != "12.8" {
					continue // <varstore> came in libvirt 12.1
				}
				runCell(t, h.gen, s.name, func(t *testing.T) { s.run(t, h) })
			}
			if h == env.a {
				for _, s := range only90 {
					runCell(t, h.gen, s.name, s.run)
				}
			}
		})
		recordTiming(fmt.Sprintf("libvirt %s scenarios", h.gen), time.Since(t0))
	}
	t0 := time.Now()
	t.Run("migration", testMigrations)
	recordTiming("migrations across generations", time.Since(t0))
}

// 1. A loader libvirt cannot provision: without the hook start fails with
// libvirt's own error; with it the guest runs on a copy of the mapped
// template, mode 0600, owned by the QEMU user.
func testCustomLoader(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s1-custom"), loader: a.customCode}
	vs := defineFailingWithoutHook(t, a, g)

	mark := a.logMark()
	virsh(t, a, "start", "--paused", g.name) // paused: the firmware has not run, the file is as created
	requireState(t, a, g.name, "paused")
	requireSameFile(t, a.local(vs), a.customVars, "varstore created at start")
	requireModeOwner(t, a.local(vs), 0o600, a.qemuUID)
	t.Logf("hook log: %s", requireLogMentions(t, a, mark, vs))
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "destroy", g.name)
	requireState(t, a, g.name, "shut off")
	// After the guest stops libvirt hands the file back to the owner it
	// had before start: the one the hook gave it.
	requireModeOwner(t, a.local(vs), 0o600, a.qemuUID)

	// The same with libvirt's other spelling of the path (8.5+) and a
	// domain name with spaces.
	t.Run("source_form_space_in_name", func(t *testing.T) {
		name := a.guest("s1 source form")
		vs := a.varstorePath(name)
		g := guest{name: name, loader: a.customCode, nvramXML: fmt.Sprintf("<nvram type='file'><source file='%s'/></nvram>", vs)}
		defineGuest(t, a, g)
		if p, _ := nvramOf(t, a, name, "--inactive"); p != vs {
			t.Fatalf("libvirt shows the varstore as %q, want %q", p, vs)
		}
		requireNoFile(t, a.local(vs))
		virsh(t, a, "start", "--paused", name)
		requireState(t, a, name, "paused")
		requireSameFile(t, a.local(vs), a.customVars, "varstore created at start")
		virsh(t, a, "resume", name)
		requireState(t, a, name, "running")
		virsh(t, a, "destroy", name)
	})
}

// 2. A loader libvirt knows from a firmware descriptor: the guest starts and
// its varstore is the descriptor's template, whoever made it.
func testKnownLoader(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s2-known"), loader: ovmfCode}
	defineGuest(t, a, g)
	vs, defTmpl := nvramOf(t, a, g.name, "--inactive")
	requireNoFile(t, a.local(vs))
	tmpl := descriptorTemplate(t, a, ovmfCode)
	// 11.3 and 12.8 write the descriptor's template into the definition at
	// define time; 9.0 leaves it out.
	if want := map[bool]string{true: "", false: tmpl}[a.gen == "9.0"]; defTmpl != want {
		t.Errorf("libvirt %s defined <nvram template=%q>, want template %q", a.gen, defTmpl, want)
	}
	if d := parseDom(t, virsh(t, a, "dumpxml", "--inactive", g.name)); strings.TrimSpace(d.Loader.Path) != ovmfCode {
		t.Errorf("libvirt %s changed the loader path at define: %q, want %q", a.gen, strings.TrimSpace(d.Loader.Path), ovmfCode)
	}

	mark := a.logMark()
	virsh(t, a, "start", "--paused", g.name)
	requireState(t, a, g.name, "paused")
	requireSameFile(t, a.local(vs), a.local(tmpl), "varstore of a descriptor-known loader")
	requireModeOwner(t, a.local(vs), 0o600, a.qemuUID)
	log := a.logSince(mark)
	if !strings.Contains(log, g.name) && !strings.Contains(log, vs) {
		t.Fatalf("the hook's log does not say what it did for %s:\n%s", g.name, log)
	}
	t.Logf("hook log:\n%s", strings.TrimSpace(log))
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "destroy", g.name)
}

// markerOff is in the OVMF 4M varstore's event-log block (0x40000-0x40fff),
// which the firmware leaves alone; a marker in the variable area would be
// reclaimed away by the firmware itself.
const markerOff = 0x40000

var marker = []byte("libvirt-nvram-hook e2e marker: keep me")

// 3. A varstore changed after creation keeps its bytes through start, stop,
// save, restore and live migration (shared storage: both hosts see the same
// path). Where the guest ran, the firmware may write the variable area, so
// there only the marker is compared; where it did not run, the whole file.
func testChangedVarstoreSurvives(t *testing.T, h *host) {
	a, b := h, env.b
	vs := filepath.Join(env.shared, a.guest("s3-marker")+"_VARS.fd")
	// Both libvirtds would chown the shared file at start and back at stop,
	// remembering the owner in xattrs stamped with the host's boot time;
	// two daemons on one machine can compute boot times a second apart, and
	// then the source's chown-back after migration leaves the file root-owned
	// under the destination's QEMU. With static ownership (how shared
	// storage is usually run) libvirt chowns nothing: QEMU opens the file as
	// the hook created it.
	g := guest{name: a.guest("s3-marker"), loader: a.customCode, nvram: vs, staticOwner: true}
	defineGuest(t, a, g)
	tmpl := readBytes(t, a.customVars)
	if len(tmpl) < markerOff+len(marker) || !bytes.Equal(tmpl[markerOff:markerOff+len(marker)], bytes.Repeat([]byte{0xff}, len(marker))) {
		t.Fatalf("%s has no erased bytes at %#x: not the OVMF 4M layout this scenario expects", a.customVars, markerOff)
	}

	// Created by the hook, then changed while the guest is off.
	virsh(t, a, "start", "--paused", g.name)
	requireState(t, a, g.name, "paused")
	requireSameBytes(t, vs, tmpl, "varstore created at start")
	requireModeOwner(t, vs, 0o600, a.qemuUID)
	virsh(t, a, "destroy", g.name)
	writeMarker(t, vs)
	golden := readBytes(t, vs)

	// start: the existing file is used as it is.
	mark := a.logMark()
	virsh(t, a, "start", "--paused", g.name)
	requireState(t, a, g.name, "paused")
	requireSameBytes(t, vs, golden, "changed varstore after start (firmware not yet run)")
	t.Logf("hook log at start:\n%s", strings.TrimSpace(a.logSince(mark)))
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
	time.Sleep(2 * time.Second) // let the firmware run (and write its variables)
	requireMarker(t, vs, "running after start")

	// stop
	virsh(t, a, "destroy", g.name)
	requireState(t, a, g.name, "shut off")
	requireMarker(t, vs, "after stop")

	// save / restore
	virsh(t, a, "start", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "save", g.name, savePath(g.name))
	requireState(t, a, g.name, "shut off")
	requireMarker(t, vs, "after save")
	golden = readBytes(t, vs)
	virsh(t, a, "restore", "--paused", savePath(g.name))
	requireState(t, a, g.name, "paused")
	requireSameBytes(t, vs, golden, "varstore after restore (guest not yet resumed)")
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
	requireMarker(t, vs, "running after restore")
	if a != env.a {
		virsh(t, a, "destroy", g.name)
		requireMarker(t, vs, "after stop")
		return // live migration between generations: testMigrations
	}

	// live migration to B; paused first so the whole file can be compared
	virsh(t, a, "suspend", g.name)
	requireState(t, a, g.name, "paused")
	golden = readBytes(t, vs)
	markB := b.logMark()
	migrate(t, g.name)
	requireState(t, b, g.name, "paused")
	requireSameBytes(t, vs, golden, "varstore after live migration to B")
	if p, _ := nvramOf(t, b, g.name); p != vs {
		t.Fatalf("on B the guest uses <nvram>%s</nvram>, want %s", p, vs)
	}
	t.Logf("hook log on B:\n%s", strings.TrimSpace(b.logSince(markB)))
	virsh(t, b, "resume", g.name)
	requireState(t, b, g.name, "running")
	requireMarker(t, vs, "running on B")
	virsh(t, b, "destroy", g.name)
	requireMarker(t, vs, "after stop on B")
}

func writeMarker(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(marker, markerOff); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func requireMarker(t *testing.T, p, when string) {
	t.Helper()
	b := readBytes(t, p)
	if len(b) < markerOff+len(marker) || !bytes.Equal(b[markerOff:markerOff+len(marker)], marker) {
		end := min(len(b), markerOff+len(marker))
		t.Fatalf("%s: the marker at %#x in %s is gone: found %q", when, markerOff, p, b[min(markerOff, end):end])
	}
}

// 4. Save, delete the varstore, restore: the guest runs and the varstore is
// back (made from the template).
func testSaveDeleteRestore(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s4-save-delete"), loader: a.customCode}
	defineGuest(t, a, g)
	lvs, _ := nvramOf(t, a, g.name, "--inactive")
	vs := a.local(lvs)
	virsh(t, a, "start", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "save", g.name, savePath(g.name))
	requireState(t, a, g.name, "shut off")
	if err := os.Remove(vs); err != nil {
		t.Fatal(err)
	}
	mark := a.logMark()
	virsh(t, a, "restore", "--paused", savePath(g.name))
	requireState(t, a, g.name, "paused")
	requireSameFile(t, vs, a.customVars, "varstore recreated at restore")
	requireModeOwner(t, vs, 0o600, a.qemuUID)
	t.Logf("hook log: %s", requireLogMentions(t, a, mark, lvs))
	virsh(t, a, "resume", g.name)
	requireState(t, a, g.name, "running")
}

// defineStartSave defines g on a, starts it (the hook makes its varstore)
// and saves it to savePath.
func defineStartSave(t *testing.T, a *host, g guest) {
	t.Helper()
	defineGuest(t, a, g)
	virsh(t, a, "start", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "save", g.name, savePath(g.name))
	requireState(t, a, g.name, "shut off")
}

// savedXMLWithoutNvram reads the XML in name's save image, removes its
// <nvram> element and writes the result into the work dir, for `virsh
// restore --xml`: it returns the saved XML, the edited XML and its path.
func savedXMLWithoutNvram(t *testing.T, a *host, name string) (saved, edited, path string) {
	t.Helper()
	saved = virsh(t, a, "save-image-dumpxml", savePath(name))
	edited = nvramElemRe.ReplaceAllString(saved, "")
	if parseDom(t, edited).Nvram != nil {
		t.Fatalf("editing the saved XML went wrong:\n%s", edited)
	}
	path = filepath.Join(env.work, "xml", name+"-edited.xml")
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	return saved, edited, path
}

var nvramElemRe = regexp.MustCompile(`(?s)\s*<nvram\b[^>]*?(?:/>|>.*?</nvram>)`)

// 5. restore --xml with the <nvram> element removed: the restore filter adds
// one in the hook's [nvram] dir (not libvirt's default), the file is made and
// the guest runs. libvirt marks a guest whose XML a hook changed as tainted.
func testRestoreXMLWithoutNvram(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s5-restore-xml"), loader: a.customCode}
	defineStartSave(t, a, g)

	saved, edited, editedPath := savedXMLWithoutNvram(t, a, g.name)
	if parseDom(t, saved).Nvram == nil {
		t.Fatalf("the saved XML has no <nvram> to remove:\n%s", saved)
	}
	if d := parseDom(t, edited); strings.TrimSpace(d.Loader.Path) != a.customCode {
		t.Fatalf("editing the saved XML went wrong:\n%s", edited)
	}

	want := filepath.Join(env.altNvram, g.name+"_VARS.fd")
	requireNoFile(t, want)
	mark, qmark := a.logMark(), fileSize(a.qemuLog(g.name))
	virsh(t, a, "restore", savePath(g.name), "--xml", editedPath, "--paused")
	requireState(t, a, g.name, "paused")
	path, tmpl := nvramOf(t, a, g.name)
	if path != want {
		t.Fatalf("after restore the guest uses <nvram>%s</nvram>, want %s (the hook's [nvram] dir)", path, want)
	}
	if tmpl != a.customVars {
		t.Errorf("the added <nvram> has template=%q, want %q", tmpl, a.customVars)
	}
	requireRestoredOnAddedNvram(t, a, g.name, want, mark, qmark)
}

// requireRestoredOnAddedNvram: after a paused `virsh restore --xml` of name
// without <nvram>, the varstore at want (where the restore filter put the
// <nvram> it added) is a's custom template, 0600, the QEMU user's; the
// hook's log since mark names it; libvirt's log of the guest since qmark
// shows the hook-script taint; the guest resumes.
func requireRestoredOnAddedNvram(t *testing.T, a *host, name, want string, mark, qmark int64) {
	t.Helper()
	requireSameFile(t, want, a.customVars, "varstore made for the filter-added <nvram>")
	requireModeOwner(t, want, 0o600, a.qemuUID)
	t.Logf("hook log: %s", requireLogMentions(t, a, mark, want))
	if ql := readFrom(a.qemuLog(name), qmark); !strings.Contains(ql, "hook-script") {
		t.Errorf("libvirt's log for %s does not show the hook-script taint of a filtered restore:\n%s", name, ql)
	}
	virsh(t, a, "resume", name)
	requireState(t, a, name, "running")
}

// 6. Live migration to a host that has no varstore for the guest: the
// destination's hook makes one (migrate filter / prepare) and the guest runs
// there; also with --persistent --undefinesource.
func testMigrateToEmptyHost(t *testing.T) {
	a, b := env.a, env.b
	cases := []struct {
		name  string
		flags []string
	}{
		{"live", nil},
		{"persistent_undefinesource", []string{"--persistent", "--undefinesource"}},
	}
	tmpl := readBytes(t, env.customVars)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := guest{name: guestPrefix + "s6-" + strings.ReplaceAll(c.name, "_", "-"), loader: env.customCode}
			defineGuest(t, a, g)
			virsh(t, a, "start", "--paused", g.name)
			requireState(t, a, g.name, "paused")
			requireSameFile(t, a.varstore(g.name), env.customVars, "varstore on A")
			virsh(t, a, "resume", g.name)
			requireState(t, a, g.name, "running")
			bvs := b.varstore(g.name)
			requireNoFile(t, bvs)

			mark := b.logMark()
			migrate(t, g.name, c.flags...)
			requireState(t, b, g.name, "running")
			if p, _ := nvramOf(t, b, g.name); p != filepath.Join(systemNvramDir, g.name+"_VARS.fd") {
				t.Fatalf("on B the guest uses <nvram>%s</nvram>", p)
			}
			got := readBytes(t, bvs)
			// The firmware keeps running on B and may write variables, so
			// compare the size and the volume header, not every byte.
			if len(got) != len(tmpl) || !bytes.Equal(got[:0x48], tmpl[:0x48]) {
				t.Fatalf("B's varstore %s (%d bytes) does not look like a copy of %s (%d bytes)", bvs, len(got), env.customVars, len(tmpl))
			}
			requireModeOwner(t, bvs, 0o600, env.qemuUID)
			t.Logf("hook log on B: %s", requireLogMentions(t, b, mark, g.name))

			info := virsh(t, b, "dominfo", g.name)
			persistent := regexp.MustCompile(`(?m)^Persistent:\s+yes`).MatchString(info)
			if c.flags == nil {
				if persistent {
					t.Errorf("plain live migration left a persistent guest on B:\n%s", info)
				}
				requireState(t, a, g.name, "shut off")
			} else {
				if !persistent {
					t.Errorf("--persistent: the guest is not persistent on B:\n%s", info)
				}
				if out, err := virshRaw(a, "dominfo", g.name); err == nil {
					t.Errorf("--undefinesource: the guest is still defined on A:\n%s", out)
				}
				// B's own definition starts again on B's varstore.
				virsh(t, b, "destroy", g.name)
				virsh(t, b, "start", g.name)
				requireState(t, b, g.name, "running")
			}
			virsh(t, b, "destroy", g.name)
		})
	}
}

// 7. A BIOS guest: start, stop, save and restore behave as without the
// hook; the hook logs nothing at info level or above and prints nothing
// (a filter that printed XML would taint the guest 'hook-script').
func testBIOSGuest(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s7-bios")}
	defineGuest(t, a, g)
	inactive := virsh(t, a, "dumpxml", "--inactive", g.name)
	if d := parseDom(t, inactive); d.Loader.Path != "" || d.Nvram != nil {
		t.Fatalf("the BIOS guest has firmware settings:\n%s", inactive)
	}
	mark := a.logMark()
	virsh(t, a, "start", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "destroy", g.name)
	requireState(t, a, g.name, "shut off")
	virsh(t, a, "start", g.name)
	requireState(t, a, g.name, "running")
	virsh(t, a, "save", g.name, savePath(g.name))
	virsh(t, a, "restore", savePath(g.name))
	requireState(t, a, g.name, "running")
	virsh(t, a, "destroy", g.name)
	requireState(t, a, g.name, "shut off")

	log := a.logSince(mark)
	for _, line := range strings.Split(log, "\n") {
		switch logLevel(line) {
		case "info", "warning", "warn", "error", "fatal":
			t.Errorf("the hook logged at %s level for a BIOS guest: %s", logLevel(line), line)
		}
	}
	t.Logf("hook log (debug):\n%s", strings.TrimSpace(log))
	if ql, _ := os.ReadFile(a.qemuLog(g.name)); bytes.Contains(ql, []byte("hook-script")) {
		t.Errorf("the BIOS guest is tainted hook-script: a filter printed XML\n%s", ql)
	}
	requireNoFile(t, a.varstore(g.name))
	requireNoFile(t, filepath.Join(env.altNvram, g.name+"_VARS.fd"))
	if a != env.a {
		return // the binary itself is the same on every host
	}

	// The same XML straight into the binary, for every operation libvirt
	// calls it with: exit 0, nothing on stdout or stderr.
	ops := [][2]string{
		{"prepare", "begin"}, {"start", "begin"}, {"started", "begin"},
		{"stopped", "end"}, {"release", "end"}, {"migrate", "begin"},
		{"restore", "begin"}, {"reconnect", "begin"}, {"attach", "begin"},
	}
	for _, op := range ops {
		stdout, stderr, code := runHook(t, inactive, g.name, op[0], op[1], "-")
		if code != 0 || stdout != "" || stderr != "" {
			t.Errorf("hook %s %s %s - on the BIOS XML: exit %d, stdout %q, stderr %q; want exit 0 and no output", g.name, op[0], op[1], code, stdout, stderr)
		}
	}
}

// 8. A UEFI loader with no template anywhere: start fails and libvirt's
// error carries the hook's one-line message.
func testNoTemplate(t *testing.T, h *host) {
	a := h
	g := guest{name: a.guest("s8-orphan"), loader: env.orphanCode}
	defineGuest(t, a, g)
	vs, _ := nvramOf(t, a, g.name, "--inactive")
	mark := a.logMark()
	out := virshFails(t, a, "start", g.name)
	for _, want := range []string{"no varstore template for loader", env.orphanCode} {
		if !strings.Contains(out, want) {
			t.Errorf("libvirt's error does not contain %q:\n%s", want, out)
		}
	}
	t.Logf("libvirt says: %s", strings.TrimSpace(out))
	t.Logf("hook log:\n%s", strings.TrimSpace(a.logSince(mark)))
	requireState(t, a, g.name, "shut off")
	requireNoFile(t, a.local(vs))
}
