// Package config loads the hook's own INI file, /etc/libvirt/nvram-hook.conf.
// The file is optional: without it the built-in defaults follow libvirt's
// layout. When present it is validated as a whole and every problem is
// reported with its line, so that `check` can list them all at once.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/ini.v1"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/qemuconf"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/rawfile"
)

// DefaultPath is where libvirt's other configuration lives.
const DefaultPath = "/etc/libvirt/nvram-hook.conf"

// EnvPath names another config file (for ops and tests).
const EnvPath = "LIBVIRT_NVRAM_HOOK_CONFIG"

// Built-in defaults: libvirt's own system layout.
const (
	DefaultNVRAMDir = "/var/lib/libvirt/qemu/nvram"
	DefaultQemuConf = "/etc/libvirt/qemu.conf"
)

// DefaultDescriptorDirs lists QEMU firmware descriptor directories, highest
// priority first: a file in /etc replaces the one of the same name in
// /usr/share (qemu docs/interop/firmware.json).
var DefaultDescriptorDirs = []string{"/etc/qemu/firmware", "/usr/share/qemu/firmware"}

// Pair maps a firmware binary to its varstore template.
type Pair struct {
	Code string
	Vars string
	Line int
}

// Config is the validated configuration.
type Config struct {
	Path    string // the file consulted
	Present bool   // false: built-in defaults only

	NVRAMDir    string
	AllowedDirs []string
	User        string // "" = qemu.conf's, else libvirt-qemu/qemu, else root
	Group       string
	AddTemplate bool

	Pairs   []Pair
	Builtin bool // the built-in table of distributions' layouts
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
		AllowedDirs:    []string{DefaultNVRAMDir},
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
	c.AllowedDirs = []string{c.NVRAMDir}
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
	data, err := rawfile.Read(base.Path)
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
	"nvram", "builtin", "translate_loader", "descriptors", "descriptor_dirs", "qemu_conf",
	"target", "level"}

// sections lists the known sections.
var sections = []string{"nvram", "templates", "log"}

