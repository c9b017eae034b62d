// Package plan decides what the hook does for one domain, touching
// nothing. From the domain, the hook's config and the firmware catalog it
// returns a Plan: the effects to apply, in order (set the loader, create
// a varstore, add <nvram> or template=, set a <varstore>'s path or
// template=, leave a varstore to libvirt, warn). The hook applies them
// (internal/app), `explain` prints them, `check --audit` and `pin` read
// them; nobody else decides. A varstore is a pflash NVRAM file of a
// read-only loader, or (libvirt 12.1+) the uefi-vars JSON <varstore> of a
// rom loader.
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
	// Filter (migrate, restore) may also change <os> in the XML.
	Filter
)

// Plan is what the hook does for one domain in one mode.
type Plan struct {
	// Path is the varstore the domain uses ("" when it has none the hook
	// knows of), as the XML names it or as a filter adds it.
	Path string
	// Exists: Path is there (a regular file or a symlink to one) and is
	// used as it is.
	Exists bool
	// Reason says in one line why the plan is what it is.
	Reason string
	// Effects, applied in order. None: exit 0, nothing logged or printed.
	Effects []Effect
	// Libvirt says what libvirt itself will do with this definition that
	// the hook cannot change (explain prints it, check --audit reports
	// it as a problem), each with what to change.
	Libvirt []string
	// LoaderMissing is the loader of an incoming domain (a filter's plan)
	// that does not exist on this host, left as it is; NotTranslated says
	// why translate_loader found no replacement, when it is on. Both
	// survive a plan that fails: Cause names them in its error.
	LoaderMissing string
	NotTranslated *firmware.NoTranslationError
}

// Cause puts the root cause before err, an error of pl's plan or of
// applying it, when the domain's loader does not exist on this host: the
// guest's firmware is not installed here, whatever failed next (a missing
// template=, no template known) follows from that. It says what to do.
func (pl *Plan) Cause(err error) error {
	if err == nil || pl == nil || pl.LoaderMissing == "" {
		return err
	}
	todo := "install it, or set translate_loader = true in the hook config's [templates] to run the guest on local firmware that promises it the same"
	if pl.NotTranslated != nil {
		todo = "install it here (translate_loader found no replacement: " + pl.NotTranslated.Reason + ")"
	}
	return fmt.Errorf("loader %s does not exist on this host: the guest's firmware is not installed here; %s; %w", pl.LoaderMissing, todo, err)
}

// Effect is one step of a plan. The hook applies each kind its own way;
// String says what it does, for explain and logs.
type Effect interface {
	fmt.Stringer
	effect()
}

// SetLoader replaces a loader path that does not exist on this host by a
// local firmware that fits the domain (translate_loader; filters only).
type SetLoader struct{ From, To string }

// CreateVarstore makes the missing varstore Dir/Name from Template.
type CreateVarstore struct {
	Path      string // as the XML names it
	Dir, Name string // where it is created: Dir is inside allowed_dirs, symlinks resolved
	// Allowed are the allowed_dirs: the executor opens Dir beneath one of
	// them again (varstore.Place) and creates through that descriptor.
	Allowed  []string
	Template firmware.Hit
	// Format is the varstore's format (raw, qcow2); TemplateFormat the
	// template's declared one (templateFormat=, "" = by its content).
	Format, TemplateFormat string
	Owner                  *Owner // nil: the creating process's (a session daemon)
}

// AddNVRAM adds <nvram template=Template>Path</nvram> (filters only);
// without a Template when its format would differ from the varstore's.
// TemplateFormat, when set, is written as templateFormat=.
type AddNVRAM struct {
	Path           string
	Template       firmware.Hit
	TemplateFormat string
}

// SetTemplate adds template= (and templateFormat= when TemplateFormat is
// set) to the domain's <nvram> (filters only).
type SetTemplate struct {
	Template       firmware.Hit
	TemplateFormat string
}

// SetVarstorePath sets path= (and template= when Template is known) on a
// <varstore> that names no file (filters only).
type SetVarstorePath struct {
	Path     string
	Template firmware.Hit
}

