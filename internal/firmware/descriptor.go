package firmware

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// Descriptor is the part of a QEMU firmware descriptor (qemu
// docs/interop/firmware.json) that the hook uses.
type Descriptor struct {
	File           string // the file it was read from
	Description    string
	Interfaces     []string
	Device         string
	Mode           string
	Executable     string
	ExecFormat     string
	Template       string
	TemplateFormat string
	// VarsTemplate is the JSON variable store template of a firmware
	// loaded into memory (a rom loader) that keeps its variables in QEMU's
	// uefi-vars device: mapping.uefi-vars.template, with mapping.filename
	// as the executable (QEMU docs/interop/firmware.json,
	// FirmwareMemoryUefiVars, since 11.0).
	VarsTemplate string
	Targets      []Target
	Features     []string
}

// Target is one architecture and its machine-type globs.
type Target struct {
	Architecture string
	Machines     []string
}

type descriptorJSON struct {
	Description    string   `json:"description"`
	InterfaceTypes []string `json:"interface-types"`
	Mapping        struct {
		Device     string `json:"device"`
		Mode       string `json:"mode"`
		Executable struct {
			Filename string `json:"filename"`
			Format   string `json:"format"`
		} `json:"executable"`
		NVRAMTemplate struct {
			Filename string `json:"filename"`
			Format   string `json:"format"`
		} `json:"nvram-template"`
		Filename string `json:"filename"` // device memory
		UEFIVars *struct {
			Template string `json:"template"`
		} `json:"uefi-vars"`
	} `json:"mapping"`
	Targets  []targetJSON `json:"targets"`
	Features []string     `json:"features"`
}

type targetJSON struct {
	Architecture string   `json:"architecture"`
	Machines     []string `json:"machines"`
}

