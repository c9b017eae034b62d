package firmware

// TableEntry is one CODE/VARS pair of a distribution's firmware packages,
// with what is known of it.
type TableEntry struct {
	Distro string
	Code   string
	Vars   string
	Facts
}

// Facts are what a firmware build and its template promise a guest.
type Facts struct {
	// Arch is the architecture in libvirt's terms (<type arch=...>).
	Arch string
}

// Table lists the firmware layouts of common distributions, for loaders that
// neither descriptors nor the config know (Debian ships no descriptor for
// its 2 MiB OVMF_CODE.fd, for one). An entry counts only when both of its
// files exist on the host, so paths of other distributions cost nothing
// but a stat. Order matters within a loader: the first entry wins.
var Table = []TableEntry{
	// Debian, Ubuntu: ovmf, ovmf-ia32, qemu-efi-aarch64, qemu-efi-arm,
	// qemu-efi-riscv64, qemu-efi-loongarch64.
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE.secboot.fd", Vars: "/usr/share/OVMF/OVMF_VARS.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF_CODE.ms.fd", Vars: "/usr/share/OVMF/OVMF_VARS.ms.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "debian", Code: "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd", Vars: "/usr/share/OVMF/OVMF32_VARS_4M.fd", Facts: Facts{Arch: "i686"}},
	{Distro: "debian", Code: "/usr/share/AAVMF/AAVMF_CODE.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Facts: Facts{Arch: "aarch64"}},
	{Distro: "debian", Code: "/usr/share/AAVMF/AAVMF_CODE.secboot.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd", Facts: Facts{Arch: "aarch64"}},
	{Distro: "debian", Code: "/usr/share/AAVMF/AAVMF_CODE.ms.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.ms.fd", Facts: Facts{Arch: "aarch64"}},
	{Distro: "debian", Code: "/usr/share/AAVMF/AAVMF_CODE.snakeoil.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd", Facts: Facts{Arch: "aarch64"}},
	{Distro: "debian", Code: "/usr/share/AAVMF/AAVMF32_CODE.fd", Vars: "/usr/share/AAVMF/AAVMF32_VARS.fd", Facts: Facts{Arch: "armv7l"}},
	{Distro: "debian", Code: "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd", Vars: "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd", Facts: Facts{Arch: "riscv64"}},
	{Distro: "debian", Code: "/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd", Vars: "/usr/share/qemu-efi-loongarch64/QEMU_VARS.fd", Facts: Facts{Arch: "loongarch64"}},

	// Fedora, RHEL, CentOS Stream: edk2-ovmf, edk2-aarch64, edk2-riscv64,
	// edk2-loongarch64.
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE.fd", Vars: "/usr/share/edk2/ovmf/OVMF_VARS.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", Vars: "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", Vars: "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2", Facts: Facts{Arch: "x86_64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/ovmf/OVMF_CODE_4M.secboot.qcow2", Vars: "/usr/share/edk2/ovmf/OVMF_VARS_4M.secboot.qcow2", Facts: Facts{Arch: "x86_64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.raw", Facts: Facts{Arch: "aarch64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.raw", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.raw", Facts: Facts{Arch: "aarch64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-pflash.qcow2", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.qcow2", Facts: Facts{Arch: "aarch64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2", Vars: "/usr/share/edk2/aarch64/vars-template-pflash.qcow2", Facts: Facts{Arch: "aarch64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/riscv/RISCV_VIRT_CODE.fd", Vars: "/usr/share/edk2/riscv/RISCV_VIRT_VARS.fd", Facts: Facts{Arch: "riscv64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/riscv/RISCV_VIRT_CODE.qcow2", Vars: "/usr/share/edk2/riscv/RISCV_VIRT_VARS.qcow2", Facts: Facts{Arch: "riscv64"}},
	{Distro: "fedora", Code: "/usr/share/edk2/loongarch64/QEMU_EFI.fd", Vars: "/usr/share/edk2/loongarch64/QEMU_VARS.fd", Facts: Facts{Arch: "loongarch64"}},

	// Arch Linux: edk2-ovmf, edk2-aarch64, edk2-arm, edk2-riscv64,
	// edk2-loongarch64; and the layout before 2023.
	{Distro: "arch", Code: "/usr/share/edk2/x64/OVMF_CODE.4m.fd", Vars: "/usr/share/edk2/x64/OVMF_VARS.4m.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "arch", Code: "/usr/share/edk2/x64/OVMF_CODE.secboot.4m.fd", Vars: "/usr/share/edk2/x64/OVMF_VARS.4m.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "arch", Code: "/usr/share/edk2/ia32/OVMF_CODE.4m.fd", Vars: "/usr/share/edk2/ia32/OVMF_VARS.4m.fd", Facts: Facts{Arch: "i686"}},
	{Distro: "arch", Code: "/usr/share/edk2/aarch64/QEMU_CODE.fd", Vars: "/usr/share/edk2/aarch64/QEMU_VARS.fd", Facts: Facts{Arch: "aarch64"}},
	{Distro: "arch", Code: "/usr/share/edk2/arm/QEMU_CODE.fd", Vars: "/usr/share/edk2/arm/QEMU_VARS.fd", Facts: Facts{Arch: "armv7l"}},
	{Distro: "arch", Code: "/usr/share/edk2/riscv64/RISCV_VIRT_CODE.fd", Vars: "/usr/share/edk2/riscv64/RISCV_VIRT_VARS.fd", Facts: Facts{Arch: "riscv64"}},
	{Distro: "arch", Code: "/usr/share/edk2/loongarch64/QEMU_CODE.fd", Vars: "/usr/share/edk2/loongarch64/QEMU_VARS.fd", Facts: Facts{Arch: "loongarch64"}},
	{Distro: "arch", Code: "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", Vars: "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd", Facts: Facts{Arch: "x86_64"}},
	{Distro: "arch", Code: "/usr/share/edk2-ovmf/x64/OVMF_CODE.secboot.fd", Vars: "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd", Facts: Facts{Arch: "x86_64"}},

	// openSUSE, SLES: qemu-ovmf-x86_64, qemu-uefi-aarch64.
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-4m-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-4m-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-ms-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-ms-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-ms-4m-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-ms-4m-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-smm-ms-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-smm-ms-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/ovmf-x86_64-smm-suse-code.bin", Vars: "/usr/share/qemu/ovmf-x86_64-smm-suse-vars.bin", Facts: Facts{Arch: "x86_64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/aavmf-aarch64-code.bin", Vars: "/usr/share/qemu/aavmf-aarch64-vars.bin", Facts: Facts{Arch: "aarch64"}},
	{Distro: "opensuse", Code: "/usr/share/qemu/aavmf-aarch64-ms-code.bin", Vars: "/usr/share/qemu/aavmf-aarch64-ms-vars.bin", Facts: Facts{Arch: "aarch64"}},
}
