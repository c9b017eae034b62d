// Package install holds no Go code: these tests drive the shell installer
// (install.sh), its shared library (hooklib.sh), the version and architecture
// helpers and the .deb/.rpm builders, all into temporary directories. They
// need no root and no libvirtd.
package install

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
)

const (
	hookName   = "libvirt-nvram-hook"
	entryPath  = "/etc/libvirt/hooks/qemu.d/50-nvram"
	legacyPath = "/etc/libvirt/hooks/qemu"
	confPath   = "/etc/libvirt/nvram-hook.conf"
	nvramDir   = "/var/lib/libvirt/qemu/nvram"
)

// needTool skips the test when a program it drives is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found in PATH: this test needs it", name)
	}
	return p
}

// needLinux skips where /proc, inodes and GNU tools cannot be relied on.
func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("the installer targets Linux hosts, not %s", runtime.GOOS)
	}
}

// here is the absolute path of a file in this directory.
func here(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

// fakeBinary writes a stand-in for the hook binary: what the installer
// copies is only bytes to it.
func fakeBinary(t *testing.T, tag string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), hookName)
	writeFile(t, p, []byte("#!/bin/sh\necho fake hook "+tag+"\n"), 0o755)
	return p
}

// result of one run of a script.
type result struct {
	stdout, stderr string
	code           int
}

// run runs a command with the environment minus the variables the scripts
// read, plus env.
func run(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "DESTDIR", "PREFIX", "LIBVIRT_VERSION", "VERSION", "ARCH", "MAINTAINER", "SOURCE_DATE_EPOCH":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return result{out.String(), errb.String(), code}
}

// installer runs install.sh with DESTDIR and extra environment.
func installer(t *testing.T, destdir string, env []string, args ...string) result {
	t.Helper()
	needTool(t, "bash")
	env = append([]string{"DESTDIR=" + destdir}, env...)
	return run(t, env, "bash", append([]string{here(t, "install.sh")}, args...)...)
}

// mustInstaller is installer that fails the test unless the exit code is 0.
func mustInstaller(t *testing.T, destdir string, env []string, args ...string) result {
	t.Helper()
	r := installer(t, destdir, env, args...)
	if r.code != 0 {
		t.Fatalf("install.sh %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// node is what a tree snapshot records of one path.
type node struct {
	mode   fs.FileMode
	mtime  time.Time
	ino    uint64
	target string
	sum    [32]byte
}

// snapshot records every path under root, without following symlinks.
func snapshot(t *testing.T, root string) map[string]node {
	t.Helper()
	m := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{mode: fi.Mode(), mtime: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n.ino = uint64(st.Ino)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if n.target, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			n.sum = sha256.Sum256(readFile(t, p))
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameTree reports every difference between two snapshots.
func sameTree(t *testing.T, before, after map[string]node) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s: removed", p)
		case a != b:
			t.Errorf("%s: changed\nbefore %+v\nafter  %+v", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: created", p)
		}
	}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

func wantLink(t *testing.T, path, target string) {
	t.Helper()
	got, err := os.Readlink(path)
	if err != nil {
		t.Fatalf("%s: want a symlink to %s: %v", path, target, err)
	}
	if got != target {
		t.Errorf("%s -> %s, want -> %s", path, got, target)
	}
}

func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: want it gone, Lstat says %v", path, err)
	}
}

func TestInstallLayout(t *testing.T) {
	needLinux(t)
	for _, tc := range []struct {
		name, prefix, binDir string
	}{
		{"default prefix", "", "/usr/local/libexec"},
		{"prefix /usr", "/usr", "/usr/libexec"},
		{"prefix with trailing slash", "/opt/nvh/", "/opt/nvh/libexec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			bin := fakeBinary(t, "v1")
			var env []string
			if tc.prefix != "" {
				env = append(env, "PREFIX="+tc.prefix)
			}
			r := mustInstaller(t, dest, env, "install", bin)
			final := tc.binDir + "/" + hookName

			wantMode(t, dest+final, 0o755)
			if !bytes.Equal(readFile(t, dest+final), readFile(t, bin)) {
				t.Errorf("%s: not a copy of %s", dest+final, bin)
			}
			wantLink(t, dest+entryPath, final)
			wantAbsent(t, dest+legacyPath)
			wantMode(t, dest+confPath, 0o644)
			if !bytes.Equal(readFile(t, dest+confPath), readFile(t, here(t, "nvram-hook.conf"))) {
				t.Errorf("%s differs from the sample", confPath)
			}
			for _, dir := range []string{"/etc/libvirt/hooks/qemu.d", tc.binDir} {
				wantMode(t, dest+dir, fs.ModeDir|0o755)
			}
			// No temp file left behind, in particular none in qemu.d/,
			// where libvirt would run it.
			for p := range snapshot(t, dest) {
				if strings.Contains(filepath.Base(p), "."+hookName+".") {
					t.Errorf("temp file left: %s", p)
				}
			}
			wantDocs(t, dest, strings.TrimSuffix(tc.binDir, "/libexec"))
			wantContains(t, "output", r.stdout, "installed", "created", "skipped: DESTDIR set", "Done: 6 changed")
		})
	}
}

// docFiles maps what install.sh puts under PREFIX to its source in the tree.
func docFiles(t *testing.T, prefix string) map[string]string {
	return map[string]string{
		prefix + "/share/man/man8/" + hookName + ".8":              here(t, hookName+".8"),
		prefix + "/share/doc/" + hookName + "/LICENSE":             here(t, "../LICENSE"),
		prefix + "/share/doc/" + hookName + "/THIRD-PARTY-NOTICES": here(t, "THIRD-PARTY-NOTICES"),
	}
}

// wantDocs checks the man page and the license texts under DESTDIR+PREFIX:
// copies of the tree's files, mode 0644, in 0755 directories.
func wantDocs(t *testing.T, dest, prefix string) {
	t.Helper()
	for path, src := range docFiles(t, prefix) {
		if _, err := os.Lstat(dest + path); err != nil {
			t.Errorf("%s not installed: %v", path, err)
			continue
		}
		wantMode(t, dest+path, 0o644)
		wantMode(t, filepath.Dir(dest+path), fs.ModeDir|0o755)
		if !bytes.Equal(readFile(t, dest+path), readFile(t, src)) {
			t.Errorf("%s is not a copy of %s", path, src)
		}
	}
}

// make install puts the man page in PREFIX/share/man/man8 under DESTDIR, and
// make uninstall removes it (and the license texts), leaving another
// package's man page in the same directory alone.
func TestManPageInstallUninstall(t *testing.T) {
	needLinux(t)
	needTool(t, "make")
	for _, prefix := range []string{"/usr", "/opt/nvh"} {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			other := dest + prefix + "/share/man/man8/other.8"
			writeFile(t, other, []byte(".TH OTHER 8\n"), 0o644)
			otherBefore := snapshot(t, filepath.Dir(other))
			bin := fakeBinary(t, "man")
			mk := func(target string) result {
				r := run(t, nil, "make", "-C", "..", "-o", "build", target, "BIN="+bin, "PREFIX="+prefix, "DESTDIR="+dest)
				if r.code != 0 {
					t.Fatalf("make %s: exit %d\n%s%s", target, r.code, r.stdout, r.stderr)
				}
				return r
			}
			r := mk("install")
			wantDocs(t, dest, prefix)
			wantContains(t, "make install", r.stdout, "man     "+dest+prefix+"/share/man/man8/"+hookName+".8: installed")

			// Installing again changes nothing, the man page included.
			r = mk("install")
			wantContains(t, "second make install", r.stdout, "Nothing changed")

			r = mk("uninstall")
			for path := range docFiles(t, prefix) {
				wantAbsent(t, dest+path)
			}
			wantAbsent(t, dest+prefix+"/share/doc/"+hookName)
			wantContains(t, "make uninstall", r.stdout, "man     "+dest+prefix+"/share/man/man8/"+hookName+".8: removed")
			// Only our page left the directory.
			after := snapshot(t, filepath.Dir(other))
			delete(otherBefore, ".") // the directory's mtime changes with the removal
			delete(after, ".")
			sameTree(t, otherBefore, after)
		})
	}
}

