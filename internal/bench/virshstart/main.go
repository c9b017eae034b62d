// Command virshstart times what a user feels of the hook: `virsh start
// --paused` and then `virsh destroy` of a UEFI guest on a real libvirtd,
// with the hook installed and without it, in alternating blocks. Each block
// interleaves warm starts (the varstore exists: every start but a guest's
// first) and first starts (the varstore is removed before the start, so the
// hook, or without it libvirt, creates it from the template).
//
//	virshstart -uri URI -domain NAME -nvram PATH -entry PATH -hook BIN \
//	    -log FILE [-blocks N] [-n N] [-o FILE.json]
//
// -entry is the hook's place in /etc/libvirt/hooks/qemu.d; a block with the
// hook links it to BIN, a block without removes it. -log is the hook's log
// file (its config's [log] target): every first start with the hook must
// add one "action=created" line for the domain, every start without it
// none, or the run fails: the figures are only worth something if the
// hook really ran, and only in its blocks. run.sh (via virsh.sh) sets up
// the daemon, the guest and the config and removes them afterwards.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Stats summarises one series of durations.
type Stats struct {
	N        int     `json:"n"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	MeanMs   float64 `json:"mean_ms"`
	MinMs    float64 `json:"min_ms"`
}

// Series is one (hook, kind) combination.
type Series struct {
	Hook    bool    `json:"hook"`
	Kind    string  `json:"kind"` // "warm" or "first"
	Start   Stats   `json:"start"`
	Destroy Stats   `json:"destroy"`
	StartUs []int64 `json:"start_us"` // every sample, µs, in run order
}

// Output is what -o writes.
type Output struct {
	Libvirt    string   `json:"libvirt"`     // the daemon's version, as given
	DomainType string   `json:"domain_type"` // kvm or qemu, as given
	URI        string   `json:"uri"`
	Domain     string   `json:"domain"`
	Blocks     int      `json:"blocks"`
	PerKind    int      `json:"starts_per_kind_per_block"`
	Begin      string   `json:"begin"`
	End        string   `json:"end"`
	Series     []Series `json:"series"`
	Created    int      `json:"hook_created"` // action=created lines the hook logged
}

type sample struct {
	hook           bool
	kind           string
	start, destroy time.Duration
}

func main() {
	uri := flag.String("uri", "qemu:///system", "libvirt `URI`")
	domain := flag.String("domain", "", "defined, shut-off UEFI `guest`")
	nvram := flag.String("nvram", "", "the guest's varstore `path`")
	entry := flag.String("entry", "", "the hook's `path` in /etc/libvirt/hooks/qemu.d")
	hook := flag.String("hook", "", "the hook `binary`")
	logFile := flag.String("log", "", "the hook's log `file`")
	blocks := flag.Int("blocks", 6, "alternating blocks (half with the hook)")
	n := flag.Int("n", 5, "starts per kind (warm, first) per block")
	out := flag.String("o", "", "write results to `FILE.json`")
	libvirt := flag.String("libvirt", "", "the daemon's `version`, recorded with the figures")
	domType := flag.String("type", "", "the guest's domain `type`, recorded with the figures")
	flag.Parse()
	if *domain == "" || *nvram == "" || *entry == "" || *hook == "" || *logFile == "" || *blocks < 2 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	r := runner{uri: *uri, domain: *domain, nvram: *nvram, entry: *entry, hook: *hook, log: *logFile}
	o, err := r.run(*blocks, *n)
	o.Libvirt, o.DomainType = *libvirt, *domType
	if err != nil {
		fmt.Fprintln(os.Stderr, "virshstart:", err)
		os.Exit(1)
	}
	data, _ := json.MarshalIndent(o, "", "  ")
	if *out != "" {
		err = os.WriteFile(*out, append(data, '\n'), 0o644)
	} else {
		_, err = os.Stdout.Write(append(data, '\n'))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "virshstart:", err)
		os.Exit(1)
	}
}

type runner struct {
	uri, domain, nvram, entry, hook, log string
}

func (r runner) virsh(args ...string) error {
	cmd := exec.Command("virsh", append([]string{"-q", "-c", r.uri}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// setHook installs the hook entry (a symlink, renamed into place) or removes it.
func (r runner) setHook(on bool) error {
	if !on {
		if err := os.Remove(r.entry); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	// The temp link lives outside qemu.d/, where libvirt would run it.
	tmp := filepath.Join(filepath.Dir(filepath.Dir(r.entry)), ".virshstart-link")
	os.Remove(tmp)
	if err := os.Symlink(r.hook, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, r.entry)
}

// created counts the hook's "created varstore" lines for the domain.
func (r runner) created() (int, error) {
	b, err := os.ReadFile(r.log)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	c := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "action=created") && (strings.Contains(l, "domain="+r.domain+" ") || strings.Contains(l, `domain="`+r.domain+`"`)) {
			c++
		}
	}
	return c, nil
}

// once is one start and destroy, checked: the varstore exists after the
// start, and the hook logged a creation exactly when it should have.
func (r runner) once(hook bool, kind string) (sample, error) {
	s := sample{hook: hook, kind: kind}
	if kind == "first" {
		if err := os.Remove(r.nvram); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("first start: removing the varstore: %v", err)
		}
	} else if _, err := os.Stat(r.nvram); err != nil {
		return s, fmt.Errorf("warm start: %v", err)
	}
	before, err := r.created()
	if err != nil {
		return s, err
	}
	t0 := time.Now()
	if err := r.virsh("start", "--paused", r.domain); err != nil {
		return s, err
	}
	s.start = time.Since(t0)
	t1 := time.Now()
	if err := r.virsh("destroy", r.domain); err != nil {
		return s, err
	}
	s.destroy = time.Since(t1)
	if _, err := os.Stat(r.nvram); err != nil {
		return s, fmt.Errorf("after a %s start: %v", kind, err)
	}
	after, err := r.created()
	if err != nil {
		return s, err
	}
	want := 0
	if hook && kind == "first" {
		want = 1
	}
	if after-before != want {
		return s, fmt.Errorf("%s start with hook=%v: the hook logged %d creations in %s, want %d", kind, hook, after-before, r.log, want)
	}
	return s, nil
}

func (r runner) run(blocks, n int) (Output, error) {
	o := Output{URI: r.uri, Domain: r.domain, Blocks: blocks, PerKind: n, Begin: time.Now().UTC().Format(time.RFC3339)}
	defer r.setHook(false)
	// Warm-up, untimed: the first start after a daemon start or a hook
	// change pays for caches (QEMU capabilities, page cache of the firmware).
	for _, hook := range []bool{true, false} {
		if err := r.setHook(hook); err != nil {
			return o, err
		}
		for _, kind := range []string{"first", "warm"} {
			if _, err := r.once(hook, kind); err != nil {
				return o, fmt.Errorf("warm-up: %v", err)
			}
		}
	}
	var all []sample
	for b := 0; b < blocks; b++ {
		hook := b%2 == 0
		if err := r.setHook(hook); err != nil {
			return o, err
		}
		for i := 0; i < n; i++ {
			kinds := []string{"warm", "first"}
			if (i+b)%2 == 1 {
				kinds = []string{"first", "warm"}
			}
			for _, kind := range kinds {
				s, err := r.once(hook, kind)
				if err != nil {
					return o, fmt.Errorf("block %d: %v", b+1, err)
				}
				all = append(all, s)
				fmt.Fprintf(os.Stderr, "virshstart: block %d/%d hook=%v %-5s start %6.1f ms destroy %6.1f ms\n",
					b+1, blocks, hook, kind, ms(s.start), ms(s.destroy))
			}
		}
	}
	o.End = time.Now().UTC().Format(time.RFC3339)
	for _, hook := range []bool{false, true} {
		for _, kind := range []string{"warm", "first"} {
			var st, de []time.Duration
			ser := Series{Hook: hook, Kind: kind}
			for _, s := range all {
				if s.hook == hook && s.kind == kind {
					st = append(st, s.start)
					de = append(de, s.destroy)
					ser.StartUs = append(ser.StartUs, s.start.Microseconds())
				}
			}
			ser.Start, ser.Destroy = stats(st), stats(de)
			o.Series = append(o.Series, ser)
		}
	}
	c, err := r.created()
	o.Created = c
	return o, err
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func stats(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	p90 := s[min(len(s)-1, (len(s)*9+9)/10-1)]
	return Stats{N: len(s), MedianMs: ms(med), P90Ms: ms(p90), MeanMs: ms(sum / time.Duration(len(s))), MinMs: ms(s[0])}
}
