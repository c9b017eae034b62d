package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/nohang"
)

// TestNoFileOpenBlocks: a FIFO wherever the hook reads a file (template=,
// its config, qemu.conf, a firmware descriptor, explain -f, a domain XML
// that check --audit reads) is refused with one line instead of waiting
// for a writer forever while libvirtd holds the domain's job. The template
// case used to hang when the loader's flash layout was known: the size
// check opened the template with a plain open.
func TestNoFileOpenBlocks(t *testing.T) {
	mkfifo := func(t *testing.T, p string) {
		os.Remove(p)
		if err := unix.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prepare := func(t *testing.T, h *host, loader, template string) []string {
		in := h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml")
		in = bytes.ReplaceAll(in, []byte(customLoader), []byte(loader))
		if template != "" {
			in = bytes.Replace(in, []byte("<nvram>"), []byte("<nvram template='"+template+"'>"), 1)
		}
		return []string{string(in), "uefi-custom", "prepare", "begin", "-"}
	}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, h *host) []string // stdin, then the arguments
		code  int
		want  string
	}{
		{"template= with the loader's layout known", func(t *testing.T, h *host) []string {
			loader := filepath.Join(h.fw, "DESC_CODE.fd")
			os.WriteFile(loader, []byte("code"), 0o644)
			fifo := filepath.Join(h.fw, "FIFO_VARS.fd")
			mkfifo(t, fifo)
			return prepare(t, h, loader, fifo)
		}, 1, "a FIFO"},
		{"template= of a custom loader", func(t *testing.T, h *host) []string {
			fifo := filepath.Join(h.fw, "FIFO_VARS.fd")
			mkfifo(t, fifo)
			return prepare(t, h, customLoader, fifo)
		}, 1, "a FIFO"},
		{"the hook's config", func(t *testing.T, h *host) []string {
			mkfifo(t, h.conf)
			return prepare(t, h, customLoader, "")
		}, 1, "a FIFO"},
		{"qemu.conf", func(t *testing.T, h *host) []string {
			mkfifo(t, filepath.Join(h.root, "qemu.conf"))
			return prepare(t, h, filepath.Join(h.fw, "QC_CODE.fd"), "")
		}, 1, ""},
		{"a firmware descriptor", func(t *testing.T, h *host) []string {
			mkfifo(t, filepath.Join(h.root, "descriptors", "50-test.json"))
			return prepare(t, h, filepath.Join(h.fw, "DESC_CODE.fd"), "")
		}, 1, ""},
		{"explain -f", func(t *testing.T, h *host) []string {
			fifo := filepath.Join(h.root, "domain.xml")
			mkfifo(t, fifo)
			return []string{"", "explain", "-f", fifo}
		}, 1, "a FIFO"},
		{"a domain XML of check --audit", func(t *testing.T, h *host) []string {
			defs := filepath.Join(h.root, "qemu")
			os.Mkdir(defs, 0o755)
			mkfifo(t, filepath.Join(defs, "vm.xml"))
			return []string{"", "check", "--audit", defs}
		}, 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			args := tt.setup(t, h)
			var r result
			nohang.Run(t, time.Minute, "the hook opened a FIFO waiting for a writer", func() { r = h.run(t, []byte(args[0]), args[1:]...) })
			if r.code != tt.code || !strings.Contains(r.stderr+r.stdout, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
			h.requireEmptyNVRAM(t, "a refused create")
		})
	}
}

// TestAllowedDirSwappedForSymlink: whoever owns the parent of an allowed
// directory (on Debian the qemu user owns /var/lib/libvirt/qemu) swaps the
// directory for a symlink to another one. Root must not follow it: the
// hook leaves the varstore to libvirt and creates nothing anywhere. It
// used to resolve the symlink on both sides, find the target "inside" and
// create a qemu-owned file in any directory.
func TestAllowedDirSwappedForSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns the nvram directory's parent to another user (CI runs as root)")
	}
	h := newHost(t, "")
	victim := t.TempDir()
	if err := os.Chown(h.root, 64999, 64999); err != nil {
		t.Fatal(err)
	}
	os.Rename(h.nvram, h.nvram+".old")
	if err := os.Symlink(victim, h.nvram); err != nil {
		t.Fatal(err)
	}
	os.Lchown(h.nvram, 64999, 64999)
	r := h.run(t, h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), "uefi-custom", "prepare", "begin", "-")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q; want 0 (left to libvirt)", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Fatalf("created through the qemu user's symlink: %v", entries)
	}
	if entries, _ := os.ReadDir(h.nvram + ".old"); len(entries) != 0 {
		t.Errorf("created in the directory moved away: %v", entries)
	}
	if log := h.logText(t); !strings.Contains(log, "is a symlink owned by uid 64999") || !strings.Contains(log, "left to libvirt") {
		t.Errorf("the log does not say why: %s", log)
	}
}

