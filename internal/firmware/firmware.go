// Package firmware finds the varstore template of a firmware binary. The
// template is a property of the firmware, not of the VM, so it is looked up
// by the loader path in an ordered list of sources: the domain XML's own
// template=, the hook's config, QEMU firmware descriptors, qemu.conf's
// nvram list (which libvirt ignores once any descriptor exists; we do not),
// and a built-in table of distributions' firmware layouts.
package firmware

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/qemuconf"
)

// Source names where a template came from; it is logged with every result.
type Source string

// The sources, in lookup order.
const (
	FromDomain     Source = "domain XML"
	FromConfig     Source = "hook config"
	FromDescriptor Source = "firmware descriptor"
	FromQemuConf   Source = "qemu.conf"
	FromTable      Source = "built-in table"
)

// Pair maps a firmware binary to its template. Origin says where exactly
// it was declared ("/etc/libvirt/nvram-hook.conf:12", a descriptor file).
// Descriptor is set for pairs read from a firmware descriptor: only those
// are matched against the domain's architecture, machine and features.
// Facts says what is known of the firmware and its template (the built-in
// table knows them for its entries).
type Pair struct {
	Code       string
	Vars       string
	Source     Source
	Origin     string
	Descriptor *Descriptor
	Facts      Facts
}

// Query is what the domain says about the firmware it wants.
type Query struct {
	Loader   string
	Template string // the domain's own template=, wins over everything

	Arch, Machine string
	// Features holds <os><firmware><feature> requests: name -> enabled.
	Features     map[string]bool
	LoaderSecure string // <loader secure=...>: "yes", "no" or ""
	SMMOff       bool
	LoaderFormat string
	NVRAMFormat  string
}

// Hit is a found template.
type Hit struct {
	Template string
	Source   Source
	Origin   string
	// Resolved is set when the loader matched only after resolving
	// symlinks on both sides, not by its literal path.
	Resolved bool
}

// NotFoundError lists every source consulted, and every descriptor that
// named the loader but did not fit the domain, so that the one line the
// user sees says where to add the missing mapping.
type NotFoundError struct {
	Loader    string
	Consulted []string
	Rejected  []string
}

func (e *NotFoundError) Error() string {
	s := fmt.Sprintf("no varstore template for loader %s (looked in: %s)", e.Loader, strings.Join(e.Consulted, ", "))
	if len(e.Rejected) > 0 {
		s += "; not matching the domain: " + strings.Join(e.Rejected, "; ")
	}
	return s
}

// Catalog is an ordered list of pairs from the config, descriptors,
// qemu.conf and the built-in table, plus the names of the sources that were
// consulted to build it.
type Catalog struct {
	Pairs     []Pair
	Consulted []string
	// Problems are sources that could not be read (a broken descriptor, an
	// unparsable qemu.conf): they are skipped, logged and shown by check.
	Problems []error
}

// fileID identifies a file whatever path (symlink, hard link) reaches it.
// The zero value means "no such file".
type fileID struct {
	dev, ino uint64
	regular  bool
}

// Find returns the template for the query's loader. The domain's own
// template= wins over everything. Within the catalog, sources keep their
// order; in each source a literal path match is preferred to a match after
// resolving symlinks, which is how Debian's OVMF_CODE_4M.ms.fd (a symlink)
// and OVMF_CODE_4M.secboot.fd (its target) keep their different templates.
// Descriptors must also fit the domain as libvirt requires (architecture,
// machine type, secure boot, enrolled keys, SMM, formats).
func (c *Catalog) Find(q Query) (Hit, error) {
	if q.Template != "" {
		return Hit{Template: q.Template, Source: FromDomain, Origin: "template="}, nil
	}
	cand, rejected := c.match(q)
	if cand != nil {
		return Hit{Template: cand.Vars, Source: cand.Source, Origin: cand.Origin, Resolved: cand.Resolved}, nil
	}
	return Hit{}, &NotFoundError{Loader: q.Loader, Consulted: append([]string{string(FromDomain)}, c.Consulted...), Rejected: rejected}
}

// Layout returns the pair that tells the loader's flash layout: the first
// descriptor fitting the domain, else the first built-in table entry, for
// the loader. Config and qemu.conf entries are what is being checked, so
// they do not count.
func (c *Catalog) Layout(q Query) (Pair, bool) {
	for _, src := range []Source{FromDescriptor, FromTable} {
		sub := &Catalog{}
		for _, p := range c.Pairs {
			if p.Source == src {
				sub.Pairs = append(sub.Pairs, p)
			}
		}
		if cand, _ := sub.match(q); cand != nil {
			return cand.Pair, true
		}
	}
	return Pair{}, false
}

// Candidate is a catalog entry that names the loader, in lookup order,
// with the reason it does not fit the domain ("" when it does).
type Candidate struct {
	Pair
	Resolved bool
	Why      string
}

// Candidates lists, in lookup order, every entry naming q's loader: per
// source, literal path matches first, then matches after resolving
// symlinks. The first without a Why is the one Find picks.
func (c *Catalog) Candidates(q Query) []Candidate {
	var out []Candidate
	c.each(q, func(cand Candidate) bool {
		out = append(out, cand)
		return true
	})
	return out
}

