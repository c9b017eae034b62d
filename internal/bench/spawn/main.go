// Command spawn times whole processes the way libvirtd runs a hook: fork
// and exec with a file on stdin, no shell in between, and wait. It runs
// its cases round-robin (each round starting one case later) so that a
// case and its reference see the same machine, and prints, per case, the
// median and p90 wall time and the peak RSS from wait4's rusage.
//
// Usage:
//
//	spawn [-n RUNS] [-warmup RUNS] [-o FILE.json] CASE...
//
// Each CASE is one argument, split at white space:
//
//	NAME [stdin=FILE] [env=K=V]... [stat=PATH] [rm=PATH]... -- ARGV... [-- ARGV...]
//
// Several `-- ARGV` steps run one after the other and are timed together
// (cp, then sync). Like libvirtd (virCommandSetInputBuffer), the spawner
// writes the stdin file's content into a pipe while the process runs; the
// time ends when the process has exited and the write is done (a process
// that does not read gets EPIPE, as libvirt tolerates). Steps other than
// the first, and cases without stdin=, get /dev/null; stdout goes to
// /dev/null. Every process gets libvirt's hook
// environment, LC_ALL=C and a PATH, plus the case's env=. After each run,
// outside the timed part, stat= records the size and allocated blocks of
// PATH (which must exist) and rm= removes PATH, so that a case that creates
// a file creates it afresh every time. A step that exits non-zero stops
// everything with its stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type step struct {
	path string
	argv []string
}

type benchCase struct {
	Name  string   `json:"name"`
	Stdin string   `json:"stdin,omitempty"`
	Env   []string `json:"env,omitempty"`
	Stat  string   `json:"stat,omitempty"`
	Rm    []string `json:"rm,omitempty"`
	Steps []string `json:"steps"`

	steps                []step
	lastSize, lastBlocks int64
}

// Result is one case's figures; times in nanoseconds, memory in KiB.
type Result struct {
	benchCase
	Runs      int     `json:"runs"`
	MedianNs  int64   `json:"median_ns"`
	P90Ns     int64   `json:"p90_ns"`
	MinNs     int64   `json:"min_ns"`
	MeanNs    int64   `json:"mean_ns"`
	CPUNs     int64   `json:"median_cpu_ns"` // user+system time of the processes
	Faults    int64   `json:"median_minflt"` // minor page faults of the processes
	MaxRSSKiB int64   `json:"max_rss_kib"`
	MedRSSKiB int64   `json:"median_rss_kib"`
	Size      int64   `json:"size"`
	Blocks    int64   `json:"alloc_bytes"` // st_blocks*512 after the last run
	Samples   []int64 `json:"samples_ns"`  // in round order, for paired ratios
}

// Output is what -o receives.
type Output struct {
	Runs   int      `json:"runs"`
	Warmup int      `json:"warmup"`
	Start  string   `json:"start"`
	End    string   `json:"end"`
	Floor  int64    `json:"spawner_rss_kib"` // our own peak RSS: see rssFloor
	Cases  []Result `json:"cases"`
}

func main() {
	n := flag.Int("n", 100, "timed runs per case")
	warm := flag.Int("warmup", 10, "untimed runs per case first")
	out := flag.String("o", "", "write JSON results to `FILE`")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: spawn [-n RUNS] [-warmup RUNS] [-o FILE] 'NAME [stdin=F] [env=K=V] [stat=P] [rm=P] -- ARGV...'...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	var cases []*benchCase
	for _, a := range flag.Args() {
		c, err := parseCase(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			os.Exit(2)
		}
		cases = append(cases, c)
	}
	res, err := run(cases, *n, *warm)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
	print(os.Stdout, res)
	if *out != "" {
		data, _ := json.MarshalIndent(res, "", " ")
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			os.Exit(1)
		}
	}
}