// TestLogsDirectoryUsed: the log names the directory really used, with
// symlinks resolved, when the varstore is named through a symlink of root's.
func TestLogsDirectoryUsed(t *testing.T) {
	h := newHost(t, "")
	link := filepath.Join(h.root, "link")
	os.Symlink(h.nvram, link)
	in := bytes.ReplaceAll(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), []byte(h.nvram), []byte(link))
	r := h.run(t, in, "uefi-custom", "prepare", "begin", "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(h.nvram, "uefi-custom_VARS.fd")); err != nil {
		t.Fatal(err)
	}
	if log := h.logText(t); !strings.Contains(log, "dir="+h.nvram+" ") {
		t.Errorf("the log does not name the directory used (%s): %s", h.nvram, log)
	}
}

// TestTemplateFromXMLRestricted: template= in the domain XML must be an
// absolute path to a file that only root can change; a relative one used
// to be found in the hook's working directory, and any file accepted.
func TestTemplateFromXMLRestricted(t *testing.T) {
	for _, tt := range []struct {
		name, template string
		mode           os.FileMode
		want           string
	}{
		{"relative", "CUSTOM_VARS.fd", 0o644, "not an absolute path"},
		{"world-writable", "@FW@/OPEN_VARS.fd", 0o666, "mode 0666 lets others than its owner change it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, "")
			tmpl := strings.ReplaceAll(tt.template, "@FW@", h.fw)
			if strings.HasPrefix(tmpl, "/") {
				os.WriteFile(tmpl, h.vars, 0o644)
				os.Chmod(tmpl, tt.mode)
			}
			in := bytes.Replace(h.sample(t, "libvirt-9.0/uefi-custom--prepare.xml"), []byte("<nvram>"), []byte("<nvram template='"+tmpl+"'>"), 1)
			t.Chdir(h.fw) // where a relative template would be found
			r := h.run(t, in, "uefi-custom", "prepare", "begin", "-")
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, tt.want)
			}
			h.requireEmptyNVRAM(t, "a refused create")
		})
	}
}

// TestUEFIVarsBadTemplate: a <varstore> template that QEMU's uefi-vars
// device would not load (here a raw OVMF file) fails the start with one
// line and leaves nothing, instead of a copy QEMU refuses later.
func TestUEFIVarsBadTemplate(t *testing.T) {
	h := newHost(t, "")
	vsDir := filepath.Join(h.root, "varstore")
	os.Mkdir(vsDir, 0o755)
	conf := bytes.Replace(mustRead(t, h.conf), []byte("[templates]\n"), []byte("allowed_dirs = "+h.nvram+":"+vsDir+"\n[templates]\n"), 1)
	os.WriteFile(h.conf, conf, 0o644)
	tmpl := filepath.Join(h.fw, "CUSTOM_VARS.fd") // raw, random bytes
	in := []byte("<domain type='qemu'><name>custom</name><os><type arch='x86_64' machine='pc-q35-11.1'>hvm</type><loader readonly='yes' type='rom'>" + romLoader + "</loader><varstore template='" + tmpl + "' path='" + vsDir + "/custom.json'/></os></domain>")
	r := h.run(t, in, "custom", "prepare", "begin", "-")
	if r.code != 1 || !strings.Contains(r.stderr, tmpl+": not a uefi-vars JSON varstore: invalid character") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want 1 and one line saying the template is not a uefi-vars JSON varstore", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(vsDir); len(entries) != 0 {
		t.Errorf("left in the varstore directory: %v", entries)
	}
}