// SetVarstoreTemplate adds template= to a <varstore> (filters only).
type SetVarstoreTemplate struct{ Template firmware.Hit }

// Warn is a warning for the log: something the hook chose not to do.
type Warn struct{ Msg string }

// Skip leaves the varstore to libvirt. Warn: worth a warning in the log
// (a missing varstore outside allowed_dirs); otherwise a debug line (a
// varstore that is not a file).
type Skip struct {
	Reason string
	Warn   bool
}

func (SetLoader) effect()           {}
func (CreateVarstore) effect()      {}
func (AddNVRAM) effect()            {}
func (SetTemplate) effect()         {}
func (Skip) effect()                {}
func (Warn) effect()                {}
func (SetVarstorePath) effect()     {}
func (SetVarstoreTemplate) effect() {}

func (e SetVarstorePath) String() string {
	if e.Template.Template == "" {
		return fmt.Sprintf("XML: set <varstore path='%s'>", e.Path)
	}
	return fmt.Sprintf("XML: set <varstore path='%s' template='%s'>", e.Path, e.Template.Template)
}
func (e SetVarstoreTemplate) String() string {
	return fmt.Sprintf("XML: add template='%s' to <varstore>", e.Template.Template)
}

func (e SetLoader) String() string {
	return fmt.Sprintf("XML: replace loader %s (absent here) by %s", e.From, e.To)
}
func (e CreateVarstore) String() string {
	s := fmt.Sprintf("create %s from %s (%s %s)", e.Path, e.Template.Template, e.Template.Source, e.Template.Origin)
	if e.Owner != nil {
		s += ", owner " + e.Owner.Name
	}
	return s
}
func (e AddNVRAM) String() string {
	if e.Template.Template == "" {
		return fmt.Sprintf("XML: add <nvram>%s</nvram>", e.Path)
	}
	return fmt.Sprintf("XML: add <nvram template='%s'%s>%s</nvram>", e.Template.Template, formatAttr(e.TemplateFormat), e.Path)
}
func (e SetTemplate) String() string {
	return fmt.Sprintf("XML: add template='%s'%s to <nvram>", e.Template.Template, formatAttr(e.TemplateFormat))
}
func (e Warn) String() string { return "warning: " + e.Msg }

func formatAttr(f string) string {
	if f == "" {
		return ""
	}
	return " templateFormat='" + f + "'"
}
func (e Skip) String() string { return "leave it to libvirt: " + e.Reason }

// Owner is who a new varstore belongs to.
type Owner struct {
	UID, GID int
	Name     string // for logs: "libvirt-qemu:libvirt-qemu"
}

// ErrName means the domain name cannot become a file name.
var ErrName = errors.New("domain name cannot be used in a file name")

// Host is what a plan reads besides the domain: the hook's config, loaded
// once by the caller (ConfigErr when that failed: it matters only to a
// plan that needs the config), the firmware catalog built from it on
// first need, and who new varstores belong to.
type Host struct {
	Config    *config.Config
	ConfigErr error
	// Owner returns the owner of a new varstore, nil for the creating
	// process's own.
	Owner func(*config.Config) (*Owner, error)

	catalog *firmware.Catalog
}

// NewHost loads the config at path over base's defaults.
func NewHost(base *config.Config, required bool, owner func(*config.Config) (*Owner, error)) *Host {
	cfg, err := config.LoadOver(base, required)
	return &Host{Config: cfg, ConfigErr: err, Owner: owner}
}

func (h *Host) config() (*config.Config, error) {
	if h.ConfigErr != nil {
		return nil, h.ConfigErr
	}
	if h.Config == nil {
		return nil, errors.New("plan: no config")
	}
	return h.Config, nil
}

