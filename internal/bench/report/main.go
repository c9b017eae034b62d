// Command report turns spawn's JSON results into internal/bench/results.md:
// the machine, one table per section with medians, p90, peak RSS, ratios to
// the references measured in the same run, the targets and PASS or FAIL.
//
// Usage: report -spec FILE -o results.md [-meta KEY=VALUE]... RESULTS.json...
//
// The spec is line-oriented ('#' starts a comment):
//
//	section|TITLE|REF[,REF...]   a new table, with a ratio column per REF
//	row|CASE|LABEL|TARGETS       TARGETS: comma-separated, empty = information
//	note|TEXT                    a paragraph under the current table
//	perfault|A|B                 a paragraph: CPU time per page fault from A to B
//	split|A|A0|R|R0              a paragraph: A's and R's medians split into
//	                             what their variants A0 and R0 take and the
//	                             rest (A-A0 against R-R0)
//
// Targets: REF<=X (ratio of medians to REF's), ms<=X (median),
// rssmib<=X (peak RSS), alloc<=REF (allocated bytes of the created file).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

type result struct {
	Name      string   `json:"name"`
	Steps     []string `json:"steps"`
	Stdin     string   `json:"stdin"`
	Runs      int      `json:"runs"`
	MedianNs  int64    `json:"median_ns"`
	P90Ns     int64    `json:"p90_ns"`
	CPUNs     int64    `json:"median_cpu_ns"`
	Faults    int64    `json:"median_minflt"`
	MaxRSSKiB int64    `json:"max_rss_kib"`
	Size      int64    `json:"size"`
	Alloc     int64    `json:"alloc_bytes"`
	Stat      string   `json:"stat"`
	floor     int64
}

type output struct {
	Runs   int      `json:"runs"`
	Warmup int      `json:"warmup"`
	Start  string   `json:"start"`
	End    string   `json:"end"`
	Floor  int64    `json:"spawner_rss_kib"`
	Cases  []result `json:"cases"`
	file   string
}

type row struct {
	name, label string
	targets     []string
}

type section struct {
	title string
	refs  []string
	rows  []row
	notes []string
	// perFault pairs: the CPU time B spends over A divided by its extra
	// page faults, a rough price of one fault on this machine.
	perFault [][2]string
	// splits: {A, A0, R, R0}, see the spec's split lines.
	splits [][4]string
}

type metas []string

func (m *metas) String() string     { return strings.Join(*m, ",") }
func (m *metas) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	spec := flag.String("spec", "", "table spec `FILE`")
	out := flag.String("o", "results.md", "markdown `FILE` to write")
	var meta metas
	flag.Var(&meta, "meta", "`KEY=VALUE` for the machine table (repeatable, in order)")
	flag.Parse()
	if *spec == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: report -spec FILE -o results.md [-meta K=V]... RESULTS.json...")
		os.Exit(2)
	}
	sections, err := readSpec(*spec)
	if err != nil {
		fail(err)
	}
	res := map[string]*result{}
	var runs []output
	for _, f := range flag.Args() {
		var o output
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &o)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", f, err))
		}
		o.file = f
		runs = append(runs, o)
		for i := range o.Cases {
			r := o.Cases[i]
			r.floor = o.Floor
			res[r.Name] = &r
		}
	}
	md, pass, total := render(sections, res, runs, meta)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("%d of %d targets hold; wrote %s\n", pass, total, *out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}

func readSpec(path string) ([]*section, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var secs []*section
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		p := strings.Split(l, "|")
		switch {
		case p[0] == "section" && len(p) == 3:
			s := &section{title: p[1]}
			if p[2] != "" {
				s.refs = strings.Split(p[2], ",")
			}
			secs = append(secs, s)
		case p[0] == "row" && len(p) == 4 && len(secs) > 0:
			r := row{name: p[1], label: p[2]}
			if _, dup := labels[r.name]; !dup {
				labels[r.name] = r.label
			}
			if p[3] != "" {
				r.targets = strings.Split(p[3], ",")
			}
			secs[len(secs)-1].rows = append(secs[len(secs)-1].rows, r)
		case p[0] == "perfault" && len(p) == 3 && len(secs) > 0:
			secs[len(secs)-1].perFault = append(secs[len(secs)-1].perFault, [2]string{p[1], p[2]})
		case p[0] == "split" && len(p) == 5 && len(secs) > 0:
			secs[len(secs)-1].splits = append(secs[len(secs)-1].splits, [4]string{p[1], p[2], p[3], p[4]})
		case p[0] == "note" && len(p) >= 2 && len(secs) > 0:
			secs[len(secs)-1].notes = append(secs[len(secs)-1].notes, strings.Join(p[1:], "|"))
		default:
			return nil, fmt.Errorf("%s:%d: cannot read %q", path, n, l)
		}
	}
	return secs, sc.Err()
}

