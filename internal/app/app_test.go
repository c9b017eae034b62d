package app

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/nohang"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const testdata = "../../testdata"

// host is a fake libvirt host in a temp dir: an nvram directory, firmware
// files, a descriptor directory, a qemu.conf and the hook's config.
type host struct {
	root, nvram, fw, conf, log string
	vars                       []byte // content of every template
}

// customLoader is the loader path in the libvirt-9.0 samples; no
// descriptor names it, the hook config maps it.
const customLoader = "/srv/fw/CUSTOM_CODE.fd"

func newHost(t *testing.T, extra string) *host {
	t.Helper()
	root := t.TempDir()
	h := &host{root: root, nvram: filepath.Join(root, "nvram"), fw: filepath.Join(root, "fw"),
		conf: filepath.Join(root, "nvram-hook.conf"), log: filepath.Join(root, "hook.log")}
	h.vars = make([]byte, 64<<10)
	rand.Read(h.vars)
	for _, d := range []string{h.nvram, h.fw, filepath.Join(root, "descriptors")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"CUSTOM_VARS.fd", "DESC_VARS.fd", "QC_VARS.fd"} {
		if err := os.WriteFile(filepath.Join(h.fw, f), h.vars, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	desc := fmt.Sprintf(`{"mapping":{"device":"flash","executable":{"filename":"%s/DESC_CODE.fd"},"nvram-template":{"filename":"%s/DESC_VARS.fd"}},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}]}`, h.fw, h.fw)
	os.WriteFile(filepath.Join(root, "descriptors", "50-test.json"), []byte(desc), 0o644)
	os.WriteFile(filepath.Join(root, "qemu.conf"), []byte(fmt.Sprintf("nvram = [ \"%s/QC_CODE.fd:%s/QC_VARS.fd\" ]\n", h.fw, h.fw)), 0o644)
	conf := fmt.Sprintf(`[nvram]
dir = %s
%s
[templates]
nvram = %s:%s/CUSTOM_VARS.fd
descriptor_dirs = %s/descriptors
qemu_conf = %s/qemu.conf
[log]
target = file:%s
level = debug
`, h.nvram, extra, customLoader, h.fw, root, root, h.log)
	if err := os.WriteFile(h.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// sample reads a libvirt-9.0 sample with its nvram directory moved into
// the fake host.
func (h *host) sample(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, path))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("/var/lib/libvirt/qemu/nvram"), []byte(h.nvram))
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *host) run(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(Env{Args: append([]string{"qemu"}, args...), Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &errb,
		ConfigPath: h.conf, ConfigRequired: true, DevLog: "/nonexistent", Euid: 1000})
	return result{code, out.String(), errb.String()}
}

// requireEmptyNVRAM fails the test when anything is in the host's nvram
// directory; what says what must have left nothing there.
func (h *host) requireEmptyNVRAM(t *testing.T, what string) {
	t.Helper()
	if entries, _ := os.ReadDir(h.nvram); len(entries) != 0 {
		t.Errorf("%s: %v in the nvram directory", what, entries)
	}
}

func (h *host) logText(t *testing.T) string {
	b, _ := os.ReadFile(h.log)
	return string(b)
}

// TestFilterGolden runs the migrate/restore filter on real libvirt XML and
// compares stdout with golden files (placeholders @NVRAM@ and @FW@ stand
// for the fake host's directories). An empty golden file means "no
// output": the XML is left to libvirt unchanged.
func TestFilterGolden(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		op     string
		extra  string
		golden string
		file   string // varstore that must exist afterwards, relative to nvram
	}{
		{"restore without nvram gets one", "golden/restore-no-nvram.in.xml", "restore", "", "restore-no-nvram.out.xml", "uefi-custom_VARS.fd"},
		{"metadata, comments, namespaces kept", "golden/metadata-no-nvram.in.xml", "migrate", "", "metadata-no-nvram.out.xml", "meta guest_VARS.fd"},
		{"migrate with nvram: file only, XML untouched", "libvirt-9.0/uefi-custom--migrate.xml", "migrate", "", "empty.out.xml", "uefi-custom_VARS.fd"},
		{"add_template on", "libvirt-9.0/uefi-custom--migrate.xml", "migrate", "add_template = true", "migrate-add-template.out.xml", "uefi-custom_VARS.fd"},
		{"source form with spaces", "libvirt-9.0/uefi-source-form--prepare.xml", "restore", "", "empty.out.xml", "uefi source form_VARS.fd"},
		{"bios", "libvirt-9.0/bios--prepare.xml", "restore", "", "empty.out.xml", ""},
		{"firmware autoselection", "libvirt-9.0/efi-autoselect--prepare.xml", "migrate", "", "empty.out.xml", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, tt.extra)
			r := h.run(t, h.sample(t, tt.in), "dom", tt.op, "begin", "-")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			got := strings.NewReplacer(h.nvram, "@NVRAM@", h.fw, "@FW@").Replace(r.stdout)
			gpath := filepath.Join(testdata, "golden", tt.golden)
			if *update {
				os.WriteFile(gpath, []byte(got), 0o644)
			}
			want, err := os.ReadFile(gpath)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("stdout differs from %s:\n%s", gpath, got)
			}
			if got != "" {
				onlyNVRAMChanged(t, h.sample(t, tt.in), []byte(r.stdout))
			}
			entries, _ := os.ReadDir(h.nvram)
			if tt.file == "" {
				if len(entries) != 0 {
					t.Errorf("files created for a domain without varstore: %v", entries)
				}
				return
			}
			data, err := os.ReadFile(filepath.Join(h.nvram, tt.file))
			if err != nil {
				t.Fatalf("varstore not created: %v", err)
			}
			if !bytes.Equal(data, h.vars) {
				t.Error("varstore differs from the template")
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name     string
		xml      func(h *host) string
		pre      func(t *testing.T, h *host) // before the call
		code     int
		stderr   string // substring; "" means stderr must be empty
		created  string // file relative to nvram that must hold the template
		logMatch string
	}{
		{"creates from hook config", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, nil, 0, "", "uefi-custom_VARS.fd", "template_source=\"hook config\""},
		{"existing varstore untouched", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			os.WriteFile(filepath.Join(h.nvram, "uefi-custom_VARS.fd"), []byte("guest data"), 0o600)
		}, 0, "", "", ""},
		{"dangling symlink at the target refused", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			os.Symlink(filepath.Join(h.root, "elsewhere"), filepath.Join(h.nvram, "uefi-custom_VARS.fd"))
		}, 1, "not a regular file (a dangling symlink); refusing to create a varstore through it", "", ""},
		{"existing varstore behind a symlink untouched", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			symlinkedVarstore(t, h)
		}, 0, "", "", ""},
		{"existing varstore behind a symlink, outside allowed dirs, untouched", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			symlinkedVarstore(t, h)
			other := filepath.Join(h.root, "other")
			os.Mkdir(other, 0o755)
			os.WriteFile(h.conf, bytes.ReplaceAll(mustRead(t, h.conf), []byte("dir = "+h.nvram), []byte("dir = "+other)), 0o644)
		}, 0, "", "", ""},
		{"dangling symlink outside allowed dirs: left to libvirt", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			os.Symlink(filepath.Join(h.root, "elsewhere"), filepath.Join(h.nvram, "uefi-custom_VARS.fd"))
			other := filepath.Join(h.root, "other")
			os.Mkdir(other, 0o755)
			os.WriteFile(h.conf, bytes.ReplaceAll(mustRead(t, h.conf), []byte("dir = "+h.nvram), []byte("dir = "+other)), 0o644)
		}, 0, "", "", "outside allowed_dirs"},
		{"no template anywhere", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			os.WriteFile(h.conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\n[templates]\ndescriptor_dirs = %s/descriptors\nqemu_conf = %s/qemu.conf\n[log]\ntarget = file:%s\n", h.nvram, h.root, h.root, h.log)), 0o644)
		}, 1, "/uefi-custom_VARS.fd: no varstore template for loader /srv/fw/CUSTOM_CODE.fd (looked in: domain XML, ", "", ""},
		{"broken config fails a UEFI prepare with its line", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			os.WriteFile(h.conf, []byte("[nvram]\ndri = /x\n"), 0o644)
		}, 1, "line 2: unknown key \"dri\" in [nvram]", "", ""},
		{"broken config does not matter for BIOS", func(h *host) string { return "libvirt-9.0/bios--prepare.xml" }, func(t *testing.T, h *host) {
			os.WriteFile(h.conf, []byte("garbage"), 0o644)
		}, 0, "", "", ""},
		{"outside allowed dirs: nothing, exit 0", func(h *host) string { return "libvirt-9.0/uefi-custom--prepare.xml" }, func(t *testing.T, h *host) {
			other := filepath.Join(h.root, "other")
			os.Mkdir(other, 0o755)
			os.WriteFile(h.conf, bytes.ReplaceAll(mustRead(t, h.conf), []byte("dir = "+h.nvram), []byte("dir = "+other)), 0o644)
		}, 0, "", "", "outside allowed_dirs"},
		{"descriptor template", func(h *host) string { return "descriptor" }, nil, 0, "", "desc-vm_VARS.fd", "template_source=\"firmware descriptor\""},
		{"qemu.conf template", func(h *host) string { return "qemuconf" }, nil, 0, "", "qc-vm_VARS.fd", "template_source=qemu.conf"},
		{"XML template wins and must exist", func(h *host) string { return "xmltemplate-missing" }, nil, 1, "unusable varstore template", "", ""},
		{"malformed XML", func(h *host) string { return "malformed" }, nil, 1, "cannot use the domain XML", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			var in []byte
			switch src := tt.xml(h); src {
			case "descriptor", "qemuconf":
				code := map[string]string{"descriptor": "DESC_CODE.fd", "qemuconf": "QC_CODE.fd"}[src]
				name := map[string]string{"descriptor": "desc-vm", "qemuconf": "qc-vm"}[src]
				in = []byte(fmt.Sprintf("<domain><name>%s</name><os><type arch='x86_64'>hvm</type><loader readonly='yes' type='pflash'>%s/%s</loader><nvram>%s/%s_VARS.fd</nvram></os></domain>", name, h.fw, code, h.nvram, name))
			case "xmltemplate-missing":
				in = []byte(fmt.Sprintf("<domain><name>x</name><os><loader readonly='yes' type='pflash'>%s</loader><nvram template='%s/NOPE.fd'>%s/x_VARS.fd</nvram></os></domain>", customLoader, h.fw, h.nvram))
			case "malformed":
				in = []byte("<domain><name>x</name><os><loader readonly='yes' type='pflash'>")
			default:
				in = h.sample(t, src)
			}
			if tt.pre != nil {
				tt.pre(t, h)
			}
			before := snapshot(t, h.nvram)
			r := h.run(t, in, "dom", "prepare", "begin", "-")
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, tt.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("prepare printed to stdout: %q", r.stdout)
			}
			if tt.stderr == "" && r.stderr != "" {
				t.Errorf("unexpected stderr: %q", r.stderr)
			}
			if tt.stderr != "" {
				if !strings.Contains(r.stderr, tt.stderr) {
					t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
				}
				if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "libvirt-nvram-hook: ") {
					t.Errorf("stderr is not one prefixed line: %q", r.stderr)
				}
			}
			if tt.created != "" {
				data, err := os.ReadFile(filepath.Join(h.nvram, tt.created))
				if err != nil || !bytes.Equal(data, h.vars) {
					t.Errorf("varstore %s: %v, equal to template: %v", tt.created, err, bytes.Equal(data, h.vars))
				}
			} else if after := snapshot(t, h.nvram); after != before {
				t.Errorf("nvram dir changed:\nbefore %s\nafter  %s", before, after)
			}
			if tt.logMatch != "" && !strings.Contains(h.logText(t), tt.logMatch) {
				t.Errorf("log lacks %q:\n%s", tt.logMatch, h.logText(t))
			}
		})
	}
}

