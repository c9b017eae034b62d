// Package config loads the hook's own INI file, /etc/libvirt/nvram-hook.conf.
// The file is optional: without it the built-in defaults follow libvirt's
// layout. When present it is validated as a whole and every problem is
// reported with its line, so that `check` can list them all at once.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/ini.v1"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/qemuconf"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// DefaultPath is where libvirt's other configuration lives.
const DefaultPath = "/etc/libvirt/nvram-hook.conf"

// EnvPath names another config file (for ops and tests).
const EnvPath = "LIBVIRT_NVRAM_HOOK_CONFIG"

// Built-in defaults: libvirt's own system layout.
const (
	DefaultNVRAMDir = "/var/lib/libvirt/qemu/nvram"
	// DefaultVarstoreDir is where libvirt 12.1+ keeps <varstore> JSON files.
	DefaultVarstoreDir = "/var/lib/libvirt/qemu/varstore"
	DefaultQemuConf    = "/etc/libvirt/qemu.conf"
)

// DefaultDescriptorDirs lists QEMU firmware descriptor directories, highest
// priority first: a file in /etc replaces the one of the same name in
// /usr/share (qemu docs/interop/firmware.json).
var DefaultDescriptorDirs = []string{"/etc/qemu/firmware", "/usr/share/qemu/firmware"}

// Pair maps a firmware binary to its varstore template.
type Pair struct {
	Code string // the loader
	Vars string // its template
	Line int    // where the pair is set
}

// Config is the validated configuration.
type Config struct {
	Path    string // the file consulted
	Present bool   // false: built-in defaults only

	NVRAMDir string
	// VarstoreDir holds uefi-vars <varstore> JSON files (libvirt 12.1+),
	// libvirt's own directory; allowed by default like NVRAMDir.
	VarstoreDir string
	AllowedDirs []string
	User        string // "" = qemu.conf's, else libvirt-qemu/qemu, else root
	Group       string
	AddTemplate bool

	// Pairs are the nvram = CODE:VARS settings: a pflash loader and the
	// template of its NVRAM file.
	Pairs []Pair
	// VarstorePairs are the varstore = ROM:TEMPLATE settings: a rom loader
	// and the JSON template of its <varstore> (QEMU's uefi-vars device,
	// libvirt 12.1 and later).
	VarstorePairs []Pair
	Builtin       bool // the built-in table of distributions' layouts
	// TranslateLoader lets the migrate/restore filters replace a loader
	// path that does not exist on this host by a local equivalent.
	TranslateLoader bool
	Descriptors     bool
	DescriptorDirs  []string
	QemuConf        string // "" = not read

	LogTarget string // "" = syslog when /dev/log exists, else stderr
	LogLevel  string
}

// Default returns the built-in configuration of a system (root) daemon.
func Default(path string) *Config {
	return &Config{
		Path:           path,
		NVRAMDir:       DefaultNVRAMDir,
		VarstoreDir:    DefaultVarstoreDir,
		AllowedDirs:    []string{DefaultNVRAMDir, DefaultVarstoreDir},
		Builtin:        true,
		Descriptors:    true,
		DescriptorDirs: append([]string(nil), DefaultDescriptorDirs...),
		QemuConf:       DefaultQemuConf,
		LogLevel:       "info",
	}
}

// SessionDefault returns the built-in configuration of a user's session
// daemon (qemu:///session), which keeps everything under the user's config
// directory: varstores in ~/.config/libvirt/qemu/nvram, the user's own
// qemu.conf, and the user's firmware descriptors before the system's.
func SessionDefault(path, configHome string) *Config {
	c := Default(path)
	c.NVRAMDir = filepath.Join(configHome, "libvirt", "qemu", "nvram")
	c.VarstoreDir = filepath.Join(configHome, "libvirt", "qemu", "varstore")
	c.AllowedDirs = []string{c.NVRAMDir, c.VarstoreDir}
	c.QemuConf = filepath.Join(configHome, "libvirt", "qemu.conf")
	c.DescriptorDirs = append([]string{filepath.Join(configHome, "qemu", "firmware")}, DefaultDescriptorDirs...)
	return c
}

// SessionPath is the session daemon's config file.
func SessionPath(configHome string) string {
	return filepath.Join(configHome, "libvirt", "nvram-hook.conf")
}

// Base returns the defaults for the daemon the hook runs under: the
// system's, or with a configHome the session's.
func Base(path, configHome string) *Config {
	if configHome != "" {
		return SessionDefault(path, configHome)
	}
	return Default(path)
}

// Problem is one thing wrong in the file.
type Problem struct {
	Line int // 0 when it concerns the whole file
	Msg  string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.Msg
	}
	return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
}

// Error carries every problem found in one file.
type Error struct {
	Path     string
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("config %s: %s", e.Path, e.Problems[0])
	}
	return fmt.Sprintf("config %s: %s (and %d more problems; run 'libvirt-nvram-hook check')",
		e.Path, e.Problems[0], len(e.Problems)-1)
}

