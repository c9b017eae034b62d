// Package plan decides what the hook does for one domain, touching
// nothing: the hook carries the decision out, and `explain` prints it.
// The decision reads the config and the firmware sources only when a
// varstore is actually missing (or a filter must add <nvram>), so the
// common case, a varstore that exists, costs one lstat.
package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/varstore"
)

// Mode is the kind of hook phase.
type Mode int

const (
	// Prepare may only create the file the XML names.
	Prepare Mode = iota
	// Filter (migrate, restore) may also add <nvram> to the XML.
	Filter
)

// Action is what happens to the varstore file.
type Action int

const (
	// Nothing: the domain has no file varstore the hook may create.
	Nothing Action = iota
	// Exists: the varstore is there and is used as it is.
	Exists
	// Outside: it is missing but lies outside allowed_dirs; left to libvirt.
	Outside
	// Create: make it from Template.
	Create
)

func (a Action) String() string {
	return [...]string{"nothing", "exists", "outside", "create"}[a]
}

// Decision is the outcome for one domain.
type Decision struct {
	Action Action
	Reason string
	Path   string // the varstore, as in the XML or generated
	Dir    string // Path's directory with symlinks resolved (Create)
	Format string // expected varstore format: raw or qcow2
	// TemplateFormat is the template's declared format (templateFormat=).
	TemplateFormat string
	Template       firmware.Hit

	// Filter-only changes to the XML.
	AddNVRAM    bool
	AddTemplate bool
	// Notable marks a "nothing" worth a debug log line: a varstore that is
	// not a file (block, network), which is never created from a template.
	Notable bool
	// NewLoader replaces a loader path that does not exist on this host
	// (translate_loader); OldLoader is the path it replaces.
	NewLoader, OldLoader string
}

// ErrName means the domain name cannot become a file name.
var ErrName = errors.New("domain name cannot be used in a file name")

// Planner holds what a decision may need, loaded at most once and only on
// demand.
type Planner struct {
	ConfigPath     string
	ConfigRequired bool
	// ConfigHome, when set, selects a session daemon's defaults (the
	// user's ~/.config) instead of the system's.
	ConfigHome string

	cfg     *config.Config
	cfgErr  error
	catalog *firmware.Catalog
}

// Config loads the hook's config on first use.
func (p *Planner) Config() (*config.Config, error) {
	if p.cfg == nil && p.cfgErr == nil {
		p.cfg, p.cfgErr = config.LoadOver(config.Base(p.ConfigPath, p.ConfigHome), p.ConfigRequired)
	}
	return p.cfg, p.cfgErr
}

// Catalog returns the firmware catalog, built on first use.
func (p *Planner) Catalog() (*firmware.Catalog, error) {
	if p.catalog != nil {
		return p.catalog, nil
	}
	cfg, err := p.Config()
	if err != nil {
		return nil, err
	}
	p.catalog = firmware.Load(Sources(cfg))
	return p.catalog, nil
}

// Sources turns the config into the lookup's sources.
func Sources(cfg *config.Config) firmware.Sources {
	s := firmware.Sources{QemuConf: cfg.QemuConf}
	s.ConfigPath = cfg.Path
	if !cfg.Present {
		s.ConfigPath += " (absent)"
	}
	for _, pr := range cfg.Pairs {
		s.ConfigPairs = append(s.ConfigPairs, firmware.Pair{Code: pr.Code, Vars: pr.Vars, Origin: fmt.Sprintf("%s:%d", cfg.Path, pr.Line)})
	}
	if cfg.Descriptors {
		s.DescriptorDirs = cfg.DescriptorDirs
	}
	if cfg.Builtin {
		s.Table = firmware.Table
	}
	return s
}

// VarsName is libvirt's file name for a generated varstore.
func VarsName(domainName string) (string, error) {
	if domainName == "" || strings.ContainsAny(domainName, "/\x00") {
		return "", fmt.Errorf("%w: %q", ErrName, domainName)
	}
	return domainName + "_VARS.fd", nil
}