// An outdated man page (an older version of the project) is replaced.
func TestManPageUpdated(t *testing.T) {
	needLinux(t)
	dest := t.TempDir()
	page := dest + "/usr/local/share/man/man8/" + hookName + ".8"
	writeFile(t, page, []byte(".TH OLD 8\n"), 0o644)
	r := mustInstaller(t, dest, nil, "install", fakeBinary(t, "v1"))
	wantContains(t, "output", r.stdout, "man     "+page+": updated")
	wantDocs(t, dest, "/usr/local")
}

func TestInstallTwiceChangesNothing(t *testing.T) {
	needLinux(t)
	dest := t.TempDir()
	bin := fakeBinary(t, "v1")
	mustInstaller(t, dest, nil, "install", bin)
	before := snapshot(t, dest)
	// A coarse clock could hide a rewrite that keeps the second.
	time.Sleep(20 * time.Millisecond)
	r := mustInstaller(t, dest, nil, "install", bin)
	sameTree(t, before, snapshot(t, dest))
	wantContains(t, "second run", r.stdout, "unchanged", "Nothing changed", "reload  not needed")
	if strings.Contains(r.stdout, "installed") || strings.Contains(r.stdout, "created") {
		t.Errorf("second run claims a change:\n%s", r.stdout)
	}
}

func TestUpgradeReplacesBinaryAtomically(t *testing.T) {
	needLinux(t)
	dest := t.TempDir()
	mustInstaller(t, dest, nil, "install", fakeBinary(t, "v1"))
	before := snapshot(t, dest)
	binRel := "usr/local/libexec/" + hookName

	v2 := fakeBinary(t, "v2")
	r := mustInstaller(t, dest, nil, "install", v2)
	after := snapshot(t, dest)

	wantContains(t, "output", r.stdout, "upgraded", "Done: 1 changed")
	if !bytes.Equal(readFile(t, filepath.Join(dest, binRel)), readFile(t, v2)) {
		t.Error("binary not replaced by v2")
	}
	// A rename puts a new inode in place; writing in place would keep the old
	// one, and a hook running at that moment would see a torn file.
	if before[binRel].ino == after[binRel].ino {
		t.Error("binary rewritten in place, not renamed over")
	}
	wantMode(t, filepath.Join(dest, binRel), 0o755)
	for _, p := range []string{strings.TrimPrefix(entryPath, "/"), strings.TrimPrefix(confPath, "/")} {
		if before[p] != after[p] {
			t.Errorf("%s changed by the upgrade", p)
		}
	}
}

func TestExistingQemuHook(t *testing.T) {
	needLinux(t)
	const foreign = "#!/bin/sh\n# someone else's hook\nexit 0\n"
	for _, tc := range []struct {
		name           string
		libvirt        string // LIBVIRT_VERSION; "" = DESTDIR's assumption (modern)
		foreign        bool   // a foreign executable hooks/qemu exists
		wantCode       int
		wantLink       string // where our symlink must be, "" = nowhere
		wantOut        []string
		wantNotCreated string
	}{
		{
			name: "modern libvirt, foreign script", foreign: true,
			wantLink: entryPath,
			wantOut:  []string{"left alone (not ours; libvirt keeps running it", "reload  not needed"},
		},
		{
			name: "libvirt 9.0.0, foreign script", libvirt: "9.0.0", foreign: true,
			wantLink: entryPath,
			wantOut:  []string{"libvirt 9.0.0, from LIBVIRT_VERSION"},
		},
		{
			name: "libvirt 6.0.0, foreign script", libvirt: "6.0.0", foreign: true,
			wantCode: 1,
			wantOut:  []string{"refusing to install", "Nothing was changed", "upgrade libvirt to 6.5 or later", "install -D -m 0755"},
		},
		{
			name: "libvirt 6.0.0, no script", libvirt: "6.0.0",
			wantLink: legacyPath,
			wantOut:  []string{"skipped: DESTDIR set; this is the first qemu hook"},
		},
		{
			name: "libvirt 6.4.99, no script", libvirt: "6.4.99",
			wantLink: legacyPath,
		},
		{
			name: "libvirt 6.5, no script", libvirt: "6.5",
			wantLink: entryPath,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			if tc.foreign {
				writeFile(t, dest+legacyPath, []byte(foreign), 0o750)
			}
			before := snapshot(t, dest)
			var env []string
			if tc.libvirt != "" {
				env = append(env, "LIBVIRT_VERSION="+tc.libvirt)
			}
			r := installer(t, dest, env, "install", fakeBinary(t, "v1"))
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			wantContains(t, "output", r.stdout+r.stderr, tc.wantOut...)

			if tc.wantCode != 0 {
				// A refusal changes nothing at all.
				sameTree(t, before, snapshot(t, dest))
				return
			}
			final := "/usr/local/libexec/" + hookName
			wantLink(t, dest+tc.wantLink, final)
			if tc.wantLink == entryPath && !tc.foreign {
				wantAbsent(t, dest+legacyPath)
			}
			if tc.wantLink == legacyPath {
				wantAbsent(t, dest+entryPath)
			}

			// The foreign script survives install and uninstall byte for
			// byte, with its mode and mtime.
			mustInstaller(t, dest, env, "uninstall")
			if tc.foreign {
				rel := strings.TrimPrefix(legacyPath, "/")
				if got, want := snapshot(t, dest)[rel], before[rel]; got != want {
					t.Errorf("foreign %s changed: before %+v, after %+v", legacyPath, want, got)
				}
				if got := readFile(t, dest+legacyPath); string(got) != foreign {
					t.Errorf("foreign hook content changed: %q", got)
				}
			} else {
				wantAbsent(t, dest+tc.wantLink)
			}
		})
	}
}

// The legacy link moves to qemu.d/ once libvirt is new enough, so that the
// hook never runs twice.
func TestLegacyLinkMovesToQemuD(t *testing.T) {
	needLinux(t)
	dest := t.TempDir()
	bin := fakeBinary(t, "v1")
	mustInstaller(t, dest, []string{"LIBVIRT_VERSION=6.0.0"}, "install", bin)
	wantLink(t, dest+legacyPath, "/usr/local/libexec/"+hookName)
	r := mustInstaller(t, dest, []string{"LIBVIRT_VERSION=9.0.0"}, "install", bin)
	wantLink(t, dest+entryPath, "/usr/local/libexec/"+hookName)
	wantAbsent(t, dest+legacyPath)
	wantContains(t, "output", r.stdout, "removed (replaced by "+entryPath, "reload  not needed")
}

func TestEntryThatIsNotOursIsRefused(t *testing.T) {
	needLinux(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dest string)
	}{
		{"regular file", func(t *testing.T, dest string) {
			writeFile(t, dest+entryPath, []byte("#!/bin/sh\n"), 0o755)
		}},
		{"link to another installation", func(t *testing.T, dest string) {
			if err := os.MkdirAll(filepath.Dir(dest+entryPath), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/usr/libexec/"+hookName, dest+entryPath); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			tc.setup(t, dest)
			before := snapshot(t, dest)
			r := installer(t, dest, nil, "install", fakeBinary(t, "v1"))
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
			}
			wantContains(t, "stderr", r.stderr, "refusing to install", "nothing was changed")
			sameTree(t, before, snapshot(t, dest))
			// Uninstall leaves what is not ours.
			mustInstaller(t, dest, nil, "uninstall")
			sameTree(t, before, snapshot(t, dest))
		})
	}
}