// Load reads path over the system defaults. A missing file gives the
// defaults unless required is set (the path was named explicitly, so its
// absence is a mistake).
func Load(path string, required bool) (*Config, error) {
	return LoadOver(Default(path), required)
}

// LoadOver reads base.Path over base (Default or SessionDefault).
func LoadOver(base *Config, required bool) (*Config, error) {
	data, err := safeopen.ReadFile(base.Path, safeopen.MaxConfigSize)
	if errors.Is(err, os.ErrNotExist) && !required {
		return base, nil
	}
	if err != nil {
		return nil, &Error{Path: base.Path, Problems: []Problem{{Msg: err.Error()}}}
	}
	return ParseOver(base, data)
}

// Keys lists every key in the order the shipped sample documents them.
var Keys = []string{"dir", "allowed_dirs", "user", "group", "add_template",
	"nvram", "varstore", "builtin", "translate_loader", "descriptors", "descriptor_dirs", "qemu_conf",
	"target", "level"}

// sections lists the known sections.
var sections = []string{"nvram", "templates", "log"}

// lookupKey says whether key is known in section and whether it may be
// repeated.
func lookupKey(section, key string) (repeatable, known bool) {
	switch section + "." + key {
	case "nvram.allowed_dirs", "templates.nvram", "templates.varstore":
		return true, true
	case "nvram.dir", "nvram.user", "nvram.group", "nvram.add_template",
		"templates.builtin", "templates.translate_loader", "templates.descriptors",
		"templates.descriptor_dirs", "templates.qemu_conf", "log.target", "log.level":
		return false, true
	}
	return false, false
}

// Parse validates data over the system defaults, as a whole, and returns
// every problem at once.
func Parse(path string, data []byte) (*Config, error) {
	return ParseOver(Default(path), data)
}

// ParseOver is Parse over other defaults.
func ParseOver(base *Config, data []byte) (*Config, error) {
	c := *base
	c.AllowedDirs = slices.Clone(base.AllowedDirs)
	c.DescriptorDirs = slices.Clone(base.DescriptorDirs)
	c.Present = true
	settings, probs := read(data)
	v := validator{probs: probs}
	dirLine, allowedLine := 0, 0 // where dir and the first allowed_dirs are set
	for _, s := range settings {
		v.line = s.line
		switch s.section + "." + s.key {
		case "nvram.dir":
			dirLine = s.line
			if v.nonEmpty(s) {
				if !filepath.IsAbs(s.value) {
					v.add(fmt.Sprintf("dir %q is not an absolute path", s.value))
				}
				c.NVRAMDir = filepath.Clean(s.value)
			}
		case "nvram.allowed_dirs":
			if allowedLine == 0 {
				c.AllowedDirs, allowedLine = nil, s.line
			}
			for _, d := range strings.Split(s.value, ":") {
				if d = strings.TrimSpace(d); !filepath.IsAbs(d) {
					v.add(fmt.Sprintf("allowed_dirs entry %q is not an absolute path", d))
				} else {
					c.AllowedDirs = append(c.AllowedDirs, filepath.Clean(d))
				}
			}
		case "nvram.user":
			if v.nonEmpty(s) {
				c.User = s.value
			}
		case "nvram.group":
			if v.nonEmpty(s) {
				c.Group = s.value
			}
		case "nvram.add_template":
			v.bool(s, &c.AddTemplate)
		case "templates.nvram":
			c.Pairs = v.pair(s, "CODE:VARS", c.Pairs)
		case "templates.varstore":
			c.VarstorePairs = v.pair(s, "ROM:TEMPLATE", c.VarstorePairs)
		case "templates.descriptors":
			v.bool(s, &c.Descriptors)
		case "templates.builtin":
			v.bool(s, &c.Builtin)
		case "templates.translate_loader":
			v.bool(s, &c.TranslateLoader)
		case "templates.descriptor_dirs":
			c.DescriptorDirs = nil
			for _, d := range strings.Split(s.value, ":") {
				if d = strings.TrimSpace(d); d == "" {
					continue
				} else if !filepath.IsAbs(d) {
					v.add(fmt.Sprintf("descriptor_dirs entry %q is not an absolute path", d))
				} else {
					c.DescriptorDirs = append(c.DescriptorDirs, d)
				}
			}
		case "templates.qemu_conf":
			c.QemuConf = s.value
			if c.QemuConf != "" && !filepath.IsAbs(c.QemuConf) {
				v.add(fmt.Sprintf("qemu_conf %q is not an absolute path (leave it empty to not read qemu.conf)", c.QemuConf))
			}
		case "log.target":
			if v.nonEmpty(s) {
				c.LogTarget = s.value
				t := s.value
				if t != "syslog" && t != "stderr" && !(strings.HasPrefix(t, "file:") && filepath.IsAbs(t[5:])) {
					v.add(fmt.Sprintf("target %q: use syslog, stderr or file:/ABSOLUTE/PATH", t))
				}
			}
		case "log.level":
			if v.nonEmpty(s) {
				c.LogLevel = s.value
				switch s.value {
				case "error", "warning", "info", "debug":
				default:
					v.add(fmt.Sprintf("level %q: use error, warning, info or debug", s.value))
				}
			}
		}
	}
	if dirLine != 0 && allowedLine == 0 {
		c.AllowedDirs = []string{c.NVRAMDir}
	}
	if len(v.probs) == 0 && !Within(c.NVRAMDir, c.AllowedDirs) {
		v.line = max(allowedLine, dirLine)
		v.add(fmt.Sprintf("dir %s is not inside allowed_dirs %s: generated varstores could not be created", c.NVRAMDir, strings.Join(c.AllowedDirs, ":")))
	}
	if len(v.probs) > 0 {
		return nil, &Error{Path: c.Path, Problems: v.probs}
	}
	return &c, nil
}