func parseCase(s string) (*benchCase, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, errors.New("empty case")
	}
	c := &benchCase{Name: f[0]}
	i := 1
	for ; i < len(f) && f[i] != "--"; i++ {
		k, v, ok := strings.Cut(f[i], "=")
		switch {
		case !ok || v == "":
			return nil, fmt.Errorf("case %s: %q is not key=value", c.Name, f[i])
		case k == "stdin":
			c.Stdin = v
			if _, err := os.Stat(v); err != nil {
				return nil, fmt.Errorf("case %s: %w", c.Name, err)
			}
		case k == "env":
			c.Env = append(c.Env, v)
		case k == "stat":
			c.Stat = v
		case k == "rm":
			c.Rm = append(c.Rm, v)
		default:
			return nil, fmt.Errorf("case %s: unknown option %q", c.Name, k)
		}
	}
	for i < len(f) {
		i++ // the "--"
		j := i
		for j < len(f) && f[j] != "--" {
			j++
		}
		if j == i {
			return nil, fmt.Errorf("case %s: empty command after --", c.Name)
		}
		path, err := exec.LookPath(f[i])
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", c.Name, err)
		}
		c.steps = append(c.steps, step{path: path, argv: f[i:j]})
		c.Steps = append(c.Steps, strings.Join(f[i:j], " "))
		i = j
	}
	if len(c.steps) == 0 {
		return nil, fmt.Errorf("case %s: no command (NAME [options] -- ARGV...)", c.Name)
	}
	return c, nil
}

// baseEnv is what libvirtd passes a hook (virCommandAddEnvPassCommon).
var baseEnv = []string{"LC_ALL=C", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

type sample struct {
	wall   time.Duration
	cpu    time.Duration
	faults int64
	maxRSS int64
}

func run(cases []*benchCase, n, warm int) (*Output, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	errf, err := os.CreateTemp("", "spawn-stderr-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()

	out := &Output{Runs: n, Warmup: warm, Start: time.Now().Format(time.RFC3339)}
	samples := make([][]sample, len(cases))
	for round := 0; round < warm+n; round++ {
		for k := range cases {
			i := (round + k) % len(cases)
			s, err := once(cases[i], devnull, errf)
			if err != nil {
				return nil, err
			}
			if round >= warm {
				samples[i] = append(samples[i], s)
			}
		}
		// Our own garbage is collected between rounds, never while a
		// child runs.
		runtime.GC()
	}
	out.End = time.Now().Format(time.RFC3339)
	for i, c := range cases {
		r := Result{benchCase: *c, Runs: n}
		walls := make([]int64, 0, n)
		rss := make([]int64, 0, n)
		cpu := make([]int64, 0, n)
		faults := make([]int64, 0, n)
		var sum int64
		for _, s := range samples[i] {
			walls = append(walls, int64(s.wall))
			rss = append(rss, s.maxRSS)
			cpu = append(cpu, int64(s.cpu))
			faults = append(faults, s.faults)
			sum += int64(s.wall)
			r.MaxRSSKiB = max(r.MaxRSSKiB, s.maxRSS)
		}
		r.Samples = slices.Clone(walls)
		slices.Sort(walls)
		slices.Sort(rss)
		slices.Sort(cpu)
		r.CPUNs = quantile(cpu, 0.5)
		slices.Sort(faults)
		r.Faults = quantile(faults, 0.5)
		r.MedianNs = quantile(walls, 0.5)
		r.P90Ns = quantile(walls, 0.9)
		r.MinNs = walls[0]
		r.MeanNs = sum / int64(len(walls))
		r.MedRSSKiB = quantile(rss, 0.5)
		if c.Stat != "" {
			r.Size, r.Blocks = c.lastSize, c.lastBlocks
		}
		out.Cases = append(out.Cases, r)
	}
	out.Floor = selfRSS()
	return out, nil
}

// quantile of sorted xs, interpolating between neighbours.
func quantile(xs []int64, q float64) int64 {
	if len(xs) == 1 {
		return xs[0]
	}
	pos := q * float64(len(xs)-1)
	lo := int(pos)
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	frac := pos - float64(lo)
	return xs[lo] + int64(frac*float64(xs[lo+1]-xs[lo]))
}

// once runs every step of c; only the processes (and feeding the first
// one's stdin) are inside the timer.
func once(c *benchCase, devnull, errf *os.File) (sample, error) {
	env := append(slices.Clone(baseEnv), c.Env...)
	var pr, pw, in *os.File
	if c.Stdin != "" {
		var err error
		if in, err = os.Open(c.Stdin); err != nil {
			return sample{}, err
		}
		defer in.Close()
		if pr, pw, err = os.Pipe(); err != nil {
			return sample{}, err
		}
		defer pr.Close()
		defer pw.Close()
	}
	if err := errf.Truncate(0); err != nil {
		return sample{}, err
	}
	if _, err := errf.Seek(0, io.SeekStart); err != nil {
		return sample{}, err
	}
	var s sample
	states := make([]*os.ProcessState, len(c.steps))
	fed := make(chan struct{})
	t0 := time.Now()
	for i, st := range c.steps {
		stdin := devnull
		if i == 0 && pr != nil {
			stdin = pr
		}
		p, err := os.StartProcess(st.path, st.argv, &os.ProcAttr{Env: env, Files: []*os.File{stdin, devnull, errf}})
		if err != nil {
			return s, fmt.Errorf("case %s: %w", c.Name, err)
		}
		if i == 0 && pr != nil {
			pr.Close() // the child holds the read end now
			go func() {
				// A small buffer keeps our own RSS, which bounds every
				// child's ru_maxrss from below (see selfRSS), small.
				// EPIPE when the child does not read: fine.
				io.CopyBuffer(pw, onlyReader{in}, feedBuf)
				pw.Close()
				close(fed)
			}()
		}
		if states[i], err = p.Wait(); err != nil {
			return s, fmt.Errorf("case %s: %w", c.Name, err)
		}
		if !states[i].Success() {
			break
		}
	}
	if pr != nil {
		<-fed
	}
	s.wall = time.Since(t0)
	for i, ps := range states {
		if ps == nil {
			continue
		}
		if !ps.Success() {
			msg, _ := os.ReadFile(errf.Name())
			return s, fmt.Errorf("case %s: %s: %s\n%s", c.Name, c.Steps[i], ps, bytes.TrimSpace(msg))
		}
		s.cpu += ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.maxRSS = max(s.maxRSS, ru.Maxrss)
			s.faults += ru.Minflt
		}
	}
	if c.Stat != "" {
		var st syscall.Stat_t
		if err := syscall.Lstat(c.Stat, &st); err != nil {
			return s, fmt.Errorf("case %s: after the run: %w", c.Name, err)
		}
		c.lastSize, c.lastBlocks = st.Size, st.Blocks*512
	}
	for _, p := range c.Rm {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("case %s: %w", c.Name, err)
		}
	}
	return s, nil
}