func ms(ns int64) string { return fmt.Sprintf("%.2f", float64(ns)/1e6) }

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }

func render(secs []*section, res map[string]*result, runs []output, meta []string) (string, int, int) {
	var b strings.Builder
	var summary []string
	pass, total := 0, 0
	for _, s := range secs {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		hasAlloc := false
		for _, r := range s.rows {
			if c := res[r.name]; c != nil && c.Stat != "" {
				hasAlloc = true
			}
		}
		b.WriteString("| case | median ms | p90 ms | CPU ms | page faults | max RSS MiB |")
		sep := "|---|---:|---:|---:|---:|---:|"
		if hasAlloc {
			b.WriteString(" allocated |")
			sep += "---:|"
		}
		for _, ref := range s.refs {
			fmt.Fprintf(&b, " × %s |", label(s, ref))
			sep += "---:|"
		}
		b.WriteString(" target | result |\n" + sep + "---|---|\n")
		for _, r := range s.rows {
			c := res[r.name]
			if c == nil {
				fmt.Fprintf(&b, "| %s | (not measured) |\n", r.label)
				continue
			}
			rss := mib(c.MaxRSSKiB)
			if c.MaxRSSKiB <= c.floor {
				rss = "≤ " + mib(c.floor) + "¹"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |", r.label, ms(c.MedianNs), ms(c.P90Ns), ms(c.CPUNs), c.Faults, rss)
			if hasAlloc {
				if c.Stat != "" {
					fmt.Fprintf(&b, " %s of %s |", size(c.Alloc), size(c.Size))
				} else {
					b.WriteString(" |")
				}
			}
			for _, ref := range s.refs {
				if rc := res[ref]; rc != nil && rc.MedianNs > 0 {
					fmt.Fprintf(&b, " %.2f |", float64(c.MedianNs)/float64(rc.MedianNs))
				} else {
					b.WriteString(" – |")
				}
			}
			var ts, verdicts []string
			ok := true
			for _, t := range r.targets {
				desc, good, err := check(t, c, res, s)
				if err != nil {
					desc, good = t+" ("+err.Error()+")", false
				}
				ts = append(ts, desc)
				total++
				if good {
					pass++
				} else {
					ok = false
					summary = append(summary, fmt.Sprintf("%s: %s", r.label, desc))
				}
			}
			switch {
			case len(r.targets) == 0:
				verdicts = append(verdicts, "info")
				ts = append(ts, "–")
			case ok:
				verdicts = append(verdicts, "**PASS**")
			default:
				verdicts = append(verdicts, "**FAIL**")
			}
			fmt.Fprintf(&b, " %s | %s |\n", strings.Join(ts, "; "), strings.Join(verdicts, " "))
		}
		for _, n := range s.notes {
			fmt.Fprintf(&b, "\n%s\n", n)
		}
		for _, sp := range s.splits {
			a, a0, r, r0 := res[sp[0]], res[sp[1]], res[sp[2]], res[sp[3]]
			if a == nil || a0 == nil || r == nil || r0 == nil || r.MedianNs <= r0.MedianNs || r0.MedianNs == 0 {
				continue
			}
			da, dr := a.MedianNs-a0.MedianNs, r.MedianNs-r0.MedianNs
			fmt.Fprintf(&b, "\nSplit of these medians: %s takes %s ms against %s ms for %s (%.2f×), the part without data to copy; "+
				"the copy itself (%s minus that, against %s minus %s) takes %s ms against %s ms (%.2f×).\n",
				label(s, sp[1]), ms(a0.MedianNs), ms(r0.MedianNs), label(s, sp[3]), float64(a0.MedianNs)/float64(r0.MedianNs),
				label(s, sp[0]), label(s, sp[2]), label(s, sp[3]), ms(da), ms(dr), float64(da)/float64(dr))
		}
		for _, pf := range s.perFault {
			a, c := res[pf[0]], res[pf[1]]
			if a == nil || c == nil || c.Faults <= a.Faults {
				continue
			}
			us := float64(c.CPUNs-a.CPUNs) / float64(c.Faults-a.Faults) / 1e3
			fmt.Fprintf(&b, "\n%s takes %.2f ms more CPU than %s and has %d more page faults: were the faults all of it, "+
				"each would cost %.0f µs (on bare metal about 1 µs or less). Where faults are this dear, a process costs "+
				"what it touches, and the page-fault column explains most differences.\n",
				label(s, pf[1]), float64(c.CPUNs-a.CPUNs)/1e6, label(s, pf[0]), c.Faults-a.Faults, us)
		}
	}

	var h strings.Builder
	h.WriteString("# Benchmark results\n\nWritten by `make bench` (internal/bench/run.sh); do not edit by hand.\n" +
		"Whole-process wall times measured by internal/bench/spawn: fork+exec with the domain XML written into a stdin pipe (as libvirtd does), no shell, " +
		"every case interleaved round-robin with its references in the same run.\n\n")
	fmt.Fprintf(&h, "**%d of %d targets hold.**", pass, total)
	if len(summary) > 0 {
		h.WriteString(" Failing:\n\n")
		for _, s := range summary {
			fmt.Fprintf(&h, "- %s\n", s)
		}
	} else {
		h.WriteString("\n")
	}
	h.WriteString("\n## Machine\n\n| | |\n|---|---|\n")
	for _, m := range meta {
		k, v, _ := strings.Cut(m, "=")
		fmt.Fprintf(&h, "| %s | %s |\n", k, v)
	}
	for _, o := range runs {
		fmt.Fprintf(&h, "| run %s | %d runs per case after %d warm-up, %s to %s |\n", baseName(o.file), o.Runs, o.Warmup, o.Start, o.End)
	}
	h.WriteString(b.String())
	h.WriteString("\nmedian and p90 are wall times; CPU is the median user+system time of the process(es), " +
		"less sensitive than wall time to other jobs on the machine; page faults is the median of the processes' " +
		"minor faults (rusage), which does not depend on the machine's load at all. Ratios are of medians.\n")
	h.WriteString("\n¹ Peak RSS comes from wait4's rusage. Go starts children with vfork semantics (CLONE_VM), and Linux " +
		"records in a child's ru_maxrss the peak RSS of the memory it leaves at execve, so no figure can be below " +
		"the spawner's own peak; \"≤\" marks those.\n")
	return h.String(), pass, total
}

func baseName(p string) string {
	p = p[strings.LastIndexByte(p, '/')+1:]
	return strings.TrimSuffix(p, ".json")
}

// labels maps case names to their row labels, across sections.
var labels = map[string]string{}

func label(_ *section, name string) string {
	if l, ok := labels[name]; ok {
		return l
	}
	return name
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// check evaluates one target for c and describes it.
func check(t string, c *result, res map[string]*result, s *section) (string, bool, error) {
	k, v, ok := strings.Cut(t, "<=")
	if !ok {
		return "", false, fmt.Errorf("not KEY<=VALUE")
	}
	switch k {
	case "ms":
		lim, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", false, err
		}
		got := float64(c.MedianNs) / 1e6
		return fmt.Sprintf("≤ %g ms (%.2f)", lim, got), got <= lim, nil
	case "rssmib":
		lim, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", false, err
		}
		got := float64(c.MaxRSSKiB) / 1024
		return fmt.Sprintf("≤ %g MiB RSS (%.1f)", lim, got), got <= lim, nil
	case "alloc":
		ref := res[v]
		if ref == nil || ref.Stat == "" || c.Stat == "" {
			return "", false, fmt.Errorf("no allocation measured")
		}
		return fmt.Sprintf("allocates ≤ %s (%s vs %s)", label(s, v), size(c.Alloc), size(ref.Alloc)), c.Alloc <= ref.Alloc && c.Size == ref.Size, nil
	}
	ref := res[k]
	if ref == nil || ref.MedianNs == 0 {
		return "", false, fmt.Errorf("reference %s not measured", k)
	}
	lim, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return "", false, err
	}
	got := float64(c.MedianNs) / float64(ref.MedianNs)
	return fmt.Sprintf("≤ %g× %s (%.2f×)", lim, label(s, k), got), got <= lim, nil
}
