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

// TestConvertReadsTheCheckedFile: qemu-img is handed the template that was
// opened and checked, as a descriptor. A stand-in for qemu-img replaces the
// template's name with another file before running the real one: the
// varstore still holds the checked template's bytes.
func TestConvertReadsTheCheckedFile(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (Debian: qemu-utils; make e2e installs it): format conversion not tested")
	}
	fw, nv := t.TempDir(), t.TempDir()
	checked := randomBytes(t, 65536)
	tmpl := writeTemplate(t, fw, checked)
	other := filepath.Join(fw, "OTHER.fd")
	os.WriteFile(other, randomBytes(t, 65536), 0o644)
	swap := filepath.Join(fw, "qemu-img")
	os.WriteFile(swap, []byte("#!/bin/sh\nmv -f "+other+" "+tmpl+" && exec "+qemuImg+` "$@"`+"\n"), 0o755)
	if _, err := Create(nv, "vm_VARS.qcow2", tmpl, Options{UID: -1, GID: -1, Format: "qcow2", QemuImg: func() string { return swap }}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatal("the stand-in did not swap the template")
	}
	back := filepath.Join(nv, "back.raw")
	if out, err := exec.Command(qemuImg, "convert", "-f", "qcow2", "-O", "raw", filepath.Join(nv, "vm_VARS.qcow2"), back).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, checked) {
		t.Error("qemu-img read the file now at the template's name, not the one that was checked")
	}
}
