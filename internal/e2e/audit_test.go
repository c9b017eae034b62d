//go:build e2e

package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// 14. check --audit over host A's persistent definitions: it lists every
// guest with a file varstore and what a start would do, reports PROBLEM for
// a varstore that does not fit its loader's flash layout and for one that
// cannot be created, exits 1, and changes no file (nvram dirs, domain XML).
func testAudit(t *testing.T, h *host) {
	a := h
	okG := guest{name: a.guest("s14-ok"), loader: a.customCode}
	missingG := guest{name: a.guest("s14-missing"), loader: a.customCode}
	orphanG := guest{name: a.guest("s14-orphan"), loader: env.orphanCode}
	badG := guest{name: a.guest("s14-missized"), loader: ovmfCode}
	biosG := guest{name: a.guest("s14-bios")}
	for _, g := range []guest{okG, missingG, orphanG, badG, biosG} {
		defineGuest(t, a, g)
	}
	// Varstores made by real starts.
	for _, g := range []guest{okG, badG} {
		virsh(t, a, "start", "--paused", g.name)
		requireState(t, a, g.name, "paused")
		virsh(t, a, "destroy", g.name)
		requireState(t, a, g.name, "shut off")
	}
	requireSameFile(t, a.varstore(okG.name), a.customVars, "varstore of "+okG.name)
	bad := a.varstore(badG.name)
	requireSameFile(t, bad, a.local(ovmfVars), "varstore of "+badG.name)
	// The classic mistake: a 2 MiB-era varstore under 4 MiB code.
	if err := os.Truncate(bad, 131072); err != nil {
		t.Fatal(err)
	}
	requireNoFile(t, a.varstore(missingG.name))
	requireNoFile(t, a.varstore(orphanG.name))

	watched := []string{a.nvramDir, env.altNvram, filepath.Join(a.etc, "qemu")}
	before := snapshotDirs(t, watched...)
	// Run where the host's libvirt runs (a root host: in its namespace and
	// root, where the hook's own files are).
	out, errOut, code := hookCLI(t, a, "check", "--audit", "/etc/libvirt/qemu")
	t.Logf("check --audit /etc/libvirt/qemu on host %s: exit %d\n%s%s", a.name, code, out, errOut)
	if after := snapshotDirs(t, watched...); after != before {
		t.Errorf("check --audit changed files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if code != 1 {
		t.Errorf("check --audit exited %d with problems present, want 1", code)
	}

	expect := []struct {
		g      guest
		status string
		words  []string
	}{
		// libvirt knows no template for a custom loader: a reset fails.
		{okG, "PROBLEM", []string{a.varstorePath(okG.name), "exists", "540672 bytes", a.customVars, "--reset-nvram"}},
		{missingG, "PROBLEM", []string{a.varstorePath(missingG.name), "missing", a.customVars, "--reset-nvram"}},
		{orphanG, "PROBLEM", []string{a.varstorePath(orphanG.name), "missing", "no varstore template for loader " + env.orphanCode}},
		{badG, "PROBLEM", []string{a.varstorePath(badG.name), "131072 bytes", ovmfCode, "540672"}},
	}
	lines := auditLines(out)
	for _, e := range expect {
		l, ok := lines[e.g.name]
		if !ok {
			t.Errorf("check --audit does not list %s", e.g.name)
			continue
		}
		if l.status != e.status {
			t.Errorf("check --audit says %s for %s, want %s: %s", l.status, e.g.name, e.status, l.text)
		}
		for _, w := range e.words {
			if !strings.Contains(l.text, w) {
				t.Errorf("check --audit's line for %s does not mention %q: %s", e.g.name, w, l.text)
			}
		}
	}
	if l, ok := lines[biosG.name]; ok {
		t.Errorf("check --audit lists the BIOS guest: %s", l.text)
	}
	m := regexp.MustCompile(`(?m)^(\d+) domains, (\d+) with a file varstore, (\d+) problem\(s\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("check --audit printed no summary line")
	}
	doms, uefi, problems := atoi(m[1]), atoi(m[2]), atoi(m[3])
	if doms < 5 || uefi < 4 || problems < 2 {
		t.Errorf("summary %q: want at least 5 domains, 4 with a file varstore, 2 problems", m[0])
	}
}

type auditLine struct{ status, text string }

// auditLines maps a domain name to its `check --audit` line
// ("STATUS   NAME: text").
func auditLines(out string) map[string]auditLine {
	lines := map[string]auditLine{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.SplitN(strings.TrimSpace(l), " ", 2)
		if len(f) != 2 {
			continue
		}
		rest := strings.TrimSpace(f[1])
		i := strings.Index(rest, ": ")
		if i < 0 || !strings.HasPrefix(rest, guestPrefix) {
			continue
		}
		lines[rest[:i]] = auditLine{status: f[0], text: rest[i+2:]}
	}
	return lines
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// snapshotDirs describes every entry under dirs (and the dirs themselves):
// type, mode, owner, size, mtime, ctime and, for files, a SHA-256. Equal
// snapshots mean nothing was created, removed, written, chmod'ed or chown'ed.
func snapshotDirs(t *testing.T, dirs ...string) string {
	t.Helper()
	var rows []string
	for _, dir := range dirs {
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			row := fmt.Sprintf("%s %v %d:%d size=%d mtime=%d.%09d ctime=%d.%09d", p, fi.Mode(), st.Uid, st.Gid, fi.Size(),
				st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				row += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
			}
			rows = append(rows, row)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}
