package app

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmltest"
)

// fakeVirsh is a stand-in for virsh that serves definitions from files and
// records its arguments, for the argument and flow tests of pin only: what
// libvirt makes of a pinned definition is proven on real daemons (e2e).
type fakeVirsh struct {
	dir, path string
}

func newFakeVirsh(t *testing.T, daemon string) *fakeVirsh {
	t.Helper()
	v := &fakeVirsh{dir: t.TempDir()}
	for _, d := range []string{"defs", "transient", "defined"} {
		os.Mkdir(filepath.Join(v.dir, d), 0o755)
	}
	v.path = filepath.Join(v.dir, "virsh")
	script := fmt.Sprintf(`#!/bin/sh
D='%s'
printf '%%s\n' "$*" >> "$D/calls"
case "$1" in
version) echo "Compiled against library: libvirt 11.3.0"; echo "Running against daemon: %s";;
list) for f in "$D"/defs/*.xml; do b=$(basename "$f"); echo "${b%%.xml}"; done;;
dominfo)
	if [ -f "$D/defs/$3.xml" ]; then echo "Name:           $3"; echo "Persistent:     yes"
	elif [ -f "$D/transient/$3.xml" ]; then echo "Name:           $3"; echo "Persistent:     no"
	else echo "error: failed to get domain '$3'" >&2; exit 1; fi;;
dumpxml) cat "$D/defs/$5.xml";;
define) n=$(ls "$D/defined" | wc -l); cp "$3" "$D/defined/$n.xml"; echo "Domain defined from $3";;
*) echo "error: unknown command $1" >&2; exit 1;;
esac
`, v.dir, daemon)
	if err := os.WriteFile(v.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *fakeVirsh) define(t *testing.T, kind, name, xml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(v.dir, kind, name+".xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (v *fakeVirsh) calls() string {
	b, _ := os.ReadFile(filepath.Join(v.dir, "calls"))
	return string(b)
}

func (v *fakeVirsh) defined(t *testing.T) [][]byte {
	entries, _ := os.ReadDir(filepath.Join(v.dir, "defined"))
	var out [][]byte
	for _, e := range entries {
		out = append(out, mustRead(t, filepath.Join(v.dir, "defined", e.Name())))
	}
	return out
}

func (h *host) pin(t *testing.T, v *fakeVirsh, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(Env{Args: append([]string{"libvirt-nvram-hook", "pin"}, args...), Stdout: &out, Stderr: &errb,
		ConfigPath: h.conf, ConfigRequired: true, DevLog: "/nonexistent", Euid: 1000, Virsh: v.path})
	return result{code, out.String(), errb.String()}
}

func pinDomain(name, loader, nvramAttrs, nvram string) string {
	return fmt.Sprintf("<domain type='kvm'>\n  <name>%s</name>\n  <!-- kept -->\n  <os>\n    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n    <loader readonly='yes' type='pflash'>%s</loader>\n    <nvram%s>%s</nvram>\n  </os>\n  <devices><graphics type='vnc' passwd='secret'/></devices>\n</domain>\n", name, loader, nvramAttrs, nvram)
}

// withoutTemplate removes what pin may add, to compare the rest.
func withoutTemplate(t *testing.T, xml []byte) []byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(xml); err != nil {
		t.Fatal(err)
	}
	nv := doc.FindElement("/domain/os/nvram")
	nv.RemoveAttr("template")
	nv.RemoveAttr("templateFormat")
	out, _ := doc.WriteToBytes()
	return out
}

func TestPin(t *testing.T) {
	for _, daemon := range []string{"9.0.0", "10.10.0"} {
		t.Run("daemon "+daemon, func(t *testing.T) {
			h := newHost(t, "")
			v := newFakeVirsh(t, daemon)
			custom := pinDomain("custom", customLoader, " format='raw'", h.nvram+"/custom_VARS.fd")
			v.define(t, "defs", "custom", custom)
			r := h.pin(t, v, "custom")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			wantAttrs := "template='" + h.fw + "/CUSTOM_VARS.fd'"
			if daemon == "10.10.0" {
				wantAttrs += " templateFormat='raw'"
			}
			if !strings.Contains(r.stdout, "pinned   custom: added "+wantAttrs+" to <nvram> (hook config ") {
				t.Errorf("stdout: %s", r.stdout)
			}
			defs := v.defined(t)
			if len(defs) != 1 {
				t.Fatalf("%d definitions, want 1; calls:\n%s", len(defs), v.calls())
			}
			if !bytes.Contains(defs[0], []byte("<nvram format='raw' "+wantAttrs+">")) {
				t.Errorf("defined:\n%s", defs[0])
			}
			if daemon == "9.0.0" && bytes.Contains(defs[0], []byte("templateFormat")) {
				t.Errorf("templateFormat for a libvirt that does not read it:\n%s", defs[0])
			}
			xmltest.Same(t, []byte(custom), withoutTemplate(t, defs[0]))
			// The definition is read with its secrets (or define would drop
			// them), read again just before define, and defined from a file.
			want := "version --daemon\ndominfo --domain custom\ndumpxml --inactive --security-info --domain custom\ndumpxml --inactive --security-info --domain custom\ndefine --file "
			if !strings.HasPrefix(v.calls(), want) {
				t.Errorf("virsh calls:\n%s\nwant them to start with:\n%s", v.calls(), want)
			}
		})
	}
}

func TestPinFlows(t *testing.T) {
	h := newHost(t, "")
	v := newFakeVirsh(t, "12.8.0")
	os.WriteFile(filepath.Join(h.fw, "DESC_CODE.fd"), []byte("code"), 0o644)
	v.define(t, "defs", "custom", pinDomain("custom", customLoader, "", h.nvram+"/custom_VARS.fd"))
	v.define(t, "defs", "pinned", pinDomain("pinned", customLoader, " template='"+h.fw+"/CUSTOM_VARS.fd'", h.nvram+"/pinned_VARS.fd"))
	v.define(t, "defs", "desc", pinDomain("desc", h.fw+"/DESC_CODE.fd", "", h.nvram+"/desc_VARS.fd"))
	v.define(t, "defs", "qcow2", pinDomain("qcow2", customLoader, " format='qcow2'", h.nvram+"/qcow2_VARS.qcow2"))
	v.define(t, "defs", "bios", "<domain><name>bios</name><os><type>hvm</type></os></domain>")
	v.define(t, "transient", "trans", pinDomain("trans", customLoader, "", h.nvram+"/trans_VARS.fd"))
	os.WriteFile(h.conf, bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("[templates]\nvarstore = "+romLoader+":"+h.fw+"/MY_VARS.json\n"), 1), 0o644)
	v.define(t, "defs", "vs", "<domain><name>vs</name><os><loader type='rom'>"+romLoader+"</loader><varstore path='"+h.nvram+"/vs.json'/></os></domain>")

	r := h.pin(t, v, "--dry-run")
	if r.code != 1 { // the qcow2 domain cannot be pinned
		t.Fatalf("dry run over every persistent domain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"dry-run  custom: would add template='" + h.fw + "/CUSTOM_VARS.fd' templateFormat='raw' to <nvram> (hook config",
		"ok       pinned: nothing to pin: the definition names its template already",
		"ok       desc: nothing to pin: libvirt finds its template itself (firmware descriptor",
		"ok       bios: nothing to pin: no varstore file",
		"dry-run  vs: would add template='" + h.fw + "/MY_VARS.json' to <varstore> (hook config",
		"FAILED   qcow2: not pinned: template " + h.fw + "/CUSTOM_VARS.fd is raw, the varstore is qcow2",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(v.calls(), "define") || len(v.defined(t)) != 0 {
		t.Errorf("a dry run defined something:\n%s", v.calls())
	}
	if !strings.HasPrefix(v.calls(), "list --all --persistent --name\n") {
		t.Errorf("calls:\n%s", v.calls())
	}

	r = h.pin(t, v, "trans", "nosuch")
	if r.code != 1 || !strings.Contains(r.stdout, "REFUSED  trans: a transient domain has no inactive definition") ||
		!strings.Contains(r.stdout, "FAILED   nosuch: virsh dominfo --domain nosuch: error: failed to get domain 'nosuch'") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(v.calls(), "dumpxml --inactive --security-info --domain trans") {
		t.Error("the transient domain's XML was read")
	}

	if r := h.pin(t, v, "-x"); r.code != 2 || !strings.Contains(r.stderr, "pin: unknown option \"-x\"") {
		t.Errorf("got %+v", r)
	}
	h.requireEmptyNVRAM(t, "pin")
}

// TestLibvirtCompiledInList: libvirt's own build knows a template for
// Debian's 2 MiB OVMF_CODE.fd (its compiled-in loader:nvram list), as long
// as qemu.conf sets no nvram list of its own. audit, explain and pin agree
// on it: a reset works, nothing needs pinning; with a qemu.conf nvram list
// (which replaces the compiled-in one, and is itself ignored beside
// descriptors) all three say libvirt knows none.
func TestLibvirtCompiledInList(t *testing.T) {
	const loader = "/usr/share/OVMF/OVMF_CODE.fd"
	for _, tt := range []struct {
		name, qemuConf string
		libvirtKnows   bool
	}{
		{"qemu.conf without nvram", "user = \"libvirt-qemu\"\n", true},
		{"qemu.conf nvram list", "", false}, // newHost's, naming QC_CODE.fd
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			if tt.qemuConf != "" {
				os.WriteFile(filepath.Join(h.root, "qemu.conf"), []byte(tt.qemuConf), 0o644)
			}
			// The hook's template for the loader comes from its config, and
			// its built-in table is off, so that the firmware installed on
			// this machine (or not) plays no part: libvirt's list is a
			// fact of its build, not of the hook's table.
			os.WriteFile(h.conf, bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("[templates]\nbuiltin = false\nnvram = "+loader+":"+h.fw+"/CUSTOM_VARS.fd\n"), 1), 0o644)
			xml := pinDomain("deb12", loader, "", h.nvram+"/deb12_VARS.fd")
			defs := filepath.Join(h.root, "qemu")
			os.Mkdir(defs, 0o755)
			os.WriteFile(filepath.Join(defs, "deb12.xml"), []byte(xml), 0o600)
			os.WriteFile(filepath.Join(h.nvram, "deb12_VARS.fd"), h.vars, 0o600)
			v := newFakeVirsh(t, "libvirt 9.0.0")
			v.define(t, "defs", "deb12", xml)

			audit := h.run(t, nil, "check", "--audit", defs)
			explain := h.run(t, []byte(xml), "explain")
			pin := h.pin(t, v, "--dry-run")
			known := "libvirt's compiled-in loader:nvram list (" + loader + ":/usr/share/OVMF/OVMF_VARS.fd"
			if tt.libvirtKnows {
				if audit.code != 0 || !strings.Contains(audit.stdout, "ok       deb12: "+h.nvram+"/deb12_VARS.fd exists (65536 bytes), template "+h.fw+"/CUSTOM_VARS.fd (hook config)\n") {
					t.Errorf("audit: exit %d\n%s", audit.code, audit.stdout)
				}
				if !strings.Contains(explain.stdout, "reset-nvram: libvirt recreates the varstore from the template it knows ("+known) {
					t.Errorf("explain:\n%s", explain.stdout)
				}
				if pin.code != 0 || !strings.Contains(pin.stdout, "ok       deb12: nothing to pin: libvirt finds its template itself ("+known) {
					t.Errorf("pin: exit %d\n%s", pin.code, pin.stdout)
				}
				return
			}
			if audit.code != 1 || !strings.Contains(audit.stdout, "PROBLEM  deb12: ") || !strings.Contains(audit.stdout, "'virsh start --reset-nvram' fails: libvirt itself knows no template for "+loader) {
				t.Errorf("audit: exit %d\n%s", audit.code, audit.stdout)
			}
			if !strings.Contains(explain.stdout, "reset-nvram: 'virsh start --reset-nvram' fails") {
				t.Errorf("explain:\n%s", explain.stdout)
			}
			if !strings.Contains(pin.stdout, "dry-run  deb12: would add template='"+h.fw+"/CUSTOM_VARS.fd'") {
				t.Errorf("pin: exit %d\n%s", pin.code, pin.stdout)
			}
		})
	}
}