// Plan decides for d. Errors are reasons to fail the hook: a broken
// config, something that is not a regular file where the varstore should
// be, no template for a missing varstore.
func (p *Planner) Plan(d *domain.Domain, mode Mode) (*Decision, error) {
	dec := &Decision{}
	if reason := noVarstore(d); reason != "" {
		dec.Reason = reason
		return dec, nil
	}
	if mode == Filter {
		var err error
		if d, err = p.translateLoader(d, dec); err != nil {
			return nil, err
		}
	}
	dec.Format = firstOf(formatOf(d.NVRAM), d.Loader.Format, "raw")
	if d.NVRAM != nil {
		dec.TemplateFormat = d.NVRAM.TemplateFormat
	}
	nv := d.NVRAM
	switch {
	case nv == nil && mode == Prepare:
		dec.Reason = "no <nvram> in the XML: libvirt generates the path and copies the template after prepare"
		return dec, nil
	case nv == nil && d.FirmwareAuto != "":
		dec.Reason = fmt.Sprintf("<os firmware='%s'>: libvirt's firmware autoselection fills in <nvram> itself", d.FirmwareAuto)
		return dec, nil
	case nv == nil:
		name, err := VarsName(d.Name)
		if err != nil {
			return nil, err
		}
		cfg, err := p.Config()
		if err != nil {
			return nil, err
		}
		if dec.Template, err = p.find(d, ""); err != nil {
			return nil, err
		}
		dec.Path = filepath.Join(cfg.NVRAMDir, name)
		dec.AddNVRAM = true
	case nv.Kind != domain.NVRAMFile:
		dec.Reason = fmt.Sprintf("<nvram type='%s'>: not a file, never created from a template", nv.Type)
		dec.Notable = true
		return dec, nil
	case nv.Path == "":
		dec.Reason = "<nvram> names no file: libvirt generates the path itself"
		return dec, nil
	default:
		dec.Path = nv.Path
	}

	// A varstore that exists (a symlink to one too: libvirt follows it)
	// is used as it is, wherever it is. What else is there matters only
	// inside allowed_dirs, where the hook would create the file.
	exists, existsErr := varstore.Exists(dec.Path)
	if mode == Filter && nv != nil && nv.Template == "" && existsErr == nil {
		if err := p.maybeAddTemplate(dec, d); err != nil {
			return nil, err
		}
	}
	if exists {
		dec.Action = Exists
		dec.Reason = "the varstore exists and is used as it is"
		return dec, nil
	}
	cfg, err := p.Config()
	if err != nil {
		return nil, err
	}
	dir, reason := p.placement(cfg, dec.Path)
	if reason != "" {
		dec.Action = Outside
		dec.Reason = reason
		return dec, nil
	}
	if existsErr != nil {
		return nil, existsErr
	}
	dec.Dir = dir
	if dec.Template.Template == "" {
		if dec.Template, err = p.find(d, templateOf(nv)); err != nil {
			return nil, err
		}
	}
	dec.Action = Create
	dec.Reason = "the varstore is missing"
	return dec, nil
}