// onlyNVRAMChanged fails unless out is in plus an added <nvram> (or an
// added template= on it): undoing that change must give back the input.
func onlyNVRAMChanged(t *testing.T, in, out []byte) {
	t.Helper()
	if _, err := domain.Parse(out); err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
	orig, err := domain.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(out); err != nil {
		t.Fatal(err)
	}
	osEl := doc.FindElement("/domain/os")
	nv := osEl.SelectElement("nvram")
	if orig.NVRAM == nil {
		i := nv.Index()
		osEl.RemoveChildAt(i)
		osEl.RemoveChildAt(i - 1) // the indentation added with it
	} else {
		nv.RemoveAttr("template")
	}
	undone, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	xmltest.Same(t, in, undone)
}

// symlinkedVarstore makes the sample's varstore a symlink to a guest's
// existing varstore elsewhere, and checks after the test that the file
// it points to was left as it was.
func symlinkedVarstore(t *testing.T, h *host) {
	t.Helper()
	real := filepath.Join(h.root, "shared", "uefi-custom_VARS.fd")
	os.Mkdir(filepath.Dir(real), 0o755)
	if err := os.WriteFile(real, []byte("guest boot entries"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(real)
	if err := os.Symlink(real, filepath.Join(h.nvram, "uefi-custom_VARS.fd")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := os.Stat(real)
		if err != nil || string(mustRead(t, real)) != "guest boot entries" || !after.ModTime().Equal(before.ModTime()) || after.Mode() != before.Mode() {
			t.Errorf("the varstore behind the symlink changed: %v", err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(real)); len(entries) != 1 {
			t.Errorf("files appeared beside it: %v", entries)
		}
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot describes a directory's entries with their sizes, modes and
// contents' first bytes, to detect any change.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range entries {
		fi, _ := os.Lstat(filepath.Join(dir, e.Name()))
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s %v %d %x;", e.Name(), fi.Mode(), fi.Size(), data[:min(len(data), 16)])
	}
	return b.String()
}

// TestSymlinkedVarstoreInFilters: the migrate and restore filters leave
// an existing varstore behind a symlink alone too, and the XML unchanged.
func TestSymlinkedVarstoreInFilters(t *testing.T) {
	for _, op := range []string{"migrate", "restore"} {
		t.Run(op, func(t *testing.T) {
			h := newHost(t, "")
			symlinkedVarstore(t, h)
			before := snapshot(t, h.nvram)
			r := h.run(t, h.sample(t, "libvirt-9.0/uefi-custom--migrate.xml"), "uefi-custom", op, "begin", "-")
			if r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("got %+v, want exit 0 and no output", r)
			}
			if after := snapshot(t, h.nvram); after != before {
				t.Errorf("nvram dir changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestNoWorkPhases: every phase but prepare, migrate and restore exits 0
// silently without reading the config (a broken one proves it) and
// without touching a file, even for a UEFI domain whose varstore is
// missing.
func TestNoWorkPhases(t *testing.T) {
	for _, op := range [][]string{
		{"start", "begin"}, {"started", "begin"}, {"stopped", "end"}, {"release", "end"},
		{"reconnect", "begin"}, {"attach", "begin"}, {"teleport", "begin"}, {"prepare", "end"}, {"migrate", "end"},
	} {
		t.Run(op[0]+"/"+op[1], func(t *testing.T) {
			h := newHost(t, "")
			os.WriteFile(h.conf, []byte("[[[ broken"), 0o644)
			r := h.run(t, h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), "uefi-custom", op[0], op[1], "-")
			if r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("got %+v, want exit 0 and no output", r)
			}
			h.requireEmptyNVRAM(t, "a phase with a broken config")
		})
	}
}

func TestOwnerAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	h := newHost(t, "user = +65534\ngroup = +65533")
	var out, errb bytes.Buffer
	code := Run(Env{Args: []string{"qemu", "dom", "prepare", "begin", "-"}, Stdin: bytes.NewReader(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml")),
		Stdout: &out, Stderr: &errb, ConfigPath: h.conf, ConfigRequired: true, DevLog: "/nonexistent", Euid: 0})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(h.nvram, "uefi-custom_VARS.fd"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 || st.Gid != 65533 || st.Mode&0o777 != 0o600 {
		t.Errorf("owner %d:%d mode %o, want 65534:65533 0600", st.Uid, st.Gid, st.Mode&0o777)
	}
}

func TestCLI(t *testing.T) {
	h := newHost(t, "")
	tests := []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{nil, "", 2, "", "Usage:"},
		{[]string{"--help"}, "", 0, "Usage:", ""},
		{[]string{"--version"}, "", 0, "libvirt-nvram-hook dev", ""},
		{[]string{"bogus"}, "", 2, "", "unknown command \"bogus\""},
		{[]string{"a", "b", "c"}, "", 2, "", "Usage:"},
		{[]string{"check"}, "", 0, "* /srv/fw/CUSTOM_CODE.fd", ""},
		{[]string{"check", "x"}, "", 2, "", "check takes [--audit [DOMAIN_XML_DIR]]"},
		{[]string{"explain"}, string(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml")), 0, "prepare: create " + h.nvram + "/uefi-custom_VARS.fd from " + h.fw + "/CUSTOM_VARS.fd (hook config", ""},
		{[]string{"explain", "-f", filepath.Join(testdata, "golden/restore-no-nvram.in.xml")}, "", 0, "XML: add <nvram template='" + h.fw + "/CUSTOM_VARS.fd'>" + h.nvram + "/uefi-custom_VARS.fd</nvram>", ""},
		{[]string{"explain", "-x"}, "", 2, "", "explain takes [-f FILE]"},
		{[]string{"explain"}, "<domain><name>x</name><os><loader type='rom'>" + romLoader + "</loader><varstore path='" + h.nvram + "/x.json'/></os></domain>", 1,
			"varstore: " + h.nvram + "/x.json (uefi-vars JSON) template=(none)\nprepare: would FAIL (exit 1): cannot create varstore " + h.nvram + "/x.json: no uefi-vars JSON varstore template for rom loader " + romLoader, ""},
		{[]string{"explain"}, string(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml")), 0, "reset-nvram: 'virsh start --reset-nvram' fails: libvirt itself knows no template for " + customLoader, ""},
		{[]string{"explain"}, "<domain><name>y</name><os><loader type='rom'>" + romLoader + "</loader><varstore template='" + h.fw + "/MY_VARS.json' path='" + h.nvram + "/y.json'/></os></domain>", 0,
			"reset-nvram: libvirt recreates the varstore from the template it knows (template= in the definition)", ""},
		{[]string{"explain"}, "<domain><name>q</name><os><loader readonly='yes' type='pflash'>" + customLoader + "</loader><nvram format='qcow2' template='" + h.fw + "/CUSTOM_VARS.fd'>" + h.nvram + "/q_VARS.qcow2</nvram></os></domain>", 0,
			"libvirt: libvirt 12.8 refuses every start of this definition", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := h.run(t, []byte(tt.stdin), tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
		})
	}
	h.requireEmptyNVRAM(t, "check and explain")
}

func TestCheckReportsConfigProblems(t *testing.T) {
	h := newHost(t, "")
	os.WriteFile(h.conf, []byte("[nvram]\ndir = rel\nwhat = 1\n[templates]\nnvram = /a:/b\n"), 0o644)
	r := h.run(t, nil, "check")
	if r.code != 1 || !strings.Contains(r.stdout, "line 2:") || !strings.Contains(r.stdout, "line 3:") {
		t.Errorf("got %+v", r)
	}
}

// TestSessionDaemon: run as a user's session daemon would (not root, a
// config home), with no config file: the varstore goes to the user's
// ~/.config/libvirt/qemu/nvram, the template comes from the user's own
// qemu.conf, and the file is not chowned.
func TestSessionDaemon(t *testing.T) {
	home, nvram, vars := sessionHome(t, "nvram", "MY_VARS.fd", "session vars")
	os.WriteFile(filepath.Join(home, "libvirt", "qemu.conf"), []byte(fmt.Sprintf("nvram = [ \"/srv/fw/MY_CODE.fd:%s\" ]\n", vars)), 0o644)
	in := fmt.Sprintf("<domain><name>s</name><os><loader readonly='yes' type='pflash'>/srv/fw/MY_CODE.fd</loader><nvram>%s/s_VARS.fd</nvram></os></domain>", nvram)
	if r := runSession(home, "prepare", in); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(nvram, "s_VARS.fd")); err != nil || string(got) != "session vars" {
		t.Errorf("varstore: %q, %v", got, err)
	}
	// The filter adds <nvram> under the session's directory.
	rin := "<domain><name>t</name><os><loader readonly='yes' type='pflash'>/srv/fw/MY_CODE.fd</loader></os></domain>"
	if r := runSession(home, "restore", rin); r.code != 0 || !strings.Contains(r.stdout, "<nvram template='"+vars+"'>"+nvram+"/t_VARS.fd</nvram>") {
		t.Errorf("got %+v", r)
	}
}

// sessionHome makes a user's config home (~/.config) with the session
// daemon's directory libvirt/qemu/SUB and a template file NAME holding
// content beside it, and returns the three paths.
func sessionHome(t *testing.T, sub, name, content string) (home, dir, template string) {
	t.Helper()
	home = t.TempDir()
	dir, template = filepath.Join(home, "libvirt", "qemu", sub), filepath.Join(home, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(template, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return home, dir, template
}

// runSession runs the hook as a user's session daemon does (not root, the
// user's config home) for the domain the XML names.
func runSession(home, op, in string) result {
	var out, errb bytes.Buffer
	name := regexp.MustCompile(`<name>([^<]*)</name>`).FindStringSubmatch(in)[1]
	code := Run(Env{Args: []string{"qemu", name, op, "begin", "-"}, Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errb,
		ConfigPath: filepath.Join(home, "libvirt", "nvram-hook.conf"), ConfigHome: home, DevLog: "/nonexistent", Euid: 1000})
	return result{code, out.String(), errb.String()}
}

func TestAudit(t *testing.T) {
	h := newHost(t, "")
	defs := filepath.Join(h.root, "qemu")
	os.Mkdir(defs, 0o755)
	os.WriteFile(filepath.Join(h.fw, "DESC_VARS.fd"), make([]byte, 4096), 0o644) // the descriptor's layout: 4096 bytes
	dom := func(name, loader, extra string) string {
		return fmt.Sprintf("<!-- WARNING: THIS IS AN AUTO-GENERATED FILE -->\n<domain><name>%s</name><os><loader readonly='yes' type='pflash'>%s</loader><nvram%s>%s/%s_VARS.fd</nvram></os></domain>\n", name, loader, extra, h.nvram, name)
	}
	write := func(name, content string) { os.WriteFile(filepath.Join(defs, name+".xml"), []byte(content), 0o600) }
	write("ok", dom("ok", customLoader, " template='"+h.fw+"/CUSTOM_VARS.fd'"))
	os.WriteFile(filepath.Join(h.nvram, "ok_VARS.fd"), h.vars, 0o600)
	write("desc", dom("desc", h.fw+"/DESC_CODE.fd", ""))
	os.WriteFile(filepath.Join(h.nvram, "desc_VARS.fd"), make([]byte, 4096), 0o600)
	write("unpinned", dom("unpinned", customLoader, ""))
	os.WriteFile(filepath.Join(h.nvram, "unpinned_VARS.fd"), h.vars, 0o600)
	write("qc", dom("qc", h.fw+"/QC_CODE.fd", ""))
	os.WriteFile(filepath.Join(h.nvram, "qc_VARS.fd"), h.vars, 0o600)
	write("missing", dom("missing", customLoader, ""))
	write("orphan", dom("orphan", "/srv/fw/NOBODY.fd", ""))
	write("nosource", dom("nosource", "/srv/fw/NOBODY.fd", ""))
	os.WriteFile(filepath.Join(h.nvram, "nosource_VARS.fd"), h.vars, 0o600)
	write("mixup", dom("mixup", h.fw+"/DESC_CODE.fd", ""))
	os.WriteFile(filepath.Join(h.nvram, "mixup_VARS.fd"), make([]byte, 8192), 0o600)
	write("bios", "<domain><name>bios</name><os><type>hvm</type></os></domain>")
	write("linked", dom("linked", customLoader, ""))
	os.WriteFile(filepath.Join(h.root, "linked_VARS.fd"), h.vars, 0o600)
	os.Symlink(filepath.Join(h.root, "linked_VARS.fd"), filepath.Join(h.nvram, "linked_VARS.fd"))
	write("qcow2raw", dom("qcow2raw", customLoader, " format='qcow2' template='"+h.fw+"/CUSTOM_VARS.fd'"))
	os.WriteFile(filepath.Join(h.nvram, "qcow2raw_VARS.fd"), []byte("QFI\xfb"), 0o600)
	write("vs", "<domain><name>vs</name><os><loader type='rom'>"+romLoader+"</loader><varstore path='"+h.nvram+"/vs.json'/></os></domain>")
	os.WriteFile(filepath.Join(h.nvram, "vs.json"), []byte(`{"version": 2, "variables": []}`), 0o600)
	os.WriteFile(h.conf, bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("[templates]\nvarstore = "+romLoader+":"+h.fw+"/MY_VARS.json\n"), 1), 0o644)
	write("dangling", dom("dangling", customLoader, ""))
	os.Symlink(filepath.Join(h.root, "nothing"), filepath.Join(h.nvram, "dangling_VARS.fd"))
	before := snapshot(t, h.nvram)

	r := h.run(t, nil, "check", "--audit", defs)
	if r.code != 1 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"ok       ok: " + h.nvram + "/ok_VARS.fd exists (65536 bytes), template " + h.fw + "/CUSTOM_VARS.fd (domain XML)",
		"ok       desc: " + h.nvram + "/desc_VARS.fd exists (4096 bytes), template " + h.fw + "/DESC_VARS.fd (firmware descriptor)",
		// libvirt itself knows no template: a reset fails whatever the hook does.
		"PROBLEM  unpinned: " + h.nvram + "/unpinned_VARS.fd exists (65536 bytes), template " + h.fw + "/CUSTOM_VARS.fd (hook config), but 'virsh start --reset-nvram' fails: libvirt itself knows no template for " + customLoader + "; 'libvirt-nvram-hook pin unpinned' writes template='" + h.fw + "/CUSTOM_VARS.fd' into the definition",
		"PROBLEM  missing: " + h.nvram + "/missing_VARS.fd is missing; the next start creates it from " + h.fw + "/CUSTOM_VARS.fd (hook config), but 'virsh start --reset-nvram' fails",
		// libvirt ignores qemu.conf's list once any descriptor exists.
		"PROBLEM  qc: " + h.nvram + "/qc_VARS.fd exists (65536 bytes), template " + h.fw + "/QC_VARS.fd (qemu.conf), but 'virsh start --reset-nvram' fails",
		"PROBLEM  orphan: " + h.nvram + "/orphan_VARS.fd is missing and the next start will fail: no varstore template for loader /srv/fw/NOBODY.fd",
		"PROBLEM  nosource: " + h.nvram + "/nosource_VARS.fd exists (65536 bytes), but no template is known",
		"PROBLEM  mixup: " + h.nvram + "/mixup_VARS.fd is 8192 bytes, but loader " + h.fw + "/DESC_CODE.fd takes 4096-byte varstores",
		"PROBLEM  linked: " + h.nvram + "/linked_VARS.fd exists (65536 bytes), template " + h.fw + "/CUSTOM_VARS.fd (hook config), but 'virsh start --reset-nvram' fails",
		"PROBLEM  dangling: the next start will fail: " + h.nvram + "/dangling_VARS.fd: not a regular file (a dangling symlink)",
		"PROBLEM  qcow2raw: libvirt 12.8 refuses every start of this definition, with or without the varstore (\"conversion of the nvram template to another target format is not supported\"): template " + h.fw + "/CUSTOM_VARS.fd is raw, the varstore is qcow2; remove template= from <nvram>",
		// The same for a <varstore>: only a descriptor with a JSON template
		// (or template= on <varstore>) lets libvirt reset it.
		"PROBLEM  vs: " + h.nvram + "/vs.json exists (31 bytes), template " + h.fw + "/MY_VARS.json (hook config), but 'virsh start --reset-nvram' fails: libvirt itself knows no template for " + romLoader + "; 'libvirt-nvram-hook pin vs' writes template='" + h.fw + "/MY_VARS.json' into the definition",
		"13 domains, 12 with a file varstore, 10 problem(s)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit output lacks %q:\n%s", want, r.stdout)
		}
	}
	if after := snapshot(t, h.nvram); after != before {
		t.Error("audit changed the nvram directory")
	}
}

// TestTranslateLoader: an incoming domain whose loader path does not exist
// here gets the local firmware that fits it, only when the config allows.
func TestTranslateLoader(t *testing.T) {
	in := func(h *host) []byte {
		return []byte(fmt.Sprintf("<domain><name>mig</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/elsewhere/DESC_CODE.fd</loader><nvram>%s/mig_VARS.fd</nvram></os></domain>", h.nvram))
	}
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("translate_loader=%v", on), func(t *testing.T) {
			h := newHost(t, "")
			os.WriteFile(filepath.Join(h.fw, "DESC_CODE.fd"), []byte("code"), 0o644)
			if on {
				os.WriteFile(h.conf, bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("[templates]\ntranslate_loader = true\n"), 1), 0o644)
			}
			r := h.run(t, in(h), "mig", "migrate", "begin", "-")
			// Nothing tells what the absent loader promised the guest
			// (Secure Boot, keys, flash size): a local file of the same
			// name is no candidate (issue #12 item 6), the loader stays.
			if r.code != 1 || !strings.Contains(r.stderr, "no varstore template for loader /usr/share/elsewhere/DESC_CODE.fd") {
				t.Errorf("got %+v", r)
			}
			if !on {
				return
			}
			// With the varstore there, the filter changes nothing and
			// logs why the loader stays.
			os.WriteFile(filepath.Join(h.nvram, "mig_VARS.fd"), h.vars, 0o600)
			if r = h.run(t, in(h), "mig", "migrate", "begin", "-"); r.code != 0 || r.stdout != "" {
				t.Errorf("got %+v", r)
			}
			if log := h.logText(t); !strings.Contains(log, "translate_loader: loader /usr/share/elsewhere/DESC_CODE.fd does not exist here and is left as it is: no descriptor or built-in table entry tells what it promises the guest") {
				t.Errorf("log: %s", log)
			}
		})
	}
}

// TestErrorIsOneLineWithStderrLog: with the log on stderr (no /dev/log,
// no config), a failure still prints exactly one line, also when an
// unusable log file falls back to stderr.
func TestErrorIsOneLineWithStderrLog(t *testing.T) {
	for _, target := range []string{"stderr", "syslog", "file:/nonexistent/dir/hook.log"} {
		t.Run(target, func(t *testing.T) {
			h := newHost(t, "")
			os.WriteFile(h.conf, []byte("[nvram]\ndir = "+h.nvram+"\n[templates]\ndescriptors = false\nqemu_conf =\nbuiltin = false\n[log]\ntarget = "+target+"\n"), 0o644)
			r := h.run(t, []byte("<domain><name>x</name><os><loader readonly='yes' type='pflash'>/srv/fw/NONE.fd</loader><nvram>"+h.nvram+"/x_VARS.fd</nvram></os></domain>"), "x", "prepare", "begin", "-")
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "libvirt-nvram-hook: ") {
				t.Errorf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
}

// TestBlockAndNetworkNVRAMLogged: a varstore that is not a file is left
// alone with a debug line saying why.
func TestBlockAndNetworkNVRAMLogged(t *testing.T) {
	for _, nv := range []string{"<nvram type='block'><source dev='/dev/sdz'/></nvram>", "<nvram type='network'><source protocol='nbd' name='bar'/></nvram>"} {
		h := newHost(t, "")
		r := h.run(t, []byte("<domain><name>b</name><os><loader readonly='yes' type='pflash'>"+customLoader+"</loader>"+nv+"</os></domain>"), "b", "prepare", "begin", "-")
		if r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("got %+v", r)
		}
		if log := h.logText(t); !strings.Contains(log, "level=debug") || !strings.Contains(log, "not a file, never created from a template") {
			t.Errorf("log: %q", log)
		}
		h.requireEmptyNVRAM(t, "a varstore that is not a file")
	}
}

// TestCreateRefusalsLeaveNothing: when the size check or the owner lookup
// fails, the hook fails with that one line, and nothing is left in the
// nvram directory.
func TestCreateRefusalsLeaveNothing(t *testing.T) {
	for _, tt := range []struct {
		name, extra, want string
	}{
		// DESC_CODE.fd's descriptor names 64 KiB DESC_VARS.fd; the config
		// maps the same loader to a template of another size.
		{"size check", "", "template size does not match the loader's flash layout"},
		{"owner lookup", "user = no-such-user-nvram-hook", "varstore owner: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, tt.extra)
			loader := customLoader
			if tt.name == "size check" {
				loader = filepath.Join(h.fw, "DESC_CODE.fd")
				os.WriteFile(loader, []byte("code"), 0o644)
				os.WriteFile(filepath.Join(h.fw, "BIG_VARS.fd"), make([]byte, 16<<20), 0o644)
				conf, _ := os.ReadFile(h.conf)
				conf = bytes.Replace(conf, []byte("[templates]\n"), []byte("[templates]\nnvram = "+loader+":"+h.fw+"/BIG_VARS.fd\n"), 1)
				os.WriteFile(h.conf, conf, 0o644)
			}
			in := bytes.ReplaceAll(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), []byte(customLoader), []byte(loader))
			r := h.run(t, in, "uefi-custom", "prepare", "begin", "-")
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "cannot create varstore") {
				t.Errorf("the check's error is wrapped: %q", r.stderr)
			}
			h.requireEmptyNVRAM(t, "a refused create")
		})
	}
}

// TestQcow2Templates: a filter never gives a qcow2 varstore a template of
// another format (libvirt 12.8 refuses every start of such a definition,
// even with the varstore present: "conversion of the nvram template to
// another target format is not supported"). A qcow2 template is added
// with templateFormat='qcow2', which libvirt 10.10 and later read.
func TestQcow2Templates(t *testing.T) {
	qcow2 := append([]byte{'Q', 'F', 'I', 0xfb}, make([]byte, 4092)...)
	for _, tt := range []struct {
		name     string
		template []byte // content of the mapped template; nil: the raw CUSTOM_VARS.fd
		nvram    string // <os> child for the domain; @NVRAM@ = the nvram dir
		exists   bool
		stdout   string // substring of the XML out; "" = no output
		notIn    string // must not be in the XML out
		log      string
	}{
		{"add_template, raw template, qcow2 varstore: not added", nil,
			"<nvram format='qcow2'>@NVRAM@/q_VARS.qcow2</nvram>", true, "", "", "template= not added"},
		{"add_template, qcow2 template, qcow2 varstore: added with templateFormat", qcow2,
			"<nvram format='qcow2'>@NVRAM@/q_VARS.qcow2</nvram>", true, "templateFormat='qcow2'", "", "add-template"},
		{"add_template, raw template, raw varstore: added as before", nil,
			"<nvram>@NVRAM@/q_VARS.fd</nvram>", true, "<nvram template='@FW@/CUSTOM_VARS.fd'>@NVRAM@/q_VARS.fd</nvram>", "templateFormat", "add-template"},
		{"add_template, qcow2 template, raw varstore: not added", qcow2,
			"<nvram>@NVRAM@/q_VARS.fd</nvram>", true, "", "", "template= not added"},
		{"no nvram, qcow2 loader, raw template: nvram without template", nil,
			"", false, "<nvram>@NVRAM@/q_VARS.fd</nvram>", "template=", "template= not added"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "add_template = true")
			if tt.template != nil {
				os.WriteFile(filepath.Join(h.fw, "CUSTOM_VARS.fd"), tt.template, 0o644)
			}
			loader := "<loader readonly='yes' type='pflash'>" + customLoader + "</loader>"
			if tt.nvram == "" {
				loader = "<loader readonly='yes' type='pflash' format='qcow2'>" + customLoader + "</loader>"
			}
			nv := strings.ReplaceAll(tt.nvram, "@NVRAM@", h.nvram)
			if tt.exists {
				os.WriteFile(filepath.Join(h.nvram, filepath.Base(strings.TrimSuffix(strings.SplitN(nv, ">", 2)[1], "</nvram>"))), qcow2, 0o600)
			}
			in := []byte("<domain><name>q</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>" + loader + nv + "</os></domain>")
			r := h.run(t, in, "q", "restore", "begin", "-")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			want := strings.NewReplacer("@NVRAM@", h.nvram, "@FW@", h.fw).Replace(tt.stdout)
			if want == "" && r.stdout != "" || !strings.Contains(r.stdout, want) {
				t.Errorf("stdout %q, want %q", r.stdout, want)
			}
			if tt.notIn != "" && strings.Contains(r.stdout, tt.notIn) {
				t.Errorf("stdout %q has %q", r.stdout, tt.notIn)
			}
			if !strings.Contains(h.logText(t), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, h.logText(t))
			}
		})
	}
}

// romLoader is the rom loader of the uefi-vars samples (libvirt 12.8's
// varstore-rom--prepare-begin.xml): no descriptor names it.
const romLoader = "/srv/fw/MY_ROM.fd"

// TestUEFIVarsVarstore: a rom loader's <varstore> (libvirt 12.1+, QEMU's
// uefi-vars device) is a varstore like NVRAM: prepare creates a missing
// JSON file from the domain's template=, else the config's varstore =
// pair; an existing one is used as it is; no template fails the start
// with one line naming the file.
func TestUEFIVarsVarstore(t *testing.T) {
	const store = `{"version": 2, "variables": []}` + "\n"
	for _, tt := range []struct {
		name     string
		template string // template= in the XML ("" none); @FW@ = fw dir
		pair     bool   // varstore = ROM:TEMPLATE in the config
		exists   bool
		code     int
		stderr   string
		created  bool
	}{
		{"config pair", "", true, false, 0, "", true},
		{"template= in the XML", "@FW@/XML_VARS.json", false, false, 0, "", true},
		{"exists", "", false, true, 0, "", false},
		{"no template", "", false, false, 1, "/custom.json: no uefi-vars JSON varstore template for rom loader " + romLoader, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			vsDir := filepath.Join(h.root, "varstore")
			os.Mkdir(vsDir, 0o755)
			os.WriteFile(filepath.Join(h.fw, "MY_VARS.json"), []byte(store), 0o644)
			os.WriteFile(filepath.Join(h.fw, "XML_VARS.json"), []byte(store), 0o644)
			conf := bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("allowed_dirs = "+h.nvram+":"+vsDir+"\n[templates]\n"), 1)
			if tt.pair {
				conf = bytes.Replace(conf, []byte("[templates]\n"), []byte("[templates]\nvarstore = "+romLoader+":"+h.fw+"/MY_VARS.json\n"), 1)
			}
			os.WriteFile(h.conf, conf, 0o644)
			path := filepath.Join(vsDir, "custom.json")
			if tt.exists {
				os.WriteFile(path, []byte("guest variables"), 0o600)
			}
			tmpl := ""
			if tt.template != "" {
				tmpl = " template='" + strings.ReplaceAll(tt.template, "@FW@", h.fw) + "'"
			}
			in := []byte("<domain type='qemu'><name>custom</name><os><type arch='x86_64' machine='pc-q35-11.1'>hvm</type><loader readonly='yes' type='rom' format='raw'>" + romLoader + "</loader><varstore" + tmpl + " path='" + path + "'/><boot dev='hd'/></os></domain>")
			r := h.run(t, in, "custom", "prepare", "begin", "-")
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || (tt.stderr == "") != (r.stderr == "") {
				t.Fatalf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			got, err := os.ReadFile(path)
			switch {
			case tt.created && (err != nil || string(got) != store):
				t.Errorf("varstore %q, %v; want a copy of the template", got, err)
			case tt.exists && string(got) != "guest variables":
				t.Errorf("the existing varstore changed: %q", got)
			case !tt.created && !tt.exists && err == nil:
				t.Errorf("a varstore was created: %q", got)
			}
		})
	}
}

