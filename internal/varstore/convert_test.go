package varstore

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestConvertFormats: a raw template for a qcow2 varstore (and back) goes
// through qemu-img into our own temp file and is committed like a copy;
// the result holds the same guest-visible bytes.
func TestConvertFormats(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (Debian: qemu-utils; make e2e installs it): format conversion not tested")
	}
	fw, nv := t.TempDir(), t.TempDir()
	raw := randomBytes(t, 540672)
	rawTmpl := writeTemplate(t, fw, raw)
	res, err := Create(nv, "vm_VARS.qcow2", rawTmpl, Options{UID: -1, GID: -1, Format: "qcow2", QemuImg: func() string { return qemuImg }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Method != "qemu-img convert" {
		t.Errorf("result %+v", res)
	}
	q := filepath.Join(nv, "vm_VARS.qcow2")
	head := make([]byte, 4)
	f, _ := os.Open(q)
	f.Read(head)
	f.Close()
	if !bytes.Equal(head, qcow2Magic) {
		t.Fatalf("not qcow2: % x", head)
	}
	fi, _ := os.Stat(q)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	// Back to raw: the bytes the guest sees are the template's.
	res, err = Create(nv, "back_VARS.fd", q, Options{UID: -1, GID: -1, Format: "raw", TemplateFormat: "qcow2", QemuImg: func() string { return qemuImg }})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(nv, "back_VARS.fd"))
	if !bytes.Equal(got, raw) {
		t.Error("raw -> qcow2 -> raw changed the content")
	}
	noTempLeft(t, nv)

	// A declared templateFormat that the content contradicts is refused.
	_, err = Create(nv, "lie_VARS.fd", rawTmpl, Options{UID: -1, GID: -1, Format: "qcow2", TemplateFormat: "qcow2", QemuImg: func() string { return qemuImg }})
	if !errors.Is(err, ErrFormat) {
		t.Errorf("err = %v, want ErrFormat", err)
	}
	// A failing qemu-img leaves nothing behind.
	_, err = Create(nv, "fail_VARS.qcow2", rawTmpl, Options{UID: -1, GID: -1, Format: "qcow2", QemuImg: func() string { return "/bin/false" }})
	if err == nil {
		t.Error("a failing converter succeeded")
	}
	if _, err := os.Lstat(filepath.Join(nv, "fail_VARS.qcow2")); !os.IsNotExist(err) {
		t.Error("a varstore was committed after a failed conversion")
	}
	noTempLeft(t, nv)
}
