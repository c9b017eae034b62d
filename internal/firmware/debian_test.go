package firmware

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Debian's firmware packages as they are: testdata/debian/RELEASE holds
// the file list of each release's .debs (files.txt: sizes and symlinks)
// and their firmware descriptors, copied from the packages (12: bookworm
// 2022.11-6+deb12u2; 13: trixie 2025.02-8+deb13u1; sid: 2026.08+ds-2).

var debianReleases = []string{"12", "13", "sid"}

// debFile is one file of a release: a size, or a symlink target.
type debFile struct {
	size   int64
	target string
}

func debianFiles(t *testing.T, release string) map[string]debFile {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "debian", release, "files.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]debFile{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if p, target, ok := strings.Cut(line, " -> "); ok {
			files[p] = debFile{target: target}
			continue
		}
		p, size, _ := strings.Cut(line, " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", release, line)
		}
		files[p] = debFile{size: n}
	}
	return files
}

// resolve follows a release's symlinks to the regular file.
func resolve(files map[string]debFile, p string) (string, debFile, bool) {
	for range 8 {
		f, ok := files[p]
		if !ok {
			return "", debFile{}, false
		}
		if f.target == "" {
			return p, f, true
		}
		p = path.Join(path.Dir(p), f.target)
	}
	return "", debFile{}, false
}

func inRelease(e TableEntry, release string) bool {
	for _, r := range strings.Fields(e.Releases) {
		if r == release {
			return true
		}
	}
	return false
}

// TestTableMatchesDebianPackages: every Debian entry exists, with its
// sizes, in exactly the releases it names, and every split CODE file of
// a release is in the table.
func TestTableMatchesDebianPackages(t *testing.T) {
	for _, release := range debianReleases {
		files := debianFiles(t, release)
		known := map[string]bool{}
		for _, e := range Table {
			if e.Distro != "debian" {
				continue
			}
			known[e.Code] = true
			_, code, okCode := resolve(files, e.Code)
			_, vars, okVars := resolve(files, e.Vars)
			if !inRelease(e, release) {
				if okCode {
					t.Errorf("%s: %s is in the packages, but the entry does not name the release", release, e.Code)
				}
				continue
			}
			if !okCode || !okVars {
				t.Errorf("%s: %s + %s not both in the packages", release, e.Code, e.Vars)
				continue
			}
			if code.size != e.CodeSize || vars.size != e.VarsSize {
				t.Errorf("%s: %s is %d + %d bytes, the table says %d + %d", release, e.Code, code.size, vars.size, e.CodeSize, e.VarsSize)
			}
		}
		for p := range files {
			dir, base := path.Split(p)
			split := strings.Contains(base, "_CODE") || dir == "/usr/share/qemu-efi-loongarch64/" && base == "QEMU_EFI.fd"
			if split && !known[p] {
				t.Errorf("%s: %s is not in the table", release, p)
			}
		}
	}
}

// TestTableAgreesWithDebianDescriptors: where a release's descriptor
// names a table pair, both say the same of architecture, Secure Boot,
// SMM and enrolled keys.
func TestTableAgreesWithDebianDescriptors(t *testing.T) {
	for _, release := range debianReleases {
		paths, _ := filepath.Glob(filepath.Join("testdata", "debian", release, "firmware", "*.json"))
		if len(paths) == 0 {
			t.Fatalf("%s: no descriptors", release)
		}
		for _, p := range paths {
			d, err := ReadDescriptor(p)
			if err != nil {
				t.Fatal(err)
			}
			if !d.SplitFlash() {
				continue
			}
			found := false
			for _, e := range Table {
				if e.Code != d.Executable || e.Vars != d.Template {
					continue
				}
				found = true
				df := d.Facts()
				enrolled := e.Keys != KeysNone
				if df.Arch != e.Arch || df.SecureBoot != e.SecureBoot || df.SMM != e.SMM || enrolled != (df.Keys != KeysNone) {
					t.Errorf("%s %s: descriptor says %s, the table %s", release, filepath.Base(p), df.Describe(), e.Facts.Describe())
				}
			}
			if !found {
				t.Errorf("%s %s: %s + %s not in the table", release, filepath.Base(p), d.Executable, d.Template)
			}
		}
	}
}

