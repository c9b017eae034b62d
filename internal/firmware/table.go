package firmware

// TableEntry is one CODE/VARS pair of a distribution's firmware packages,
// with what it promises a guest.
type TableEntry struct {
	Distro string
	// Releases lists the releases whose packages were checked to ship the
	// pair with these facts and sizes (testdata/debian/*/files.txt); ""
	// when no package was checked.
	Releases string
	Code     string
	Vars     string
	// Libvirt lists the releases whose libvirt QEMU driver knows this
	// CODE:VARS pair itself: the loader:nvram list compiled into the build
	// (meson option loader_nvram, DEFAULT_LOADER_NVRAM; Debian keeps
	// libvirt's default), read from each release's
	// libvirt-daemon-driver-qemu (testdata/debian/*/libvirt-loader-nvram.txt).
	// libvirt takes the template from it for this literal loader path when
	// no descriptor matches the domain and qemu.conf sets no nvram list.
	Libvirt string
	Facts
}

// LibvirtDefault returns the table entry whose pair libvirt's build knows
// itself (Libvirt) for the literal loader path.
func LibvirtDefault(loader string) (TableEntry, bool) {
	for _, e := range Table {
		if e.Libvirt != "" && e.Code == loader {
			return e, true
		}
	}
	return TableEntry{}, false
}

// Flash layouts of Debian's builds: the sizes of the CODE and VARS files.
const (
	ovmf2MCode, ovmf2MVars = 1966080, 131072 // 2 MiB flash (Debian 12 only)
	ovmf4MCode, ovmf4MVars = 3653632, 540672 // 4 MiB flash
	aavmfSize              = 64 << 20        // AAVMF, AAVMF32: two 64 MiB banks
	riscvSize              = 32 << 20        // RISCV_VIRT_CODE/VARS: 32 MiB each
	loongSize              = 16 << 20        // loongarch64 QEMU_EFI/QEMU_VARS: 16 MiB each
)

// Facts of Debian's builds, as their descriptors and README.Debian say
// (ovmf, ovmf-ia32, qemu-efi-aarch64, qemu-efi-arm, qemu-efi-riscv64,
// qemu-efi-loongarch64): the plain builds carry a UEFI shell and neither
// Secure Boot nor a need for SMM; x86 .secboot builds require SMM;
// .strictnx builds are .secboot builds with the memory attribute protocol.
var (
	debOVMF4M        = Facts{Arch: "x86_64", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debOVMF4MSecure  = Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysNone, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debOVMF4MMS      = Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysMicrosoft, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debOVMF4MTest    = Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysTest, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debOVMF2M        = Facts{Arch: "x86_64", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: ovmf2MCode, VarsSize: ovmf2MVars, Format: "raw"}
	debOVMF2MSecure  = Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysNone, CodeSize: ovmf2MCode, VarsSize: ovmf2MVars, Format: "raw"}
	debOVMF2MMS      = Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysMicrosoft, CodeSize: ovmf2MCode, VarsSize: ovmf2MVars, Format: "raw"}
	debOVMF32        = Facts{Arch: "i686", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debOVMF32Secure  = Facts{Arch: "i686", SecureBoot: Yes, SMM: Yes, Keys: KeysNone, CodeSize: ovmf4MCode, VarsSize: ovmf4MVars, Format: "raw"}
	debAAVMF         = Facts{Arch: "aarch64", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: aavmfSize, VarsSize: aavmfSize, Format: "raw"}
	debAAVMFSecure   = Facts{Arch: "aarch64", SecureBoot: Yes, SMM: No, Keys: KeysNone, CodeSize: aavmfSize, VarsSize: aavmfSize, Format: "raw"}
	debAAVMFMS       = Facts{Arch: "aarch64", SecureBoot: Yes, SMM: No, Keys: KeysMicrosoft, CodeSize: aavmfSize, VarsSize: aavmfSize, Format: "raw"}
	debAAVMFTest     = Facts{Arch: "aarch64", SecureBoot: Yes, SMM: No, Keys: KeysTest, CodeSize: aavmfSize, VarsSize: aavmfSize, Format: "raw"}
	debAAVMF32       = Facts{Arch: "armv7l", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: aavmfSize, VarsSize: aavmfSize, Format: "raw"}
	debRISCV         = Facts{Arch: "riscv64", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: riscvSize, VarsSize: riscvSize, Format: "raw"}
	debLoongArch     = Facts{Arch: "loongarch64", SecureBoot: No, SMM: No, Keys: KeysNone, CodeSize: loongSize, VarsSize: loongSize, Format: "raw"}
	unverified       = func(arch, format string) Facts { return Facts{Arch: arch, Format: format} }
	unverifiedMSKeys = func(arch, format string) Facts {
		return Facts{Arch: arch, SecureBoot: Yes, SMM: Yes, Keys: KeysMicrosoft, Format: format}
	}
)

