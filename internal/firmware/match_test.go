package firmware

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func debianLike() []*Descriptor {
	return []*Descriptor{
		{File: "40-enrolled.json", Interfaces: []string{"uefi"}, Executable: "/fw/CODE.secboot.fd", Template: "/fw/VARS.ms.fd", ExecFormat: "raw", TemplateFormat: "raw",
			Targets: []Target{{"x86_64", []string{"pc-q35-*"}}}, Features: []string{"enrolled-keys", "requires-smm", "secure-boot"}},
		{File: "50-secure.json", Interfaces: []string{"uefi"}, Executable: "/fw/CODE.secboot.fd", Template: "/fw/VARS.fd", ExecFormat: "raw", TemplateFormat: "raw",
			Targets: []Target{{"x86_64", []string{"pc-q35-*"}}}, Features: []string{"requires-smm", "secure-boot"}},
		{File: "60-plain.json", Interfaces: []string{"uefi"}, Executable: "/fw/CODE.fd", Template: "/fw/VARS.fd", ExecFormat: "raw", TemplateFormat: "raw",
			Targets: []Target{{"x86_64", []string{"pc-i440fx-*", "pc-q35-*"}}}, Features: []string{"acpi-s3"}},
		{File: "70-arm.json", Interfaces: []string{"uefi"}, Executable: "/fw/AA_CODE.fd", Template: "/fw/AA_VARS.fd",
			Targets: []Target{{"aarch64", []string{"virt-*"}}}},
	}
}

func catalogOf(ds []*Descriptor) *Catalog {
	c := &Catalog{}
	for _, d := range ds {
		c.Pairs = append(c.Pairs, Pair{Code: d.Executable, Vars: d.Template, Source: FromDescriptor, Origin: "/usr/share/qemu/firmware/" + d.File, Descriptor: d})
	}
	return c
}

// TestDescriptorMatchesDomain: when several descriptors name the same
// executable, the domain's arch, machine and features pick one, by
// libvirt's rules.
func TestDescriptorMatchesDomain(t *testing.T) {
	c := catalogOf(debianLike())
	q35 := Query{Loader: "/fw/CODE.secboot.fd", Arch: "x86_64", Machine: "pc-q35-7.2"}
	tests := []struct {
		name     string
		q        func(q Query) Query
		template string
		reject   string
	}{
		{"nothing asked: first by file name", func(q Query) Query { return q }, "/fw/VARS.ms.fd", ""},
		{"enrolled keys refused", func(q Query) Query { q.Features = map[string]bool{"enrolled-keys": false}; return q }, "/fw/VARS.fd", ""},
		{"enrolled keys asked", func(q Query) Query {
			q.Features = map[string]bool{"enrolled-keys": true, "secure-boot": true}
			return q
		}, "/fw/VARS.ms.fd", ""},
		{"secure boot refused", func(q Query) Query { q.Features = map[string]bool{"secure-boot": false}; return q }, "", "refuses secure-boot"},
		{"i440fx machine", func(q Query) Query { q.Machine = "pc-i440fx-7.2"; return q }, "", "targets x86_64 pc-q35-*, not x86_64 pc-i440fx-7.2"},
		{"SMM off", func(q Query) Query { q.SMMOff = true; return q }, "", "requires SMM"},
		{"loader secure=no", func(q Query) Query { q.LoaderSecure = "no"; return q }, "", "secure='no'"},
		{"qcow2 loader", func(q Query) Query { q.LoaderFormat = "qcow2"; return q }, "", "executable format raw"},
		{"qcow2 varstore", func(q Query) Query { q.NVRAMFormat = "qcow2"; return q }, "", "template format raw"},
		{"no arch known: path decides", func(q Query) Query { q.Arch, q.Machine = "", ""; return q }, "/fw/VARS.ms.fd", ""},
		{"secure=yes on a non-SMM firmware", func(q Query) Query { q.Loader, q.LoaderSecure = "/fw/CODE.fd", "yes"; return q }, "", "does not use SMM"},
		{"aarch64", func(q Query) Query { q.Loader, q.Arch, q.Machine = "/fw/AA_CODE.fd", "aarch64", "virt-7.2"; return q }, "/fw/AA_VARS.fd", ""},
		{"aarch64 firmware on x86", func(q Query) Query { q.Loader = "/fw/AA_CODE.fd"; return q }, "", "targets aarch64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hit, err := c.Find(tt.q(q35))
			if tt.template != "" {
				if err != nil || hit.Template != tt.template {
					t.Fatalf("Find = %+v, %v; want %s", hit, err, tt.template)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.reject) || !strings.Contains(err.Error(), "not matching the domain: ") {
				t.Fatalf("err = %v, want a rejection mentioning %q", err, tt.reject)
			}
		})
	}
}

