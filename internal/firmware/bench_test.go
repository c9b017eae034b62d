package firmware

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/bench/benchdata"
)

// Benchmarks of the template lookup a missing varstore costs: the catalog
// load (six Debian-like descriptors, a qemu.conf, the built-in table) and
// Find, literal and through a symlink.

// benchFirmware lays out a Debian-like firmware tree under a temp dir:
// descriptors, the CODE and VARS files they name, the .ms.fd symlink, and
// a qemu.conf with one nvram pair.
func benchFirmware(b *testing.B) Sources {
	b.Helper()
	root := b.TempDir()
	share := filepath.Join(root, "share")
	desc := filepath.Join(share, "qemu", "firmware")
	for _, d := range []string{desc, filepath.Join(share, "OVMF"), filepath.Join(share, "AAVMF")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := benchdata.WriteDescriptors(desc, share); err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"OVMF/OVMF_CODE_4M.fd", "OVMF/OVMF_CODE_4M.secboot.fd", "OVMF/OVMF_VARS_4M.fd", "OVMF/OVMF_VARS_4M.ms.fd"} {
		if err := os.WriteFile(filepath.Join(share, f), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Symlink("OVMF_CODE_4M.secboot.fd", filepath.Join(share, "OVMF", "OVMF_CODE_4M.ms.fd")); err != nil {
		b.Fatal(err)
	}
	qc := filepath.Join(root, "qemu.conf")
	if err := os.WriteFile(qc, []byte("user = \"root\"\nnvram = [\n  \"/srv/fw/OLD_CODE.fd:/srv/fw/OLD_VARS.fd\"\n]\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return Sources{
		ConfigPath:     filepath.Join(root, "nvram-hook.conf (absent)"),
		DescriptorDirs: []string{filepath.Join(root, "etc-firmware"), desc},
		QemuConf:       qc,
		Table:          Table,
	}
}

func query(loader string) Query {
	return Query{Loader: loader, Arch: "x86_64", Machine: "pc-q35-7.2"}
}

// BenchmarkLoadFind is what the hook does once per missing varstore.
func BenchmarkLoadFind(b *testing.B) {
	s := benchFirmware(b)
	loader := filepath.Join(s.DescriptorDirs[1], "..", "..", "OVMF", "OVMF_CODE_4M.fd")
	loader = filepath.Clean(loader)
	b.ReportAllocs()
	for b.Loop() {
		c := Load(s)
		if len(c.Problems) > 0 {
			b.Fatal(c.Problems)
		}
		if _, err := c.Find(query(loader)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFind(b *testing.B, name string, wantResolved bool) {
	s := benchFirmware(b)
	c := Load(s)
	loader := filepath.Clean(filepath.Join(s.DescriptorDirs[1], "..", "..", "OVMF", name))
	b.ReportAllocs()
	for b.Loop() {
		h, err := c.Find(query(loader))
		if err != nil {
			b.Fatal(err)
		}
		if h.Resolved != wantResolved {
			b.Fatalf("resolved = %v, want %v", h.Resolved, wantResolved)
		}
	}
}

// BenchmarkFindLiteral finds a loader a descriptor names.
func BenchmarkFindLiteral(b *testing.B) { benchFind(b, "OVMF_CODE_4M.fd", false) }

// BenchmarkFindResolved finds a loader only through a symlink: every
// candidate path is resolved.
func BenchmarkFindResolved(b *testing.B) {
	s := benchFirmware(b)
	dir := filepath.Clean(filepath.Join(s.DescriptorDirs[1], "..", "..", "OVMF"))
	if err := os.Symlink("OVMF_CODE_4M.fd", filepath.Join(dir, "MY_CODE.fd")); err != nil {
		b.Fatal(err)
	}
	c := Load(s)
	b.ReportAllocs()
	for b.Loop() {
		h, err := c.Find(query(filepath.Join(dir, "MY_CODE.fd")))
		if err != nil {
			b.Fatal(err)
		}
		if !h.Resolved {
			b.Fatal("matched literally")
		}
	}
}
