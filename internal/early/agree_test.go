package early

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/hookcall"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmlscan"
)

// corpusDir holds libvirt 11.3's own test domains, read in place.
const corpusDir = "../../../shared/testdata/libvirt-11.3-qemuxmlconfdata"

// TestAgreesWithPlan is the rule that makes the early exit safe: wherever
// nothingToDo answers, the whole program (domain.ParseChecked, then
// plan.Plan with a config that turns on every optional change) decides
// "nothing" or "exists" with nothing to log and nothing to change. The
// domains are libvirt's test suite and our samples, each also with its
// varstore paths moved to a temp dir where they exist, and hand-made
// variants of the unusual cases.
func TestAgreesWithPlan(t *testing.T) {
	root := t.TempDir()
	nv := filepath.Join(root, "nvram")
	os.Mkdir(nv, 0o755)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\nadd_template = true\n[templates]\ntranslate_loader = true\nnvram = /usr/share/OVMF/OVMF_CODE.fd:%s/T.fd\n[log]\ntarget = file:%s/log\n", nv, root, root)), 0o644)
	os.WriteFile(filepath.Join(nv, "exists_VARS.fd"), []byte("v"), 0o600)
	os.Symlink("exists_VARS.fd", filepath.Join(nv, "link_VARS.fd"))
	os.Mkdir(filepath.Join(nv, "dir_VARS.fd"), 0o755)

	var docs []string
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.xml"))
	if len(files) == 0 {
		t.Logf("libvirt corpus not found at %s; samples and variants only", corpusDir)
	}
	samples, _ := filepath.Glob("../../testdata/libvirt-9.0/*.xml")
	for _, f := range append(files, samples...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
		// The same domain with its varstore in nv, where it exists.
		moved := strings.NewReplacer("/var/lib/libvirt/qemu/nvram/", nv+"/", "/some/path/", nv+"/").Replace(string(b))
		if d, err := domain.Parse([]byte(moved)); err == nil && d.NVRAM != nil && strings.HasPrefix(d.NVRAM.Path, nv+"/") {
			os.WriteFile(d.NVRAM.Path, nil, 0o600)
		}
		docs = append(docs, moved)
	}
	osv := func(inner string) string {
		return "<domain type='kvm'><name>vm</name><os><type arch='x86_64' machine='q35'>hvm</type>" + inner + "</os></domain>"
	}
	ld := "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
	for _, inner := range []string{
		ld,
		ld + "<nvram>" + nv + "/exists_VARS.fd</nvram>",
		ld + "<nvram>  " + nv + "/exists_VARS.fd\n  </nvram>",
		ld + "<nvram template='/x'>" + nv + "/missing_VARS.fd</nvram>",
		ld + "<nvram>" + nv + "/link_VARS.fd</nvram>",
		ld + "<nvram>" + nv + "/dir_VARS.fd</nvram>",
		ld + "<nvram>" + nv + "/exists&#95;VARS.fd</nvram>",
		ld + "<nvram><![CDATA[" + nv + "/exists_VARS.fd]]></nvram>",
		ld + "<nvram>" + nv + "/exists_VARS.fd<!-- c --></nvram>",
		ld + "<nvram></nvram>",
		ld + "<nvram/>",
		ld + "<nvram type='file'><source file='" + nv + "/exists_VARS.fd'/></nvram>",
		ld + "<nvram type='file'>\n <source file='" + nv + "/missing_VARS.fd'/>\n</nvram>",
		ld + "<nvram type='file'><source file=''/></nvram>",
		ld + "<nvram type='file'><sourcex file='" + nv + "/exists_VARS.fd'/></nvram>",
		ld + "<nvram type='block'><source dev='/dev/sdz'/></nvram>",
		ld + "<nvram type='network'><source protocol='iscsi' name='x'/></nvram>",
		ld + "<nvram x:type='block' xmlns:x='urn:x'>" + nv + "/exists_VARS.fd</nvram>",
		ld + "<nvram>" + nv + "/exists_VARS.fd</nvram><nvram>/b</nvram>",
		ld + "<x:nvram xmlns:x='urn:x'>/b</x:nvram>",
		ld + ld,
		"<type>hvm</type>" + ld,
		"<loader type='pflash'>/c</loader><nvram>/missing</nvram>",
		"<loader readonly='yes' type='rom'>/c</loader>",
		"<loader readonly='yes'>/c</loader>",
		"<loader readonly='yes' type='pflash' stateless='yes'>/c</loader>",
		"<loader readonly='yes' type='pflash'>  </loader><nvram>/missing</nvram>",
		"<loader readonly='yes' type='pflash'/>",
		"<loader readonly='yes' type='p&#102;lash'>/c</loader><nvram>/missing</nvram>",
		"<loader readonly='yes' x:type='rom' type='pflash' xmlns:x='urn:x'>/c</loader><nvram>/missing</nvram>",
		"<loader readonly='yes' type='pflash'>/c<!-- x --></loader>",
		"<loader readonly='yes' type='pflash'><![CDATA[/c]]></loader>",
		"<loader readonly='yes' type='pflash'><x/>/c</loader>",
		"<loader readonly='yes' type='pflash'>/c</loader><?pi x?>",
		"<!-- <loader/> --><boot dev='hd'/>",
		"",
	} {
		docs = append(docs, osv(inner))
	}
	docs = append(docs, "<domain><name>vm</name><os firmware='efi'/></domain>", "<domain/>")

	answered, exists := 0, 0
	for _, doc := range docs {
		a, e := agree(t, []byte(doc), conf)
		answered += a
		exists += e
	}
	t.Logf("%d documents, %d answers by early, %d of them an existing varstore", len(docs), answered, exists)
	if exists < 5 || answered < 20 {
		t.Errorf("only %d answers (%d existing varstores): the test no longer exercises early", answered, exists)
	}
}