// DescriptorFiles lists the effective descriptor files of dirs (highest
// priority first): the same file name in an earlier directory replaces a
// later one, an empty file masks the name, and the result is sorted by file
// name, as QEMU's firmware.json specification and libvirt do.
func DescriptorFiles(dirs []string) ([]string, error) {
	chosen := map[string]string{}
	var firstErr error
	for _, dir := range dirs {
		entries, err := safeopen.ReadDir(dir)
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
func ReadDescriptor(file string) (*Descriptor, error) {
	data, err := safeopen.ReadFile(file, safeopen.MaxConfigSize)
	if err != nil {
		return nil, err
	}
	var j descriptorJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("firmware descriptor %s: %w", file, err)
	}
	if j.Mapping.UEFIVars != nil && j.Mapping.UEFIVars.Template == "" {
		return nil, fmt.Errorf("firmware descriptor %s: missing 'template' for 'uefi-vars'", file)
	}
	d := &Descriptor{
		File:           file,
		Description:    j.Description,
		Interfaces:     j.InterfaceTypes,
		Device:         j.Mapping.Device,
		Mode:           j.Mapping.Mode,
		Executable:     j.Mapping.Executable.Filename,
		ExecFormat:     j.Mapping.Executable.Format,
		Template:       j.Mapping.NVRAMTemplate.Filename,
		TemplateFormat: j.Mapping.NVRAMTemplate.Format,
		Features:       j.Features,
	}
	if d.Device == "memory" {
		d.Executable = j.Mapping.Filename
		if j.Mapping.UEFIVars != nil {
			d.VarsTemplate = j.Mapping.UEFIVars.Template
		}
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

// UEFIVars reports whether the descriptor describes a firmware loaded as a
// rom that keeps its variables in QEMU's uefi-vars device, with a JSON
// template for the per-VM varstore (libvirt 12.1+ <varstore>): device
// memory, an executable, a uefi-vars template and the host-uefi-vars
// feature.
func (d *Descriptor) UEFIVars() bool {
	return d.Device == "memory" && d.Executable != "" && d.VarsTemplate != "" && d.has("host-uefi-vars")
}

func (d *Descriptor) has(feature string) bool { return slices.Contains(d.Features, feature) }

// Mismatch applies libvirt's own rules (qemuFirmwareMatchDomain) to a
// descriptor whose executable is the domain's loader, and says why it does
// not fit, or "" when it does. What the domain leaves unsaid matches
// anything.
func (d *Descriptor) Mismatch(q Query) string {
	if len(d.Interfaces) > 0 && !slices.Contains(d.Interfaces, "uefi") {
		return "not a UEFI firmware"
	}
	if q.Arch != "" && !d.matchesTarget(q.Arch, q.Machine) {
		return fmt.Sprintf("targets %s, not %s %s", d.targetList(), q.Arch, q.Machine)
	}
	for _, f := range []string{"secure-boot", "enrolled-keys"} {
		want, asked := q.Features[f]
		switch {
		case asked && want && !d.has(f):
			return "the domain asks for " + f + ", the firmware lacks it"
		case asked && !want && d.has(f):
			return "the domain refuses " + f + ", the firmware has it"
		}
	}
	if d.has("requires-smm") {
		if q.SMMOff {
			return "the firmware requires SMM, the domain turns it off"
		}
		if q.LoaderSecure == "no" {
			return "the firmware requires SMM, the loader has secure='no'"
		}
	} else if q.LoaderSecure == "yes" {
		return "the loader has secure='yes', the firmware does not use SMM"
	}
	if q.LoaderFormat != "" && d.ExecFormat != "" && q.LoaderFormat != d.ExecFormat {
		return fmt.Sprintf("executable format %s, the loader is %s", d.ExecFormat, q.LoaderFormat)
	}
	if q.NVRAMFormat != "" && d.TemplateFormat != "" && q.NVRAMFormat != d.TemplateFormat {
		return fmt.Sprintf("template format %s, the varstore is %s", d.TemplateFormat, q.NVRAMFormat)
	}
	return ""
}

func (d *Descriptor) matchesTarget(arch, machine string) bool {
	for _, t := range d.Targets {
		if libvirtArch(t.Architecture) != arch {
			continue
		}
		if machine == "" {
			return true
		}
		for _, glob := range t.Machines {
			if ok, _ := path.Match(glob, machine); ok {
				return true
			}
		}
	}
	return false
}

// Facts says what the descriptor declares: architecture (when it targets
// one), Secure Boot, SMM, and whether the template has keys enrolled
// (which keys, a descriptor does not say).
func (d *Descriptor) Facts() Facts {
	f := Facts{SecureBoot: flagOf(d.has("secure-boot")), SMM: flagOf(d.has("requires-smm")), Format: firstNonEmpty(d.TemplateFormat, "raw")}
	if len(d.Targets) == 1 {
		f.Arch = libvirtArch(d.Targets[0].Architecture)
	}
	if !d.has("enrolled-keys") {
		f.Keys = KeysNone
	}
	return f
}

func (d *Descriptor) targetList() string {
	var parts []string
	for _, t := range d.Targets {
		parts = append(parts, t.Architecture+" "+strings.Join(t.Machines, ","))
	}
	return strings.Join(parts, "; ")
}

// DescriptorState is one descriptor file as `check` shows it.
type DescriptorState struct {
	Path   string
	Status string // "used", or why not
	D      *Descriptor
}

// DescriptorStates lists every descriptor file of dirs (highest priority
// first), sorted by name, saying which are used and why the others are not:
// overridden by a file of the same name in a higher directory, masked by
// an empty one, unreadable, or not split flash.
func DescriptorStates(dirs []string) []DescriptorState {
	var out []DescriptorState
	winner := map[string]string{}
	for _, dir := range dirs {
		entries, err := safeopen.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			st := DescriptorState{Path: p}
			fi, err := os.Stat(p)
			switch {
			case winner[e.Name()] != "":
				st.Status = "overridden by " + winner[e.Name()]
			case err == nil && fi.Size() == 0:
				winner[e.Name()] = p
				st.Status = "empty: masks this name in lower directories"
			default:
				winner[e.Name()] = p
				d, err := ReadDescriptor(p)
				switch {
				case err != nil:
					st.Status = "unreadable: " + err.Error()
				case d.UEFIVars():
					st.Status = "used (rom firmware with a uefi-vars JSON template)"
					st.D = d
				case !d.SplitFlash():
					st.Status = "not split flash (device " + d.Device + "): no varstore"
					if d.Device == "flash" {
						st.Status = "not split flash (mode " + d.Mode + "): no varstore"
					}
					st.D = d
				default:
					st.Status = "used"
					st.D = d
				}
			}
			out = append(out, st)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return filepath.Base(out[i].Path) < filepath.Base(out[j].Path) })
	return out
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
