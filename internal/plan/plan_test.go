package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
)

// fixture: an allowed nvram dir, a template mapped in the config, and
// places outside the allowed dir.
type fixture struct {
	root, nvram, outside, vars string
	h                          *Host
}

func newFixture(t *testing.T, extra string) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{root: root, nvram: filepath.Join(root, "nvram"), outside: filepath.Join(root, "outside"), vars: filepath.Join(root, "VARS.fd")}
	os.Mkdir(f.nvram, 0o755)
	os.Mkdir(f.outside, 0o755)
	os.WriteFile(f.vars, []byte("vars"), 0o644)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\n%s\n[templates]\nnvram = /fw/CODE.fd:%s\ndescriptors = false\nqemu_conf =\n", f.nvram, extra, f.vars)), 0o644)
	f.h = NewHost(config.Base(conf, ""), true, nil)
	return f
}

func dom(t *testing.T, name, nvram string) *domain.Domain {
	t.Helper()
	x := fmt.Sprintf("<domain><name>%s</name><os><loader readonly='yes' type='pflash'>/fw/CODE.fd</loader>%s</os></domain>", name, nvram)
	d, err := domain.Parse([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// summary names a plan's effects in order ("exists" when there are none
// and the varstore exists, "nothing" when there are none otherwise).
func summary(pl *Plan) string {
	var names []string
	for _, e := range pl.Effects {
		switch e := e.(type) {
		case SetLoader:
			names = append(names, "set-loader")
		case CreateVarstore:
			names = append(names, "create")
		case AddNVRAM:
			names = append(names, "add-nvram")
		case SetTemplate:
			names = append(names, "set-template")
		case Skip:
			names = append(names, map[bool]string{true: "skip-warn", false: "skip"}[e.Warn])
		}
	}
	if len(names) == 0 && pl.Exists {
		return "exists"
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, "+")
}

func createOf(pl *Plan) (CreateVarstore, bool) {
	for _, e := range pl.Effects {
		if c, ok := e.(CreateVarstore); ok {
			return c, true
		}
	}
	return CreateVarstore{}, false
}

func TestPlacement(t *testing.T) {
	tests := []struct {
		name   string
		path   func(f *fixture) string
		setup  func(t *testing.T, f *fixture)
		action string
		reason string
	}{
		{"inside", func(f *fixture) string { return f.nvram + "/vm_VARS.fd" }, nil, "create", ""},
		{"dot-dot leading outside", func(f *fixture) string { return f.nvram + "/../outside/vm_VARS.fd" }, nil, "skip-warn", "outside allowed_dirs"},
		{"dot-dot staying inside", func(f *fixture) string { return f.nvram + "/../nvram/vm_VARS.fd" }, nil, "create", ""},
		{"relative", func(f *fixture) string { return "nvram/vm_VARS.fd" }, nil, "skip-warn", "not an absolute path"},
		{"outside", func(f *fixture) string { return "/etc/vm_VARS.fd" }, nil, "skip-warn", "outside allowed_dirs"},
		{"parent symlink leading outside", func(f *fixture) string { return f.nvram + "/link/vm_VARS.fd" }, func(t *testing.T, f *fixture) {
			os.Symlink(f.outside, filepath.Join(f.nvram, "link"))
		}, "skip-warn", "outside allowed_dirs"},
		{"symlinked allowed dir itself", func(f *fixture) string { return f.root + "/nvram-link/vm_VARS.fd" }, func(t *testing.T, f *fixture) {
			os.Symlink(f.nvram, filepath.Join(f.root, "nvram-link"))
		}, "create", ""},
		{"missing dir outside", func(f *fixture) string { return "/nonexistent/dir/vm_VARS.fd" }, nil, "skip-warn", "outside allowed_dirs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			if tt.setup != nil {
				tt.setup(t, f)
			}
			pl, err := f.h.Plan(dom(t, "vm", "<nvram>"+tt.path(f)+"</nvram>"), Prepare)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(pl); got != tt.action || !strings.Contains(pl.Reason, tt.reason) {
				t.Errorf("plan %s (%s), want %s (%s)", got, pl.Reason, tt.action, tt.reason)
			}
			if c, ok := createOf(pl); ok {
				if r, _ := filepath.EvalSymlinks(f.nvram); c.Dir != r || c.Name != "vm_VARS.fd" {
					t.Errorf("Dir, Name = %s, %s, want the resolved nvram dir %s and vm_VARS.fd", c.Dir, c.Name, r)
				}
			}
		})
	}
}

func TestPlanDecisions(t *testing.T) {
	tests := []struct {
		name    string
		nvram   string
		mode    Mode
		extra   string
		effects string
		reason  string
	}{
		{"prepare without nvram leaves it to libvirt", "", Prepare, "", "nothing", "libvirt generates the path"},
		{"filter without nvram adds it", "", Filter, "", "create+add-nvram", ""},
		{"block nvram", "<nvram type='block'><source dev='/dev/sdz'/></nvram>", Filter, "", "skip", "type='block'"},
		{"network nvram", "<nvram type='network'><source protocol='nbd'/></nvram>", Prepare, "", "skip", "type='network'"},
		{"nvram without a path", "<nvram template='/x'/>", Prepare, "", "nothing", "names no file"},
		{"filter, nvram without template, add_template off", "<nvram>NVRAM/vm_VARS.fd</nvram>", Filter, "", "create", ""},
		{"filter, nvram without template, add_template on", "<nvram>NVRAM/vm_VARS.fd</nvram>", Filter, "add_template = true", "create+set-template", ""},
		{"filter, template already there", "<nvram template='TPL'>NVRAM/vm_VARS.fd</nvram>", Filter, "add_template = true", "create", ""},
		{"filter, existing varstore, add_template on", "<nvram>NVRAM/exists_VARS.fd</nvram>", Filter, "add_template = true", "set-template", "exists"},
		{"filter, outside allowed dirs, add_template on", "<nvram>OUTSIDE/vm_VARS.fd</nvram>", Filter, "add_template = true", "skip-warn+set-template", "outside allowed_dirs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.extra)
			os.WriteFile(filepath.Join(f.nvram, "exists_VARS.fd"), []byte("guest"), 0o600)
			nv := strings.NewReplacer("NVRAM", f.nvram, "TPL", f.vars, "OUTSIDE", f.outside).Replace(tt.nvram)
			pl, err := f.h.Plan(dom(t, "vm", nv), tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(pl); got != tt.effects || !strings.Contains(pl.Reason, tt.reason) {
				t.Errorf("got %s (%s), want %s (%s)", got, pl.Reason, tt.effects, tt.reason)
			}
			for _, e := range pl.Effects {
				var tmpl string
				switch e := e.(type) {
				case CreateVarstore:
					tmpl = e.Template.Template
				case AddNVRAM:
					tmpl = e.Template.Template
					if e.Path != filepath.Join(f.nvram, "vm_VARS.fd") {
						t.Errorf("generated path %s", e.Path)
					}
				case SetTemplate:
					tmpl = e.Template.Template
				default:
					continue
				}
				if tmpl != f.vars {
					t.Errorf("%s: template %s, want %s", e, tmpl, f.vars)
				}
			}
		})
	}
}

func TestNoVarstoreReasons(t *testing.T) {
	tests := []struct{ os, reason string }{
		{"<type>hvm</type>", "no <loader>"},
		{"", "no <loader>"},
		{"<loader type='rom'>/bios.bin</loader>", "not pflash"},
		{"<loader readonly='no' type='pflash'>/x</loader>", "read-write"},
		{"<loader readonly='yes' type='pflash' stateless='yes'>/x</loader>", "stateless"},
		{"<loader readonly='yes' type='pflash'/>", "no path yet"},
	}
	for _, tt := range tests {
		d, err := domain.Parse([]byte("<domain><name>v</name><os>" + tt.os + "</os></domain>"))
		if err != nil {
			t.Fatal(err)
		}
		pl, err := (&Host{ConfigErr: errors.New("the config must not be needed")}).Plan(d, Filter)
		if err != nil || summary(pl) != "nothing" || !strings.Contains(pl.Reason, tt.reason) {
			t.Errorf("%s: %+v, %v; want nothing because %q", tt.os, pl, err, tt.reason)
		}
	}
	for _, x := range []string{
		"<domain><name>v</name><os firmware='efi'><type>hvm</type></os></domain>",
		"<domain><name>v</name><os firmware='efi'><loader readonly='yes' type='pflash'>/nonstandard/CODE.fd</loader></os></domain>",
	} {
		d, _ := domain.Parse([]byte(x))
		for _, mode := range []Mode{Prepare, Filter} {
			// A filter reads the config (translate_loader, add_template).
			if pl, err := (&Host{Config: config.Default("/nonexistent")}).Plan(d, mode); err != nil || summary(pl) != "nothing" || !strings.Contains(pl.Reason, "firmware='efi'") && !strings.Contains(pl.Reason, "libvirt generates") {
				t.Errorf("autoselection, mode %v: %+v, %v", mode, pl, err)
			}
		}
	}
}

// TestExistingVarstoreNeedsNoConfig: an existing varstore, a regular file
// or a symlink to one anywhere, is used as it is without the config (a
// broken one does not fail the start).
func TestExistingVarstoreNeedsNoConfig(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("symlink=%v", link), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "vm_VARS.fd")
			os.WriteFile(path, []byte("x"), 0o600)
			if link {
				path = filepath.Join(dir, "link_VARS.fd")
				os.Symlink(filepath.Join(dir, "vm_VARS.fd"), path)
			}
			h := &Host{ConfigErr: errors.New("the config must not be needed")}
			pl, err := h.Plan(dom(t, "vm", "<nvram>"+path+"</nvram>"), Prepare)
			if err != nil || summary(pl) != "exists" {
				t.Fatalf("got %+v, %v", pl, err)
			}
		})
	}
}

