//go:build e2e

package e2e

import (
	"fmt"
	"net"
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
				migrateAcross(t, src, dst, m.flags)
				recordTiming(fmt.Sprintf("%s -> %s %s", src.gen, dst.gen, strings.Join(append([]string{"live"}, m.flags...), " ")), time.Since(t0))
			})
		}
	}
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
	requireState(t, dst, g.name, "shut off")
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
