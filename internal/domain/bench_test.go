package domain

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/bench/benchdata"
)

// Benchmarks of the XML work the hook does per call. The large document is
// the migrate filter's worst case (internal/bench/run.sh times the whole
// process on the same document): libvirt's own migrate XML without
// <nvram>, plus 2,000 disks, about 1 MiB.

func benchXML(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "libvirt-9.0", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func largeXML(b *testing.B) []byte {
	b.Helper()
	data, err := benchdata.LargeDomain(benchXML(b, "uefi-custom--migrate.xml"))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchParse(b *testing.B, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Read(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse is prepare's XML work on libvirt's real 2.4 KB document.
func BenchmarkParse(b *testing.B) { benchParse(b, benchXML(b, "uefi-custom--prepare.xml")) }

// BenchmarkParseLarge parses the 1 MiB document.
func BenchmarkParseLarge(b *testing.B) { benchParse(b, largeXML(b)) }

// BenchmarkFilterLarge is the whole XML part of a migrate filter on the
// 1 MiB document: read, parse, add <nvram>, write the document out.
func BenchmarkFilterLarge(b *testing.B) {
	data := largeXML(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var n int64
	for b.Loop() {
		d, err := Read(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.AddNVRAM("/var/lib/libvirt/qemu/nvram/uefi-custom_VARS.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"); err != nil {
			b.Fatal(err)
		}
		if n, err = d.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	if n < int64(len(data)) {
		b.Fatalf("wrote %d bytes of a %d-byte document", n, len(data))
	}
}