func TestVarsName(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"vm", "vm_VARS.fd", true},
		{"a b é 😀", "a b é 😀_VARS.fd", true},
		{"-dash", "-dash_VARS.fd", true},
		{"..", ".._VARS.fd", true},
		{"$(rm -rf ~);`x`|&", "$(rm -rf ~);`x`|&_VARS.fd", true},
		{"a/b", "", false},
		{"", "", false},
	} {
		got, err := VarsName(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("VarsName(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrName) {
			t.Errorf("error %v is not ErrName", err)
		}
	}
}

func TestFilterWithoutTemplateFails(t *testing.T) {
	f := newFixture(t, "")
	d, _ := domain.Parse([]byte("<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/fw/OTHER.fd</loader></os></domain>"))
	_, err := f.h.Plan(d, Filter)
	var nf *firmware.NotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("err = %v, want NotFoundError", err)
	}
}

// TestSizeGuard: a template whose size differs from the loader's known
// layout is refused (the 2 MiB/4 MiB mix-up); the right size passes.
func TestSizeGuard(t *testing.T) {
	root := t.TempDir()
	nvram := filepath.Join(root, "nvram")
	os.Mkdir(nvram, 0o755)
	descs := filepath.Join(root, "descriptors")
	os.Mkdir(descs, 0o755)
	code := filepath.Join(root, "CODE_4M.fd")
	os.WriteFile(code, make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(root, "VARS_4M.fd"), make([]byte, 540672), 0o644)
	os.WriteFile(filepath.Join(root, "VARS_2M.fd"), make([]byte, 131072), 0o644)
	os.WriteFile(filepath.Join(root, "VARS_4M.custom.fd"), make([]byte, 540672), 0o644)
	os.WriteFile(filepath.Join(descs, "60-x.json"), []byte(fmt.Sprintf(`{"interface-types":["uefi"],"mapping":{"device":"flash","executable":{"filename":%q},"nvram-template":{"filename":%q}},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}]}`, code, filepath.Join(root, "VARS_4M.fd"))), 0o644)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\n[templates]\ndescriptor_dirs = %s\nqemu_conf =\n", nvram, descs)), 0o644)
	for _, tt := range []struct {
		template string
		ok       bool
	}{
		{"VARS_2M.fd", false},
		{"VARS_4M.custom.fd", true},
		{"", true}, // the descriptor's own
	} {
		tmpl := ""
		if tt.template != "" {
			tmpl = " template='" + filepath.Join(root, tt.template) + "'"
		}
		d, err := domain.Parse([]byte(fmt.Sprintf("<domain><name>vm</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><loader readonly='yes' type='pflash'>%s</loader><nvram%s>%s/vm_VARS.fd</nvram></os></domain>", code, tmpl, nvram)))
		if err != nil {
			t.Fatal(err)
		}
		pl, err := NewHost(config.Base(conf, ""), true, nil).Plan(d, Prepare)
		if tt.ok != (err == nil) {
			t.Errorf("template %q: %+v, %v", tt.template, pl, err)
		}
		if err != nil && (!errors.Is(err, ErrSize) || !strings.Contains(err.Error(), "is 131072 bytes, but loader "+code+" takes 540672-byte varstores")) {
			t.Errorf("error %v", err)
		}
	}
}

