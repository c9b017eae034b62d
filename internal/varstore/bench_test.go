package varstore

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/bench/benchdata"
)

// Benchmarks of the writer. Create includes both fsyncs, so its figures
// depend on the disk under the temp dir; copyContent is the CPU part alone
// (reading the template, finding the zeros, writing the rest).

func benchTemplate(b *testing.B, write func(string, int64) error, size int64) (dir, template string) {
	b.Helper()
	dir = b.TempDir()
	template = filepath.Join(dir, "template.fd")
	if err := write(template, size); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "nvram")
	if err := os.Mkdir(out, 0o755); err != nil {
		b.Fatal(err)
	}
	return out, template
}

func benchCreate(b *testing.B, write func(string, int64) error, size int64) {
	dir, template := benchTemplate(b, write, size)
	b.ReportAllocs()
	b.SetBytes(size)
	var alloc int64
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("vm%d_VARS.fd", i)
		i++
		res, err := Create(dir, name, template, Options{UID: -1, GID: -1, Format: "raw"})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Created || res.Size != size {
			b.Fatalf("created %v, %d bytes", res.Created, res.Size)
		}
		b.StopTimer()
		alloc = allocated(b, filepath.Join(dir, name))
		os.Remove(filepath.Join(dir, name))
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc), "alloc-bytes")
}

func allocated(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// BenchmarkCreateAAVMF copies a 64 MiB all-zero template whose blocks are
// all allocated, as Debian's AAVMF_VARS.fd: read everything, write nothing.
func BenchmarkCreateAAVMF(b *testing.B) {
	benchCreate(b, benchdata.WriteZeroTemplate, benchdata.AAVMFSize)
}

// BenchmarkCreateSparseTemplate copies a 64 MiB template that is one hole.
func BenchmarkCreateSparseTemplate(b *testing.B) {
	benchCreate(b, benchdata.WriteSparseTemplate, benchdata.AAVMFSize)
}

// BenchmarkCreateOVMF copies an OVMF_VARS_4M-like template: 540672 bytes
// with no all-zero block, so everything is written.
func BenchmarkCreateOVMF(b *testing.B) {
	benchCreate(b, benchdata.WriteOVMFTemplate, benchdata.OVMF4MSize)
}

func benchCopy(b *testing.B, write func(string, int64) error, size int64) {
	dir, template := benchTemplate(b, write, size)
	src, err := os.Open(template)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		dst, err := os.Create(filepath.Join(dir, "copy.fd"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := copyContent(dst, src, size); err != nil {
			b.Fatal(err)
		}
		dst.Close()
	}
}

// BenchmarkCopyAAVMF is the AAVMF copy without fsync, rename or cleanup.
func BenchmarkCopyAAVMF(b *testing.B) { benchCopy(b, benchdata.WriteZeroTemplate, benchdata.AAVMFSize) }

// BenchmarkCopyOVMF is the OVMF copy without fsync, rename or cleanup.
func BenchmarkCopyOVMF(b *testing.B) { benchCopy(b, benchdata.WriteOVMFTemplate, benchdata.OVMF4MSize) }
