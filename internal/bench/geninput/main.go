// Command geninput writes every input of internal/bench/run.sh into one
// directory, so that nothing large is committed and the bench runs on a
// fresh machine:
//
//	xml/        the domain XML each case gets on stdin
//	tmpl/       AAVMF_VARS.fd (64 MiB of allocated zeros, like Debian's),
//	            SPARSE_VARS.fd (64 MiB, one hole), OVMF_VARS_4M.fd (540672
//	            bytes of varstore-like data)
//	nvram/      the varstore directory; exists_VARS.fd and
//	            uefi-custom_VARS.fd exist (prepare of an existing varstore;
//	            filters that only rewrite the XML)
//	fw/         the loaders the XML names (small stand-ins: they exist, as
//	            on a real host, so lookups that resolve symlinks do work)
//	firmware/   six Debian-like QEMU firmware descriptors
//	qemu.conf   an empty-ish qemu.conf
//	hook.conf   the hook's config for the cases that create or filter
//
// Usage: geninput -src testdata/libvirt-9.0 -dir DIR
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/bench/benchdata"
)

const (
	xmlLoader = "/srv/fw/CUSTOM_CODE.fd"
	xmlNVRAM  = "/var/lib/libvirt/qemu/nvram/uefi-custom_VARS.fd"
)

func main() {
	src := flag.String("src", "testdata/libvirt-9.0", "libvirt's real hook XML")
	dir := flag.String("dir", "", "output directory (must exist)")
	flag.Parse()
	if *dir == "" || !filepath.IsAbs(*dir) {
		fmt.Fprintln(os.Stderr, "geninput: -dir must be an absolute path")
		os.Exit(2)
	}
	if err := generate(*src, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "geninput:", err)
		os.Exit(1)
	}
}

func generate(src, dir string) error {
	for _, d := range []string{"xml", "tmpl", "nvram", "fw", "firmware"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(src, name)) }
	x := func(name string) string { return filepath.Join(dir, "xml", name) }
	nv := func(name string) string { return filepath.Join(dir, "nvram", name) }
	tm := func(name string) string { return filepath.Join(dir, "tmpl", name) }

	// Phases with no work get libvirt's own XML for them, unchanged.
	for _, c := range [][2]string{
		{"start.xml", "uefi-custom--start.xml"},
		{"started.xml", "uefi-custom--started.xml"},
		{"reconnect.xml", "uefi-custom--started.xml"}, // the live XML, as for started
		{"stopped.xml", "uefi-custom--stopped.xml"},
		{"release.xml", "uefi-custom--release.xml"},
		{"prepare-bios.xml", "bios--prepare.xml"},
	} {
		data, err := read(c[1])
		if err != nil {
			return err
		}
		if err := os.WriteFile(x(c[0]), data, 0o644); err != nil {
			return err
		}
	}

	prep, err := read("uefi-custom--prepare.xml")
	if err != nil {
		return err
	}
	if !bytes.Contains(prep, []byte(xmlLoader)) || !bytes.Contains(prep, []byte(xmlNVRAM)) {
		return fmt.Errorf("uefi-custom--prepare.xml no longer names %s and %s", xmlLoader, xmlNVRAM)
	}
	withPaths := func(doc []byte, loader, nvram string) []byte {
		s := strings.Replace(string(doc), xmlLoader, loader, 1)
		return []byte(strings.Replace(s, xmlNVRAM, nvram, 1))
	}
	// prepare with the varstore present: the hook's default behaviour, no
	// config. Creating ones: one loader per template, mapped in hook.conf.
	files := map[string][]byte{
		x("prepare-exists.xml"): withPaths(prep, xmlLoader, nv("exists_VARS.fd")),
		x("create-aavmf.xml"):   withPaths(prep, "/srv/fw/AAVMF_CODE.fd", nv("c-aavmf_VARS.fd")),
		x("create-sparse.xml"):  withPaths(prep, "/srv/fw/SPARSE_CODE.fd", nv("c-sparse_VARS.fd")),
		x("create-ovmf.xml"):    withPaths(prep, "/srv/fw/OVMF_CODE_4M.fd", nv("c-ovmf_VARS.fd")),
	}
	for _, f := range []struct{ out, in string }{{"migrate", "uefi-custom--migrate.xml"}, {"restore", "uefi-custom--restore.xml"}} {
		base, err := read(f.in)
		if err != nil {
			return err
		}
		small, err := benchdata.RemoveNVRAM(base)
		if err != nil {
			return err
		}
		large, err := benchdata.LargeDomain(base)
		if err != nil {
			return err
		}
		files[x(f.out+"-small.xml")] = small
		files[x(f.out+"-1m.xml")] = large
	}
	// Every loader lives in DIR/fw and exists.
	fw := []byte(filepath.Join(dir, "fw") + "/")
	for name, data := range files {
		if err := os.WriteFile(name, bytes.ReplaceAll(data, []byte("/srv/fw/"), fw), 0o644); err != nil {
			return err
		}
	}
	for _, code := range []string{"CUSTOM_CODE.fd", "AAVMF_CODE.fd", "SPARSE_CODE.fd", "OVMF_CODE_4M.fd"} {
		if err := os.WriteFile(filepath.Join(dir, "fw", code), []byte("code\n"), 0o644); err != nil {
			return err
		}
	}

	if err := benchdata.WriteZeroTemplate(tm("AAVMF_VARS.fd"), benchdata.AAVMFSize); err != nil {
		return err
	}
	if err := benchdata.WriteSparseTemplate(tm("SPARSE_VARS.fd"), benchdata.AAVMFSize); err != nil {
		return err
	}
	if err := benchdata.WriteOVMFTemplate(tm("OVMF_VARS_4M.fd"), benchdata.OVMF4MSize); err != nil {
		return err
	}
	for _, name := range []string{"exists_VARS.fd", "uefi-custom_VARS.fd"} {
		if err := benchdata.Copy(nv(name), tm("OVMF_VARS_4M.fd")); err != nil {
			return err
		}
	}
	if err := benchdata.WriteDescriptors(filepath.Join(dir, "firmware"), "/usr/share"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "qemu.conf"), []byte("# generated by internal/bench/geninput\n#user = \"root\"\n#nvram = []\n"), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# generated by internal/bench/geninput
[nvram]
dir = %[1]s/nvram
allowed_dirs = %[1]s/nvram

[templates]
nvram = %[1]s/fw/CUSTOM_CODE.fd:%[1]s/tmpl/OVMF_VARS_4M.fd
nvram = %[1]s/fw/AAVMF_CODE.fd:%[1]s/tmpl/AAVMF_VARS.fd
nvram = %[1]s/fw/SPARSE_CODE.fd:%[1]s/tmpl/SPARSE_VARS.fd
nvram = %[1]s/fw/OVMF_CODE_4M.fd:%[1]s/tmpl/OVMF_VARS_4M.fd
descriptor_dirs = %[1]s/firmware
qemu_conf = %[1]s/qemu.conf

[log]
target = file:%[1]s/hook.log
level = info
`, dir)
	return os.WriteFile(filepath.Join(dir, "hook.conf"), []byte(conf), 0o644)
}