// TestTemplateFormatConflict: a definition whose template= is of another
// format than its varstore is one libvirt 12.8 refuses to start, whatever
// the hook does; the plan says so, for explain and check --audit.
func TestTemplateFormatConflict(t *testing.T) {
	root := t.TempDir()
	raw, qcow2 := filepath.Join(root, "RAW.fd"), filepath.Join(root, "QCOW2.qcow2")
	os.WriteFile(raw, make([]byte, 4096), 0o644)
	os.WriteFile(qcow2, append([]byte{'Q', 'F', 'I', 0xfb}, make([]byte, 4092)...), 0o644)
	vs := filepath.Join(root, "vm_VARS")
	os.WriteFile(vs, []byte("exists"), 0o600)
	for _, tt := range []struct {
		nvram    string
		conflict bool
	}{
		{"<nvram format='qcow2' template='RAW'>VS</nvram>", true},
		{"<nvram format='qcow2' template='RAW' templateFormat='raw'>VS</nvram>", true},
		{"<nvram format='qcow2' template='QCOW2' templateFormat='qcow2'>VS</nvram>", false},
		{"<nvram format='qcow2' template='QCOW2'>VS</nvram>", false},
		{"<nvram template='RAW'>VS</nvram>", false},
		{"<nvram format='raw' template='QCOW2'>VS</nvram>", true},
		{"<nvram format='raw' template='RAW' templateFormat='qcow2'>VS</nvram>", true},
		{"<nvram format='qcow2'>VS</nvram>", false},
	} {
		nv := strings.NewReplacer("RAW", raw, "QCOW2", qcow2, "VS", vs).Replace(tt.nvram)
		pl, err := (&Host{ConfigErr: errors.New("not needed")}).Plan(dom(t, "vm", nv), Prepare)
		if err != nil || !pl.Exists {
			t.Fatalf("%s: %+v, %v", tt.nvram, pl, err)
		}
		got := strings.Join(pl.Libvirt, "")
		if tt.conflict != strings.Contains(got, "libvirt 12.8 refuses every start of this definition") {
			t.Errorf("%s: notes %q, want a conflict: %v", tt.nvram, got, tt.conflict)
		}
	}
}