// TestUEFIVarsSession: a session daemon's filter gives a <varstore>
// without a path the session's libvirt layout,
// ~/.config/libvirt/qemu/varstore/NAME.json, with the template, and
// creates the file there.
func TestUEFIVarsSession(t *testing.T) {
	home, vsDir, tmpl := sessionHome(t, "varstore", "MY_VARS.json", `{"version": 2, "variables": []}`)
	os.WriteFile(filepath.Join(home, "libvirt", "nvram-hook.conf"), []byte("[templates]\nvarstore = "+romLoader+":"+tmpl+"\n"), 0o644)
	in := "<domain><name>s</name><os><loader type='rom'>" + romLoader + "</loader><varstore/></os></domain>"
	want := "<varstore path='" + vsDir + "/s.json' template='" + tmpl + "'/>"
	if r := runSession(home, "restore", in); r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("got %+v; want %s", r, want)
	}
	if got, err := os.ReadFile(filepath.Join(vsDir, "s.json")); err != nil || string(got) != `{"version": 2, "variables": []}` {
		t.Errorf("varstore: %q, %v", got, err)
	}
}

// TestUnusableLogFileFallsBack: a log file that is a FIFO (whose open for
// writing waits for a reader), a device or missing its directory never
// blocks nor fails a start: the varstore is created and the default log
// (stderr here, with no /dev/log) says once why the file is not used.
// check reports the same target as a problem.
func TestUnusableLogFileFallsBack(t *testing.T) {
	for _, tt := range []struct {
		name, target, want string // target: relative to the host's root unless absolute
	}{
		{"FIFO", "fifo", "not a regular file (a FIFO); logging to stderr instead"},
		{"device", "/dev/null", "not a regular file (a device); logging to stderr instead"},
		{"missing directory", "nope/hook.log", "no such file or directory; logging to stderr instead"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			if err := syscall.Mkfifo(filepath.Join(h.root, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			target := tt.target
			if !filepath.IsAbs(target) {
				target = filepath.Join(h.root, target)
			}
			os.WriteFile(h.conf, bytes.ReplaceAll(mustRead(t, h.conf), []byte("target = file:"+h.log), []byte("target = file:"+target)), 0o644)
			for _, args := range [][]string{{"uefi-custom", "prepare", "begin", "-"}, {"check"}} {
				var r result
				nohang.Run(t, 5*time.Second, fmt.Sprintf("%v on the log file", args), func() { r = h.run(t, h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), args...) })
				if args[0] == "check" {
					if r.code != 1 || !strings.Contains(r.stdout, "log:") || !strings.Contains(r.stdout, "ERROR log file: ") {
						t.Errorf("check: exit %d, stdout %s", r.code, r.stdout)
					}
					continue
				}
				if r.code != 0 || strings.Count(r.stderr, tt.want) != 1 || !strings.Contains(r.stderr, "created varstore") {
					t.Errorf("prepare: exit %d, stderr %q; want exit 0 and one line saying %q", r.code, r.stderr, tt.want)
				}
				if data, err := os.ReadFile(filepath.Join(h.nvram, "uefi-custom_VARS.fd")); err != nil || !bytes.Equal(data, h.vars) {
					t.Errorf("varstore not created from the template: %v", err)
				}
			}
		})
	}
}

