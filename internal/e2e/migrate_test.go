//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Live migration between generations, the way clusters upgrade: 9.0 ->
// 11.3 and 11.3 -> 12.8, each to a destination without the varstore,
// plain and --persistent --undefinesource. In the table a row's cell is in
// the destination's column (11.3: from 9.0; 12.8: from 11.3).
func testMigrations(t *testing.T) {
	byGen := map[string]*host{}
	for _, h := range env.gens {
		byGen[h.gen] = h
	}
	pairs := [][2]string{{"9.0", "11.3"}, {"11.3", "12.8"}}
	modes := []struct {
		name  string
		flags []string
	}{
		{"20_live_migration_in_from_previous_gen", nil},
		{"21_live_migration_in_persistent_undefinesource", []string{"--persistent", "--undefinesource"}},
	}
	for _, p := range pairs {
		src, dst := byGen[p[0]], byGen[p[1]]
		for _, m := range modes {
			if src == nil || dst == nil {
				why := fmt.Sprintf("no libvirt %s host", map[bool]string{true: p[0], false: p[1]}[src == nil])
				if g := map[bool]string{true: p[0], false: p[1]}[src == nil]; env.genSkips[g] != "" {
					why += ": " + env.genSkips[g]
				}
				recordCell(p[1], m.name, result{status: "skipped", reason: why})
				continue
			}
			runCell(t, dst.gen, m.name, func(t *testing.T) {
				t0 := time.Now()
				defer func() {
					recordTiming(fmt.Sprintf("%s -> %s %s (whole scenario)", src.gen, dst.gen, strings.Join(append([]string{"live"}, m.flags...), " ")), time.Since(t0))
				}()
				migrateAcross(t, src, dst, m.flags)
			})
		}
	}
	runCell(t, "11.3", "22_loader_missing_on_destination", testLoaderMissingOnDestination)
}

// migrateAcross: the guest runs on src with a varstore that holds a marker
// (bytes the template does not have) when it starts; it is migrated live
// to dst, which has no varstore for it; the hook on dst makes one in
// prepare; after the guest stops on dst, dst's file holds the marker:
// QEMU carried the flash contents and wrote them back on the destination.
func migrateAcross(t *testing.T, src, dst *host, flags []string) {
	suffix := "plain"
	if len(flags) > 0 {
		suffix = "pu"
	}
	g := guest{name: src.guest("m" + dst.tag + suffix), loader: src.customCode}
	defineGuest(t, src, g)
	lvs, _ := nvramOf(t, src, g.name, "--inactive")
	if lvs != src.varstorePath(g.name) {
		t.Fatalf("host %s filled <nvram>%s</nvram>, want %s", src.name, lvs, src.varstorePath(g.name))
	}
	svs := src.local(lvs)
	// The hook makes the varstore on src at the first start; the marker
	// goes in while the guest is off.
	virsh(t, src, "start", "--paused", g.name)
	requireState(t, src, g.name, "paused")
	requireSameFile(t, svs, src.customVars, "varstore created on "+src.name)
	virsh(t, src, "destroy", g.name)
	requireState(t, src, g.name, "shut off")
	writeMarker(t, svs)
	virsh(t, src, "start", g.name)
	requireState(t, src, g.name, "running")
	requireMarker(t, svs, "running on "+src.name)

	dvs := dst.local(dst.varstorePath(g.name))
	requireNoFile(t, dvs)
	mark := dst.logMark()
	migrateTo(t, src, dst, g.name, flags...)
	requireState(t, dst, g.name, "running")
	if p, _ := nvramOf(t, dst, g.name); p != dst.varstorePath(g.name) {
		t.Fatalf("on %s the guest uses <nvram>%s</nvram>, want %s", dst.name, p, dst.varstorePath(g.name))
	}
	requireModeOwner(t, dvs, 0o600, dst.qemuUID)
	t.Logf("hook log on %s:\n%s", dst.name, strings.TrimSpace(dst.logSince(mark)))
	requireLogMentions(t, dst, mark, dst.varstorePath(g.name), "created")

	info := virsh(t, dst, "dominfo", g.name)
	persistent := regexp.MustCompile(`(?m)^Persistent:\s+yes`).MatchString(info)
	if len(flags) == 0 {
		if persistent {
			t.Errorf("plain live migration left a persistent guest on %s:\n%s", dst.name, info)
		}
		requireState(t, src, g.name, "shut off")
	} else {
		if !persistent {
			t.Errorf("--persistent: the guest is not persistent on %s:\n%s", dst.name, info)
		}
		if out, err := virshRaw(src, "dominfo", g.name); err == nil {
			t.Errorf("--undefinesource: the guest is still defined on %s:\n%s", src.name, out)
		}
	}
	virsh(t, dst, "destroy", g.name)
	if persistent {
		requireState(t, dst, g.name, "shut off")
	} else {
		requireGone(t, dst, g.name) // a transient guest is gone once stopped
	}
	requireMarker(t, dvs, "after the guest stopped on "+dst.name+" (libvirt "+dst.gen+")")
	t.Logf("the marker written into %s's varstore before the start there is in %s's %s", src.name, dst.name, dst.varstorePath(g.name))
	if len(flags) > 0 {
		// dst's own definition starts again on dst's varstore.
		virsh(t, dst, "start", g.name)
		requireState(t, dst, g.name, "running")
		requireMarker(t, dvs, "running again on "+dst.name)
		virsh(t, dst, "destroy", g.name)
	}
}