// Table lists the firmware layouts of common distributions, for loaders
// that neither descriptors nor the config know (Debian's descriptors name
// neither OVMF_CODE_4M.snakeoil.fd nor the .strictnx builds, for one). An
// entry counts only when both of its files exist on the host, so paths of
// other distributions cost nothing but a stat. Every code path appears
// once. Entries of other distributions than Debian carry only the facts
// their names make certain (QEMU's firmware.json uses Fedora's
// OVMF_CODE.secboot.fd + OVMF_VARS.secboot.fd as its Microsoft-keys
// example); the rest is unknown, and such an entry is never a candidate
// for translate_loader.
var Table = []TableEntry{
	// Debian (and Ubuntu, which uses the same names): x86_64.
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", Facts: debOVMF4M},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", Facts: debOVMF4MSecure},
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.strictnx.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", Facts: debOVMF4MSecure},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", Facts: debOVMF4MMS},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", Facts: debOVMF4MTest},
	{Distro: "debian", Releases: "12", Code: "/usr/share/OVMF/OVMF_CODE.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd", Libvirt: "12 13 sid", Facts: debOVMF2M},
	{Distro: "debian", Releases: "12", Code: "/usr/share/OVMF/OVMF_CODE.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd", Libvirt: "12 13 sid", Facts: debOVMF2MSecure},
	{Distro: "debian", Releases: "12", Code: "/usr/share/OVMF/OVMF_CODE.ms.fd", Vars: "/usr/share/OVMF/OVMF_VARS.ms.fd", Facts: debOVMF2MMS},
	// Debian i686 (ovmf-ia32; not in sid).
	{Distro: "debian", Releases: "13", Code: "/usr/share/OVMF/OVMF32_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF32_VARS_4M.fd", Facts: debOVMF32},
	{Distro: "debian", Releases: "12 13", Code: "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd", Vars: "/usr/share/OVMF/OVMF32_VARS_4M.fd", Facts: debOVMF32Secure},
	{Distro: "debian", Releases: "13", Code: "/usr/share/OVMF/OVMF32_CODE_4M.secboot.strictnx.fd", Vars: "/usr/share/OVMF/OVMF32_VARS_4M.fd", Facts: debOVMF32Secure},
	// Debian aarch64. AAVMF_CODE.fd was the plain build in 12 and is a
	// symlink to AAVMF_CODE.no-secboot.fd since 13; .ms and .snakeoil
	// name the Secure Boot build since 13 (the plain one in 12, whose
	// descriptor 40 still declared it Secure Boot with Microsoft keys).
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.no-secboot.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Facts: debAAVMF},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Libvirt: "12 13 sid", Facts: debAAVMF},
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.secboot.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Facts: debAAVMFSecure},
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.secboot.strictnx.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Facts: debAAVMFSecure},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.ms.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.ms.fd", Facts: debAAVMFMS},
	{Distro: "debian", Releases: "12 13 sid", Code: "/usr/share/AAVMF/AAVMF_CODE.snakeoil.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd", Facts: debAAVMFTest},
	// Debian armv7l (qemu-efi-arm; not in sid), riscv64 and loongarch64
	// (from 13 on).
	{Distro: "debian", Releases: "12 13", Code: "/usr/share/AAVMF/AAVMF32_CODE.fd", Vars: "/usr/share/AAVMF/AAVMF32_VARS.fd", Libvirt: "12 13 sid", Facts: debAAVMF32},
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd", Vars: "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd", Facts: debRISCV},
	{Distro: "debian", Releases: "13 sid", Code: "/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd", Vars: "/usr/share/qemu-efi-loongarch64/QEMU_VARS.fd", Facts: debLoongArch},

	// Fedora, RHEL, CentOS Stream: edk2-ovmf, edk2-aarch64, edk2-riscv64,
	// edk2-loongarch64.
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE.fd", Vars: "/usr/share/edk2/ovmf/OVMF_VARS.fd", Facts: unverified("x86_64", "raw")},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", Vars: "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd", Facts: unverifiedMSKeys("x86_64", "raw")},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", Vars: "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2", Facts: unverified("x86_64", "qcow2")},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE_4M.secboot.qcow2", Vars: "/usr/share/edk2/ovmf/OVMF_VARS_4M.secboot.qcow2", Facts: unverifiedMSKeys("x86_64", "qcow2")},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.raw", Facts: unverified("aarch64", "raw")},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.raw", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.raw", Facts: unverified("aarch64", "raw")},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-pflash.qcow2", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.qcow2", Facts: unverified("aarch64", "qcow2")},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.qcow2", Facts: unverified("aarch64", "qcow2")},
	{Distro: "fedora", Code: "/usr/share/edk2/riscv/RISCV_VIRT_CODE.fd", Vars: "/usr/share/edk2/riscv/RISCV_VIRT_VARS.fd", Facts: unverified("riscv64", "raw")},
	{Distro: "fedora", Code: "/usr/share/edk2/riscv/RISCV_VIRT_CODE.qcow2", Vars: "/usr/share/edk2/riscv/RISCV_VIRT_VARS.qcow2", Facts: unverified("riscv64", "qcow2")},
	{Distro: "fedora", Code: "/usr/share/edk2/loongarch64/QEMU_EFI.fd", Vars: "/usr/share/edk2/loongarch64/QEMU_VARS.fd", Facts: unverified("loongarch64", "raw")},

	// Arch Linux: edk2-ovmf, edk2-aarch64, edk2-arm, edk2-riscv64,
	// edk2-loongarch64; and the layout before 2023.
	{Distro: "arch", Code: "/usr/share/edk2/x64/OVMF_CODE.4m.fd", Vars: "/usr/share/edk2/x64/OVMF_VARS.4m.fd", Facts: unverified("x86_64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/x64/OVMF_CODE.secboot.4m.fd", Vars: "/usr/share/edk2/x64/OVMF_VARS.4m.fd", Facts: unverified("x86_64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/ia32/OVMF_CODE.4m.fd", Vars: "/usr/share/edk2/ia32/OVMF_VARS.4m.fd", Facts: unverified("i686", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/aarch64/QEMU_CODE.fd", Vars: "/usr/share/edk2/aarch64/QEMU_VARS.fd", Facts: unverified("aarch64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/arm/QEMU_CODE.fd", Vars: "/usr/share/edk2/arm/QEMU_VARS.fd", Facts: unverified("armv7l", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/riscv64/RISCV_VIRT_CODE.fd", Vars: "/usr/share/edk2/riscv64/RISCV_VIRT_VARS.fd", Facts: unverified("riscv64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2/loongarch64/QEMU_CODE.fd", Vars: "/usr/share/edk2/loongarch64/QEMU_VARS.fd", Facts: unverified("loongarch64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", Vars: "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd", Facts: unverified("x86_64", "raw")},
	{Distro: "arch", Code: "/usr/share/edk2-ovmf/x64/OVMF_CODE.secboot.fd", Vars: "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd", Facts: unverified("x86_64", "raw")},

	// openSUSE, SLES: qemu-ovmf-x86_64, qemu-uefi-aarch64.
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-4m-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-4m-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-ms-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-ms-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-ms-4m-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-ms-4m-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-smm-ms-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-smm-ms-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-smm-suse-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-smm-suse-vars.bin", Facts: unverified("x86_64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/aavmf-aarch64-code.bin", Vars: "/usr/share/qemu/aavmf-aarch64-vars.bin", Facts: unverified("aarch64", "raw")},
	{Distro: "opensuse", Code: "/usr/share/qemu/aavmf-aarch64-ms-code.bin", Vars: "/usr/share/qemu/aavmf-aarch64-ms-vars.bin", Facts: unverified("aarch64", "raw")},
}