// TestMissingLoaderNamedFirst: an incoming guest whose loader this host
// does not have (its firmware is not installed here) is refused with one
// line that names the loader first, the root cause, and says what to do,
// before what then failed (a template= that is missing too, no template
// known). With translate_loader on, the line and the log say why the
// loader was not translated, also when the plan itself fails.
func TestMissingLoaderNamedFirst(t *testing.T) {
	for _, tt := range []struct {
		name      string
		translate bool
		template  bool // the XML names a template (absent here too), as libvirt 9.0's live XML does
		stderr    []string
		log       []string
	}{
		{"template= missing, translate_loader off", false, true,
			[]string{"install it, or set translate_loader = true", "; cannot create varstore @NVRAM@/mig_VARS.fd from template @GONE@/OVMF_VARS.fd (domain XML)", "no such file or directory"}, nil},
		{"no template known, translate_loader off", false, false,
			[]string{"install it, or set translate_loader = true", "; cannot create varstore @NVRAM@/mig_VARS.fd: no varstore template for loader @GONE@/OVMF_CODE.fd"}, nil},
		{"no template known, translate_loader on", true, false,
			[]string{"install it here (translate_loader found no replacement: no descriptor or built-in table entry tells what it promises the guest", "no varstore template for loader @GONE@/OVMF_CODE.fd"},
			[]string{"translate_loader: loader @GONE@/OVMF_CODE.fd does not exist here and is left as it is: no descriptor or built-in table entry"}},
		{"template= missing, translate_loader on", true, true,
			[]string{"install it here (translate_loader found no replacement: ", "from template @GONE@/OVMF_VARS.fd (domain XML)"},
			[]string{"translate_loader: loader @GONE@/OVMF_CODE.fd does not exist here and is left as it is"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			gone := filepath.Join(h.root, "gone")
			sub := strings.NewReplacer("@NVRAM@", h.nvram, "@GONE@", gone)
			if tt.translate {
				os.WriteFile(h.conf, bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("[templates]\ntranslate_loader = true\n"), 1), 0o644)
			}
			attr := ""
			if tt.template {
				attr = " template='" + gone + "/OVMF_VARS.fd'"
			}
			xml := fmt.Sprintf("<domain><name>mig</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><loader readonly='yes' type='pflash'>%s/OVMF_CODE.fd</loader><nvram%s>%s/mig_VARS.fd</nvram></os></domain>", gone, attr, h.nvram)
			r := h.run(t, []byte(xml), "mig", "migrate", "begin", "-")
			first := "libvirt-nvram-hook: loader " + gone + "/OVMF_CODE.fd does not exist on this host: the guest's firmware is not installed here; "
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, first) {
				t.Errorf("exit %d, stderr %q; want one line starting %q", r.code, r.stderr, first)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, sub.Replace(w)) {
					t.Errorf("stderr %q lacks %q", r.stderr, sub.Replace(w))
				}
			}
			log := h.logText(t)
			for _, w := range tt.log {
				if strings.Count(log, sub.Replace(w)) != 1 {
					t.Errorf("log has not once %q:\n%s", sub.Replace(w), log)
				}
			}
			h.requireEmptyNVRAM(t, "a refused migration")
		})
	}
}
