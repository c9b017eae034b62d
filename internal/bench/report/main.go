// Command report turns spawn's JSON results (and virshstart's, when the
// real-libvirt part ran) into internal/bench/results.md: the machine, the
// budgets of issue #14 with the figures measured against them, and one
// table per section with medians, p90, peak RSS and ratios to the
// references measured in the same run. Budgets are reported, never
// enforced: report exits 0 whatever the figures.
//
// Usage: report -spec FILE -o results.md [-meta KEY=VALUE]... [-virsh FILE.json | -virsh-skipped WHY] RESULTS.json...
//
// The spec is line-oriented ('#' starts a comment):
//
//	section|TITLE|REF[,REF...]   a new table, with a ratio column per REF
//	row|CASE|LABEL|BUDGETS       BUDGETS: comma-separated, empty = none
//	note|TEXT                    a paragraph under the current table
//
// Budgets: REF<=X (ratio of medians to REF's), ms<=X (median),
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
	budgets     []string
}

type section struct {
	title string
	refs  []string
	rows  []row
	notes []string
}

// budget is one line of the budgets table.
type budget struct{ what, budget, measured, verdict string }

type metas []string

func (m *metas) String() string     { return strings.Join(*m, ",") }
func (m *metas) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	spec := flag.String("spec", "", "table spec `FILE`")
	out := flag.String("o", "results.md", "markdown `FILE` to write")
	var meta metas
	flag.Var(&meta, "meta", "`KEY=VALUE` for the machine table (repeatable, in order)")
	virshFile := flag.String("virsh", "", "virshstart's results `FILE.json`")
	virshSkipped := flag.String("virsh-skipped", "", "`why` the real-libvirt part did not run")
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
	var vs *virshOutput
	if *virshFile != "" {
		vs = &virshOutput{}
		data, err := os.ReadFile(*virshFile)
		if err == nil {
			err = json.Unmarshal(data, vs)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", *virshFile, err))
		}
	}
	md := render(sections, res, runs, meta, vs, *virshSkipped)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("wrote %s\n", *out)
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
				r.budgets = strings.Split(p[3], ",")
			}
			secs[len(secs)-1].rows = append(secs[len(secs)-1].rows, r)
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

func render(secs []*section, res map[string]*result, runs []output, meta []string, vs *virshOutput, virshSkipped string) string {
	var b strings.Builder
	var budgets []budget
	for _, s := range secs {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		hasAlloc, hasBudget := false, false
		for _, r := range s.rows {
			if c := res[r.name]; c != nil && c.Stat != "" {
				hasAlloc = true
			}
			hasBudget = hasBudget || len(r.budgets) > 0
		}
		b.WriteString("| case | median ms | p90 ms | CPU ms | page faults | max RSS MiB |")
		sep := "|---|---:|---:|---:|---:|---:|"
		if hasAlloc {
			b.WriteString(" allocated |")
			sep += "---:|"
		}
		for _, ref := range s.refs {
			fmt.Fprintf(&b, " × %s |", label(ref))
			sep += "---:|"
		}
		if hasBudget {
			b.WriteString(" budget (issue #14) |")
			sep += "---|"
		}
		b.WriteString("\n" + sep + "\n")
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
			if hasBudget {
				var ds []string
				for _, t := range r.budgets {
					bu, err := measure(t, c, res)
					if err != nil {
						bu = budget{budget: t, measured: err.Error(), verdict: "not measured"}
					}
					bu.what = r.label
					budgets = append(budgets, bu)
					ds = append(ds, bu.budget+": "+bu.measured)
				}
				if len(ds) == 0 {
					ds = []string{"–"}
				}
				fmt.Fprintf(&b, " %s |", strings.Join(ds, "; "))
			}
			b.WriteString("\n")
		}
		for _, n := range s.notes {
			fmt.Fprintf(&b, "\n%s\n", n)
		}
	}
	budgets = append(budgets, renderVirsh(&b, vs, virshSkipped)...)

	var h strings.Builder
	h.WriteString("# Benchmark results\n\nWritten by `make bench` (internal/bench/run.sh); do not edit by hand.\n" +
		"Whole-process wall times measured by internal/bench/spawn: fork+exec with the domain XML written into a stdin pipe (as libvirtd does), no shell, " +
		"every case interleaved round-robin with its references in the same run; and, as root, `virsh start --paused` + `virsh destroy` " +
		"of a UEFI guest on a real libvirtd with and without the hook (internal/bench/virshstart).\n")
	h.WriteString("\n## Budgets of issue #14\n\nReported, not enforced: `make bench` measures and writes these figures; no test or run fails on them.\n\n" +
		"| case | budget | measured | |\n|---|---|---|---|\n")
	for _, bu := range budgets {
		fmt.Fprintf(&h, "| %s | %s | %s | %s |\n", bu.what, bu.budget, bu.measured, bu.verdict)
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
	return h.String()
}

// virshOutput is what internal/bench/virshstart writes.
type virshOutput struct {
	Libvirt    string `json:"libvirt"`
	DomainType string `json:"domain_type"`
	Blocks     int    `json:"blocks"`
	PerKind    int    `json:"starts_per_kind_per_block"`
	Begin      string `json:"begin"`
	End        string `json:"end"`
	Created    int    `json:"hook_created"`
	Series     []struct {
		Hook    bool       `json:"hook"`
		Kind    string     `json:"kind"`
		Start   virshStats `json:"start"`
		Destroy virshStats `json:"destroy"`
	} `json:"series"`
}

