package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
)

// corpusDir holds libvirt 11.3's own test domains (tests/qemuxmlconfdata),
// shared beside the repository; it is read in place, never copied.
const corpusDir = "../../../shared/testdata/libvirt-11.3-qemuxmlconfdata"

var blockdevRe = regexp.MustCompile(`-blockdev '(\{[^']*\})'`)

// libvirtVarstore returns what libvirt's QEMU command line uses as the
// varstore: the blockdev with node-name libvirt-pflash1-storage. kind is
// "file" (path set), "network" (nbd, iscsi, ...) or "" (no varstore).
func libvirtVarstore(t *testing.T, args []byte) (kind, path string) {
	t.Helper()
	joined := strings.ReplaceAll(string(args), "\\\n", "")
	for _, m := range blockdevRe.FindAllStringSubmatch(joined, -1) {
		var bd map[string]any
		if err := json.Unmarshal([]byte(m[1]), &bd); err != nil {
			t.Fatalf("blockdev JSON %s: %v", m[1], err)
		}
		if bd["node-name"] != "libvirt-pflash1-storage" {
			continue
		}
		if bd["driver"] == "file" {
			return "file", bd["filename"].(string)
		}
		return "network", ""
	}
	return "", ""
}

// TestLibvirtCorpus feeds every domain of libvirt's own test suite through
// the hook: reading and the migrate filter never fail and never change a
// domain libvirt already completed; and wherever libvirt generated a QEMU
// command line, the varstore path the hook would create is exactly the one
// QEMU is given (none where libvirt uses none, nothing for network ones).
func TestLibvirtCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.xml"))
	if len(files) == 0 && os.Getenv("CI") == "true" {
		t.Fatalf("libvirt corpus not found at %s (CI=true: it must be there)", corpusDir)
	}
	if len(files) == 0 {
		t.Skipf("libvirt corpus not found at %s", corpusDir)
	}
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed") // nothing in the corpus lies here: no file is ever created
	os.Mkdir(allowed, 0o755)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\n[templates]\ndescriptors = false\nqemu_conf =\n[log]\ntarget = file:%s/log\n", allowed, root)), 0o644)

	host := plan.NewHost(config.Base(conf, ""), true, nil)
	var read, withArgs, fileVarstores, networkVarstores, none int
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		d, err := domain.Parse(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		read++
		var out, errb bytes.Buffer
		code := Run(Env{Args: []string{"qemu", d.Name, "migrate", "begin", "-"}, Stdin: bytes.NewReader(in), Stdout: &out, Stderr: &errb,
			ConfigPath: conf, ConfigRequired: true, DevLog: "/nonexistent", Euid: 1000})
		if code != 0 || out.Len() != 0 {
			t.Errorf("%s: migrate filter exit %d, %d bytes of XML out, stderr %q", name, code, out.Len(), errb.String())
		}

		args, err := os.ReadFile(strings.TrimSuffix(f, ".xml") + ".args")
		if err != nil {
			continue
		}
		withArgs++
		pl, err := host.Plan(d, plan.Prepare)
		if err != nil {
			t.Errorf("%s: prepare plan: %v", name, err)
			continue
		}
		hookPath := pl.Path
		kind, libvirtPath := libvirtVarstore(t, args)
		switch kind {
		case "file":
			fileVarstores++
		case "network":
			networkVarstores++
		default:
			none++
		}
		if hookPath != libvirtPath {
			t.Errorf("%s: hook's varstore %q, libvirt's %s varstore %q", name, hookPath, firstNonEmpty(kind, "(no)"), libvirtPath)
		}
	}
	t.Logf("%d domains read and filtered; %d with a QEMU command line: %d file varstores, %d network varstores, %d without varstore",
		read, withArgs, fileVarstores, networkVarstores, none)
	if fileVarstores == 0 || networkVarstores == 0 {
		t.Error("the corpus lost its varstore cases")
	}
}