// The reload decision mirrors libvirt's virHookCheck: only an executable
// hooks/qemu or an executable entry in qemu.d/ counts as a hook.
func TestFirstHookDetection(t *testing.T) {
	needLinux(t)
	const first = "skipped: DESTDIR set; this is the first qemu hook"
	const had = "not needed: libvirt already had a qemu hook"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dest string)
		want  string
	}{
		{"empty host", func(*testing.T, string) {}, first},
		{"executable qemu", func(t *testing.T, dest string) {
			writeFile(t, dest+legacyPath, []byte("#!/bin/sh\n"), 0o700)
		}, had},
		{"non-executable qemu", func(t *testing.T, dest string) {
			writeFile(t, dest+legacyPath, []byte("#!/bin/sh\n"), 0o644)
		}, first},
		{"executable in qemu.d", func(t *testing.T, dest string) {
			writeFile(t, dest+"/etc/libvirt/hooks/qemu.d/10-other", []byte("#!/bin/sh\n"), 0o755)
		}, had},
		{"hidden executable in qemu.d", func(t *testing.T, dest string) {
			writeFile(t, dest+"/etc/libvirt/hooks/qemu.d/.other", []byte("#!/bin/sh\n"), 0o755)
		}, had},
		{"only non-executables in qemu.d", func(t *testing.T, dest string) {
			writeFile(t, dest+"/etc/libvirt/hooks/qemu.d/README", []byte("notes\n"), 0o644)
			if err := os.Mkdir(dest+"/etc/libvirt/hooks/qemu.d/subdir", 0o755); err != nil {
				t.Fatal(err)
			}
		}, first},
		{"link in qemu.d to an executable under DESTDIR", func(t *testing.T, dest string) {
			writeFile(t, dest+"/opt/other/hook", []byte("#!/bin/sh\n"), 0o755)
			if err := os.MkdirAll(dest+"/etc/libvirt/hooks/qemu.d", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/opt/other/hook", dest+"/etc/libvirt/hooks/qemu.d/20-other"); err != nil {
				t.Fatal(err)
			}
		}, had},
		// /bin/sh exists on the live system, not under DESTDIR: a staged tree
		// is judged on its own.
		{"link in qemu.d to a live-system file only", func(t *testing.T, dest string) {
			if err := os.MkdirAll(dest+"/etc/libvirt/hooks/qemu.d", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/bin/sh", dest+"/etc/libvirt/hooks/qemu.d/20-other"); err != nil {
				t.Fatal(err)
			}
		}, first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			tc.setup(t, dest)
			r := mustInstaller(t, dest, nil, "install", fakeBinary(t, "v1"))
			wantContains(t, "output", r.stdout, tc.want)
		})
	}
}

func TestUninstall(t *testing.T) {
	needLinux(t)
	for _, tc := range []struct {
		name       string
		editConf   bool
		wantConfig bool
		wantOut    string
	}{
		{"unmodified config is removed", false, false, "removed (same as the shipped sample)"},
		{"modified config is kept", true, true, "kept (modified from the shipped sample"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			// A varstore, as libvirt would leave it.
			varstore := dest + nvramDir + "/vm1_VARS.fd"
			writeFile(t, varstore, bytes.Repeat([]byte{0xA5}, 4096), 0o600)
			nvramBefore := snapshot(t, dest+"/var")

			mustInstaller(t, dest, nil, "install", fakeBinary(t, "v1"))
			if tc.editConf {
				conf := readFile(t, dest+confPath)
				writeFile(t, dest+confPath, append(conf, "[log]\nlevel = debug\n"...), 0o644)
			}
			var confBefore []byte
			if tc.wantConfig {
				confBefore = readFile(t, dest+confPath)
			}

			r := mustInstaller(t, dest, nil, "uninstall")
			wantAbsent(t, dest+"/usr/local/libexec/"+hookName)
			wantAbsent(t, dest+entryPath)
			wantAbsent(t, dest+legacyPath)
			for path := range docFiles(t, "/usr/local") {
				wantAbsent(t, dest+path)
			}
			if tc.wantConfig {
				if got := readFile(t, dest+confPath); !bytes.Equal(got, confBefore) {
					t.Errorf("kept config changed:\n%s", got)
				}
			} else {
				wantAbsent(t, dest+confPath)
			}
			sameTree(t, nvramBefore, snapshot(t, dest+"/var"))
			wantContains(t, "output", r.stdout, tc.wantOut, "not touched (varstores stay)")

			// A second uninstall finds nothing to do.
			r = mustInstaller(t, dest, nil, "uninstall")
			wantContains(t, "second uninstall", r.stdout, "Nothing changed")
			sameTree(t, nvramBefore, snapshot(t, dest+"/var"))
		})
	}
}

func TestUsageAndErrors(t *testing.T) {
	needLinux(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"no command", nil, nil, 2, "usage:"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "usage:"},
		{"install without binary", nil, []string{"install"}, 2, "usage:"},
		{"uninstall with extra argument", nil, []string{"uninstall", "x"}, 2, "usage:"},
		{"missing binary", nil, []string{"install", "/nonexistent/hook"}, 1, "no binary at /nonexistent/hook"},
		{"relative prefix", []string{"PREFIX=usr"}, []string{"install", "install.sh"}, 1, "PREFIX must be an absolute path"},
		{"bad libvirt version", []string{"LIBVIRT_VERSION=banana"}, []string{"install", "install.sh"}, 1, "bad libvirt version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			r := installer(t, dest, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			wantContains(t, "stderr", r.stderr, tc.want)
			if len(snapshot(t, dest)) != 1 {
				t.Errorf("files created on error: %v", snapshot(t, dest))
			}
		})
	}
}

// hooklib runs a shell snippet with hooklib.sh loaded, in plain sh: the
// package scripts run it with /bin/sh, which need not be bash.
func hooklib(t *testing.T, script string, args ...string) result {
	t.Helper()
	sh := needTool(t, "sh")
	return run(t, nil, sh, append([]string{"-c", ". \"$0\"; " + script, here(t, "hooklib.sh")}, args...)...)
}

// hooklib.sh is pasted into package scripts and %included by the RPM spec,
// where rpm would expand any percent sign as a macro.
func TestHooklibIsPortable(t *testing.T) {
	needLinux(t)
	lib := readFile(t, here(t, "hooklib.sh"))
	if i := bytes.IndexByte(lib, '%'); i >= 0 {
		line := bytes.Count(lib[:i], []byte("\n")) + 1
		t.Errorf("hooklib.sh:%d has a '%%', which rpm would expand", line)
	}
	if r := run(t, nil, needTool(t, "sh"), "-n", here(t, "hooklib.sh")); r.code != 0 {
		t.Errorf("sh -n hooklib.sh: %s", r.stderr)
	}
}

