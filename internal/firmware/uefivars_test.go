package firmware

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// uefiVarsDescriptor is a descriptor of an edk2 build that keeps its
// variables in QEMU's uefi-vars device, shaped as QEMU's
// docs/interop/firmware.json (FirmwareMappingMemory with the
// FirmwareMemoryUefiVars member, merged February 2026) and libvirt 12.x
// read them: device memory, the executable in mapping.filename, the JSON
// template in mapping.uefi-vars.template, the host-uefi-vars feature.
func uefiVarsDescriptor(rom, template, arch, machines string, features ...string) string {
	uv := ""
	if template != "-" {
		uv = fmt.Sprintf(`,
        "uefi-vars": {
            "template": %q
        }`, template)
	}
	return fmt.Sprintf(`{
    "description": "UEFI firmware for %s, variables in the uefi-vars device",
    "interface-types": [
        "uefi"
    ],
    "mapping": {
        "device": "memory",
        "filename": %q%s
    },
    "targets": [
        {
            "architecture": %q,
            "machines": [
                %q
            ]
        }
    ],
    "features": [
        "%s"
    ],
    "tags": [
    ]
}
`, arch, rom, uv, arch, machines, strings.Join(features, `",
        "`))
}

// TestVarstoreTemplates: a rom loader's <varstore> template comes from the
// domain's template=, the config's varstore pairs, and descriptors with
// host-uefi-vars, matched like flash descriptors; never from the NVRAM
// table or flash descriptors.
func TestVarstoreTemplates(t *testing.T) {
	root, s := debianTree(t, "sid")
	edk2 := filepath.Join(root, "usr/share/edk2")
	rom := filepath.Join(edk2, "OVMF.qemuvars.fd")
	arm := filepath.Join(edk2, "QEMU_EFI.qemuvars.fd")
	for _, f := range []string{rom, arm, filepath.Join(edk2, "OVMF_VARS.json"), filepath.Join(edk2, "OVMF_VARS.secboot.json")} {
		write(t, f, `{"version": 2, "variables": []}`)
	}
	if err := os.Symlink("OVMF.qemuvars.fd", filepath.Join(edk2, "link.fd")); err != nil {
		t.Fatal(err)
	}
	descs := s.DescriptorDirs[1]
	write(t, filepath.Join(descs, "30-edk2-x86_64-uefivars-enrolled.json"), uefiVarsDescriptor(rom, filepath.Join(edk2, "OVMF_VARS.secboot.json"), "x86_64", "pc-q35-*", "acpi-s3", "enrolled-keys", "host-uefi-vars", "secure-boot"))
	write(t, filepath.Join(descs, "31-edk2-x86_64-uefivars.json"), uefiVarsDescriptor(rom, filepath.Join(edk2, "OVMF_VARS.json"), "x86_64", "pc-q35-*", "acpi-s3", "host-uefi-vars", "secure-boot"))
	write(t, filepath.Join(descs, "32-no-feature.json"), uefiVarsDescriptor(arm, "/elsewhere/NO_FEATURE.json", "aarch64", "virt-*", "verbose-static"))
	write(t, filepath.Join(descs, "33-edk2-aarch64-uefivars.json"), uefiVarsDescriptor(arm, filepath.Join(edk2, "AA_VARS.json"), "aarch64", "virt-*", "host-uefi-vars"))
	write(t, filepath.Join(descs, "34-broken.json"), strings.Replace(uefiVarsDescriptor(arm, "x", "aarch64", "virt-*", "host-uefi-vars"), `"template": "x"`, `"tmpl": "x"`, 1))
	s.ConfigPath = "hook.conf"
	s.VarstorePairs = []Pair{{Code: "/srv/fw/MY_ROM.fd", Vars: "/srv/fw/MY_VARS.json", Origin: "hook.conf:4"}}
	c := Load(s)
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Error(), "34-broken.json: missing 'template' for 'uefi-vars'") {
		t.Errorf("problems %v, want libvirt's complaint about 34-broken.json", c.Problems)
	}
	q35 := Query{Loader: rom, Arch: "x86_64", Machine: "pc-q35-11.1"}
	for _, tt := range []struct {
		name     string
		q        Query
		template string
		source   Source
		resolved bool
		err      string
	}{
		{"first descriptor by name", q35, "OVMF_VARS.secboot.json", FromDescriptor, false, ""},
		{"enrolled keys refused", with(q35, func(q *Query) { q.Features = map[string]bool{"enrolled-keys": false} }), "OVMF_VARS.json", FromDescriptor, false, ""},
		{"the domain's template= wins", with(q35, func(q *Query) { q.Template = "/mine.json" }), "/mine.json", FromDomain, false, ""},
		{"config pair", Query{Loader: "/srv/fw/MY_ROM.fd"}, "/srv/fw/MY_VARS.json", FromConfig, false, ""},
		{"through a symlink", with(q35, func(q *Query) { q.Loader = filepath.Join(edk2, "link.fd") }), "OVMF_VARS.secboot.json", FromDescriptor, true, ""},
		{"aarch64, the feature decides", Query{Loader: arm, Arch: "aarch64", Machine: "virt-11.1"}, "AA_VARS.json", FromDescriptor, false, ""},
		{"x86 firmware on aarch64", with(q35, func(q *Query) { q.Arch, q.Machine = "aarch64", "virt-11.1" }), "", "", false, "no uefi-vars JSON varstore template for rom loader " + rom + " (looked in: domain XML, hook.conf, 15 firmware descriptors); not matching the domain: 30-edk2-x86_64-uefivars-enrolled.json: targets x86_64 pc-q35-*, not aarch64 virt-11.1"},
		{"a flash build is no uefi-vars build", Query{Loader: root + "/usr/share/OVMF/OVMF_CODE_4M.fd", Arch: "x86_64"}, "", "", false, "no uefi-vars JSON varstore template for rom loader " + root + "/usr/share/OVMF/OVMF_CODE_4M.fd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hit, err := c.FindVarstore(tt.q)
			if tt.err != "" {
				var nf *NotFoundError
				if !errors.As(err, &nf) || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || filepath.Base(hit.Template) != filepath.Base(tt.template) || hit.Source != tt.source || hit.Resolved != tt.resolved {
				t.Fatalf("FindVarstore = %+v, %v; want %s from %s (resolved %v)", hit, err, tt.template, tt.source, tt.resolved)
			}
		})
	}
	// The NVRAM lookup never hands out a JSON template.
	if hit, err := c.Find(q35); err == nil {
		t.Errorf("Find(rom) = %+v", hit)
	}
	for _, p := range c.VarsPairs {
		want := map[string]string{"30-edk2-x86_64-uefivars-enrolled.json": "used", "31-edk2-x86_64-uefivars.json": "alternative: for a domain that the entries before it do not fit", "hook.conf:4": "used", "33-edk2-aarch64-uefivars.json": "used"}[filepath.Base(p.Origin)]
		if got := c.VarsStatus(p); got != want {
			t.Errorf("check: %s is %q, want %q", p.Origin, got, want)
		}
	}
	if len(c.VarsPairs) != 4 {
		t.Errorf("uefi-vars entries %+v, want the config's and three descriptors'", c.VarsPairs)
	}
	states := map[string]string{}
	for _, st := range DescriptorStates(s.DescriptorDirs) {
		states[filepath.Base(st.Path)] = st.Status
	}
	if states["31-edk2-x86_64-uefivars.json"] != "used (rom firmware with a uefi-vars JSON template)" || !strings.HasPrefix(states["32-no-feature.json"], "not split flash") {
		t.Errorf("check states: %v", states)
	}
}

func with(q Query, f func(*Query)) Query {
	f(&q)
	return q
}