// migrateTo live-migrates name from src to dst over loopback.
func migrateTo(t *testing.T, src, dst *host, name string, flags ...string) {
	t.Helper()
	out, err := migrateRaw(src, dst, name, flags...)
	if err != nil {
		t.Fatalf("virsh migrate %s -> %s: %v\n%s", src.name, dst.name, err, out)
	}
}

func migrateRaw(src, dst *host, name string, flags ...string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{"migrate", "--live"}, flags...)
	args = append(args, name, dst.uri, "--migrateuri", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--listen-address", "127.0.0.1")
	t0 := time.Now()
	out, err := virshRaw(src, args...)
	logf("virsh -c %s %s took %s", src.name, strings.Join(args, " "), time.Since(t0).Round(time.Millisecond))
	return out, err
}

// 22. A Debian 12 guest on the 2 MiB OVMF_CODE.fd (which Debian 13 no
// longer ships) migrating live from 9.0 to 11.3, and one whose custom
// loader copy on the source is, on the destination, the same build at its
// distribution path.
func testLoaderMissingOnDestination(t *testing.T) {
	src, dst := env.a, hostOf("11.3")
	if dst == nil {
		skipf(t, "no libvirt 11.3 host: %s", env.genSkips["11.3"])
	}
	if fileExists(dst.local(ovmf2MCode)) {
		t.Fatalf("%s exists on host %s: this scenario needs a destination without Debian 12's 2 MiB OVMF", ovmf2MCode, dst.name)
	}
	t.Run("without_translate_loader", func(t *testing.T) {
		loaderMissingRefused(t, src, dst, "nt", false)
	})
	t.Run("translate_loader_no_same_size_firmware", func(t *testing.T) {
		setTranslateLoader(t, dst)
		loaderMissingRefused(t, src, dst, "tl", true)
	})
	t.Run("translate_loader_custom_copy_refused", func(t *testing.T) {
		setTranslateLoader(t, dst)
		translateCustomCopy(t, src, dst)
	})
	t.Run("translate_loader_strictnx_to_9.0", func(t *testing.T) {
		setTranslateLoader(t, src)
		translateStrictNX(t, dst, src)
	})
}

func hostOf(gen string) *host {
	for _, h := range env.gens {
		if h.gen == gen {
			return h
		}
	}
	return nil
}

// setTranslateLoader turns translate_loader on in h's hook config for the
// test (the hook reads its config on every call).
func setTranslateLoader(t *testing.T, h *host) {
	t.Helper()
	conf := strings.Replace(env.hookConfig(h), "[templates]\n", "[templates]\ntranslate_loader = true\n", 1)
	if err := os.WriteFile(h.hookConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(h.hookConf, []byte(env.hookConfig(h)), 0o644) })
}

