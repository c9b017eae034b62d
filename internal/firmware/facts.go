package firmware

import (
	"strconv"
	"strings"
)

// Flag is a yes/no fact that may be unknown.
type Flag int8

// The values of a Flag.
const (
	Unknown Flag = iota
	No
	Yes
)

func (f Flag) String() string { return [...]string{"unknown", "no", "yes"}[f] }

func flagOf(b bool) Flag {
	if b {
		return Yes
	}
	return No
}

// Keys says which Secure Boot keys a varstore template has enrolled.
type Keys string

// The key sets a template can hold. The zero value means unknown.
const (
	KeysNone      Keys = "none"      // an empty store: Secure Boot off until keys are enrolled
	KeysMicrosoft Keys = "microsoft" // the distribution's PK/KEK and Microsoft's KEK/db, Secure Boot on
	KeysTest      Keys = "test"      // test keys (Debian's "snakeoil"), whose private key is public
)

// Facts are what a firmware build and its template promise a guest: the
// things a loader translation must keep and the size check compares.
type Facts struct {
	// Arch is the architecture in libvirt's terms (<type arch=...>).
	Arch string
	// SecureBoot: the build can run Secure Boot (descriptor feature
	// secure-boot).
	SecureBoot Flag
	// SMM: the build requires SMM (descriptor feature requires-smm).
	SMM Flag
	// Keys: the keys enrolled in the template.
	Keys Keys
	// CodeSize and VarsSize are the sizes in bytes of the raw CODE and
	// VARS files: the flash layout. 0 means unknown (and for qcow2 files,
	// whose size says nothing about the flash).
	CodeSize, VarsSize int64
	// Format is the format of both files: "raw" or "qcow2".
	Format string
}

// Complete reports whether every fact a translation compares is known.
func (f Facts) Complete() bool {
	return f.Arch != "" && f.SecureBoot != Unknown && f.SMM != Unknown && f.Keys != "" && f.CodeSize > 0
}

// Describe says the facts in a few words, for check, explain and errors.
func (f Facts) Describe() string {
	var parts []string
	add := func(s string) { parts = append(parts, s) }
	add(firstNonEmpty(f.Arch, "arch unknown"))
	switch f.SecureBoot {
	case Yes:
		add("Secure Boot")
	case No:
		add("no Secure Boot")
	}
	if f.SMM == Yes {
		add("SMM required")
	}
	if f.Keys != "" {
		add("keys " + string(f.Keys))
	}
	if f.CodeSize > 0 || f.VarsSize > 0 {
		add(sizeText(f.CodeSize) + " code + " + sizeText(f.VarsSize) + " vars")
	}
	if f.Format == "qcow2" {
		add("qcow2")
	}
	return strings.Join(parts, ", ")
}

func sizeText(n int64) string {
	switch {
	case n <= 0:
		return "?"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// libvirtArch turns a QEMU target name (as descriptors write it) into
// libvirt's architecture name, as libvirt's virQEMUCapsArchFromString
// does: a descriptor for "i386" serves <type arch='i686'>.
func libvirtArch(qemu string) string {
	switch qemu {
	case "i386":
		return "i686"
	case "arm":
		return "armv7l"
	}
	return qemu
}

// Mismatch applies the domain's requests to known facts the way libvirt
// applies them to a descriptor (see Descriptor.Mismatch), and says why the
// firmware does not fit, or "" when it does. Unknown facts fit anything:
// a built-in table entry is the user's own choice of loader path.
func (f Facts) Mismatch(q Query) string {
	if q.Arch != "" && f.Arch != "" && q.Arch != f.Arch {
		return "built for " + f.Arch + ", not " + q.Arch
	}
	has := map[string]Flag{"secure-boot": f.SecureBoot, "enrolled-keys": Unknown}
	switch {
	case f.Keys == KeysNone:
		has["enrolled-keys"] = No
	case f.Keys != "":
		has["enrolled-keys"] = Yes
	}
	for _, name := range []string{"secure-boot", "enrolled-keys"} {
		want, asked := q.Features[name]
		switch {
		case asked && want && has[name] == No:
			return "the domain asks for " + name + ", the firmware lacks it"
		case asked && !want && has[name] == Yes:
			return "the domain refuses " + name + ", the firmware has it"
		}
	}
	if f.SMM == Yes {
		if q.SMMOff {
			return "the firmware requires SMM, the domain turns it off"
		}
		if q.LoaderSecure == "no" {
			return "the firmware requires SMM, the loader has secure='no'"
		}
	} else if f.SMM == No && q.LoaderSecure == "yes" {
		return "the loader has secure='yes', the firmware does not use SMM"
	}
	return ""
}
