// Package firmware finds the varstore template of a firmware binary. The
// template is a property of the firmware, not of the VM, so it is looked up
// by the loader path in an ordered list of sources: the domain XML's own
// template=, the hook's config, QEMU firmware descriptors, and qemu.conf's
// nvram list (which libvirt ignores once any descriptor exists; we do not).
package firmware

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
)

// Pair maps a firmware binary to its template. Origin says where exactly
// it was declared ("/etc/libvirt/nvram-hook.conf:12", a descriptor file).
type Pair struct {
	Code   string
	Vars   string
	Source Source
	Origin string
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

// NotFoundError lists every source consulted, so that the one line the
// user sees says where to add the missing mapping.
type NotFoundError struct {
	Loader    string
	Consulted []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no varstore template for loader %s (looked in: %s)", e.Loader, strings.Join(e.Consulted, ", "))
}

// Catalog is an ordered list of pairs from the config, descriptors and
// qemu.conf, plus the names of the sources that were consulted to build it.
type Catalog struct {
	Pairs     []Pair
	Consulted []string
	// Problems are sources that could not be read (a broken descriptor, an
	// unparsable qemu.conf): they are skipped, logged and shown by check.
	Problems []error
}

// Find returns the template for loader. xmlTemplate, the domain's own
// template=, wins over everything. Within the catalog, sources keep their
// order; in each source a literal path match is preferred to a match after
// resolving symlinks, which is how Debian's OVMF_CODE_4M.ms.fd (a symlink)
// and OVMF_CODE_4M.secboot.fd (its target) keep their different templates.
func (c *Catalog) Find(loader, xmlTemplate string) (Hit, error) {
	if xmlTemplate != "" {
		return Hit{Template: xmlTemplate, Source: FromDomain, Origin: "template="}, nil
	}
	resolved := resolve(loader)
	cache := map[string]string{}
	for start := 0; start < len(c.Pairs); {
		end := start
		for end < len(c.Pairs) && c.Pairs[end].Source == c.Pairs[start].Source {
			end++
		}
		group := c.Pairs[start:end]
		for _, p := range group {
			if p.Code == loader {
				return Hit{Template: p.Vars, Source: p.Source, Origin: p.Origin}, nil
			}
		}
		for _, p := range group {
			r, ok := cache[p.Code]
			if !ok {
				r = resolve(p.Code)
				cache[p.Code] = r
			}
			if r != "" && r == resolved {
				return Hit{Template: p.Vars, Source: p.Source, Origin: p.Origin, Resolved: true}, nil
			}
		}
		start = end
	}
	return Hit{}, &NotFoundError{Loader: loader, Consulted: append([]string{string(FromDomain)}, c.Consulted...)}
}

// resolve returns the symlink-free absolute path of p, or "" when it does
// not exist: a missing file matches nothing by resolution.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

// Descriptor is the part of a QEMU firmware descriptor (qemu
// docs/interop/firmware.json) that maps an executable to its template.
type Descriptor struct {
	File        string // the file it was read from
	Description string
	Device      string
	Mode        string
	Executable  string
	Template    string
	Targets     []Target
	Features    []string
}

// Target is one architecture and its machine-type globs.
type Target struct {
	Architecture string
	Machines     []string
}

type descriptorJSON struct {
	Description string `json:"description"`
	Mapping     struct {
		Device     string `json:"device"`
		Mode       string `json:"mode"`
		Executable struct {
			Filename string `json:"filename"`
		} `json:"executable"`
		NVRAMTemplate struct {
			Filename string `json:"filename"`
		} `json:"nvram-template"`
	} `json:"mapping"`
	Targets []struct {
		Architecture string   `json:"architecture"`
		Machines     []string `json:"machines"`
	} `json:"targets"`
	Features []string `json:"features"`
}

// DescriptorFiles lists the effective descriptor files of dirs (highest
// priority first): the same file name in an earlier directory replaces a
// later one, an empty file masks the name, and the result is sorted by file
// name, as QEMU's firmware.json specification and libvirt do.
func DescriptorFiles(dirs []string) ([]string, error) {
	chosen := map[string]string{}
	var firstErr error
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".json") || e.IsDir() {
				continue
			}
			if _, seen := chosen[name]; !seen {
				chosen[name] = filepath.Join(dir, name)
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]string, 0, len(names))
	for _, n := range names {
		if fi, err := os.Stat(chosen[n]); err == nil && fi.Size() == 0 {
			continue // masked
		}
		files = append(files, chosen[n])
	}
	return files, firstErr
}

// ReadDescriptor parses one descriptor file.
func ReadDescriptor(path string) (*Descriptor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j descriptorJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("firmware descriptor %s: %w", path, err)
	}
	d := &Descriptor{
		File:        path,
		Description: j.Description,
		Device:      j.Mapping.Device,
		Mode:        j.Mapping.Mode,
		Executable:  j.Mapping.Executable.Filename,
		Template:    j.Mapping.NVRAMTemplate.Filename,
		Features:    j.Features,
	}
	for _, t := range j.Targets {
		d.Targets = append(d.Targets, Target{Architecture: t.Architecture, Machines: t.Machines})
	}
	return d, nil
}

// SplitFlash reports whether the descriptor describes split edk2 flash
// (read-only code plus a varstore made from a template): the only kind
// that needs a per-VM varstore.
func (d *Descriptor) SplitFlash() bool {
	return d.Device == "flash" && (d.Mode == "" || d.Mode == "split") && d.Executable != "" && d.Template != ""
}

// Sources says where to look. Empty fields switch a source off.
type Sources struct {
	ConfigPath     string // named in the consulted list
	ConfigPairs    []Pair
	DescriptorDirs []string
	QemuConf       string
}

// Load builds the catalog. Unreadable sources become Problems, not errors:
// one broken descriptor must not stop a VM whose template another source
// knows.
func Load(s Sources) *Catalog {
	c := &Catalog{}
	if s.ConfigPath != "" {
		c.Consulted = append(c.Consulted, s.ConfigPath)
	}
	for _, p := range s.ConfigPairs {
		p.Source = FromConfig
		c.Pairs = append(c.Pairs, p)
	}
	if len(s.DescriptorDirs) > 0 {
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
				c.Pairs = append(c.Pairs, Pair{Code: d.Executable, Vars: d.Template, Source: FromDescriptor, Origin: f})
			}
		}
		c.Consulted = append(c.Consulted, fmt.Sprintf("%d firmware descriptors", len(files)))
	}
	if s.QemuConf != "" {
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
	return c
}
