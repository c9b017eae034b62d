package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/testbin"
)

// The built binary, run exactly as libvirtd runs a hook: argv, the domain
// XML on stdin, LC_ALL=C and a minimal environment.
var binary string

func TestMain(m *testing.M) { testbin.Main(m, ".", "libvirt-nvram-hook", &binary) }

type fakeHost struct {
	root, nvram, conf string
	vars              []byte
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	h := &fakeHost{root: root, nvram: filepath.Join(root, "nvram"), conf: filepath.Join(root, "nvram-hook.conf")}
	os.Mkdir(h.nvram, 0o755)
	h.vars = make([]byte, 128<<10)
	rand.Read(h.vars)
	vars := filepath.Join(root, "CUSTOM_VARS.fd")
	os.WriteFile(vars, h.vars, 0o644)
	os.WriteFile(h.conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\nuser = +%d\ngroup = +%d\n[templates]\nnvram = /srv/fw/CUSTOM_CODE.fd:%s\nnvram = /srv/fw/MY_CODE.fd:%[4]s\ndescriptors = false\nbuiltin = false\nqemu_conf =\n[log]\ntarget = file:%s/hook.log\n",
		h.nvram, os.Getuid(), os.Getgid(), vars, root)), 0o644)
	return h
}

func (h *fakeHost) xml(t *testing.T, sample string) []byte {
	t.Helper()
	if !strings.Contains(sample, "/") {
		sample = filepath.Join("libvirt-9.0", sample)
	}
	b, err := os.ReadFile(filepath.Join("..", "testdata", sample))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("/var/lib/libvirt/qemu/nvram"), []byte(h.nvram))
}

