// Package benchdata generates the inputs of the benchmarks, so that nothing
// large is committed and both the Go benchmarks and internal/bench/run.sh
// measure exactly the same documents and templates.
package benchdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// LargeDisks is the number of <disk> elements in the large migrate
// document: about 1 MiB of libvirt XML.
const LargeDisks = 2000

// AAVMFSize is the size of Debian's AAVMF_VARS.fd: 64 MiB, all zeros,
// fully allocated by dpkg.
const AAVMFSize = 64 << 20

// OVMF4MSize is the size of OVMF_VARS_4M.fd.
const OVMF4MSize = 540672

// RemoveNVRAM returns doc without its <nvram> element (the whole line), so
// that a migrate or restore filter really has to add one.
func RemoveNVRAM(doc []byte) ([]byte, error) {
	i := bytes.Index(doc, []byte("<nvram"))
	if i < 0 {
		return nil, errors.New("benchdata: no <nvram> in the document")
	}
	rest := doc[i:]
	end := bytes.Index(rest, []byte("</nvram>"))
	if end >= 0 {
		end += len("</nvram>")
	} else if end = bytes.Index(rest, []byte("/>")); end >= 0 {
		end += len("/>")
	} else {
		return nil, errors.New("benchdata: unterminated <nvram>")
	}
	start := bytes.LastIndexByte(doc[:i], '\n') + 1
	stop := i + end
	if stop < len(doc) && doc[stop] == '\n' {
		stop++
	}
	out := append([]byte(nil), doc[:start]...)
	return append(out, doc[stop:]...), nil
}

// AddDisks inserts n file-backed virtio <disk> elements, about 520 bytes
// each, like libvirt formats them for a running guest, before </devices>.
func AddDisks(doc []byte, n int) ([]byte, error) {
	i := bytes.LastIndex(doc, []byte("</devices>"))
	if i < 0 {
		return nil, errors.New("benchdata: no </devices> in the document")
	}
	i = bytes.LastIndexByte(doc[:i], '\n') + 1
	var b bytes.Buffer
	b.Grow(len(doc) + n*560)
	b.Write(doc[:i])
	for k := 0; k < n; k++ {
		fmt.Fprintf(&b, `    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='native' discard='unmap' detect_zeroes='unmap'/>
      <source file='/var/lib/libvirt/images/pool-%02d/guest-data-%05d.qcow2' index='%d'/>
      <backingStore/>
      <target dev='%s' bus='virtio'/>
      <blockio logical_block_size='512' physical_block_size='4096'/>
      <serial>BENCH-%08X-%05d</serial>
      <alias name='virtio-disk%d'/>
      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x%02x' function='0x%x'/>
    </disk>
`, k%50, k, k+1, devName(k+1), uint32(k)*2654435761, k, k+1, 0x10+k/256, (k/8)%32, k%8)
	}
	b.Write(doc[i:])
	return b.Bytes(), nil
}

// devName is libvirt's disk naming: vda..vdz, vdaa, ...
func devName(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return "vd" + s
}

// LargeDomain is the migrate filter's worst case: base (a domain XML with
// <nvram>) without <nvram>, plus LargeDisks disks.
func LargeDomain(base []byte) ([]byte, error) {
	doc, err := RemoveNVRAM(base)
	if err != nil {
		return nil, err
	}
	return AddDisks(doc, LargeDisks)
}

// WriteZeroTemplate writes size zero bytes to path with write(2), so that
// every block is allocated, as dpkg leaves AAVMF_VARS.fd: the copier has
// to read it all and find the zeros itself.
func WriteZeroTemplate(path string, size int64) error {
	return writeFile(path, size, func(buf []byte, off int64) {})
}