func TestBuiltinTable(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "OVMF_CODE.fd"), "code")
	write(t, filepath.Join(root, "OVMF_VARS.fd"), "vars")
	write(t, filepath.Join(root, "ONLY_CODE.fd"), "code")
	table := []TableEntry{
		{Distro: "test", Code: filepath.Join(root, "OVMF_CODE.fd"), Vars: filepath.Join(root, "OVMF_VARS.fd"), Facts: Facts{Arch: "x86_64"}},
		{Distro: "test", Code: filepath.Join(root, "ONLY_CODE.fd"), Vars: filepath.Join(root, "MISSING_VARS.fd"), Facts: Facts{Arch: "x86_64"}},
		{Distro: "other", Code: "/nonexistent/CODE.fd", Vars: "/nonexistent/VARS.fd", Facts: Facts{Arch: "x86_64"}},
	}
	c := Load(Sources{Table: table})
	if len(c.Pairs) != 1 || c.Consulted[0] != "built-in table (1 pairs present)" {
		t.Fatalf("pairs %+v consulted %v", c.Pairs, c.Consulted)
	}
	hit, err := c.Find(Query{Loader: filepath.Join(root, "OVMF_CODE.fd")})
	if err != nil || hit.Source != FromTable || hit.Origin != "test x86_64" {
		t.Errorf("Find = %+v, %v", hit, err)
	}
	if _, err := c.Find(Query{Loader: filepath.Join(root, "ONLY_CODE.fd")}); err == nil {
		t.Error("an entry whose VARS is missing matched")
	}
	if l, ok := c.Layout(Query{Loader: filepath.Join(root, "OVMF_CODE.fd")}); !ok || l.Vars != filepath.Join(root, "OVMF_VARS.fd") {
		t.Errorf("Layout = %+v, %v", l, ok)
	}
}

func TestTableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Table {
		if !filepath.IsAbs(e.Code) || !filepath.IsAbs(e.Vars) || e.Code == e.Vars || e.Distro == "" || e.Arch == "" || e.Format == "" {
			t.Errorf("bad entry %+v", e)
		}
		if e.Releases != "" && !e.Complete() {
			t.Errorf("%s: checked against packages, but facts are missing: %s", e.Code, e.Describe())
		}
		if seen[e.Code] {
			t.Errorf("%s listed twice", e.Code)
		}
		seen[e.Code] = true
	}
}

// TestLayoutPrefersDescriptors: the layout that checks a template's size
// comes from a descriptor fitting the domain, else from the table; config
// and qemu.conf entries never count.
func TestLayoutPrefersDescriptors(t *testing.T) {
	c := catalogOf(debianLike())
	c.Pairs = append([]Pair{{Code: "/fw/CODE.fd", Vars: "/conf/VARS.fd", Source: FromConfig}}, c.Pairs...)
	c.Pairs = append(c.Pairs, Pair{Code: "/fw/CODE.fd", Vars: "/table/VARS.fd", Source: FromTable})
	l, ok := c.Layout(Query{Loader: "/fw/CODE.fd"})
	if !ok || l.Vars != "/fw/VARS.fd" || l.Source != FromDescriptor {
		t.Errorf("Layout = %+v, %v", l, ok)
	}
}

// TestTableOnFakeDistroTrees installs each distribution's firmware files,
// and only those, in a fake tree: every loader of that distribution finds
// its template, and no other distribution's entry counts.
func TestTableOnFakeDistroTrees(t *testing.T) {
	distros := map[string]bool{}
	for _, e := range Table {
		distros[e.Distro] = true
	}
	for distro := range distros {
		t.Run(distro, func(t *testing.T) {
			root := t.TempDir()
			mine := 0
			for _, e := range Table {
				if e.Distro == distro {
					write(t, root+e.Code, "code "+e.Code)
					write(t, root+e.Vars, "vars "+e.Vars)
					mine++
				}
			}
			c := Load(Sources{Table: Table, TableRoot: root})
			for _, p := range c.Pairs {
				if !strings.HasPrefix(p.Origin, distro+" ") {
					// Another distribution's entry may share a path
					// (Fedora's and Arch's aarch64 directory): it must
					// name files of this tree, then.
					if _, err := os.Stat(p.Code); err != nil {
						t.Errorf("entry %+v counted without its files", p)
					}
				}
			}
			for _, e := range Table {
				if e.Distro != distro {
					continue
				}
				hit, err := c.Find(Query{Loader: root + e.Code, Arch: e.Arch})
				if err != nil {
					t.Errorf("%s: %v", e.Code, err)
					continue
				}
				// The first entry for a loader wins; same-code entries
				// of one distribution do not exist (TestTableIsWellFormed).
				if hit.Template != root+e.Vars || hit.Source != FromTable {
					t.Errorf("%s: got %+v, want %s", e.Code, hit, root+e.Vars)
				}
			}
			if mine == 0 {
				t.Fatal("no entries")
			}
		})
	}
}
