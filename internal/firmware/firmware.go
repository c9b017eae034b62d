// Package firmware finds the varstore template of a firmware binary. The
// template is a property of the firmware, not of the VM, so it is looked up
// by the loader path in an ordered list of sources: the domain XML's own
// template=, the hook's config, QEMU firmware descriptors, qemu.conf's
// nvram list (which libvirt ignores once any descriptor exists; we do not),
// and a built-in table of distributions' firmware layouts. Every entry
// carries what it promises a guest (Facts): one Lookup serves prepare,
// the filters, explain, check and audit; Translate replaces an absent
// loader only by firmware that promises the same; LookupVarstore finds
// the JSON templates of uefi-vars varstores of rom loaders.
//
// Limits: facts of Fedora, Arch and openSUSE entries are what their names
// make certain, not checked against packages; a descriptor names only
// whether keys are enrolled, the table says which.
package firmware

import (
	"errors"
	"fmt"
	"os"
	"strings"

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
// Descriptor is set for pairs read from a firmware descriptor, which are
// matched against the domain as libvirt matches them; table entries are
// matched through their Facts, what is known of the firmware and its
// template; the user's own entries (config, qemu.conf) fit any domain.
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

// NotFoundError lists every source consulted, and every entry that named
// the loader but did not fit the domain, so that the one line the
// user sees says where to add the missing mapping.
type NotFoundError struct {
	Loader    string
	Consulted []string
	Rejected  []string
	// UEFIVars: the domain wants a uefi-vars <varstore> (a JSON file) for
	// a rom loader, not a pflash NVRAM.
	UEFIVars bool
}

func (e *NotFoundError) Error() string {
	what := "varstore template for loader"
	if e.UEFIVars {
		what = "uefi-vars JSON varstore template for rom loader"
	}
	s := fmt.Sprintf("no %s %s (looked in: %s)", what, e.Loader, strings.Join(e.Consulted, ", "))
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
	// VarsPairs map rom loaders to the JSON templates of uefi-vars
	// varstores (<varstore>, libvirt 12.1+), from the config and
	// descriptors with host-uefi-vars; VarsConsulted names those sources.
	// No distribution ships such a build yet, so the built-in table and
	// qemu.conf (which has no such list) add nothing.
	VarsPairs     []Pair
	VarsConsulted []string
	// Problems are sources that could not be read (a broken descriptor, an
	// unparsable qemu.conf): they are skipped, logged and shown by check.
	Problems []error
	// QemuConfNVRAM: qemu.conf sets nvram (even to an empty list), which
	// replaces the loader:nvram list compiled into libvirt.
	QemuConfNVRAM bool

	// sources is what the catalog was loaded from: Translate looks up the
	// facts of loaders this host does not have in the whole table.
	sources Sources
}

// Sources says where to look. Empty fields switch a source off.
type Sources struct {
	ConfigPath  string // named in the consulted list
	ConfigPairs []Pair
	// VarstorePairs are the config's varstore = ROM:TEMPLATE pairs.
	VarstorePairs  []Pair
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
	c := &Catalog{sources: s}
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
	if s.ConfigPath != "" {
		c.VarsConsulted = append(c.VarsConsulted, s.ConfigPath)
	}
	for _, p := range s.VarstorePairs {
		p.Source = FromConfig
		c.VarsPairs = append(c.VarsPairs, p)
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
	for _, file := range files {
		d, err := ReadDescriptor(file)
		if err != nil {
			c.Problems = append(c.Problems, err)
			continue
		}
		switch {
		case d.SplitFlash():
			c.Pairs = append(c.Pairs, Pair{Code: d.Executable, Vars: d.Template, Source: FromDescriptor, Origin: file, Descriptor: d, Facts: descriptorFacts(d, s)})
		case d.UEFIVars():
			f := d.Facts()
			f.Format = "json"
			c.VarsPairs = append(c.VarsPairs, Pair{Code: d.Executable, Vars: d.VarsTemplate, Source: FromDescriptor, Origin: file, Descriptor: d, Facts: f})
		}
	}
	c.Consulted = append(c.Consulted, fmt.Sprintf("%d firmware descriptors", len(files)))
	c.VarsConsulted = append(c.VarsConsulted, fmt.Sprintf("%d firmware descriptors", len(files)))
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
		c.QemuConfNVRAM = q.NVRAMSet
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
// table knows of the same CODE/VARS pair (which keys the template holds,
// the sizes), and with the sizes of the files on this host.
func descriptorFacts(d *Descriptor, s Sources) Facts {
	f := d.Facts()
	for _, e := range s.Table {
		if s.TableRoot+e.Code != d.Executable || s.TableRoot+e.Vars != d.Template || e.Arch != f.Arch {
			continue
		}
		if e.SecureBoot == f.SecureBoot && e.SMM == f.SMM && (f.Keys == "" || f.Keys == e.Keys) {
			f.Keys, f.CodeSize, f.VarsSize = e.Keys, e.CodeSize, e.VarsSize
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