func TestVersionGE(t *testing.T) {
	needLinux(t)
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"9.0.0", "6.5", true},
		{"6.5", "6.5", true},
		{"6.5.0", "6.5", true},
		{"6.4.99", "6.5", false},
		{"6.10.0", "6.5", true},
		{"10.0.0", "6.5", true},
		{"5.10", "6.5", false},
		{"6", "6.5", false},
	} {
		r := hooklib(t, `nvh_version_ge "$1" "$2"`, tc.a, tc.b)
		if got := r.code == 0; got != tc.want {
			t.Errorf("nvh_version_ge %s %s = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// fakeDaemon is a copy of sleep running under a daemon's command name, so
// that /proc/PID/comm shows that name.
type fakeDaemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has ended; err is then set
	err  error
}

func (f *fakeDaemon) pid() string { return strconv.Itoa(f.cmd.Process.Pid) }

// startFake starts a fake daemon called name, stopped at the test's end.
func startFake(t *testing.T, name string) *fakeDaemon {
	t.Helper()
	sleep := needTool(t, "sleep")
	p := filepath.Join(t.TempDir(), name)
	writeFile(t, p, readFile(t, sleep), 0o755)
	f := &fakeDaemon{cmd: exec.Command(p, "60"), done: make(chan struct{})}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.done
	})
	// Wait until exec has given the forked child its name.
	comm := "/proc/" + f.pid() + "/comm"
	for i := 0; i < 400; i++ {
		if b, err := os.ReadFile(comm); err == nil && strings.TrimSpace(string(b)) == name {
			return f
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fake %s never showed its name in %s", name, comm)
	return nil
}

// ended waits up to d for the fake to end and reports whether and how it
// ended.
func (f *fakeDaemon) ended(d time.Duration) (bool, error) {
	select {
	case <-f.done:
		return true, f.err
	case <-time.After(d):
		return false, nil
	}
}

// nvh_reload_libvirt sends SIGHUP only to a live process that really is the
// daemon its pid file names. ROOT keeps systemd and the real /run out of it.
func TestReloadSignalsOnlyTheDaemon(t *testing.T) {
	needLinux(t)

	for _, name := range []string{"libvirtd", "virtqemud"} {
		t.Run(name+" gets SIGHUP", func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			f := startFake(t, name)
			writeFile(t, root+"/run/"+name+".pid", []byte(f.pid()+"\n"), 0o644)
			r := hooklib(t, `nvh_reload_libvirt "$1"`, root)
			wantContains(t, "output", r.stdout, "reloaded "+name+": kill -HUP "+f.pid())
			ok, err := f.ended(10 * time.Second)
			if !ok {
				t.Fatalf("fake %s got no signal", name)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("fake %s: %v", name, err)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
				t.Errorf("fake %s ended with %v, want SIGHUP", name, err)
			}
		})
	}

	t.Run("stale pid file names another process", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		f := startFake(t, "not-libvirt")
		writeFile(t, root+"/run/libvirtd.pid", []byte(f.pid()+"\n"), 0o644)
		r := hooklib(t, `nvh_reload_libvirt "$1"`, root)
		wantContains(t, "output", r.stdout, "not signalled", "stale pid file", "nothing to reload")
		if ended, err := f.ended(100 * time.Millisecond); ended {
			t.Fatalf("unrelated process signalled: %v", err)
		}
	})

	t.Run("no daemon", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeFile(t, root+"/run/libvirtd.pid", []byte("999999999\n"), 0o644)
		r := hooklib(t, `nvh_reload_libvirt "$1"`, root)
		wantContains(t, "output", r.stdout, "no running libvirtd or virtqemud: nothing to reload")
	})
}

func TestVersionSanitizing(t *testing.T) {
	needLinux(t)
	needTool(t, "bash")
	valid := regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
	for _, tc := range []struct{ in, want string }{
		{"a1b2c3d", "0.1.0~gita1b2c3d"},
		{"a1b2c3d-dirty", "0.1.0~gita1b2c3d.dirty"},
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-dirty", "1.2.0+dirty"},
		{"v1.2.0-3-ga1b2c3d", "1.2.0+git3.ga1b2c3d"},
		{"v1.2.0-3-ga1b2c3d-dirty", "1.2.0+git3.ga1b2c3d.dirty"},
		{"dev", "0.1.0~dev"},
		{"", "0.1.0~dev"},
		{"feature/x_y-1", "0.1.0~feature.x.y.1"},
	} {
		r := run(t, nil, "bash", here(t, "version.sh"), tc.in)
		got := strings.TrimSpace(r.stdout)
		if r.code != 0 || got != tc.want {
			t.Errorf("version.sh %q = %q (exit %d), want %q", tc.in, got, r.code, tc.want)
		}
		if !valid.MatchString(got) {
			t.Errorf("version.sh %q = %q: not a valid Debian and RPM version", tc.in, got)
		}
	}
}