// each walks the candidates in Candidates' order until yield returns
// false. Two paths name the same loader when they reach the same file
// (device and inode after following symlinks, so hard links count too).
func (c *Catalog) each(q Query, yield func(Candidate) bool) {
	var loaderID fileID
	loaderDone := false
	for start := 0; start < len(c.Pairs); {
		end := start
		for end < len(c.Pairs) && c.Pairs[end].Source == c.Pairs[start].Source {
			end++
		}
		group := c.Pairs[start:end]
		start = end
		for _, literal := range []bool{true, false} {
			for _, p := range group {
				if literal != (p.Code == q.Loader) {
					continue
				}
				if !literal {
					if !loaderDone {
						loaderID, loaderDone = identity(q.Loader), true
					}
					if loaderID == (fileID{}) || identity(p.Code) != loaderID {
						continue
					}
				}
				cand := Candidate{Pair: p, Resolved: !literal}
				if p.Descriptor != nil {
					cand.Why = p.Descriptor.Mismatch(q)
				}
				if !yield(cand) {
					return
				}
			}
		}
	}
}

// identity returns the file p names, following symlinks.
func identity(p string) fileID {
	var id fileID
	if fi, err := os.Stat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id = fileID{dev: uint64(st.Dev), ino: st.Ino, regular: fi.Mode().IsRegular()}
		}
	}
	return id
}

// match returns the first fitting candidate and the reasons of those
// rejected before it.
func (c *Catalog) match(q Query) (*Candidate, []string) {
	var found *Candidate
	var rejected []string
	c.each(q, func(cand Candidate) bool {
		if cand.Why == "" {
			found = &cand
			return false
		}
		rejected = append(rejected, filepath.Base(cand.Origin)+": "+cand.Why)
		return true
	})
	return found, rejected
}

// Sources says where to look. Empty fields switch a source off.
type Sources struct {
	ConfigPath     string // named in the consulted list
	ConfigPairs    []Pair
	DescriptorDirs []string
	QemuConf       string
	Table          []TableEntry
	// TableRoot prefixes the table's paths: "" on a real host, a fake
	// distribution tree in tests.
	TableRoot string
}

// Load reads every source, in lookup order. Unreadable sources become
// Problems, not errors: one broken descriptor must not stop a VM whose
// template another source knows.
func Load(s Sources) *Catalog {
	c := &Catalog{}
	c.loadConfig(s)
	c.loadDescriptors(s)
	c.loadQemuConf(s)
	c.loadTable(s)
	return c
}

func (c *Catalog) loadConfig(s Sources) {
	if s.ConfigPath != "" {
		c.Consulted = append(c.Consulted, s.ConfigPath)
	}
	for _, p := range s.ConfigPairs {
		p.Source = FromConfig
		c.Pairs = append(c.Pairs, p)
	}
}

func (c *Catalog) loadDescriptors(s Sources) {
	if len(s.DescriptorDirs) == 0 {
		return
	}
	files, err := DescriptorFiles(s.DescriptorDirs)
	if err != nil {
		c.Problems = append(c.Problems, err)
	}
	for _, f := range files {
		d, err := ReadDescriptor(f)
		if err != nil {
			c.Problems = append(c.Problems, err)
			continue
		}
		if d.SplitFlash() {
			c.Pairs = append(c.Pairs, Pair{Code: d.Executable, Vars: d.Template, Source: FromDescriptor, Origin: f, Descriptor: d, Facts: descriptorFacts(d, s)})
		}
	}
	c.Consulted = append(c.Consulted, fmt.Sprintf("%d firmware descriptors", len(files)))
}

func (c *Catalog) loadQemuConf(s Sources) {
	if s.QemuConf == "" {
		return
	}
	q, err := qemuconf.Load(s.QemuConf)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.Consulted = append(c.Consulted, s.QemuConf+" (absent)")
	case err != nil:
		c.Problems = append(c.Problems, err)
		c.Consulted = append(c.Consulted, s.QemuConf+" (unreadable)")
	default:
		for _, p := range q.NVRAM {
			c.Pairs = append(c.Pairs, Pair{Code: p.Code, Vars: p.Vars, Source: FromQemuConf, Origin: fmt.Sprintf("%s:%d", s.QemuConf, p.Line)})
		}
		c.Consulted = append(c.Consulted, s.QemuConf)
	}
}

func (c *Catalog) loadTable(s Sources) {
	if len(s.Table) == 0 {
		return
	}
	n := 0
	for _, e := range s.Table {
		code, vars := s.TableRoot+e.Code, s.TableRoot+e.Vars
		if identity(code).regular && identity(vars).regular {
			c.Pairs = append(c.Pairs, Pair{Code: code, Vars: vars, Source: FromTable, Origin: e.Distro + " " + e.Arch, Facts: localSizes(e.Facts, code, vars)})
			n++
		}
	}
	c.Consulted = append(c.Consulted, fmt.Sprintf("built-in table (%d pairs present)", n))
}

// descriptorFacts completes what a descriptor declares with what the
// table knows of the same CODE/VARS pair (which keys the template holds),
// and with the sizes of the files on this host.
func descriptorFacts(d *Descriptor, s Sources) Facts {
	f := d.Facts()
	for _, e := range s.Table {
		if s.TableRoot+e.Code != d.Executable || s.TableRoot+e.Vars != d.Template || e.Arch != f.Arch {
			continue
		}
		if e.SecureBoot == f.SecureBoot && e.SMM == f.SMM && (f.Keys == "" || f.Keys == e.Keys) {
			f.Keys = e.Keys
		}
		break
	}
	return localSizes(f, d.Executable, d.Template)
}

// localSizes sets the sizes of raw files that exist on this host: they
// are the flash layout this host has, whatever the table says.
func localSizes(f Facts, code, vars string) Facts {
	if f.Format != "" && f.Format != "raw" {
		return f
	}
	if fi, err := os.Stat(code); err == nil && fi.Mode().IsRegular() {
		f.CodeSize = fi.Size()
	}
	if fi, err := os.Stat(vars); err == nil && fi.Mode().IsRegular() {
		f.VarsSize = fi.Size()
	}
	return f
}