func (h *fakeHost) run(t *testing.T, argv0 string, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	// libvirtd execs the hook by its path, so argv[0] is the path it found.
	dir := filepath.Join(h.root, filepath.Dir(argv0))
	os.MkdirAll(dir, 0o755)
	link := filepath.Join(h.root, argv0)
	if err := os.Symlink(binary, link); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIBVIRT_NVRAM_HOOK_CONFIG=" + h.conf}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestContract walks the calls libvirt 9.0, 11.3 and 12.8 make (their
// real stdin is in testdata/libvirt-*) with a UEFI domain whose varstore
// is missing: only prepare, migrate and restore
// create it; only migrate and restore may print XML, and only when it
// changes; every other call is silent and touches nothing.
func TestContract(t *testing.T) {
	tests := []struct {
		argv0  string
		op     []string
		sample string
		create bool
		stdout bool
	}{
		{"qemu", []string{"prepare", "begin", "-"}, "uefi-custom--prepare.xml", true, false},
		{"qemu.d/50-nvram", []string{"prepare", "begin", "-"}, "uefi-source-form--prepare.xml", true, false},
		{"libvirt-nvram-hook", []string{"start", "begin", "-"}, "uefi-custom--start.xml", false, false},
		{"qemu", []string{"started", "begin", "-"}, "uefi-custom--started.xml", false, false},
		{"qemu", []string{"stopped", "end", "-"}, "uefi-custom--stopped.xml", false, false},
		{"qemu", []string{"release", "end", "-"}, "uefi-custom--release.xml", false, false},
		{"qemu", []string{"release", "end", "shutdown"}, "uefi-custom--release.xml", false, false},
		{"qemu", []string{"reconnect", "begin", "-"}, "uefi-custom--started.xml", false, false},
		{"qemu", []string{"attach", "begin", "-"}, "uefi-custom--started.xml", false, false},
		{"qemu", []string{"some-future-op", "begin", "-"}, "uefi-custom--started.xml", false, false},
		{"qemu", []string{"migrate", "begin", "-"}, "uefi-custom--migrate.xml", true, false},
		{"qemu.d/50-nvram", []string{"restore", "begin", "-"}, "uefi-custom--restore.xml", true, false},
		{"qemu", []string{"prepare", "begin", "-"}, "bios--prepare.xml", false, false},
		{"qemu", []string{"prepare", "begin", "-"}, "efi-autoselect--prepare.xml", false, false},
		// libvirt 11.3 and 12.8 fill in <nvram format='raw'> at define.
		{"qemu.d/50-nvram", []string{"prepare", "begin", "-"}, "libvirt-11.3/sv-uefi-prepare-begin.xml", true, false},
		{"qemu.d/50-nvram", []string{"restore", "begin", "-"}, "libvirt-11.3/sv-uefi-restore-begin.xml", true, false},
		{"qemu.d/50-nvram", []string{"start", "begin", "-"}, "libvirt-11.3/sv-uefi-start-begin.xml", false, false},
		{"qemu.d/50-nvram", []string{"started", "begin", "-"}, "libvirt-11.3/sv-uefi-started-begin.xml", false, false},
		{"qemu.d/50-nvram", []string{"stopped", "end", "-"}, "libvirt-11.3/sv-uefi-stopped-end.xml", false, false},
		{"qemu.d/50-nvram", []string{"release", "end", "-"}, "libvirt-11.3/sv-uefi-release-end.xml", false, false},
		{"qemu.d/50-nvram", []string{"prepare", "begin", "-"}, "libvirt-12.8/sv-uefi-prepare-begin.xml", true, false},
		{"qemu.d/50-nvram", []string{"restore", "begin", "-"}, "libvirt-12.8/sv-uefi-restore-begin.xml", true, false},
		{"qemu.d/50-nvram", []string{"start", "begin", "-"}, "libvirt-12.8/sv-uefi-start-begin.xml", false, false},
		{"qemu.d/50-nvram", []string{"started", "begin", "-"}, "libvirt-12.8/sv-uefi-started-begin.xml", false, false},
		{"qemu.d/50-nvram", []string{"stopped", "end", "-"}, "libvirt-12.8/sv-uefi-stopped-end.xml", false, false},
		{"qemu.d/50-nvram", []string{"release", "end", "-"}, "libvirt-12.8/sv-uefi-release-end.xml", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.argv0+" "+strings.Join(tt.op, " ")+" "+tt.sample, func(t *testing.T) {
			h := newFakeHost(t)
			in := h.xml(t, tt.sample)
			domainName := "uefi-custom"
			code, out, errs := h.run(t, tt.argv0, in, append([]string{domainName}, tt.op...)...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if (out != "") != tt.stdout {
				t.Errorf("stdout %q", out)
			}
			entries, _ := os.ReadDir(h.nvram)
			if tt.create {
				if len(entries) != 1 {
					t.Fatalf("nvram dir holds %v, want one new varstore", entries)
				}
				data, _ := os.ReadFile(filepath.Join(h.nvram, entries[0].Name()))
				fi, _ := entries[0].Info()
				if !bytes.Equal(data, h.vars) || fi.Mode().Perm() != 0o600 {
					t.Errorf("varstore mode %v, equal to template %v", fi.Mode().Perm(), bytes.Equal(data, h.vars))
				}
			} else if len(entries) != 0 {
				t.Errorf("files created: %v", entries)
			}
		})
	}
}

func TestRestoreFilterPrintsXML(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "restore-no-nvram.in.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// Written by hand: double quotes, <x></x>, a character reference, a
	// comment and CDATA inside <os>; none of it may change.
	byHand := "<domain type=\"qemu\">\n  <name>uefi-custom</name>\n  <os>\n    <type arch=\"x86_64\" machine=\"q35\">hvm</type>\n" +
		"    <loader readonly=\"yes\" type=\"pflash\">/srv/fw/CUSTOM&#95;CODE.fd</loader>\n" +
		"    <!-- boot from disk --><boot dev=\"hd\"></boot><x><![CDATA[&]]></x>\n  </os>\n</domain>\n"
	for _, tt := range []struct{ name, in, loaderEnd string }{
		{"libvirt's XML", string(golden), "/CUSTOM_CODE.fd</loader>\n"},
		{"XML written by hand", byHand, "/CUSTOM&#95;CODE.fd</loader>\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			code, out, errs := h.run(t, "qemu", []byte(tt.in), "uefi-custom", "restore", "begin", "-")
			if code != 0 || errs != "" {
				t.Fatalf("exit %d: %s", code, errs)
			}
			// The printed XML is the input with the one line of <nvram> added.
			nvram := fmt.Sprintf("    <nvram template='%s/CUSTOM_VARS.fd'>%s/uefi-custom_VARS.fd</nvram>\n", h.root, h.nvram)
			want := strings.Replace(tt.in, tt.loaderEnd, tt.loaderEnd+nvram, 1)
			if out != want || want == tt.in {
				t.Errorf("stdout is not the input with %q added:\n%s", nvram, out)
			}
		})
	}
}

func TestFailuresAreOneLine(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"empty stdin in prepare", "", []string{"vm", "prepare", "begin", "-"}, 1, "empty input"},
		{"garbage in restore", "\x00garbage<<<", []string{"vm", "restore", "begin", "-"}, 1, "invalid domain XML"},
		{"garbage in start is ignored", "\x00garbage<<<", []string{"vm", "start", "begin", "-"}, 0, ""},
		{"no template", "<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/srv/fw/X_CODE.fd</loader><nvram>NVRAM/vm_VARS.fd</nvram></os></domain>",
			[]string{"vm", "prepare", "begin", "-"}, 1, "no varstore template for loader /srv/fw/X_CODE.fd (looked in: domain XML, CONF)"},
		{"usage", "", []string{"vm", "prepare"}, 2, "Usage:"},
		{"truncated XML in migrate", "<domain><name>vm</name><os><loader", []string{"vm", "migrate", "begin", "-"}, 1, "invalid domain XML"},
		{"DOCTYPE with entities", "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><domain>&b;</domain>", []string{"vm", "prepare", "begin", "-"}, 1, "invalid domain XML"},
		{"two os", "<domain><name>vm</name><os/><os/></domain>", []string{"vm", "restore", "begin", "-"}, 1, "more than one <os>"},
		{"two nvram", "<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/c</loader><nvram>/a</nvram><nvram>/b</nvram></os></domain>", []string{"vm", "prepare", "begin", "-"}, 1, "more than one <nvram>"},
		{"two nvram without a loader", "<domain><name>vm</name><os><nvram>/a</nvram><nvram>/b</nvram></os></domain>", []string{"vm", "prepare", "begin", "-"}, 0, ""},
		{"non-UTF-8", "<domain><name>\xff</name></domain>", []string{"vm", "prepare", "begin", "-"}, 1, "not UTF-8"},
		{"NUL as a reference", "<domain><name>vm</name><devices><x>&#0;</x></devices></domain>", []string{"vm", "migrate", "begin", "-"}, 1, "illegal character code U+0000"},
		{"-- inside a comment", "<domain><name>vm</name><!-- a -- b --></domain>", []string{"vm", "prepare", "begin", "-"}, 1, `invalid sequence "--" not allowed in comments`},
		{"50 MiB of garbage in prepare", strings.Repeat("garbage\x00<", 50<<20/9), []string{"vm", "prepare", "begin", "-"}, 1, "invalid domain XML"},
		{"50 MiB of garbage in stopped", strings.Repeat("garbage\x00<", 50<<20/9), []string{"vm", "stopped", "end", "-"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			stdin := strings.NewReplacer("NVRAM", h.nvram).Replace(tt.stdin)
			code, out, errs := h.run(t, "qemu", []byte(stdin), tt.args...)
			if code != tt.code || out != "" {
				t.Fatalf("exit %d stdout %q stderr %q", code, out, errs)
			}
			if tt.msg == "" {
				if errs != "" {
					t.Errorf("stderr %q", errs)
				}
				return
			}
			if !strings.Contains(errs, strings.ReplaceAll(tt.msg, "CONF", h.conf)) {
				t.Errorf("stderr %q lacks %q", errs, tt.msg)
			}
			if tt.code == 1 && (strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "libvirt-nvram-hook: ")) {
				t.Errorf("not one prefixed line: %q", errs)
			}
			if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
				t.Errorf("stack trace: %s", errs)
			}
		})
	}
}