func TestMachineFromELFHeader(t *testing.T) {
	needPackageTools(t, "od")
	elf := func(class, data byte, machine uint16) []byte {
		h := make([]byte, 64)
		copy(h, "\x7fELF")
		h[4], h[5] = class, data
		if data == 1 {
			h[18], h[19] = byte(machine), byte(machine>>8)
		} else {
			h[18], h[19] = byte(machine>>8), byte(machine)
		}
		return h
	}
	for _, tc := range []struct {
		name           string
		header         []byte
		machine, deb   string
		rpm            string
		wantFailure    bool
		wantUnameFallb bool
	}{
		{name: "x86_64", header: elf(2, 1, 62), machine: "x86_64", deb: "amd64", rpm: "x86_64"},
		{name: "aarch64", header: elf(2, 1, 183), machine: "aarch64", deb: "arm64", rpm: "aarch64"},
		{name: "ppc64le", header: elf(2, 1, 21), machine: "ppc64le", deb: "ppc64el", rpm: "ppc64le"},
		{name: "s390x", header: elf(2, 2, 22), machine: "s390x", deb: "s390x", rpm: "s390x"},
		{name: "armhf", header: elf(1, 1, 40), machine: "armv7l", deb: "armhf", rpm: "armv7hl"},
		{name: "riscv64", header: elf(2, 1, 243), machine: "riscv64", deb: "riscv64", rpm: "riscv64"},
		{name: "unknown machine", header: elf(2, 1, 9999), wantFailure: true},
		{name: "script", header: []byte("#!/bin/sh\n"), wantUnameFallb: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bin")
			writeFile(t, p, tc.header, 0o755)
			r := run(t, nil, "bash", "-c", `. "$0"; m=$(pkg_machine "$1") || exit 1; echo "$m $(pkg_deb_arch "$m") $(pkg_rpm_arch "$m")"`, here(t, "pkglib.sh"), p)
			if tc.wantFailure {
				if r.code == 0 {
					t.Errorf("want failure, got %q", r.stdout)
				}
				return
			}
			got := strings.Fields(r.stdout)
			if len(got) != 3 {
				t.Fatalf("output %q (stderr %q)", r.stdout, r.stderr)
			}
			if tc.wantUnameFallb {
				uname := run(t, nil, "uname", "-m")
				if got[0] != strings.TrimSpace(uname.stdout) {
					t.Errorf("no ELF: machine %q, want uname -m %q", got[0], uname.stdout)
				}
				return
			}
			if want := []string{tc.machine, tc.deb, tc.rpm}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// configKeys lists the keys the sample documents, commented out: "#key = ".
func configKeys(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^#([a-z_]+) = `)
	var keys []string
	for _, m := range re.FindAllStringSubmatch(string(readFile(t, here(t, "nvram-hook.conf"))), -1) {
		keys = append(keys, m[1])
	}
	return keys
}

func TestSampleConfigIsAllComments(t *testing.T) {
	for i, line := range strings.Split(string(readFile(t, here(t, "nvram-hook.conf"))), "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
			t.Errorf("nvram-hook.conf:%d is not commented out: %q", i+1, line)
		}
	}
	want := config.Keys
	if got := configKeys(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sample documents keys %v, want %v", got, want)
	}
}

// Every key of the sample is described in the man page, in its
// CONFIGURATION section.
func TestManPageDocumentsEveryKey(t *testing.T) {
	man := string(readFile(t, here(t, hookName+".8")))
	start, end := strings.Index(man, ".SH CONFIGURATION"), strings.Index(man, ".SH EXIT STATUS")
	if start < 0 || end < start {
		t.Fatal("man page lacks CONFIGURATION or EXIT STATUS")
	}
	conf := man[start:end]
	for _, key := range configKeys(t) {
		if !regexp.MustCompile(`(?m)^\.BR? ` + key + `\b`).MatchString(conf) {
			t.Errorf("man page CONFIGURATION does not describe %s", key)
		}
	}
	for _, s := range []string{".SH SYNOPSIS", ".SH HOOK OPERATIONS", ".SH TEMPLATE LOOKUP",
		".SH FILES", ".SH ENVIRONMENT", "LIBVIRT_NVRAM_HOOK_CONFIG", "explain", "check"} {
		if !strings.Contains(man, s) {
			t.Errorf("man page lacks %q", s)
		}
	}
}

// The hook itself accepts the sample as shipped, and with every key
// uncommented: the sample documents no key the parser does not know.
func TestHookAcceptsSampleConfig(t *testing.T) {
	needLinux(t)
	if testing.Short() {
		t.Skip("builds the hook; skipped with -short")
	}
	gobin := needTool(t, "go")
	dir := t.TempDir()
	hook := filepath.Join(dir, hookName)
	build := exec.Command(gobin, "build", "-o", hook, "../hook")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ../hook: %v\n%s", err, out)
	}

	sample := string(readFile(t, here(t, "nvram-hook.conf")))
	// Values that hold on any machine, for the uncommented copy.
	writeFile(t, dir+"/fw/CODE.fd", []byte("code"), 0o644)
	writeFile(t, dir+"/fw/VARS.fd", []byte("vars"), 0o644)
	writeFile(t, dir+"/fw/ROM.fd", []byte("rom"), 0o644)
	writeFile(t, dir+"/fw/VARS.json", []byte(`{"version": 2, "variables": []}`), 0o644)
	if err := os.MkdirAll(dir+"/nvram", 0o755); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"dir": dir + "/nvram", "allowed_dirs": dir + "/nvram", "user": "root", "group": "root",
		"add_template": "false", "nvram": dir + "/fw/CODE.fd:" + dir + "/fw/VARS.fd", "varstore": dir + "/fw/ROM.fd:" + dir + "/fw/VARS.json",
		"builtin": "true", "translate_loader": "false",
		"descriptors": "true", "descriptor_dirs": dir + "/none1:" + dir + "/none2", "qemu_conf": "",
		"target": "stderr", "level": "info",
	}
	var b strings.Builder
	for _, line := range strings.Split(sample, "\n") {
		if m := regexp.MustCompile(`^#\[([a-z]+)\]$`).FindStringSubmatch(line); m != nil {
			line = "[" + m[1] + "]"
		} else if m := regexp.MustCompile(`^#([a-z_]+) = `).FindStringSubmatch(line); m != nil {
			v, ok := values[m[1]]
			if !ok {
				t.Fatalf("no test value for key %s", m[1])
			}
			line = m[1] + " = " + v
		}
		b.WriteString(line + "\n")
	}
	uncommented := filepath.Join(dir, "uncommented.conf")
	writeFile(t, uncommented, []byte(b.String()), 0o644)

	for _, conf := range []string{here(t, "nvram-hook.conf"), uncommented} {
		r := run(t, []string{"LIBVIRT_NVRAM_HOOK_CONFIG=" + conf}, hook, "check")
		if r.code != 0 {
			t.Errorf("LIBVIRT_NVRAM_HOOK_CONFIG=%s %s check: exit %d\n%s%s", conf, hookName, r.code, r.stdout, r.stderr)
		}
	}
}

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct{ mode, owner, target string }

// needPackageTools skips the test unless this is Linux with bash (which
// runs the package build scripts) and the package tools named.
func needPackageTools(t *testing.T, tools ...string) {
	t.Helper()
	needLinux(t)
	for _, tool := range append([]string{"bash"}, tools...) {
		needTool(t, tool)
	}
}

// buildPackage runs a package build script on bin into a temp dir and
// checks that it prints the package it built, named want.
func buildPackage(t *testing.T, script, bin string, env []string, want string) string {
	t.Helper()
	out := t.TempDir()
	r := run(t, env, "bash", here(t, script), bin, out)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", filepath.Base(script), r.code, r.stdout, r.stderr)
	}
	pkg := strings.TrimSpace(r.stdout)
	if want = filepath.Join(out, want); pkg != want {
		t.Fatalf("built %q, want %q", pkg, want)
	}
	return pkg
}