// translateLoader handles an incoming domain whose loader path does not
// exist here (migrated from a distribution with another firmware layout).
// With translate_loader on, it picks a local firmware that fits the domain
// as libvirt would match it (a descriptor or the built-in table: arch,
// machine, secure boot, enrolled keys, SMM), preferring the same file name,
// and whose varstore size equals the existing varstore's, if there is one:
// QEMU's migration stream carries the variables, but only into a flash of
// the same size. It returns the domain to plan with.
func (p *Planner) translateLoader(d *domain.Domain, dec *Decision) (*domain.Domain, error) {
	if _, err := os.Stat(d.Loader.Path); !errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	cfg, err := p.Config()
	if err != nil || !cfg.TranslateLoader {
		return d, err
	}
	cat, err := p.Catalog()
	if err != nil {
		return d, err
	}
	var wantSize int64 = -1
	if d.NVRAM != nil && d.NVRAM.Kind == domain.NVRAMFile && d.NVRAM.Path != "" {
		if fi, err := os.Stat(d.NVRAM.Path); err == nil {
			wantSize = fi.Size()
		}
	}
	q := Query(d)
	var best *firmware.Pair
	for i := range cat.Pairs {
		c := &cat.Pairs[i]
		if c.Source != firmware.FromDescriptor && c.Source != firmware.FromTable {
			continue
		}
		if c.Descriptor != nil && c.Descriptor.Mismatch(q) != "" {
			continue
		}
		if c.Source == firmware.FromTable && d.Arch != "" && c.Facts.Arch != d.Arch {
			continue
		}
		code, err1 := os.Stat(c.Code)
		vars, err2 := os.Stat(c.Vars)
		if err1 != nil || err2 != nil || (wantSize >= 0 && vars.Size() != wantSize) || !code.Mode().IsRegular() {
			continue
		}
		if filepath.Base(c.Code) == filepath.Base(d.Loader.Path) {
			best = c
			break
		}
		if best == nil {
			best = c
		}
	}
	if best == nil {
		return d, nil
	}
	dec.OldLoader, dec.NewLoader = d.Loader.Path, best.Code
	d2 := *d
	l := *d.Loader
	l.Path = best.Code
	d2.Loader = &l
	return &d2, nil
}

// maybeAddTemplate records template= for an existing <nvram> when the
// config asks for it and a template is known. Each changed XML taints the
// domain in libvirt ('hook-script'), hence off by default.
func (p *Planner) maybeAddTemplate(dec *Decision, d *domain.Domain) error {
	cfg, err := p.Config()
	if err != nil || !cfg.AddTemplate {
		return err
	}
	hit, err := p.find(d, "")
	var nf *firmware.NotFoundError
	if errors.As(err, &nf) {
		return nil // nothing to add; a missing file fails later with this error
	}
	if err != nil {
		return err
	}
	dec.Template = hit
	dec.AddTemplate = true
	return nil
}

func (p *Planner) find(d *domain.Domain, xmlTemplate string) (firmware.Hit, error) {
	cat, err := p.Catalog()
	if err != nil {
		return firmware.Hit{}, err
	}
	q := Query(d)
	q.Template = xmlTemplate
	hit, err := cat.Find(q)
	if err != nil {
		return hit, err
	}
	return hit, checkSize(cat, q, hit)
}

// Query describes what the domain wants of its firmware.
func Query(d *domain.Domain) firmware.Query {
	q := firmware.Query{Arch: d.Arch, Machine: d.Machine, Features: d.FirmwareFeatures, SMMOff: d.SMMOff}
	if d.Loader != nil {
		q.Loader, q.LoaderSecure, q.LoaderFormat = d.Loader.Path, d.Loader.Secure, d.Loader.Format
	}
	if d.NVRAM != nil {
		q.NVRAMFormat = d.NVRAM.Format
	}
	return q
}

// ErrSize is a template whose size does not fit the loader's flash layout.
var ErrSize = errors.New("template size does not match the loader's flash layout")

// checkSize refuses a template whose size differs from the one the
// loader's known layout (a descriptor or the built-in table) uses: a 2 MiB
// era varstore with 4 MiB code boots, then silently loses variables.
func checkSize(cat *firmware.Catalog, q firmware.Query, hit firmware.Hit) error {
	if hit.Source == firmware.FromDescriptor || hit.Source == firmware.FromTable {
		return nil // the layout itself
	}
	m, ok := LayoutMismatch(cat, q, hit.Template)
	if !ok {
		return nil // a missing template is reported when it is opened
	}
	return fmt.Errorf("%w: template %s (%s %s) is %d bytes, but loader %s takes %d-byte varstores like %s (%s %s); refusing a varstore that would lose variables",
		ErrSize, hit.Template, hit.Source, hit.Origin, m.Got, q.Loader, m.Want, m.Layout.Vars, m.Layout.Source, m.Layout.Origin)
}