// setting is one "key = value" line of a known key in a known section: the
// one record of what the file says and where.
type setting struct {
	line         int
	section, key string
	value        string // as ini.v1 reads it, surrounding white space removed
}

// iniOptions are the INI dialect of the file: "=" only, and "; comment" or
// "# comment" after a space ends a value.
var iniOptions = ini.LoadOptions{KeyValueDelimiters: "=", SpaceBeforeInlineComment: true}

// read walks the file line by line. Section headers, comments and the
// structure (unknown sections and keys, a single-valued key set twice,
// lines that are neither) are checked here; each "key = value" line is
// read by ini.v1 on its own, so that every value carries its own line.
func read(data []byte) ([]setting, []Problem) {
	var settings []setting
	var probs []Problem
	first := map[string]int{} // section.key -> line of its first setting
	section := ""
	for n, raw := range strings.Split(string(data), "\n") {
		n++
		l := strings.TrimSpace(raw)
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l[0] == '[':
			end := strings.IndexByte(l, ']')
			if end < 0 {
				probs = append(probs, Problem{n, fmt.Sprintf("section header %q has no ']'", l)})
				section = "?"
				continue
			}
			section = strings.TrimSpace(l[1:end])
			if !slices.Contains(sections, section) {
				probs = append(probs, Problem{n, fmt.Sprintf("unknown section [%s] (known: [nvram], [templates], [log])", section)})
				section = "?"
			}
			continue
		}
		if !strings.Contains(l, "=") {
			probs = append(probs, Problem{n, fmt.Sprintf("%q is not 'key = value'", l)})
			continue
		}
		f, err := ini.LoadSources(iniOptions, []byte(l))
		if err != nil || len(f.Section("").Keys()) != 1 {
			probs = append(probs, Problem{n, fmt.Sprintf("%q is not 'key = value'", l)})
			continue
		}
		k := f.Section("").Keys()[0]
		switch section {
		case "?":
			continue // already reported
		case "":
			probs = append(probs, Problem{n, fmt.Sprintf("key %q is outside any section", k.Name())})
			continue
		}
		repeatable, known := lookupKey(section, k.Name())
		if !known {
			probs = append(probs, Problem{n, fmt.Sprintf("unknown key %q in [%s]", k.Name(), section)})
			continue
		}
		id := section + "." + k.Name()
		if prev, ok := first[id]; ok && !repeatable {
			probs = append(probs, Problem{n, fmt.Sprintf("%s is set twice (first on line %d)", k.Name(), prev)})
			continue
		}
		if _, ok := first[id]; !ok {
			first[id] = n
		}
		settings = append(settings, setting{line: n, section: section, key: k.Name(), value: strings.TrimSpace(k.String())})
	}
	return settings, probs
}

// validator collects problems, each on the line of the setting at hand.
type validator struct {
	line  int
	probs []Problem
}

func (v *validator) add(msg string) {
	v.probs = append(v.probs, Problem{v.line, msg})
}

// nonEmpty reports whether s has a value, and otherwise says so.
func (v *validator) nonEmpty(s setting) bool {
	if s.value == "" {
		v.add(fmt.Sprintf("%s is empty (remove the line for the default)", s.key))
		return false
	}
	return true
}

// pair appends s's value, two absolute paths joined by a colon (shape
// names them in a problem), to pairs.
func (v *validator) pair(s setting, shape string, pairs []Pair) []Pair {
	a, b, ok := qemuconf.SplitPair(s.value)
	switch {
	case !ok:
		v.add(fmt.Sprintf("%s = %q is not %s", s.key, s.value, shape))
	case !filepath.IsAbs(a) || !filepath.IsAbs(b):
		v.add(fmt.Sprintf("%s = %q: both paths must be absolute", s.key, s.value))
	default:
		pairs = append(pairs, Pair{Code: a, Vars: b, Line: s.line})
	}
	return pairs
}

func (v *validator) bool(s setting, dst *bool) {
	switch strings.ToLower(s.value) {
	case "true", "yes", "on", "1":
		*dst = true
	case "false", "no", "off", "0":
		*dst = false
	default:
		v.add(fmt.Sprintf("%s = %q: use true or false", s.key, s.value))
	}
}

// Within reports whether path is one of dirs or lies below one of them,
// comparing cleaned paths lexically. Callers resolve symlinks first.
func Within(path string, dirs []string) bool {
	path = filepath.Clean(path)
	for _, d := range dirs {
		d = filepath.Clean(d)
		if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}