// feedBuf is the one buffer that feeds every child's stdin.
var feedBuf = make([]byte, 64<<10)

// onlyReader hides the file's WriteTo, so that io.CopyBuffer copies
// through feedBuf with plain reads and writes, as libvirt's event loop does.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// selfRSS is our own peak RSS. Go starts children with clone(CLONE_VM|
// CLONE_VFORK), and Linux records the peak RSS of the memory a process
// leaves at execve in its ru_maxrss: a child's max RSS is therefore never
// below the spawner's own peak. Reported so that small figures are read
// as "at most this".
func selfRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss
}

func print(w io.Writer, o *Output) {
	fmt.Fprintf(w, "%-28s %10s %10s %10s %10s %7s %9s\n", "case", "median", "p90", "min", "cpu", "faults", "maxRSS")
	for _, r := range o.Cases {
		fmt.Fprintf(w, "%-28s %10s %10s %10s %10s %7d %7dKi\n", r.Name, dur(r.MedianNs), dur(r.P90Ns), dur(r.MinNs), dur(r.CPUNs), r.Faults, r.MaxRSSKiB)
	}
	fmt.Fprintf(w, "(%d runs per case after %d warm-up; spawner peak RSS %d KiB)\n", o.Runs, o.Warmup, o.Floor)
}

func dur(ns int64) string {
	return fmt.Sprintf("%.3fms", float64(ns)/1e6)
}