// TestConcurrentHooks runs the real hook the way a burst of starts would:
// 64 processes preparing the same domain (exactly one file, every process
// exits 0) and 200 processes preparing 200 different domains (all created).
func TestConcurrentHooks(t *testing.T) {
	h := newFakeHost(t)
	for _, n := range []struct {
		name    string
		procs   int
		domains int
	}{{"same domain", 64, 1}, {"different domains", 200, 200}} {
		t.Run(n.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan string, n.procs)
			for i := range n.procs {
				name := fmt.Sprintf("%s-%d", strings.ReplaceAll(n.name, " ", "-"), i%n.domains)
				in := fmt.Sprintf("<domain><name>%s</name><os><loader readonly='yes' type='pflash'>/srv/fw/CUSTOM_CODE.fd</loader><nvram>%s/%s_VARS.fd</nvram></os></domain>", name, h.nvram, name)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, out, stderr := h.run(t, "qemu", []byte(in), name, "prepare", "begin", "-"); code != 0 || out != "" || stderr != "" {
						errs <- fmt.Sprintf("%s: exit %d %q %q", name, code, out, stderr)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			for i := range n.domains {
				name := fmt.Sprintf("%s-%d", strings.ReplaceAll(n.name, " ", "-"), i)
				data, err := os.ReadFile(filepath.Join(h.nvram, name+"_VARS.fd"))
				if err != nil || !bytes.Equal(data, h.vars) {
					t.Errorf("%s: %v, intact %v", name, err, bytes.Equal(data, h.vars))
				}
			}
		})
	}
	entries, _ := os.ReadDir(h.nvram)
	if len(entries) != 201 {
		t.Errorf("nvram dir holds %d entries, want 201 varstores and no temp file", len(entries))
	}
}