type virshStats struct {
	N        int     `json:"n"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	MeanMs   float64 `json:"mean_ms"`
	MinMs    float64 `json:"min_ms"`
}

// renderVirsh writes the real-libvirt section and returns its budgets:
// the hook adds at most 5 % to a warm start and 10 % to a first start.
func renderVirsh(b *strings.Builder, vs *virshOutput, skipped string) []budget {
	b.WriteString("\n## virsh start --paused + virsh destroy of a UEFI guest on a real libvirtd\n\n")
	if vs == nil {
		if skipped == "" {
			skipped = "not run"
		}
		fmt.Fprintf(b, "Not measured: %s.\n", skipped)
		return []budget{
			{"warm start (varstore exists)", "hook adds ≤ 5 %", "not measured", ""},
			{"first start (varstore created)", "hook adds ≤ 10 %", "not measured", ""},
		}
	}
	fmt.Fprintf(b, "libvirt %s, domain type %s, %d alternating blocks (the 1st, 3rd, ... with the hook in qemu.d/, the others without), "+
		"each with %d warm and %d first starts interleaved, from %s to %s; the hook logged %d creations, one per first start with it. "+
		"Times are of the virsh processes, as a user waits for them.\n\n",
		vs.Libvirt, vs.DomainType, vs.Blocks, vs.PerKind, vs.PerKind, vs.Begin, vs.End, vs.Created)
	b.WriteString("| start | hook | n | start median ms | p90 ms | mean ms | min ms | destroy median ms | hook adds (medians) | hook adds (means) |\n" +
		"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var out []budget
	for _, kind := range []string{"warm", "first"} {
		var without, with *virshStats
		for i := range vs.Series {
			s := &vs.Series[i]
			if s.Kind != kind {
				continue
			}
			if s.Hook {
				with = &s.Start
			} else {
				without = &s.Start
			}
			addMed, addMean := "", ""
			if s.Hook && without != nil && without.MedianMs > 0 {
				addMed = fmt.Sprintf("%+.1f %%", 100*(s.Start.MedianMs/without.MedianMs-1))
				addMean = fmt.Sprintf("%+.1f %%", 100*(s.Start.MeanMs/without.MeanMs-1))
			}
			hook := "without"
			if s.Hook {
				hook = "with"
			}
			fmt.Fprintf(b, "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n",
				kind, hook, s.Start.N, s.Start.MedianMs, s.Start.P90Ms, s.Start.MeanMs, s.Start.MinMs, s.Destroy.MedianMs, addMed, addMean)
		}
		what, lim := "warm start (varstore exists)", 5.0
		if kind == "first" {
			what, lim = "first start (varstore created)", 10.0
		}
		bu := budget{what: what, budget: fmt.Sprintf("hook adds ≤ %g %%", lim), measured: "not measured"}
		if with != nil && without != nil && without.MedianMs > 0 {
			add := 100 * (with.MedianMs/without.MedianMs - 1)
			bu.measured = fmt.Sprintf("%+.1f %% (%.1f ms with, %.1f ms without; medians)", add, with.MedianMs, without.MedianMs)
			bu.verdict = verdict(add <= lim)
		}
		out = append(out, bu)
	}
	b.WriteString("\nA warm start is every start of a guest but its first: the hook's prepare finds the varstore and exits. " +
		"A first start has no varstore: with the hook, the hook creates it from the template in prepare; without it, libvirt " +
		"creates it itself from the same template (`<nvram template=...>` in the XML). Blocks without the hook have no entry " +
		"in qemu.d/ (libvirtd lists the empty directory); the daemon is not restarted between blocks.\n")
	return out
}

func verdict(within bool) string {
	if within {
		return "within"
	}
	return "over"
}

func baseName(p string) string {
	p = p[strings.LastIndexByte(p, '/')+1:]
	return strings.TrimSuffix(p, ".json")
}

// labels maps case names to their row labels, across sections.
var labels = map[string]string{}

func label(name string) string {
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

// measure evaluates one budget for c.
func measure(t string, c *result, res map[string]*result) (budget, error) {
	k, v, ok := strings.Cut(t, "<=")
	if !ok {
		return budget{}, fmt.Errorf("not KEY<=VALUE")
	}
	switch k {
	case "ms":
		lim, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return budget{}, err
		}
		got := float64(c.MedianNs) / 1e6
		return budget{budget: fmt.Sprintf("≤ %g ms", lim), measured: fmt.Sprintf("%.2f ms", got), verdict: verdict(got <= lim)}, nil
	case "rssmib":
		lim, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return budget{}, err
		}
		got := float64(c.MaxRSSKiB) / 1024
		return budget{budget: fmt.Sprintf("≤ %g MiB peak RSS", lim), measured: fmt.Sprintf("%.1f MiB", got), verdict: verdict(got <= lim)}, nil
	case "alloc":
		ref := res[v]
		if ref == nil || ref.Stat == "" || c.Stat == "" {
			return budget{}, fmt.Errorf("no allocation measured")
		}
		return budget{budget: "allocates ≤ " + label(v), measured: fmt.Sprintf("%s vs %s", size(c.Alloc), size(ref.Alloc)),
			verdict: verdict(c.Alloc <= ref.Alloc && c.Size == ref.Size)}, nil
	}
	ref := res[k]
	if ref == nil || ref.MedianNs == 0 {
		return budget{}, fmt.Errorf("reference %s not measured", k)
	}
	lim, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return budget{}, err
	}
	got := float64(c.MedianNs) / float64(ref.MedianNs)
	return budget{budget: fmt.Sprintf("≤ %g× %s", lim, label(k)), measured: fmt.Sprintf("%.2f×", got), verdict: verdict(got <= lim)}, nil
}