// debianTree lays out a release's firmware files (sparse, of their real
// sizes; symlinks as shipped) and its descriptors under root, and
// returns the sources a host with those packages has.
func debianTree(t *testing.T, release string) (string, Sources) {
	t.Helper()
	root := t.TempDir()
	for p, f := range debianFiles(t, release) {
		full := root + p
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.target != "" {
			if err := os.Symlink(f.target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		fh, err := os.Create(full)
		if err == nil {
			err = fh.Truncate(f.size)
		}
		if err == nil {
			err = fh.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	descs := filepath.Join(root, "usr/share/qemu/firmware")
	paths, _ := filepath.Glob(filepath.Join("testdata", "debian", release, "firmware", "*.json"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(descs, filepath.Base(p)), strings.ReplaceAll(string(data), `"/usr/share/`, `"`+root+`/usr/share/`))
	}
	return root, Sources{DescriptorDirs: []string{filepath.Join(root, "etc/qemu/firmware"), descs}, Table: Table, TableRoot: root}
}

// TestDebianTrees: on a host with a release's packages, every table
// entry of that release finds a template, and its layout is the real one
// (the size check compares with it); a descriptor for i386 serves an
// i686 domain as libvirt maps the names; riscv64 and loongarch64 come
// with their 32 and 16 MiB layouts.
func TestDebianTrees(t *testing.T) {
	for _, release := range debianReleases {
		t.Run(release, func(t *testing.T) {
			root, s := debianTree(t, release)
			c := Load(s)
			if len(c.Problems) > 0 {
				t.Fatal(c.Problems)
			}
			for _, e := range Table {
				if e.Distro != "debian" || !inRelease(e, release) {
					continue
				}
				q := Query{Loader: root + e.Code, Arch: e.Arch}
				if _, err := c.Find(q); err != nil {
					t.Errorf("%s: %v", e.Code, err)
				}
				l, ok := c.Layout(q)
				if !ok || l.Facts.VarsSize != e.VarsSize || l.Facts.CodeSize != e.CodeSize {
					t.Errorf("%s: layout %+v, %v; want %d + %d bytes", e.Code, l.Facts, ok, e.CodeSize, e.VarsSize)
				}
			}
			if release == "sid" {
				return
			}
			hit, err := c.Find(Query{Loader: root + "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd", Arch: "i686", Machine: "pc-q35-10.0"})
			if err != nil || hit.Source != FromDescriptor || filepath.Base(hit.Origin) != "50-edk2-i386-secure.json" {
				t.Errorf("i686 Secure Boot firmware: %+v, %v; want the i386 descriptor", hit, err)
			}
		})
	}
}

// TestOneAnswerOnTrixie: on a host shaped like Debian 13, the snakeoil
// loader (a symlink to OVMF_CODE_4M.secboot.fd, named by no descriptor)
// gets the test-keys template of the table's literal entry, not the
// Microsoft-keys template of the descriptor naming OVMF_CODE_4M.ms.fd
// (another symlink to the same file), and check's mark (Status) says
// the same as Find for every entry.
func TestOneAnswerOnTrixie(t *testing.T) {
	root, s := debianTree(t, "13")
	c := Load(s)
	ovmf := root + "/usr/share/OVMF/"
	for _, tt := range []struct {
		loader, features string
		template         string
		keys             Keys
	}{
		{"OVMF_CODE_4M.snakeoil.fd", "", "OVMF_VARS_4M.snakeoil.fd", KeysTest},
		{"OVMF_CODE_4M.ms.fd", "", "OVMF_VARS_4M.ms.fd", KeysMicrosoft},
		{"OVMF_CODE_4M.secboot.fd", "", "OVMF_VARS_4M.fd", KeysNone},
		{"OVMF_CODE_4M.secboot.strictnx.fd", "", "OVMF_VARS_4M.fd", KeysNone},
		{"OVMF_CODE_4M.fd", "", "OVMF_VARS_4M.fd", KeysNone},
		// A domain asking for enrolled keys on the plain secboot name: the
		// literal descriptor does not fit, the .ms descriptor (resolved)
		// does, as libvirt itself would pick.
		{"OVMF_CODE_4M.secboot.fd", "enrolled-keys", "OVMF_VARS_4M.ms.fd", KeysMicrosoft},
	} {
		q := Query{Loader: ovmf + tt.loader, Arch: "x86_64", Machine: "pc-q35-10.0"}
		if tt.features != "" {
			q.Features = map[string]bool{tt.features: true, "secure-boot": true}
		}
		l := c.Lookup(q)
		hit, err := l.Hit()
		if err != nil || hit.Template != ovmf+tt.template {
			t.Errorf("%s %s: %+v, %v; want %s", tt.loader, tt.features, hit, err, tt.template)
			continue
		}
		if w := l.Candidates[l.Winner]; w.Facts.Keys != tt.keys {
			t.Errorf("%s: winner %s has keys %q, want %q", tt.loader, w.Origin, w.Facts.Keys, tt.keys)
		}
	}
	for _, p := range c.Pairs {
		hit, err := c.Find(Query{Loader: p.Code})
		used := err == nil && hit.Template == p.Vars && hit.Origin == p.Origin
		if (c.Status(p) == "used") != used {
			t.Errorf("%s [%s]: check says %q, Find picks %+v", p.Code, p.Origin, c.Status(p), hit)
		}
	}
}

// TestSecondDescriptorIsAnAlternative: two descriptors for one executable
// (as Fedora ships 40-sb-enrolled and 50-sb): the second is the one a
// domain refusing enrolled keys gets, so check calls it an alternative,
// not shadowed; a table entry after a config entry is shadowed.
func TestSecondDescriptorIsAnAlternative(t *testing.T) {
	c := catalogOf(debianLike())
	c.Pairs = append(c.Pairs, Pair{Code: "/fw/CODE.fd", Vars: "/table/VARS.fd", Source: FromTable, Origin: "test x86_64"})
	c.Pairs = append([]Pair{{Code: "/fw/CODE.fd", Vars: "/conf/VARS.fd", Source: FromConfig, Origin: "conf:1"}}, c.Pairs...)
	want := map[string]string{
		"40-enrolled.json": "used",
		"50-secure.json":   "alternative: for a domain that the entries before it do not fit",
		"conf:1":           "used",
		"60-plain.json":    "shadowed by hook config conf:1",
		"test x86_64":      "shadowed by hook config conf:1",
	}
	for _, p := range c.Pairs {
		if w, ok := want[filepath.Base(p.Origin)]; ok && c.Status(p) != w {
			t.Errorf("%s: status %q, want %q", p.Origin, c.Status(p), w)
		}
	}
	hit, err := c.Find(Query{Loader: "/fw/CODE.secboot.fd", Arch: "x86_64", Machine: "pc-q35-9.2", Features: map[string]bool{"enrolled-keys": false}})
	if err != nil || hit.Template != "/fw/VARS.fd" {
		t.Errorf("domain refusing enrolled keys: %+v, %v", hit, err)
	}
}

// TestLibvirtDefaultMatchesDebianBuilds: the table's Libvirt field says
// which releases' libvirt knows a pair itself, exactly as the loader:nvram
// list compiled into each release's libvirt-daemon-driver-qemu has it
// (testdata/debian/RELEASE/libvirt-loader-nvram.txt), and LibvirtDefault
// finds each listed loader.
func TestLibvirtDefaultMatchesDebianBuilds(t *testing.T) {
	for _, release := range debianReleases {
		t.Run(release, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "debian", release, "libvirt-loader-nvram.txt"))
			if err != nil {
				t.Fatal(err)
			}
			listed := map[string]string{}
			for _, line := range strings.Split(string(data), "\n") {
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				code, vars, ok := strings.Cut(line, ":")
				if !ok {
					t.Fatalf("%q is not CODE:VARS", line)
				}
				listed[code] = vars
			}
			if len(listed) == 0 {
				t.Fatal("no pairs listed")
			}
			for code, vars := range listed {
				e, ok := LibvirtDefault(code)
				if !ok || e.Vars != vars || !strings.Contains(" "+e.Libvirt+" ", " "+release+" ") {
					t.Errorf("libvirt of %s knows %s:%s; LibvirtDefault = %+v, %v", release, code, vars, e, ok)
				}
			}
			for _, e := range Table {
				if strings.Contains(" "+e.Libvirt+" ", " "+release+" ") && listed[e.Code] != e.Vars {
					t.Errorf("table says libvirt of %s knows %s:%s; its build lists %q", release, e.Code, e.Vars, listed[e.Code])
				}
			}
		})
	}
}
