package firmware

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func descriptor(code, vars string) string {
	return fmt.Sprintf(`{"description":"test","interface-types":["uefi"],
"mapping":{"device":"flash","executable":{"filename":%q,"format":"raw"},"nvram-template":{"filename":%q,"format":"raw"}},
"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["acpi-s3"],"tags":[]}`, code, vars)
}

func TestDescriptorFilesOverrideMaskSort(t *testing.T) {
	root := t.TempDir()
	etc, usr := filepath.Join(root, "etc"), filepath.Join(root, "usr")
	write(t, filepath.Join(usr, "60-b.json"), descriptor("/fw/B", "/fw/BV"))
	write(t, filepath.Join(usr, "50-a.json"), descriptor("/fw/A", "/fw/AV"))
	write(t, filepath.Join(usr, "40-masked.json"), descriptor("/fw/M", "/fw/MV"))
	write(t, filepath.Join(usr, "README"), "not a descriptor")
	write(t, filepath.Join(etc, "40-masked.json"), "")
	write(t, filepath.Join(etc, "60-b.json"), descriptor("/fw/B", "/fw/B-OVERRIDE"))
	write(t, filepath.Join(etc, "70-local.json"), descriptor("/fw/L", "/fw/LV"))

	files, err := DescriptorFiles([]string{etc, usr, filepath.Join(root, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(usr, "50-a.json"), filepath.Join(etc, "60-b.json"), filepath.Join(etc, "70-local.json")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files = %v, want %v", files, want)
	}
	c := Load(Sources{DescriptorDirs: []string{etc, usr}})
	hit, err := c.Find(Query{Loader: "/fw/B", Template: ""})
	if err != nil || hit.Template != "/fw/B-OVERRIDE" || hit.Source != FromDescriptor {
		t.Errorf("Find(/fw/B) = %+v, %v; want the /etc override", hit, err)
	}
	if _, err := c.Find(Query{Loader: "/fw/M", Template: ""}); err == nil {
		t.Error("a masked descriptor still matched")
	}
}

func TestBrokenAndNonSplitDescriptors(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "10-broken.json"), "{not json")
	write(t, filepath.Join(dir, "20-stateless.json"), `{"mapping":{"device":"flash","mode":"stateless","executable":{"filename":"/fw/S"}}}`)
	write(t, filepath.Join(dir, "30-memory.json"), `{"mapping":{"device":"memory","filename":"/fw/SEV"}}`)
	write(t, filepath.Join(dir, "40-good.json"), descriptor("/fw/G", "/fw/GV"))
	c := Load(Sources{DescriptorDirs: []string{dir}})
	if len(c.Problems) != 1 {
		t.Errorf("problems = %v, want the broken descriptor only", c.Problems)
	}
	if len(c.Pairs) != 1 || c.Pairs[0].Code != "/fw/G" {
		t.Errorf("pairs = %+v", c.Pairs)
	}
	if c.Consulted[0] != "4 firmware descriptors" {
		t.Errorf("consulted = %v", c.Consulted)
	}
}

// TestFindOrder covers the lookup order and the exact-before-resolved rule
// on a tree shaped like Debian's: OVMF_CODE_4M.ms.fd is a symlink to
// OVMF_CODE_4M.secboot.fd, and each name has its own template.
func TestFindOrder(t *testing.T) {
	root := t.TempDir()
	fw := filepath.Join(root, "OVMF")
	write(t, filepath.Join(fw, "CODE_4M.secboot.fd"), "code")
	if err := os.Symlink("CODE_4M.secboot.fd", filepath.Join(fw, "CODE_4M.ms.fd")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fw, "CUSTOM.fd"), "custom")
	if err := os.Symlink("CUSTOM.fd", filepath.Join(fw, "custom-link.fd")); err != nil {
		t.Fatal(err)
	}
	descs := filepath.Join(root, "descriptors")
	write(t, filepath.Join(descs, "40-enrolled.json"), descriptor(filepath.Join(fw, "CODE_4M.ms.fd"), "/fw/VARS.ms"))
	write(t, filepath.Join(descs, "50-secure.json"), descriptor(filepath.Join(fw, "CODE_4M.secboot.fd"), "/fw/VARS.empty"))
	write(t, filepath.Join(descs, "60-custom.json"), descriptor(filepath.Join(fw, "CUSTOM.fd"), "/fw/VARS.desc"))
	qconf := filepath.Join(root, "qemu.conf")
	write(t, qconf, fmt.Sprintf("nvram = [ %q, %q ]\n", "/fw/ONLY_QEMUCONF.fd:/fw/VARS.qc", filepath.Join(fw, "CUSTOM.fd")+":/fw/VARS.qc-custom"))
	c := Load(Sources{
		ConfigPath:     "/etc/libvirt/nvram-hook.conf",
		ConfigPairs:    []Pair{{Code: filepath.Join(fw, "custom-link.fd"), Vars: "/fw/VARS.config", Origin: "conf:3"}},
		DescriptorDirs: []string{descs},
		QemuConf:       qconf,
	})
	tests := []struct {
		name, loader, xml string
		template          string
		source            Source
		resolved          bool
	}{
		{"domain template wins", filepath.Join(fw, "CODE_4M.ms.fd"), "/mine.fd", "/mine.fd", FromDomain, false},
		{"exact symlink name beats the earlier-sorted target", filepath.Join(fw, "CODE_4M.secboot.fd"), "", "/fw/VARS.empty", FromDescriptor, false},
		{"exact ms name", filepath.Join(fw, "CODE_4M.ms.fd"), "", "/fw/VARS.ms", FromDescriptor, false},
		{"a literal descriptor beats the config's symlink", filepath.Join(fw, "CUSTOM.fd"), "", "/fw/VARS.desc", FromDescriptor, false},
		{"config by its literal path", filepath.Join(fw, "custom-link.fd"), "", "/fw/VARS.config", FromConfig, false},
		{"qemu.conf is read although descriptors exist", "/fw/ONLY_QEMUCONF.fd", "", "/fw/VARS.qc", FromQemuConf, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hit, err := c.Find(Query{Loader: tt.loader, Template: tt.xml})
			if err != nil {
				t.Fatal(err)
			}
			if hit.Template != tt.template || hit.Source != tt.source || hit.Resolved != tt.resolved {
				t.Errorf("Find = %+v, want template %s from %s (resolved %v)", hit, tt.template, tt.source, tt.resolved)
			}
		})
	}
	_, err := c.Find(Query{Loader: "/srv/fw/X_CODE.fd", Template: ""})
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want NotFoundError", err)
	}
	want := "no varstore template for loader /srv/fw/X_CODE.fd (looked in: domain XML, /etc/libvirt/nvram-hook.conf, 3 firmware descriptors, " + qconf + ")"
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
}

func TestQemuConfAbsentAndBroken(t *testing.T) {
	dir := t.TempDir()
	c := Load(Sources{QemuConf: filepath.Join(dir, "none.conf")})
	if len(c.Problems) != 0 || c.Consulted[0] != filepath.Join(dir, "none.conf")+" (absent)" {
		t.Errorf("absent: %+v", c)
	}
	write(t, filepath.Join(dir, "bad.conf"), "nvram = [ \"x\" ]")
	c = Load(Sources{QemuConf: filepath.Join(dir, "bad.conf")})
	if len(c.Problems) != 1 {
		t.Errorf("broken qemu.conf: problems = %v", c.Problems)
	}
}