// agree checks one document in both work modes; it returns how many times
// early answered, and how many of those were an existing varstore.
func agree(t *testing.T, data []byte, conf string) (answered, exists int) {
	t.Helper()
	l, err := xmlscan.Check(data)
	if err != nil {
		return 0, 0 // the full path reports it; early never answers
	}
	for _, phase := range []hookcall.Phase{hookcall.Provision, hookcall.Filter} {
		if !nothingToDo(phase, data, l) {
			continue
		}
		answered++
		d, err := domain.ParseChecked(data, l)
		if err != nil {
			t.Errorf("early answers %v, the parser fails: %v\n%s", phase, err, data)
			continue
		}
		mode := plan.Prepare
		if phase == hookcall.Filter {
			mode = plan.Filter
		}
		pl, err := plan.NewHost(config.Base(conf, ""), true, nil).Plan(d, mode)
		switch {
		case err != nil:
			t.Errorf("early answers %v, the planner fails: %v\n%s", phase, err, data)
		case len(pl.Effects) != 0:
			t.Errorf("early answers %v, the planner plans %v\n%s", phase, pl.Effects, data)
		case pl.Exists:
			exists++
		}
	}
	return answered, exists
}

// FuzzEarlyAgrees is TestAgreesWithPlan on any document: wherever early
// answers, the whole program decides the same, without an error.
func FuzzEarlyAgrees(f *testing.F) {
	root := f.TempDir()
	nv := filepath.Join(root, "nvram")
	os.Mkdir(nv, 0o755)
	conf := filepath.Join(root, "hook.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[nvram]\ndir = %s\nadd_template = true\n[templates]\ntranslate_loader = true\n[log]\ntarget = file:%s/log\n", nv, root)), 0o644)
	os.WriteFile(filepath.Join(nv, "e"), []byte("v"), 0o600)
	os.Symlink("e", filepath.Join(nv, "l"))
	files, _ := filepath.Glob("../../testdata/libvirt-9.0/*.xml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(bytes.ReplaceAll(b, []byte("/var/lib/libvirt/qemu/nvram/uefi-custom_VARS.fd"), []byte(nv+"/e")))
		}
	}
	f.Add([]byte("<domain><os><loader readonly='yes' type='pflash'>/c</loader><nvram>" + nv + "/e</nvram></os></domain>"))
	f.Add([]byte("<domain><os><loader readonly='yes' type='pflash'>/c</loader><nvram type='file'><source file='" + nv + "/l'/></nvram></os></domain>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		agree(t, data, conf)
	})
}