// Catalog returns the firmware catalog of the config's sources, built on
// first use.
func (h *Host) Catalog() (*firmware.Catalog, error) {
	if h.catalog != nil {
		return h.catalog, nil
	}
	cfg, err := h.config()
	if err != nil {
		return nil, err
	}
	h.catalog = firmware.Load(Sources(cfg))
	return h.catalog, nil
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
	for _, pr := range cfg.VarstorePairs {
		s.VarstorePairs = append(s.VarstorePairs, firmware.Pair{Code: pr.Code, Vars: pr.Vars, Origin: fmt.Sprintf("%s:%d", cfg.Path, pr.Line)})
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

// JSONName is libvirt's file name for a generated <varstore> (12.1+).
func JSONName(domainName string) (string, error) {
	if _, err := VarsName(domainName); err != nil {
		return "", err
	}
	return domainName + ".json", nil
}

// Plan decides for d. Errors are reasons to fail the hook: a broken
// config, something that is not a regular file where a varstore is to be
// created, no template for a missing varstore; the plan returned with an
// error has no effects, only the Path it was about. The config is needed
// only when a varstore is missing or a filter may change the XML: an
// existing varstore and a domain without one are planned without it.
func (h *Host) Plan(d *domain.Domain, mode Mode) (*Plan, error) {
	pl := &Plan{}
	if err := h.plan(pl, d, mode); err != nil {
		pl.Effects = nil
		return pl, err
	}
	return pl, nil
}

func (h *Host) plan(pl *Plan, d *domain.Domain, mode Mode) error {
	if reason := noVarstore(d); reason != "" {
		pl.Reason = reason
		return nil
	}
	if mode == Filter && !UEFIVars(d) && loaderMissing(d) {
		to, none, err := h.translateLoader(d)
		if err != nil {
			return err
		}
		if none != nil {
			pl.NotTranslated = none
			pl.Effects = append(pl.Effects, Warn{Msg: none.Error()})
		}
		if to == "" {
			pl.LoaderMissing = d.Loader.Path
		} else {
			pl.Effects = append(pl.Effects, SetLoader{From: d.Loader.Path, To: to})
			d2, l := *d, *d.Loader
			l.Path = to
			d2.Loader = &l
			d = &d2
		}
	}
	if UEFIVars(d) {
		return h.planJSON(pl, d, mode)
	}
	nv := d.NVRAM
	// The varstore's format: <nvram format=>, else the loader's (as
	// libvirt defaults it), else raw.
	format := firstOf(formatOf(nv), d.Loader.Format, "raw")
	if nv != nil && nv.Kind == domain.NVRAMFile && nv.Template != "" {
		if note := templateConflict(nv, format); note != "" {
			pl.Libvirt = append(pl.Libvirt, note)
		}
	}
	var tmpl firmware.Hit // known once looked up
	var added Effect      // the XML change beside the file: AddNVRAM or SetTemplate
	switch {
	case nv == nil && mode == Prepare:
		pl.Reason = "no <nvram> in the XML: libvirt generates the path and copies the template after prepare"
		return nil
	case nv == nil && d.FirmwareAuto != "":
		pl.Reason = fmt.Sprintf("<os firmware='%s'>: libvirt's firmware autoselection fills in <nvram> itself", d.FirmwareAuto)
		return nil
	case nv == nil:
		var err error
		if pl.Path, tmpl, err = h.generated(d, VarsName, func(c *config.Config) string { return c.NVRAMDir }); err != nil {
			return err
		}
		add := AddNVRAM{Path: pl.Path}
		if tf, why := templateFits(format, tmpl.Template); why != "" {
			pl.Effects = append(pl.Effects, Warn{Msg: "template= not added to the new <nvram>: " + why})
		} else {
			add.Template, add.TemplateFormat = tmpl, tf
		}
		added = add
	case nv.Kind != domain.NVRAMFile:
		pl.Reason = fmt.Sprintf("<nvram type='%s'>: not a file, never created from a template", nv.Type)
		pl.Effects = append(pl.Effects, Skip{Reason: pl.Reason})
		return nil
	case nv.Path == "":
		pl.Reason = "<nvram> names no file: libvirt generates the path itself"
		return nil
	default:
		pl.Path = nv.Path
	}

	// A varstore that exists (a symlink to one too: libvirt follows it)
	// is used as it is, wherever it is. What else is there matters only
	// inside allowed_dirs, where the hook would create the file.
	exists, existsErr := varstore.Exists(pl.Path)
	if mode == Filter && nv != nil && nv.Template == "" && existsErr == nil {
		hit, ok, err := h.templateToAdd(d)
		if err != nil {
			return err
		}
		if ok {
			if tf, why := templateFits(format, hit.Template); why != "" {
				pl.Effects = append(pl.Effects, Warn{Msg: "template= not added (add_template): " + why})
			} else {
				tmpl, added = hit, SetTemplate{Template: hit, TemplateFormat: tf}
			}
		}
	}
	var templateFormat string
	if nv != nil {
		templateFormat = nv.TemplateFormat
	}
	return h.provide(pl, d, exists, existsErr, tmpl, format, templateFormat, added)
}

// planJSON plans a uefi-vars <varstore> (libvirt 12.1+, a rom loader): a
// JSON variable store copied from a JSON template, like NVRAM but with no
// format to convert and no flash layout to check.
func (h *Host) planJSON(pl *Plan, d *domain.Domain, mode Mode) error {
	vs := d.Varstore
	var tmpl firmware.Hit
	var added Effect
	switch {
	case vs.Path == "" && mode == Prepare:
		pl.Reason = "<varstore> names no file: libvirt generates the path (define fills in its varstore directory) and copies the template after prepare"
		return nil
	case vs.Path == "":
		var err error
		if pl.Path, tmpl, err = h.generated(d, JSONName, func(c *config.Config) string { return c.VarstoreDir }); err != nil {
			return err
		}
		add := SetVarstorePath{Path: pl.Path}
		if vs.Template == "" {
			add.Template = tmpl
		}
		added = add
	default:
		pl.Path = vs.Path
	}
	exists, existsErr := varstore.Exists(pl.Path)
	if mode == Filter && vs.Path != "" && vs.Template == "" && existsErr == nil {
		hit, ok, err := h.templateToAdd(d)
		if err != nil {
			return err
		}
		if ok {
			tmpl, added = hit, SetVarstoreTemplate{Template: hit}
		}
	}
	return h.provide(pl, d, exists, existsErr, tmpl, "json", "", added)
}

// generated is the path a filter gives a varstore that the XML names no
// file for: libvirt's file name for the domain (nameOf) in the config's
// directory for it (dir), with the template the file is made from.
func (h *Host) generated(d *domain.Domain, nameOf func(string) (string, error), dir func(*config.Config) string) (string, firmware.Hit, error) {
	name, err := nameOf(d.Name)
	if err != nil {
		return "", firmware.Hit{}, err
	}
	cfg, err := h.config()
	if err != nil {
		return "", firmware.Hit{}, err
	}
	path := filepath.Join(dir(cfg), name)
	tmpl, err := h.Template(d)
	if err != nil {
		return path, tmpl, missingTemplate(path, err)
	}
	return path, tmpl, nil
}

// provide plans the varstore file at pl.Path: one that exists is used as
// it is, one outside allowed_dirs is left to libvirt, a missing one is
// created from tmpl (looked up when not known yet). added is the XML edit
// that goes with it, if any, applied after the file.
func (h *Host) provide(pl *Plan, d *domain.Domain, exists bool, existsErr error, tmpl firmware.Hit, format, templateFormat string, added Effect) error {
	if exists {
		pl.Exists = true
		pl.Reason = "the varstore exists and is used as it is"
		pl.Effects = appendIf(pl.Effects, added)
		return nil
	}
	cfg, err := h.config()
	if err != nil {
		return err
	}
	dir, reason := placement(cfg, pl.Path)
	if reason != "" {
		pl.Reason = reason
		pl.Effects = appendIf(append(pl.Effects, Skip{Reason: reason, Warn: true}), added)
		return nil
	}
	if existsErr != nil {
		return existsErr
	}
	if tmpl.Template == "" {
		if tmpl, err = h.Template(d); err != nil {
			return missingTemplate(pl.Path, err)
		}
	}
	cv := CreateVarstore{Path: pl.Path, Dir: dir, Name: filepath.Base(pl.Path), Allowed: cfg.AllowedDirs, Template: tmpl, Format: format, TemplateFormat: templateFormat}
	if h.Owner != nil {
		if cv.Owner, err = h.Owner(cfg); err != nil {
			return err
		}
	}
	pl.Reason = "the varstore is missing"
	pl.Effects = appendIf(append(pl.Effects, cv), added)
	return nil
}

// templateFits says whether a filter may name template in the XML of a
// varstore of the given format, and with which templateFormat=. libvirt
// never converts a template: 12.8 refuses every start of a definition
// whose template's format differs from the varstore's ("conversion of the
// nvram template to another target format is not supported"), even when
// the varstore exists, and older versions copy the bytes as they are. So
// a template is named only in the varstore's own format: a raw one as
// always (no templateFormat=: raw is libvirt's default), a qcow2 one with
// templateFormat='qcow2' (libvirt 10.10 and later read it; older ones
// ignore it and copy a qcow2 file that is still a qcow2 varstore). why
// says, when it does not fit, what is wrong, for the log and explain.
func templateFits(format, template string) (templateFormat, why string) {
	tf, err := varstore.FormatOf(template)
	switch {
	case err != nil:
		return "", fmt.Sprintf("its format cannot be read (%v)", err)
	case tf != format:
		return "", fmt.Sprintf("template %s is %s, the varstore is %s, and libvirt never converts a template (12.8 refuses every start of such a definition)", template, tf, format)
	case tf == "raw":
		return "", ""
	}
	return tf, ""
}

// templateConflict describes what libvirt 12.8 does with a definition
// whose template= is of another format than its varstore: the template's
// declared templateFormat=, else its content.
func templateConflict(nv *domain.NVRAM, format string) string {
	tf := nv.TemplateFormat
	if tf == "" {
		var err error
		if tf, err = varstore.FormatOf(nv.Template); err != nil {
			return ""
		}
	}
	if tf == format {
		return ""
	}
	return fmt.Sprintf("libvirt 12.8 refuses every start of this definition, with or without the varstore (\"conversion of the nvram template to another target format is not supported\"): template %s is %s, the varstore is %s; "+
		"remove template= from <nvram> (an existing varstore is used as it is; the hook creates a missing one, converting with qemu-img), or name a %s template with templateFormat='%s' (libvirt 10.10 and later)",
		nv.Template, tf, format, format, format)
}

// missingTemplate names the varstore in a failed template lookup: the
// path is what libvirt 12.8's own error names ("unable to find any master
// var store for loader: PATH"), the loader what 9.0 and 11.3 name.
func missingTemplate(path string, err error) error {
	if errors.As(err, new(*firmware.NotFoundError)) {
		return fmt.Errorf("cannot create varstore %s: %w", path, err)
	}
	return err
}

func appendIf(effects []Effect, e Effect) []Effect {
	if e == nil {
		return effects
	}
	return append(effects, e)
}

// Template is the template the hook uses for d's varstore: the XML's own
// template=, else the first fitting entry of the catalog, checked against
// the loader's flash layout.
func (h *Host) Template(d *domain.Domain) (firmware.Hit, error) {
	cat, err := h.Catalog()
	if err != nil {
		return firmware.Hit{}, err
	}
	q := Query(d)
	if UEFIVars(d) {
		q.Template = d.Varstore.Template
		return cat.FindVarstore(q)
	}
	q.Template = templateOf(d.NVRAM)
	hit, err := cat.Find(q)
	if err != nil {
		return hit, err
	}
	return hit, checkSize(cat, q, hit)
}

// translateLoader handles an incoming domain whose loader path does not
// exist here (migrated from a distribution with another firmware layout).
// With translate_loader on, firmware.Catalog.Translate picks the local
// firmware that promises the guest what its loader promised (Secure Boot,
// SMM, which keys, code flash size) and fits the domain and its existing
// varstore. It returns the loader to use instead, or "" and why not (nil
// when translate_loader is off).
func (h *Host) translateLoader(d *domain.Domain) (string, *firmware.NoTranslationError, error) {
	cfg, err := h.config()
	if err != nil || !cfg.TranslateLoader {
		return "", nil, err
	}
	cat, err := h.Catalog()
	if err != nil {
		return "", nil, err
	}
	var wantSize int64 = -1
	if d.NVRAM != nil && d.NVRAM.Kind == domain.NVRAMFile && d.NVRAM.Path != "" {
		if fi, err := os.Stat(d.NVRAM.Path); err == nil {
			wantSize = fi.Size()
		}
	}
	to, err := cat.Translate(d.Loader.Path, Query(d), wantSize)
	var none *firmware.NoTranslationError
	if errors.As(err, &none) {
		return "", none, nil
	}
	return to.Code, nil, err
}

// loaderMissing: d's loader path does not exist on this host.
func loaderMissing(d *domain.Domain) bool {
	if d.Loader == nil || d.Loader.Path == "" {
		return false
	}
	_, err := os.Stat(d.Loader.Path)
	return errors.Is(err, os.ErrNotExist)
}

// templateToAdd is the template= a filter adds to an existing <nvram>
// that has none, when the config asks for it (add_template) and a
// template is known. Each changed XML taints the domain in libvirt
// ('hook-script'), hence off by default.
func (h *Host) templateToAdd(d *domain.Domain) (firmware.Hit, bool, error) {
	cfg, err := h.config()
	if err != nil || !cfg.AddTemplate {
		return firmware.Hit{}, false, err
	}
	hit, err := h.Template(d)
	var nf *firmware.NotFoundError
	if errors.As(err, &nf) {
		return hit, false, nil // nothing to add; a missing file fails later with this error
	}
	return hit, err == nil, err
}

// LibvirtTemplate says where libvirt itself finds d's template when it
// creates or resets the varstore (virsh start --reset-nvram, which no
// hook can serve, or a start without the hook): the definition's own
// template=, a firmware descriptor that fits the domain and names the
// loader by its literal path, or else its loader:nvram list for the
// literal path of a raw loader (qemuFirmwareFillDomainLegacy). That list
// is the one compiled into libvirt's build (firmware.LibvirtDefault:
// Debian's names OVMF_CODE.fd, its .secboot twin, AAVMF and AAVMF32)
// while qemu.conf sets no nvram; qemu.conf's nvram list replaces it when
// no descriptor exists at all, and empties it otherwise
// (virQEMUDriverConfigLoadNVRAMEntry). It returns where, or "" when
// libvirt knows none. It sees the sources as the hook's config does
// (descriptor_dirs, qemu_conf).
func (h *Host) LibvirtTemplate(d *domain.Domain) (string, error) {
	json := UEFIVars(d)
	if t := templateOf(d.NVRAM); json && d.Varstore.Template != "" || !json && t != "" {
		return "template= in the definition", nil
	}
	cat, err := h.Catalog()
	if err != nil {
		return "", err
	}
	if json {
		// Only descriptors with host-uefi-vars name JSON templates.
		for _, c := range cat.LookupVarstore(Query(d)).Candidates {
			if c.Why == "" && !c.Resolved && c.Source == firmware.FromDescriptor {
				return string(c.Source) + " " + c.Origin, nil
			}
		}
		return "", nil
	}
	descriptors := false
	for _, p := range cat.Pairs {
		descriptors = descriptors || p.Source == firmware.FromDescriptor
	}
	if !descriptors && h.Config.Descriptors {
		files, _ := firmware.DescriptorFiles(h.Config.DescriptorDirs)
		descriptors = len(files) > 0
	}
	// libvirt skips its list for a loader of another format than raw.
	legacy := d.Loader.Format == "" || d.Loader.Format == "raw"
	for _, c := range cat.Lookup(Query(d)).Candidates {
		switch {
		case c.Why != "" || c.Resolved:
		case c.Source == firmware.FromDescriptor:
			return string(c.Source) + " " + c.Origin, nil
		case c.Source == firmware.FromQemuConf && !descriptors && legacy:
			return string(c.Source) + " " + c.Origin, nil
		}
	}
	if e, ok := firmware.LibvirtDefault(d.Loader.Path); ok && legacy && !cat.QemuConfNVRAM {
		return fmt.Sprintf("libvirt's compiled-in loader:nvram list (%s:%s, in Debian %s's builds)", e.Code, e.Vars, e.Libvirt), nil
	}
	return "", nil
}

// Pin is what `pin` writes into d's inactive definition so that libvirt
// itself can create and reset the varstore: template= with the template
// the hook would use on <nvram> (and templateFormat= where libvirt reads
// it, templateFormat says so: libvirt 10.10 and later, or where the
// template is qcow2), or on a uefi-vars <varstore>. The edit is a
// SetTemplate or a SetVarstoreTemplate. It returns nil and the reason
// when there is nothing to pin: no varstore file, a definition that names
// its template already, a template libvirt finds itself; and an error for
// a template of another format than the varstore (libvirt never converts
// a template).
func (h *Host) Pin(d *domain.Domain, templateFormat bool) (Effect, string, error) {
	pl, err := h.Plan(d, Prepare)
	if err == nil && pl.Path == "" {
		return nil, "no varstore file: " + pl.Reason, nil
	}
	where, err := h.LibvirtTemplate(d)
	switch {
	case err != nil:
		return nil, "", err
	case where == "template= in the definition":
		return nil, "the definition names its template already", nil
	case where != "":
		return nil, "libvirt finds its template itself (" + where + ")", nil
	}
	hit, err := h.Template(d)
	if err != nil {
		return nil, "", err
	}
	if UEFIVars(d) {
		return SetVarstoreTemplate{Template: hit}, "", nil
	}
	format := firstOf(formatOf(d.NVRAM), d.Loader.Format, "raw")
	tf, why := templateFits(format, hit.Template)
	if why != "" {
		return nil, "", fmt.Errorf("not pinned: %s", why)
	}
	if tf == "" && templateFormat {
		tf = format
	}
	return SetTemplate{Template: hit, TemplateFormat: tf}, "", nil
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
	want := layout.Facts.VarsSize // the flash layout, known for raw files
	if want == 0 {
		if fi, err := os.Stat(layout.Vars); err == nil {
			want = fi.Size()
		}
	}
	got, err := os.Stat(file)
	if want == 0 || err != nil || want == got.Size() {
		return Mismatch{}, false
	}
	wf, err1 := varstore.FormatOf(layout.Vars)
	gf, err2 := varstore.FormatOf(file)
	if err1 != nil || err2 != nil || wf != gf {
		return Mismatch{}, false
	}
	return Mismatch{Layout: layout, Want: want, Got: got.Size()}, true
}

// placement asks the writer where the varstore would be created
// (varstore.Place: its directory opened beneath one of allowed_dirs,
// following no symlink a non-root user could have planted). It returns the
// directory really used, or a reason why the hook must leave this path alone.
func placement(cfg *config.Config, path string) (string, string) {
	d, _, err := varstore.Place(cfg.AllowedDirs, path)
	var out *varstore.OutsideError
	switch {
	case errors.As(err, &out):
		return "", out.Reason + "; left to libvirt"
	case err != nil:
		// Inside, but the directory is unusable: the executor reports it.
		return filepath.Dir(filepath.Clean(path)), ""
	}
	d.Close()
	return d.Path, ""
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
	case UEFIVars(d) && l.Path == "":
		return "the rom loader has no path yet: libvirt selects the firmware later"
	case UEFIVars(d):
		return ""
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

// UEFIVars reports whether d has a uefi-vars <varstore> (libvirt 12.1+):
// a JSON variable store beside a rom loader, libvirt's only combination.
func UEFIVars(d *domain.Domain) bool {
	return d.Varstore != nil && d.Loader != nil && (d.Loader.Type == "rom" || d.Loader.Type == "")
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