// TestNoWorkReadsNoConfig: calls without work (every phase but prepare,
// migrate and restore; a guest without a varstore; prepare of a guest
// whose varstore exists) exit 0 silently without reading the config: a
// broken config file stays unnoticed there, while a call with work names
// it. The cases run in order: the second prepare finds the varstore the
// first one created.
func TestNoWorkReadsNoConfig(t *testing.T) {
	h := newFakeHost(t)
	good, err := os.ReadFile(h.conf)
	if err != nil {
		t.Fatal(err)
	}
	broken := []byte("[nvram\nthis is not a config\n")
	bios := []byte("<domain type='kvm'><name>vm</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os></domain>")
	for _, tt := range []struct {
		name   string
		sample string
		stdin  []byte
		args   []string
		conf   []byte
		code   int
	}{
		{"start", "uefi-custom--start.xml", nil, []string{"uefi-custom", "start", "begin", "-"}, broken, 0},
		{"release", "uefi-custom--release.xml", nil, []string{"uefi-custom", "release", "end", "-"}, broken, 0},
		{"prepare of a BIOS domain", "", bios, []string{"vm", "prepare", "begin", "-"}, broken, 0},
		{"restore of a BIOS domain", "", bios, []string{"vm", "restore", "begin", "-"}, broken, 0},
		{"prepare of a UEFI domain, broken config", "uefi-custom--prepare.xml", nil, []string{"uefi-custom", "prepare", "begin", "-"}, broken, 1},
		{"prepare of a UEFI domain creating its varstore", "uefi-custom--prepare.xml", nil, []string{"uefi-custom", "prepare", "begin", "-"}, good, 0},
		{"prepare of a UEFI domain whose varstore exists", "uefi-custom--prepare.xml", nil, []string{"uefi-custom", "prepare", "begin", "-"}, broken, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(h.conf, tt.conf, 0o644); err != nil {
				t.Fatal(err)
			}
			stdin := tt.stdin
			if tt.sample != "" {
				stdin = h.xml(t, tt.sample)
			}
			code, out, errs := h.run(t, "qemu", stdin, tt.args...)
			if code != tt.code || out != "" {
				t.Fatalf("exit %d stdout %q stderr %q, want exit %d", code, out, errs, tt.code)
			}
			if tt.code == 0 && errs != "" {
				t.Errorf("stderr %q", errs)
			}
			if tt.code == 1 && !strings.Contains(errs, h.conf+": line 1") {
				t.Errorf("stderr %q does not name the config's line 1", errs)
			}
		})
	}
}

// TestCommandLineOrHook: what libvirtd passes is a hook call, whatever the
// operation (a newer libvirt may add some); what a person types under the
// binary's own name is the command line, so a typo with four words gets
// the usage and exit 2 instead of a silent success.
func TestCommandLineOrHook(t *testing.T) {
	h := newFakeHost(t)
	in := h.xml(t, "uefi-custom--started.xml")
	for _, tt := range []struct {
		argv0 string
		args  []string
		code  int
		usage string // on stderr, with the usage
	}{
		{"libvirt-nvram-hook", []string{"explain", "-f", "x.xml", "extra"}, 2, "explain takes [-f FILE]"},
		{"libvirt-nvram-hook", []string{"check", "--audit", "/etc/libvirt/qemu", "extra"}, 2, "check takes [--audit [DOMAIN_XML_DIR]]"},
		{"libvirt-nvram-hook", []string{"uefi-custom", "some-future-op", "begin", "-"}, 2, `unknown command "uefi-custom"`},
		{"libvirt-nvram-hook", []string{"uefi-custom", "started", "begin", "-"}, 0, ""},
		{"qemu", []string{"uefi-custom", "some-future-op", "begin", "-"}, 0, ""},
		{"qemu.d/50-nvram", []string{"uefi-custom", "some-future-op", "some-sub-op", "x"}, 0, ""},
	} {
		t.Run(tt.argv0+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := h.run(t, tt.argv0, in, tt.args...)
			if code != tt.code || out != "" {
				t.Fatalf("exit %d stdout %q stderr %q, want exit %d", code, out, errs, tt.code)
			}
			if tt.usage == "" && errs != "" {
				t.Errorf("stderr %q, want none", errs)
			}
			if tt.usage != "" && (!strings.Contains(errs, tt.usage) || !strings.Contains(errs, "Usage:")) {
				t.Errorf("stderr %q lacks %q and the usage", errs, tt.usage)
			}
			if entries, _ := os.ReadDir(h.nvram); len(entries) != 0 {
				t.Errorf("files created: %v", entries)
			}
		})
	}
}