// loaderMissingRefused: the 2 MiB guest runs on src; the migration to dst
// is refused, the guest keeps running on src, and nothing of it is left
// on dst.
func loaderMissingRefused(t *testing.T, src, dst *host, short string, translate bool) {
	g := guest{name: src.guest("s22-2m-" + short), loader: ovmf2MCode}
	defineGuest(t, src, g)
	virsh(t, src, "start", g.name)
	requireState(t, src, g.name, "running")
	svs := src.varstore(g.name)
	requireSameFile(t, svs, ovmf2MVars, "varstore of the 2 MiB guest on "+src.name)
	before := readBytes(t, svs)

	mark := dst.logMark()
	out, err := migrateRaw(src, dst, g.name)
	log := dst.logSince(mark)
	t.Logf("virsh migrate: %v\n%s", err, strings.TrimSpace(out))
	t.Logf("hook log on %s:\n%s", dst.name, strings.TrimSpace(log))
	if err == nil {
		state, _ := virshRaw(dst, "domstate", g.name)
		x, _ := virshRaw(dst, "dumpxml", g.name)
		d := parseDom(t, x)
		t.Fatalf("the 2 MiB guest migrated to %s (state %s) on loader %s: want a refusal", dst.name, strings.TrimSpace(state), strings.TrimSpace(d.Loader.Path))
	}
	// The 9.0 source's live XML carries template=OVMF_VARS.fd (libvirt
	// 9.0 filled it from its compiled-in list at start), which 11.3 does
	// not have either. The line names the root cause first, the missing
	// loader (the guest's firmware is not installed here), and what to
	// do, then the missing template.
	todo := "install it, or set translate_loader = true"
	if translate {
		todo = "install it here (translate_loader found no replacement: no local firmware promises the same"
	}
	requireOneClearLine(t, out, "libvirt-nvram-hook: loader "+ovmf2MCode+" does not exist on this host: the guest's firmware is not installed here; "+todo,
		"; cannot create varstore "+dst.varstorePath(g.name), "from template "+ovmf2MVars+" (domain XML)", "no such file or directory")
	if translate {
		// Debian 13 has no 2 MiB build: no candidate, the loader stays,
		// and the log says why (issue #12 item 6).
		requireLogMentions(t, dst, mark, "translate_loader: loader "+ovmf2MCode+" does not exist here and is left as it is", "no local firmware promises the same")
	}
	if strings.Contains(log, "action=translate-loader") {
		t.Errorf("the hook on %s translated the loader of the 2 MiB guest:\n%s", dst.name, log)
	}
	requireState(t, src, g.name, "running")
	if o, err := virshRaw(dst, "dominfo", g.name); err == nil {
		t.Errorf("after the refused migration %s still knows the guest:\n%s", dst.name, o)
	}
	requireNoFile(t, dst.varstore(g.name))
	requireNothingNamed(t, dst.nvramDir, g.name)
	requireNothingNamed(t, env.altNvram, g.name)
	requireSameBytes(t, svs, before, "the source's varstore after the refused migration")
	virsh(t, src, "destroy", g.name)
}

// requireOneClearLine: libvirt's error carries exactly one line from the
// hook, and it names what it must.
func requireOneClearLine(t *testing.T, out string, words ...string) {
	t.Helper()
	var hookLines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "libvirt-nvram-hook") {
			hookLines = append(hookLines, l)
		}
	}
	if len(hookLines) != 1 {
		t.Fatalf("libvirt's error has %d lines from the hook, want one:\n%s", len(hookLines), out)
	}
	for _, w := range words {
		if !strings.Contains(hookLines[0], w) {
			t.Errorf("the hook's line does not name %q: %s", w, hookLines[0])
		}
	}
}