// TestLibvirtTemplate: libvirt finds a template itself in the definition,
// in a descriptor naming the loader, or in its loader:nvram list for a
// literal loader path no descriptor matches: the list compiled into its
// build (Debian's names OVMF_CODE.fd, OVMF_CODE.secboot.fd, AAVMF_CODE.fd,
// AAVMF32_CODE.fd), which qemu.conf's nvram replaces, and empties once a
// descriptor exists. The hook's config and table are not libvirt's.
func TestLibvirtTemplate(t *testing.T) {
	root := t.TempDir()
	descs := filepath.Join(root, "descriptors")
	os.Mkdir(descs, 0o755)
	for _, f := range []string{"QC_CODE.fd", "QC_VARS.fd", "D_CODE.fd", "D_VARS.fd", "H_VARS.fd"} {
		os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644)
	}
	qemuConf := fmt.Sprintf("nvram = [ \"%s/QC_CODE.fd:%s/QC_VARS.fd\" ]\n", root, root)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[templates]\nnvram = %s/H_CODE.fd:%s/H_VARS.fd\ndescriptor_dirs = %s\nqemu_conf = %s/qemu.conf\nbuiltin = false\n", root, root, descs, root)), 0o644)
	desc := fmt.Sprintf(`{"mapping":{"device":"flash","executable":{"filename":"%s/D_CODE.fd"},"nvram-template":{"filename":"%s/D_VARS.fd"}},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}]}`, root, root)
	const ovmf2M, ovmf4M = "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_CODE_4M.fd"
	for _, tt := range []struct {
		loader, template string // loader: relative to root unless absolute
		descriptor       bool
		qemuConf         string // "-": the hook's qemu.conf is missing
		want             string
	}{
		{"QC_CODE.fd", "", false, qemuConf, "qemu.conf"},
		{"QC_CODE.fd", "", true, qemuConf, ""},
		{"D_CODE.fd", "", true, qemuConf, "firmware descriptor"},
		{"H_CODE.fd", "", false, qemuConf, ""},
		{"H_CODE.fd", " template='" + root + "/H_VARS.fd'", false, qemuConf, "template= in the definition"},
		// libvirt's compiled-in list: in force beside descriptors while
		// qemu.conf sets no nvram (Debian 12's 2 MiB guests).
		{ovmf2M, "", true, "-", "libvirt's compiled-in loader:nvram list"},
		{ovmf2M, "", true, "# nothing\n", "libvirt's compiled-in loader:nvram list"},
		{"/usr/share/OVMF/OVMF_CODE.secboot.fd", "", false, "-", "libvirt's compiled-in loader:nvram list"},
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "", true, "-", "libvirt's compiled-in loader:nvram list"},
		{ovmf4M, "", true, "-", ""}, // named by Debian's descriptors, not by the list
		// qemu.conf's nvram replaces the list, and with descriptors
		// present libvirt drops both.
		{ovmf2M, "", false, qemuConf, ""},
		{ovmf2M, "", true, qemuConf, ""},
		{ovmf2M, "", true, "nvram = []\n", ""},
	} {
		os.Remove(filepath.Join(descs, "50-d.json"))
		if tt.descriptor {
			os.WriteFile(filepath.Join(descs, "50-d.json"), []byte(desc), 0o644)
		}
		os.Remove(filepath.Join(root, "qemu.conf"))
		if tt.qemuConf != "-" {
			os.WriteFile(filepath.Join(root, "qemu.conf"), []byte(tt.qemuConf), 0o644)
		}
		loader := tt.loader
		if !filepath.IsAbs(loader) {
			loader = filepath.Join(root, loader)
		}
		d, err := domain.Parse([]byte(fmt.Sprintf("<domain><name>vm</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><loader readonly='yes' type='pflash'>%s</loader><nvram%s>%s/vm_VARS.fd</nvram></os></domain>", loader, tt.template, root)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := NewHost(config.Base(conf, ""), true, nil).LibvirtTemplate(d)
		if err != nil || !strings.HasPrefix(got, tt.want) || (tt.want == "") != (got == "") {
			t.Errorf("%s%s, descriptor %v, qemu.conf %q: %q, %v; want %q", tt.loader, tt.template, tt.descriptor, tt.qemuConf, got, err, tt.want)
		}
	}
}