// WriteSparseTemplate makes an all-zero file of size that is one hole.
func WriteSparseTemplate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteOVMFTemplate writes an OVMF_VARS_4M-like template of size bytes:
// a firmware volume header, about 24 KiB of variable data (enrolled keys),
// erased flash (0xFF) elsewhere and a fault-tolerant-write header in the
// second half. No 4 KiB block is all zeros, so nothing can be skipped.
func WriteOVMFTemplate(path string, size int64) error {
	const data = 24 << 10
	return writeFile(path, size, func(buf []byte, off int64) {
		x := uint32(2463534242)
		for i := range buf {
			p := off + int64(i)
			switch {
			case p < 16:
				buf[i] = 0
			case p < 96:
				buf[i] = byte(p*37 + 11)
			case p < 96+data:
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				buf[i] = byte(x)
			case p >= size/2 && p < size/2+32:
				buf[i] = byte(p * 13)
			default:
				buf[i] = 0xff
			}
		}
	})
}

func writeFile(path string, size int64, fill func(buf []byte, off int64)) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		clear(buf)
		fill(buf[:n], off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Copy is a helper for tests that need a file somewhere else.
func Copy(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WriteDescriptors writes six QEMU firmware descriptors shaped like Debian
// 12's /usr/share/qemu/firmware into dir, naming firmware files below
// prefix (/usr/share on Debian), so that a catalog load reads as much JSON
// as on a real host without the packages being installed.
func WriteDescriptors(dir, prefix string) error {
	type fw struct{ name, arch, code, vars, machines, features string }
	for _, f := range []fw{
		{"40-edk2-aarch64-secure-enrolled", "aarch64", prefix + "/AAVMF/AAVMF_CODE.ms.fd", prefix + "/AAVMF/AAVMF_VARS.ms.fd", `"virt-*"`, `"enrolled-keys", "secure-boot", "verbose-static"`},
		{"40-edk2-x86_64-secure-enrolled", "x86_64", prefix + "/OVMF/OVMF_CODE_4M.ms.fd", prefix + "/OVMF/OVMF_VARS_4M.ms.fd", `"pc-q35-*"`, `"acpi-s3", "amd-sev", "enrolled-keys", "requires-smm", "secure-boot", "verbose-dynamic"`},
		{"50-edk2-aarch64-secure", "aarch64", prefix + "/AAVMF/AAVMF_CODE.secboot.fd", prefix + "/AAVMF/AAVMF_VARS.fd", `"virt-*"`, `"secure-boot", "verbose-static"`},
		{"50-edk2-x86_64-secure", "x86_64", prefix + "/OVMF/OVMF_CODE_4M.secboot.fd", prefix + "/OVMF/OVMF_VARS_4M.fd", `"pc-q35-*"`, `"acpi-s3", "amd-sev", "requires-smm", "secure-boot", "verbose-dynamic"`},
		{"60-edk2-aarch64", "aarch64", prefix + "/AAVMF/AAVMF_CODE.fd", prefix + "/AAVMF/AAVMF_VARS.fd", `"virt-*"`, `"verbose-static"`},
		{"60-edk2-x86_64", "x86_64", prefix + "/OVMF/OVMF_CODE_4M.fd", prefix + "/OVMF/OVMF_VARS_4M.fd", `"pc-i440fx-*", "pc-q35-*"`, `"acpi-s3", "amd-sev", "verbose-dynamic"`},
	} {
		j := fmt.Sprintf(`{
    "description": "UEFI firmware for %s (benchmark copy of %s)",
    "interface-types": [
        "uefi"
    ],
    "mapping": {
        "device": "flash",
        "executable": {
            "filename": %q,
            "format": "raw"
        },
        "nvram-template": {
            "filename": %q,
            "format": "raw"
        }
    },
    "targets": [
        {
            "architecture": %q,
            "machines": [
                %s
            ]
        }
    ],
    "features": [
        %s
    ],
    "tags": [

    ]
}
`, f.arch, f.name, f.code, f.vars, f.arch, f.machines, f.features)
		if err := os.WriteFile(filepath.Join(dir, f.name+".json"), []byte(j), 0o644); err != nil {
			return err
		}
	}
	return nil
}