// translateCustomCopy: on src the guest runs on a custom copy of dst's own
// OVMF_CODE_4M.fd, at a path dst does not have. Nothing tells the hook on
// dst what that file promises the guest (no descriptor or table entry
// names the path), so even with translate_loader it is no candidate: the
// migration is refused with one line, the guest keeps running on src.
func translateCustomCopy(t *testing.T, src, dst *host) {
	dir, err := os.MkdirTemp("/var/tmp", "nvhe2e-xlate-") // outside the work dir: dst does not see it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	code := filepath.Join(dir, "OVMF_CODE_4M.fd")
	if err := copyFile(dst.local(ovmfCode), code, 0o644); err != nil {
		t.Fatal(err)
	}
	if fileExists(dst.local(code)) {
		t.Fatalf("%s exists on %s too", code, dst.name)
	}
	name := src.guest("s22-xlate")
	lvs := src.varstorePath(name)
	// The source's varstore made from dst's template by hand: the source
	// knows no template for this copy.
	g := guest{name: name, loader: code}
	defineGuest(t, src, g)
	if err := copyFile(dst.local(ovmfVars), src.local(lvs), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(src.local(lvs), src.qemuUID, src.qemuGID)
	before := readBytes(t, src.local(lvs))
	virsh(t, src, "start", name)
	requireState(t, src, name, "running")

	mark := dst.logMark()
	out, err := migrateRaw(src, dst, name)
	log := dst.logSince(mark)
	t.Logf("virsh migrate: %v\n%s\nhook log on %s:\n%s", err, strings.TrimSpace(out), dst.name, strings.TrimSpace(log))
	if err == nil {
		t.Fatalf("the guest on a custom copy migrated to %s: want a refusal (its firmware's facts are unknown there)", dst.name)
	}
	// The line names the missing loader first and why translate_loader
	// left it, and the log says why too, though the plan itself failed.
	requireOneClearLine(t, out, "libvirt-nvram-hook: loader "+code+" does not exist on this host", "translate_loader found no replacement: no descriptor or built-in table entry tells what it promises the guest",
		"; cannot create varstore "+dst.varstorePath(name)+": no varstore template for loader "+code)
	requireLogMentions(t, dst, mark, "translate_loader: loader "+code+" does not exist here and is left as it is: no descriptor or built-in table entry tells what it promises the guest")
	if strings.Contains(log, "action=translate-loader") {
		t.Errorf("the hook on %s translated a loader whose facts nothing knows:\n%s", dst.name, log)
	}
	requireState(t, src, name, "running")
	if o, err := virshRaw(dst, "dominfo", name); err == nil {
		t.Errorf("after the refused migration %s still knows the guest:\n%s", dst.name, o)
	}
	requireNothingNamed(t, dst.nvramDir, name)
	virsh(t, src, "destroy", name)
	if got := readBytes(t, src.local(lvs)); len(got) != len(before) {
		t.Errorf("the source's varstore changed size: %d -> %d bytes", len(before), len(got))
	}
}

// translateStrictNX: the translation that succeeds for real. A Secure Boot
// guest on Debian 13's OVMF_CODE_4M.secboot.strictnx.fd (machine
// pc-q35-7.2, which both QEMUs have) moves live to Debian 12, which does
// not ship that build: with translate_loader the hook there picks
// OVMF_CODE_4M.secboot.fd, which promises the same (x86_64, Secure Boot,
// SMM, no enrolled keys, 4 MiB flash); the guest runs there and its
// variables arrive.
func translateStrictNX(t *testing.T, src, dst *host) {
	const strictnx = "/usr/share/OVMF/OVMF_CODE_4M.secboot.strictnx.fd"
	const secboot = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	if !fileExists(src.local(strictnx)) || fileExists(dst.local(strictnx)) {
		t.Fatalf("want %s on %s and not on %s", strictnx, src.name, dst.name)
	}
	name := src.guest("s22-strictnx")
	g := guest{name: name, loader: strictnx, secure: true, machine: "pc-q35-7.2"}
	defineGuest(t, src, g)
	lvs, _ := nvramOf(t, src, name, "--inactive")
	virsh(t, src, "start", "--paused", name)
	requireState(t, src, name, "paused")
	requireSameFile(t, src.local(lvs), src.local(ovmfVars), "varstore of the strictnx guest on "+src.name)
	virsh(t, src, "destroy", name)
	writeMarker(t, src.local(lvs))
	virsh(t, src, "start", name)
	requireState(t, src, name, "running")

	mark := dst.logMark()
	out, err := migrateRaw(src, dst, name)
	t.Logf("virsh migrate: %v %s\nhook log on %s:\n%s", err, strings.TrimSpace(out), dst.name, strings.TrimSpace(dst.logSince(mark)))
	if err != nil {
		t.Fatalf("the strictnx guest did not migrate to %s:\n%s", dst.name, out)
	}
	requireState(t, dst, name, "running")
	d := parseDom(t, virsh(t, dst, "dumpxml", name))
	if got := strings.TrimSpace(d.Loader.Path); got != secboot {
		t.Fatalf("on %s the guest runs on loader %s, want %s (translated)", dst.name, got, secboot)
	}
	requireLogMentions(t, dst, mark, "translate-loader", strictnx, secboot)
	dvs := dst.local(dst.varstorePath(name))
	virsh(t, dst, "destroy", name)
	requireGone(t, dst, name)
	requireMarker(t, dvs, "after the translated guest stopped on "+dst.name)
}

// requireGone waits up to 10 s for h to forget name.
func requireGone(t *testing.T, h *host, name string) {
	t.Helper()
	var out string
	for i := 0; i < 50; i++ {
		var err error
		if out, err = virshRaw(h, "dominfo", name); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("host %s still knows the transient guest %s after it stopped:\n%s", h.name, name, out)
}