// Mismatch is a file whose size does not fit the loader's flash layout.
type Mismatch struct {
	Layout    firmware.Pair // the descriptor or table entry that knows it
	Want, Got int64
}

// LayoutMismatch compares the size of file (a template or a varstore)
// with the template of the loader's known layout. It reports a mismatch
// only when both files exist and are of the same format: sizes of raw and
// qcow2 files do not compare.
func LayoutMismatch(cat *firmware.Catalog, q firmware.Query, file string) (Mismatch, bool) {
	layout, ok := cat.Layout(q)
	if !ok || layout.Vars == file {
		return Mismatch{}, false
	}
	want, err1 := os.Stat(layout.Vars)
	got, err2 := os.Stat(file)
	if err1 != nil || err2 != nil || want.Size() == got.Size() {
		return Mismatch{}, false
	}
	wf, err1 := varstore.FormatOf(layout.Vars)
	gf, err2 := varstore.FormatOf(file)
	if err1 != nil || err2 != nil || wf != gf {
		return Mismatch{}, false
	}
	return Mismatch{Layout: layout, Want: want.Size(), Got: got.Size()}, true
}

// placement resolves the varstore's directory and checks it against
// allowed_dirs, both with symlinks resolved, so that neither "..", nor a
// symlinked parent can lead outside. It returns the resolved directory, or
// a reason why the hook must leave this path alone.
func (p *Planner) placement(cfg *config.Config, path string) (string, string) {
	if !filepath.IsAbs(path) {
		return "", fmt.Sprintf("%s is not an absolute path; left to libvirt", path)
	}
	allowed := make([]string, 0, len(cfg.AllowedDirs))
	for _, a := range cfg.AllowedDirs {
		if r, err := filepath.EvalSymlinks(a); err == nil {
			a = r
		}
		allowed = append(allowed, a)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		if config.Within(filepath.Clean(path), allowed) {
			// Inside, but the directory is unusable: the caller reports it.
			return filepath.Dir(filepath.Clean(path)), ""
		}
		return "", fmt.Sprintf("%s is outside allowed_dirs (%s); left to libvirt", path, strings.Join(cfg.AllowedDirs, ":"))
	}
	if !config.Within(dir, allowed) {
		return "", fmt.Sprintf("%s (directory %s) is outside allowed_dirs (%s); left to libvirt", path, dir, strings.Join(cfg.AllowedDirs, ":"))
	}
	return dir, ""
}

// noVarstore explains why a domain has no varstore for us to create, or
// returns "" when it has one.
func noVarstore(d *domain.Domain) string {
	l := d.Loader
	switch {
	case l == nil && d.FirmwareAuto != "":
		return fmt.Sprintf("<os firmware='%s'> without a loader yet: libvirt selects the firmware and creates the varstore after prepare", d.FirmwareAuto)
	case l == nil:
		return "no <loader>: BIOS or default firmware, no varstore"
	case l.Type != "pflash":
		return fmt.Sprintf("loader type '%s' is not pflash: no varstore", firstOf(l.Type, "rom"))
	case !l.ReadOnly:
		return "read-write pflash loader: the image holds its own variables"
	case l.Stateless:
		return "stateless loader: no varstore"
	case l.Path == "":
		return "the loader has no path yet: libvirt selects the firmware later"
	}
	return ""
}

func formatOf(n *domain.NVRAM) string {
	if n == nil {
		return ""
	}
	return n.Format
}

func templateOf(n *domain.NVRAM) string {
	if n == nil {
		return ""
	}
	return n.Template
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