// lookupKey says whether key is known in section and whether it may be
// repeated. A switch, not a map: a package-level map would be built at
// start-up of every hook call, including the ones that never read a config.
func lookupKey(section, key string) (repeatable, known bool) {
	switch section + "." + key {
	case "nvram.allowed_dirs", "templates.nvram":
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
	path := c.Path
	c.Present = true
	lines, probs, bad := scan(data)
	f, err := ini.LoadSources(ini.LoadOptions{
		AllowShadows:             true,
		KeyValueDelimiters:       "=",
		SpaceBeforeInlineComment: true,
	}, blankLines(data, bad))
	if err != nil {
		if len(probs) == 0 {
			probs = append(probs, Problem{Msg: err.Error()})
		}
		return nil, &Error{Path: path, Problems: probs}
	}
	v := validator{lines: lines, probs: probs}
	if s, err := f.GetSection("nvram"); err == nil {
		v.abs(s, "dir", &c.NVRAMDir)
		// HasKey before Key: ini.v1's Key creates what it does not find.
		if s.HasKey("allowed_dirs") {
			c.AllowedDirs = nil
			for i, val := range s.Key("allowed_dirs").ValueWithShadows() {
				for _, d := range strings.Split(val, ":") {
					if d = strings.TrimSpace(d); !filepath.IsAbs(d) {
						v.add("nvram", "allowed_dirs", i, fmt.Sprintf("allowed_dirs entry %q is not an absolute path", d))
					} else {
						c.AllowedDirs = append(c.AllowedDirs, filepath.Clean(d))
					}
				}
			}
		} else if s.HasKey("dir") {
			c.AllowedDirs = []string{c.NVRAMDir}
		}
		v.str(s, "user", &c.User)
		v.str(s, "group", &c.Group)
		v.bool(s, "add_template", &c.AddTemplate)
	}
	if s, err := f.GetSection("templates"); err == nil {
		if s.HasKey("nvram") {
			for i, val := range s.Key("nvram").ValueWithShadows() {
				code, vars, ok := qemuconf.SplitPair(strings.TrimSpace(val))
				switch {
				case !ok:
					v.add("templates", "nvram", i, fmt.Sprintf("nvram = %q is not CODE:VARS", val))
				case !filepath.IsAbs(code) || !filepath.IsAbs(vars):
					v.add("templates", "nvram", i, fmt.Sprintf("nvram = %q: both paths must be absolute", val))
				default:
					c.Pairs = append(c.Pairs, Pair{Code: code, Vars: vars, Line: v.line("templates", "nvram", i)})
				}
			}
		}
		v.bool(s, "descriptors", &c.Descriptors)
		v.bool(s, "builtin", &c.Builtin)
		v.bool(s, "translate_loader", &c.TranslateLoader)
		if s.HasKey("descriptor_dirs") {
			c.DescriptorDirs = nil
			for _, d := range strings.Split(s.Key("descriptor_dirs").String(), ":") {
				if d = strings.TrimSpace(d); d == "" {
					continue
				} else if !filepath.IsAbs(d) {
					v.add("templates", "descriptor_dirs", 0, fmt.Sprintf("descriptor_dirs entry %q is not an absolute path", d))
				} else {
					c.DescriptorDirs = append(c.DescriptorDirs, d)
				}
			}
		}
		if s.HasKey("qemu_conf") {
			c.QemuConf = strings.TrimSpace(s.Key("qemu_conf").String())
			if c.QemuConf != "" && !filepath.IsAbs(c.QemuConf) {
				v.add("templates", "qemu_conf", 0, fmt.Sprintf("qemu_conf %q is not an absolute path (leave it empty to not read qemu.conf)", c.QemuConf))
			}
		}
	}
	if s, err := f.GetSection("log"); err == nil {
		if v.str(s, "target", &c.LogTarget) {
			t := c.LogTarget
			if t != "syslog" && t != "stderr" && !(strings.HasPrefix(t, "file:") && filepath.IsAbs(t[5:])) {
				v.add("log", "target", 0, fmt.Sprintf("target %q: use syslog, stderr or file:/ABSOLUTE/PATH", t))
			}
		}
		if v.str(s, "level", &c.LogLevel) {
			switch c.LogLevel {
			case "error", "warning", "info", "debug":
			default:
				v.add("log", "level", 0, fmt.Sprintf("level %q: use error, warning, info or debug", c.LogLevel))
			}
		}
	}
	if len(v.probs) == 0 && !Within(c.NVRAMDir, c.AllowedDirs) {
		v.add("nvram", "allowed_dirs", 0, fmt.Sprintf("dir %s is not inside allowed_dirs %s: generated varstores could not be created", c.NVRAMDir, strings.Join(c.AllowedDirs, ":")))
	}
	if len(v.probs) > 0 {
		return nil, &Error{Path: path, Problems: v.probs}
	}
	return &c, nil
}

// scan walks the raw text for what ini.v1 does not keep: line numbers,
// unknown sections and keys, repeated single-valued keys, and lines that
// are neither a section, a key nor a comment. It returns the lines of each
// section.key occurrence in order.
func scan(data []byte) (map[string][]int, []Problem, map[int]bool) {
	lines := map[string][]int{}
	bad := map[int]bool{}
	var probs []Problem
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l[0] == '[':
			end := strings.IndexByte(l, ']')
			if end < 0 {
				probs = append(probs, Problem{n, fmt.Sprintf("section header %q has no ']'", l)})
				bad[n] = true
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
		k, _, ok := strings.Cut(l, "=")
		if !ok {
			probs = append(probs, Problem{n, fmt.Sprintf("%q is not 'key = value'", l)})
			bad[n] = true
			continue
		}
		k = strings.TrimSpace(k)
		switch section {
		case "?":
			continue // already reported
		case "":
			probs = append(probs, Problem{n, fmt.Sprintf("key %q is outside any section", k)})
			continue
		}
		repeatable, known := lookupKey(section, k)
		if !known {
			probs = append(probs, Problem{n, fmt.Sprintf("unknown key %q in [%s]", k, section)})
			continue
		}
		id := section + "." + k
		if prev := lines[id]; len(prev) > 0 && !repeatable {
			probs = append(probs, Problem{n, fmt.Sprintf("%s is set twice (first on line %d)", k, prev[0])})
		}
		lines[id] = append(lines[id], n)
	}
	return lines, probs, bad
}

// blankLines empties the lines scan already reported, keeping the line
// count, so that ini.v1 can still parse the rest and every other problem
// is found in the same pass.
func blankLines(data []byte, bad map[int]bool) []byte {
	if len(bad) == 0 {
		return data
	}
	ls := bytes.Split(data, []byte("\n"))
	for n := range bad {
		ls[n-1] = nil
	}
	return bytes.Join(ls, []byte("\n"))
}

type validator struct {
	lines map[string][]int
	probs []Problem
}

func (v *validator) line(section, key string, i int) int {
	if ls := v.lines[section+"."+key]; i < len(ls) {
		return ls[i]
	}
	return 0
}

func (v *validator) add(section, key string, i int, msg string) {
	v.probs = append(v.probs, Problem{v.line(section, key, i), msg})
}

func (v *validator) str(s *ini.Section, key string, dst *string) bool {
	if !s.HasKey(key) {
		return false
	}
	*dst = strings.TrimSpace(s.Key(key).String())
	if *dst == "" {
		v.add(s.Name(), key, 0, fmt.Sprintf("%s is empty (remove the line for the default)", key))
		return false
	}
	return true
}

func (v *validator) abs(s *ini.Section, key string, dst *string) {
	if v.str(s, key, dst) {
		if !filepath.IsAbs(*dst) {
			v.add(s.Name(), key, 0, fmt.Sprintf("%s %q is not an absolute path", key, *dst))
		}
		*dst = filepath.Clean(*dst)
	}
}

func (v *validator) bool(s *ini.Section, key string, dst *bool) {
	if !s.HasKey(key) {
		return
	}
	switch strings.ToLower(strings.TrimSpace(s.Key(key).String())) {
	case "true", "yes", "on", "1":
		*dst = true
	case "false", "no", "off", "0":
		*dst = false
	default:
		v.add(s.Name(), key, 0, fmt.Sprintf("%s = %q: use true or false", key, s.Key(key).String()))
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
