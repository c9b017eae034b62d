//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The results table: scenario x libvirt version, printed at the end of the
// run (TestMain), before run.sh's closing "N passed, N failed" line.

type result struct {
	status string // passed, failed, skipped
	reason string
	took   time.Duration
}

var results = struct {
	sync.Mutex
	cells   map[string]map[string]result // scenario -> column -> result
	order   []string                     // scenarios in the order first run
	skipWhy map[string]string            // t.Name() -> reason given to skipf
	timings []string                     // "what: duration" lines
}{cells: map[string]map[string]result{}, skipWhy: map[string]string{}}

// skipf skips t with a reason that goes into the table. Under CI=true a
// skip is a failure.
func skipf(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: a skip is a failure: %s", why)
	}
	results.Lock()
	results.skipWhy[t.Name()] = why
	results.Unlock()
	t.Skip(why)
}

// runCell runs fn as subtest name of t and records it in column col.
func runCell(t *testing.T, col, name string, fn func(t *testing.T)) bool {
	t.Helper()
	var inner *testing.T
	t0 := time.Now()
	ok := t.Run(name, func(t *testing.T) {
		inner = t
		fn(t)
	})
	if inner == nil {
		return ok // filtered out by -run: not a result
	}
	r := result{status: "passed", took: time.Since(t0)}
	switch {
	case !ok:
		r.status = "failed"
	case inner.Skipped():
		r.status = "skipped"
		results.Lock()
		r.reason = results.skipWhy[inner.Name()]
		results.Unlock()
	}
	recordCell(col, name, r)
	t.Logf("%s / %s: %s in %s", col, name, r.status, r.took.Round(time.Millisecond))
	return ok
}

func recordCell(col, name string, r result) {
	results.Lock()
	defer results.Unlock()
	if results.cells[name] == nil {
		results.cells[name] = map[string]result{}
		results.order = append(results.order, name)
	}
	results.cells[name][col] = r
}

func recordTiming(what string, d time.Duration) {
	results.Lock()
	if d > 0 {
		what = fmt.Sprintf("%s: %s", what, d.Round(time.Second))
	}
	results.timings = append(results.timings, what)
	results.Unlock()
}

// printTable writes the table to stderr.
func printTable(cols []string) {
	results.Lock()
	defer results.Unlock()
	if len(results.order) == 0 {
		return
	}
	w := 8
	for _, n := range results.order {
		w = max(w, len(n))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-*s", w+2, "scenario")
	for _, c := range cols {
		fmt.Fprintf(&b, " | %-12s", "libvirt "+c)
	}
	b.WriteString("\n" + strings.Repeat("-", w+2+len(cols)*15) + "\n")
	var notes []string
	counts := map[string]int{}
	for _, n := range results.order {
		fmt.Fprintf(&b, "%-*s", w+2, n)
		for _, c := range cols {
			r, ok := results.cells[n][c]
			cell := "-"
			if ok {
				cell = r.status
				counts[r.status]++
				if r.reason != "" {
					notes = append(notes, fmt.Sprintf("  [%d] %s on %s: %s", len(notes)+1, n, c, r.reason))
					cell += fmt.Sprintf(" [%d]", len(notes))
				}
			}
			fmt.Fprintf(&b, " | %-12s", cell)
		}
		b.WriteString("\n")
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sum []string
	for _, k := range keys {
		sum = append(sum, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(&b, "cells: %s (\"-\": not a scenario of that column)\n", strings.Join(sum, ", "))
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	if env != nil && len(env.gens) > 0 {
		b.WriteString("hosts (read off the running daemons and their dpkg databases):\n")
		for _, h := range env.gens {
			fmt.Fprintf(&b, "  %-5s %s: %s, edk2 (ovmf) %s\n", h.gen, debianName(h.suite), h.version, pkgVersion(h, "ovmf"))
		}
	}
	if len(results.timings) > 0 {
		b.WriteString("timings:\n")
		for _, l := range results.timings {
			b.WriteString("  " + l + "\n")
		}
	}
	fmt.Fprint(os.Stderr, b.String())
}

func debianName(suite string) string {
	switch suite {
	case "bookworm":
		return "Debian 12 (bookworm)"
	case "trixie":
		return "Debian 13 (trixie)"
	}
	return "Debian " + suite
}

// pkgVersion is the installed version of pkg on h (its root's dpkg database).
func pkgVersion(h *host, pkg string) string {
	admin := "/var/lib/dpkg"
	if h.root != "" {
		admin = filepath.Join(h.overlay[0], admin) // the cached root: the overlay is gone by now
	}
	out, err := exec.Command("dpkg-query", "--admindir="+admin, "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}