func TestBuildDeb(t *testing.T) {
	needPackageTools(t, "dpkg-deb", "gzip")
	bin := fakeBinary(t, "deb")
	env := []string{"VERSION=a1b2c3d-dirty", "SOURCE_DATE_EPOCH=1700000000", "ARCH=amd64"}
	const name = "libvirt-nvram-hook_0.1.0~gita1b2c3d.dirty-1_amd64.deb"
	deb := buildPackage(t, "debian/build-deb.sh", bin, env, name)

	info := run(t, nil, "dpkg-deb", "-I", deb)
	wantContains(t, "dpkg-deb -I", info.stdout,
		"Package: libvirt-nvram-hook",
		"Version: 0.1.0~gita1b2c3d.dirty-1",
		"Architecture: amd64",
		"Depends: libvirt-daemon (>= 6.5) | libvirt-daemon-system",
		" preinst", " postinst", " postrm", " conffiles", " md5sums")
	conffiles := run(t, nil, "dpkg-deb", "-I", deb, "conffiles")
	if got := strings.TrimSpace(conffiles.stdout); got != confPath {
		t.Errorf("conffiles = %q, want %q", got, confPath)
	}

	// Contents: path -> mode, owner, link target.
	contents := map[string]debEntry{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, nil, "dpkg-deb", "-c", deb).stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		e := debEntry{mode: f[0], owner: f[1]}
		path := strings.TrimPrefix(f[5], ".")
		if len(f) == 8 && f[6] == "->" {
			e.target = f[7]
		}
		contents[strings.TrimSuffix(path, "/")] = e
	}
	for path, want := range map[string]debEntry{
		"/usr/libexec/" + hookName: {"-rwxr-xr-x", "root/root", ""},
		entryPath:                  {"lrwxrwxrwx", "root/root", "/usr/libexec/" + hookName},
		confPath:                   {"-rw-r--r--", "root/root", ""},
		"/usr/share/man/man8/" + hookName + ".8.gz":              {"-rw-r--r--", "root/root", ""},
		"/usr/share/doc/" + hookName + "/copyright":              {"-rw-r--r--", "root/root", ""},
		"/usr/share/doc/" + hookName + "/changelog.Debian.gz":    {"-rw-r--r--", "root/root", ""},
		"/usr/share/doc/" + hookName + "/THIRD-PARTY-NOTICES.gz": {"-rw-r--r--", "root/root", ""},
		"/usr/share/lintian/overrides/" + hookName:               {"-rw-r--r--", "root/root", ""},
		"/etc/libvirt/hooks/qemu.d":                              {"drwxr-xr-x", "root/root", ""},
		"":                                                       {"drwxr-xr-x", "root/root", ""}, // "./", the root
	} {
		got, ok := contents[path]
		if !ok {
			t.Errorf("%s missing from the package", path)
			continue
		}
		if got != want {
			t.Errorf("%s: %+v, want %+v", path, got, want)
		}
	}
	for path := range contents {
		if strings.HasPrefix(path, "/var/lib/libvirt") || path == legacyPath {
			t.Errorf("package must not ship %s", path)
		}
	}

	// File contents and maintainer scripts.
	root, ctrl := t.TempDir(), t.TempDir()
	if r := run(t, nil, "dpkg-deb", "-x", deb, root); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := run(t, nil, "dpkg-deb", "-e", deb, ctrl); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if !bytes.Equal(readFile(t, root+"/usr/libexec/"+hookName), readFile(t, bin)) {
		t.Error("packaged binary differs from the input")
	}
	if !bytes.Equal(readFile(t, root+confPath), readFile(t, here(t, "nvram-hook.conf"))) {
		t.Error("packaged config differs from the sample")
	}
	if got := gunzip(t, root+"/usr/share/man/man8/"+hookName+".8.gz"); !bytes.Equal(got, readFile(t, here(t, hookName+".8"))) {
		t.Error("packaged man page differs from the source")
	}
	if got := gunzip(t, root+"/usr/share/doc/"+hookName+"/THIRD-PARTY-NOTICES.gz"); !bytes.Equal(got, readFile(t, here(t, "THIRD-PARTY-NOTICES"))) {
		t.Error("packaged THIRD-PARTY-NOTICES differs from install/THIRD-PARTY-NOTICES")
	}
	// The DEP-5 copyright is the generated template with the build's year.
	wantCopyright := strings.Replace(string(readFile(t, here(t, "debian/copyright.in"))), "@YEAR@", "2023", 1)
	if got := string(readFile(t, root+"/usr/share/doc/"+hookName+"/copyright")); got != wantCopyright {
		t.Errorf("packaged copyright differs from debian/copyright.in with the year filled in:\n%s", got)
	}
	wantContains(t, "dpkg-deb -I", info.stdout, "Maintainer: "+placeholderMaintainer+"\n")
	wantContains(t, "changelog", string(gunzip(t, root+"/usr/share/doc/"+hookName+"/changelog.Debian.gz")),
		"libvirt-nvram-hook (0.1.0~gita1b2c3d.dirty-1) unstable; urgency=medium", "git describe a1b2c3d-dirty")
	for script, call := range map[string]string{"preinst": "nvh_pkg_pre", "postinst": "nvh_pkg_post", "postrm": "rm -f /run/libvirt-nvram-hook.first-hook"} {
		p := filepath.Join(ctrl, script)
		wantMode(t, p, 0o755)
		body := string(readFile(t, p))
		wantContains(t, script, body, "#!/bin/sh", "set -e", call)
		if strings.Contains(body, "#HOOKLIB#") {
			t.Errorf("%s: #HOOKLIB# not replaced", script)
		}
		if strings.Contains(body, "/var/lib/libvirt/qemu/nvram/") || strings.Contains(body, "rm -rf") {
			t.Errorf("%s looks like it removes varstores", script)
		}
		if r := run(t, nil, needTool(t, "sh"), "-n", p); r.code != 0 {
			t.Errorf("sh -n %s: %s", script, r.stderr)
		}
	}

	// Same input, same bytes.
	if !bytes.Equal(readFile(t, deb), readFile(t, buildPackage(t, "debian/build-deb.sh", bin, env, name))) {
		t.Error("two builds of the same input differ")
	}
}

// placeholderMaintainer is what the packages name when MAINTAINER is unset.
const placeholderMaintainer = "PLACEHOLDER set MAINTAINER <maintainer-unset@libvirt-nvram-hook.invalid>"

// MAINTAINER (make deb rpm MAINTAINER=...) replaces the placeholder in every
// field that names the maintainer.
func TestMaintainerVariable(t *testing.T) {
	needPackageTools(t, "dpkg-deb")
	const who = "Jane Packager <jane@example.org>"
	env := []string{"VERSION=v1.0.0", "SOURCE_DATE_EPOCH=1700000000", "ARCH=amd64", "MAINTAINER=" + who}
	deb := buildPackage(t, "debian/build-deb.sh", fakeBinary(t, "m"), env, "libvirt-nvram-hook_1.0.0-1_amd64.deb")
	wantContains(t, "dpkg-deb -I", run(t, nil, "dpkg-deb", "-I", deb).stdout, "Maintainer: "+who+"\n")
	root := t.TempDir()
	run(t, nil, "dpkg-deb", "-x", deb, root)
	wantContains(t, "changelog", string(gunzip(t, root+"/usr/share/doc/"+hookName+"/changelog.Debian.gz")), " -- "+who+"  ")
	if _, err := exec.LookPath("rpmbuild"); err != nil {
		return
	}
	env[2] = "ARCH=x86_64"
	rpm := buildPackage(t, "rpm/build-rpm.sh", fakeBinary(t, "m"), env, "libvirt-nvram-hook-1.0.0-1.x86_64.rpm")
	q := run(t, nil, "rpm", "-qp", "--qf", "%{PACKAGER}|%{CHANGELOGNAME}\n", rpm)
	if want := who + "|" + who + " - 1.0.0-1\n"; q.stdout != want {
		t.Errorf("rpm Packager|changelog name = %q, want %q", q.stdout, want)
	}
}

// The .deb's Depends is satisfied by the libvirt that Debian 12, 13 and sid
// install, and by nothing without libvirt: apt's own resolver decides, on
// the dpkg status of this host and of internal/e2e's cached trixie and sid
// roots (NVRAM_HOOK_DEB_ROOTS, ':'-separated, overrides the list).
func TestDebDependsSatisfiable(t *testing.T) {
	needPackageTools(t, "dpkg-deb", "apt-get")
	deb := buildPackage(t, "debian/build-deb.sh", fakeBinary(t, "deps"),
		[]string{"VERSION=v1.0.0", "SOURCE_DATE_EPOCH=1700000000", "ARCH=amd64"}, "libvirt-nvram-hook_1.0.0-1_amd64.deb")
	simulate := func(status string) result {
		return run(t, nil, "apt-get", "-s", "-q",
			"-o", "Dir::State::status="+status,
			"-o", "Dir::State::Lists="+t.TempDir(), // no repositories: only what is installed counts
			"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
			"install", deb)
	}
	empty := filepath.Join(t.TempDir(), "status")
	writeFile(t, empty, nil, 0o644)
	if r := simulate(empty); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "Depends: libvirt-daemon (>= 6.5)") {
		t.Errorf("without libvirt the Depends must fail (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	roots := []string{"/", "/var/cache/libvirt-nvram-hook-e2e/trixie", "/var/cache/libvirt-nvram-hook-e2e/sid"}
	if v := os.Getenv("NVRAM_HOOK_DEB_ROOTS"); v != "" {
		roots = strings.Split(v, ":")
	}
	checked := 0
	for _, root := range roots {
		status := filepath.Join(root, "var/lib/dpkg/status")
		q := run(t, nil, "dpkg-query", "--admindir="+filepath.Dir(status), "-W", "-f=${Version}", "libvirt-daemon")
		if q.code != 0 || q.stdout == "" {
			t.Logf("%s: no libvirt-daemon installed there, not checked", root)
			continue
		}
		if r := simulate(status); r.code != 0 {
			t.Errorf("%s (libvirt-daemon %s): apt cannot install the .deb:\n%s%s", root, q.stdout, r.stdout, r.stderr)
		} else {
			t.Logf("%s: Depends satisfied by libvirt-daemon %s", root, q.stdout)
			checked++
		}
	}
	if checked == 0 {
		t.Skip("no dpkg root with libvirt-daemon installed here")
	}
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildRPM(t *testing.T) {
	needPackageTools(t, "rpmbuild", "rpm")
	bin := fakeBinary(t, "rpm")
	env := []string{"VERSION=v1.2.0-3-ga1b2c3d", "SOURCE_DATE_EPOCH=1700000000", "ARCH=x86_64"}
	pkg := buildPackage(t, "rpm/build-rpm.sh", bin, env, "libvirt-nvram-hook-1.2.0+git3.ga1b2c3d-1.x86_64.rpm")
	list := run(t, nil, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILENAMES} %{FILELINKTOS}\n]`, pkg)
	wantContains(t, "file list", list.stdout,
		"-rwxr-xr-x /usr/libexec/"+hookName+" \n",
		"lrwxrwxrwx "+entryPath+" /usr/libexec/"+hookName+"\n",
		"-rw-r--r-- "+confPath+" \n",
		"-rw-r--r-- /usr/share/man/man8/"+hookName+".8.gz \n")
	cfg := run(t, nil, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`, pkg)
	wantContains(t, "file flags", cfg.stdout, confPath+" cn\n") // %config(noreplace)
	scripts := run(t, nil, "rpm", "-qp", "--scripts", pkg)
	wantContains(t, "scripts", scripts.stdout, "nvh_pkg_pre", "nvh_pkg_post", "nvh_reload_libvirt")
	wantContains(t, "requires", run(t, nil, "rpm", "-qp", "--requires", pkg).stdout,
		"(libvirt-daemon >= 6.5 or libvirt-daemon-driver-qemu >= 6.5)")
}

// spdxOfNotices is the license expression install/notices wrote.
func spdxOfNotices(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^SPDX-License-Identifier of the binary: (.+)$`).FindStringSubmatch(string(readFile(t, here(t, "THIRD-PARTY-NOTICES"))))
	if m == nil {
		t.Fatal("THIRD-PARTY-NOTICES has no SPDX line")
	}
	return m[1]
}

// stubRPM builds a package with no files that provides what the hook's RPM
// requires on a real distribution (libvirt-daemon, /bin/sh), so that rpm's
// own dependency check can be run against a scratch database.
func stubRPM(t *testing.T, name, version string, provides ...string) string {
	t.Helper()
	dir := t.TempDir()
	spec := "Name: " + name + "\nVersion: " + version + "\nRelease: 1\nSummary: stub\nLicense: MIT\nBuildArch: noarch\n"
	for _, p := range provides {
		spec += "Provides: " + p + "\n"
	}
	spec += "%description\nstub for install_test.go\n%files\n"
	writeFile(t, dir+"/stub.spec", []byte(spec), 0o644)
	if r := run(t, nil, "rpmbuild", "-bb", "--quiet", "--define", "_topdir "+dir, dir+"/stub.spec"); r.code != 0 {
		t.Fatalf("rpmbuild stub %s: %s%s", name, r.stdout, r.stderr)
	}
	m, _ := filepath.Glob(dir + "/RPMS/noarch/" + name + "-*.rpm")
	if len(m) != 1 {
		t.Fatalf("stub %s: built %v", name, m)
	}
	return m[0]
}

// No RPM distribution is reachable here, so the .rpm is checked with rpm's
// own tools: its file list, flags, scriptlets, license and dependencies by
// query; the dependencies by rpm's resolver against scratch databases with
// stub providers (rpm -i --test); and, as root, a real install and erase in
// a scratch --root (without scriptlets: that root has no shell).
func TestRPMQueriesAndTestInstall(t *testing.T) {
	needPackageTools(t, "rpmbuild", "rpm")
	env := []string{"VERSION=v1.2.0", "SOURCE_DATE_EPOCH=1700000000", "ARCH=x86_64"}
	pkg := buildPackage(t, "rpm/build-rpm.sh", fakeBinary(t, "rpm"), env, "libvirt-nvram-hook-1.2.0-1.x86_64.rpm")

	// rpm -qlp: exactly these paths.
	wantFiles := []string{
		"/etc/libvirt/hooks/qemu.d",
		entryPath,
		confPath,
		"/usr/libexec/" + hookName,
		"/usr/share/doc/" + hookName,
		"/usr/share/doc/" + hookName + "/THIRD-PARTY-NOTICES",
		"/usr/share/licenses/" + hookName,
		"/usr/share/licenses/" + hookName + "/LICENSE",
		"/usr/share/man/man8/" + hookName + ".8.gz",
	}
	if got := strings.Fields(run(t, nil, "rpm", "-qlp", pkg).stdout); strings.Join(got, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("rpm -qlp:\n got %v\nwant %v", got, wantFiles)
	}
	// Nothing of libvirt's own: no varstore directory, no hooks/qemu.
	q := run(t, nil, "rpm", "-qp", "--qf", "%{LICENSE}|%{PACKAGER}|%{VERSION}-%{RELEASE}\n", pkg)
	if want := spdxOfNotices(t) + "|" + placeholderMaintainer + "|1.2.0-1\n"; q.stdout != want {
		t.Errorf("License|Packager|version = %q, want %q", q.stdout, want)
	}

	// rpm -qRp: the libvirt requirement (a rich dependency: libvirtd or the
	// modular virtqemud), /bin/sh for the scriptlets, nothing else but rpmlib.
	var reqs []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, nil, "rpm", "-qRp", pkg).stdout), "\n") {
		if !strings.HasPrefix(l, "rpmlib(") && !strings.HasPrefix(l, "config(") && l != "/bin/sh" {
			reqs = append(reqs, l)
		}
	}
	if want := "(libvirt-daemon >= 6.5 or libvirt-daemon-driver-qemu >= 6.5)"; strings.Join(reqs, "|") != want {
		t.Errorf("rpm -qRp requirements %q, want only %q (besides /bin/sh and rpmlib)", reqs, want)
	}

	// rpm --scripts: pre and post run the shared library's functions, postun
	// removes only the flag file; every rm in any scriptlet is that one.
	scripts := run(t, nil, "rpm", "-qp", "--scripts", pkg).stdout
	parts := regexp.MustCompile(`(?m)^(\w+) scriptlet \(using /bin/sh\):\n`).Split(scripts, -1)
	names := regexp.MustCompile(`(?m)^(\w+) scriptlet \(using /bin/sh\):$`).FindAllStringSubmatch(scripts, -1)
	if len(names) != 3 || len(parts) != 4 {
		t.Fatalf("want preinstall, postinstall and postuninstall scriptlets:\n%s", scripts)
	}
	calls := map[string]string{"preinstall": "\nnvh_pkg_pre\n", "postinstall": "\nnvh_pkg_post\n", "postuninstall": "rm -f /run/libvirt-nvram-hook.first-hook"}
	rmLine := regexp.MustCompile(`(?m)^.*\brm\b.*$`)
	for i, n := range names {
		body := parts[i+1]
		if !strings.Contains(body, calls[n[1]]) {
			t.Errorf("%s scriptlet lacks %q", n[1], calls[n[1]])
		}
		for _, l := range rmLine.FindAllString(body, -1) {
			if l = strings.TrimSpace(l); l != `rm -f "$NVH_FIRST_HOOK_FLAG"` && l != "rm -f /run/libvirt-nvram-hook.first-hook" {
				t.Errorf("%s scriptlet: unexpected rm: %q", n[1], l)
			}
		}
		if strings.Contains(body, "%") {
			t.Errorf("%s scriptlet has an unexpanded %% macro", n[1])
		}
		f := filepath.Join(t.TempDir(), n[1])
		writeFile(t, f, []byte(body), 0o644)
		if r := run(t, nil, needTool(t, "sh"), "-n", f); r.code != 0 {
			t.Errorf("sh -n %s scriptlet: %s", n[1], r.stderr)
		}
	}

	// rpm -i --test against scratch databases: what rpm's resolver says.
	sh := stubRPM(t, "bash", "5.2", "/bin/sh")
	for _, tc := range []struct {
		name    string
		stubs   []string
		wantErr string // "" = installable
	}{
		{"empty system", nil, "(libvirt-daemon >= 6.5 or libvirt-daemon-driver-qemu >= 6.5) is needed"},
		{"libvirt-daemon 9.0 (libvirtd)", []string{stubRPM(t, "libvirt-daemon", "9.0.0"), sh}, ""},
		{"libvirt-daemon-driver-qemu 11.3 only (virtqemud)", []string{stubRPM(t, "libvirt-daemon-driver-qemu", "11.3.0"), sh}, ""},
		{"libvirt-daemon 6.0 (no qemu.d/)", []string{stubRPM(t, "libvirt-daemon", "6.0.0"), sh}, "(libvirt-daemon >= 6.5 or libvirt-daemon-driver-qemu >= 6.5) is needed"},
		{"libvirt without /bin/sh", []string{stubRPM(t, "libvirt-daemon", "12.8.0")}, "/bin/sh is needed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := t.TempDir()
			if r := run(t, nil, "rpm", "--dbpath", db, "--initdb"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			if len(tc.stubs) > 0 {
				args := append([]string{"--dbpath", db, "-i", "--justdb", "--nodeps"}, tc.stubs...)
				if r := run(t, nil, "rpm", args...); r.code != 0 {
					t.Fatalf("rpm -i --justdb stubs: %s", r.stderr)
				}
			}
			r := run(t, nil, "rpm", "--dbpath", db, "-i", "--test", pkg)
			if tc.wantErr == "" && r.code != 0 {
				t.Errorf("rpm -i --test: exit %d\n%s", r.code, r.stderr)
			}
			if tc.wantErr != "" && (r.code == 0 || !strings.Contains(r.stderr, tc.wantErr)) {
				t.Errorf("rpm -i --test: exit %d, want failure with %q\n%s", r.code, tc.wantErr, r.stderr)
			}
		})
	}

	// As root: a real install and erase in a scratch root. rpm lays out the
	// files with their modes and the link, -V finds them intact; erase
	// removes them, keeps a modified config as .rpmsave and leaves a
	// varstore and a foreign hooks/qemu alone.
	if os.Geteuid() != 0 {
		t.Log("not root: the install into a scratch --root (rpm chroots) is not run")
		return
	}
	root := t.TempDir()
	rpmIn := func(args ...string) result {
		return run(t, nil, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...)
	}
	if r := rpmIn("--initdb"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	const foreign = "#!/bin/sh\nexit 0\n"
	writeFile(t, root+legacyPath, []byte(foreign), 0o755)
	varstore := root + nvramDir + "/vm1_VARS.fd"
	writeFile(t, varstore, bytes.Repeat([]byte{0x5A}, 8192), 0o600)
	keep := snapshot(t, root+"/var/lib/libvirt")
	if r := rpmIn("-i", "--nodeps", "--noscripts", pkg); r.code != 0 {
		t.Fatalf("rpm -i: %s", r.stderr)
	}
	wantMode(t, root+"/usr/libexec/"+hookName, 0o755)
	wantLink(t, root+entryPath, "/usr/libexec/"+hookName)
	wantMode(t, root+confPath, 0o644)
	if r := rpmIn("-V", "--nodeps", hookName); r.code != 0 || r.stdout != "" {
		t.Errorf("rpm -V after install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, root+confPath, append(readFile(t, root+confPath), "[log]\nlevel = debug\n"...), 0o644)
	if r := rpmIn("-e", "--nodeps", "--noscripts", hookName); r.code != 0 {
		t.Fatalf("rpm -e: %s", r.stderr)
	}
	for _, p := range wantFiles {
		if p != "/etc/libvirt/hooks/qemu.d" {
			wantAbsent(t, root+p)
		}
	}
	wantContains(t, "kept config", string(readFile(t, root+confPath+".rpmsave")), "level = debug")
	if got := readFile(t, root+legacyPath); string(got) != foreign {
		t.Errorf("foreign %s changed: %q", legacyPath, got)
	}
	sameTree(t, keep, snapshot(t, root+"/var/lib/libvirt"))
}

// libvirtlib.sh (demo.sh, the bench's virsh.sh): lvl_live finds a daemon by
// name, lvl_stop ends it and waits until it is gone, and leaves a process
// alone whose pid no longer names that daemon.
func TestLibvirtLibStop(t *testing.T) {
	needLinux(t)
	needTool(t, "bash")
	lib := here(t, "libvirtlib.sh")
	f := startFake(t, "libvirtd")
	live := run(t, nil, "bash", "-c", `. "$0"; lvl_live libvirtd virtqemud`, lib)
	if !regexp.MustCompile(`(?m)^` + f.pid() + `$`).MatchString(live.stdout) {
		t.Errorf("lvl_live libvirtd virtqemud = %q, want it to list %s", live.stdout, f.pid())
	}
	other := startFake(t, "not-libvirtd")
	run(t, nil, "bash", "-c", `. "$0"; lvl_stop "$1" libvirtd`, lib, other.pid())
	if ended, err := other.ended(100 * time.Millisecond); ended {
		t.Fatalf("lvl_stop ended a process that is not libvirtd: %v", err)
	}
	r := run(t, nil, "bash", "-c", `. "$0"; lvl_stop "$1" libvirtd; [ ! -e /proc/"$1" ] && echo gone`, lib, f.pid())
	if strings.TrimSpace(r.stdout) != "gone" {
		t.Errorf("after lvl_stop the daemon's /proc entry is still there: %q %q", r.stdout, r.stderr)
	}
	if ended, _ := f.ended(time.Second); !ended {
		t.Error("lvl_stop did not end the daemon")
	}
}

// libvirtlib.sh's lvl_guest_xml (the demo's and the bench's guest): the
// domain type, name, memory and loader given, an <nvram> only when one is
// given, and XML libvirt can read, whatever the values.
func TestLibvirtLibGuestXML(t *testing.T) {
	needLinux(t)
	needTool(t, "bash")
	lib := here(t, "libvirtlib.sh")
	for _, tt := range []struct {
		name, nvram string
		want        []string
	}{
		{"without nvram", "", []string{"<domain type='qemu'>", "<name>g 1</name>", "<memory unit='MiB'>128</memory>", "<loader readonly='yes' type='pflash'>/fw/C.fd</loader>\n  </os>"}},
		{"with nvram", "<nvram template='/fw/V.fd'>/nv/g_VARS.fd</nvram>", []string{"</loader>\n    <nvram template='/fw/V.fd'>/nv/g_VARS.fd</nvram>\n  </os>"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, nil, "bash", "-c", `. "$0"; lvl_guest_xml qemu "g 1" 128 /fw/C.fd "$1"`, lib, tt.nvram)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			wantContains(t, "lvl_guest_xml", r.stdout, tt.want...)
			if tt.nvram == "" && strings.Contains(r.stdout, "<nvram") {
				t.Errorf("an <nvram> though none was given:\n%s", r.stdout)
			}
			d := xml.NewDecoder(strings.NewReader(r.stdout))
			for {
				if _, err := d.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("not well-formed XML: %v\n%s", err, r.stdout)
				}
			}
		})
	}
}
