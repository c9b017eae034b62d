package firmware

// TableEntry is one CODE/VARS pair of a distribution's firmware packages.
type TableEntry struct {
	Distro string
	Arch   string
	Code   string
	Vars   string
}

// Table lists the firmware layouts of common distributions, for loaders that
// neither descriptors nor the config know (Debian ships no descriptor for
// its 2 MiB OVMF_CODE.fd, for one). An entry counts only when both of its
// files exist on the host, so paths of other distributions cost nothing
// but a stat. Order matters within a loader: the first entry wins.
var Table = []TableEntry{
	// Debian, Ubuntu: ovmf, ovmf-ia32, qemu-efi-aarch64, qemu-efi-arm,
	// qemu-efi-riscv64, qemu-efi-loongarch64.
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"debian", "x86_64", "/usr/share/OVMF/OVMF_CODE.ms.fd", "/usr/share/OVMF/OVMF_VARS.ms.fd"},
	{"debian", "i686", "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF32_VARS_4M.fd"},
	{"debian", "aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
	{"debian", "aarch64", "/usr/share/AAVMF/AAVMF_CODE.secboot.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
	{"debian", "aarch64", "/usr/share/AAVMF/AAVMF_CODE.ms.fd", "/usr/share/AAVMF/AAVMF_VARS.ms.fd"},
	{"debian", "aarch64", "/usr/share/AAVMF/AAVMF_CODE.snakeoil.fd", "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd"},
	{"debian", "armv7l", "/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/AAVMF/AAVMF32_VARS.fd"},
	{"debian", "riscv64", "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd", "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd"},
	{"debian", "loongarch64", "/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd", "/usr/share/qemu-efi-loongarch64/QEMU_VARS.fd"},

	// Fedora, RHEL, CentOS Stream: edk2-ovmf, edk2-aarch64, edk2-riscv64,
	// edk2-loongarch64.
	{"fedora", "x86_64", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
	{"fedora", "x86_64", "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd"},
	{"fedora", "x86_64", "/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2"},
	{"fedora", "x86_64", "/usr/share/edk2/ovmf/OVMF_CODE_4M.secboot.qcow2", "/usr/share/edk2/ovmf/OVMF_VARS_4M.secboot.qcow2"},
	{"fedora", "aarch64", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
	{"fedora", "aarch64", "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
	{"fedora", "aarch64", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.qcow2", "/usr/share/edk2/aarch64/vars-template-pflash.qcow2"},
	{"fedora", "aarch64", "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2", "/usr/share/edk2/aarch64/vars-template-pflash.qcow2"},
	{"fedora", "riscv64", "/usr/share/edk2/riscv/RISCV_VIRT_CODE.fd", "/usr/share/edk2/riscv/RISCV_VIRT_VARS.fd"},
	{"fedora", "riscv64", "/usr/share/edk2/riscv/RISCV_VIRT_CODE.qcow2", "/usr/share/edk2/riscv/RISCV_VIRT_VARS.qcow2"},
	{"fedora", "loongarch64", "/usr/share/edk2/loongarch64/QEMU_EFI.fd", "/usr/share/edk2/loongarch64/QEMU_VARS.fd"},

	// Arch Linux: edk2-ovmf, edk2-aarch64, edk2-arm, edk2-riscv64,
	// edk2-loongarch64; and the layout before 2023.
	{"arch", "x86_64", "/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
	{"arch", "x86_64", "/usr/share/edk2/x64/OVMF_CODE.secboot.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
	{"arch", "i686", "/usr/share/edk2/ia32/OVMF_CODE.4m.fd", "/usr/share/edk2/ia32/OVMF_VARS.4m.fd"},
	{"arch", "aarch64", "/usr/share/edk2/aarch64/QEMU_CODE.fd", "/usr/share/edk2/aarch64/QEMU_VARS.fd"},
	{"arch", "armv7l", "/usr/share/edk2/arm/QEMU_CODE.fd", "/usr/share/edk2/arm/QEMU_VARS.fd"},
	{"arch", "riscv64", "/usr/share/edk2/riscv64/RISCV_VIRT_CODE.fd", "/usr/share/edk2/riscv64/RISCV_VIRT_VARS.fd"},
	{"arch", "loongarch64", "/usr/share/edk2/loongarch64/QEMU_CODE.fd", "/usr/share/edk2/loongarch64/QEMU_VARS.fd"},
	{"arch", "x86_64", "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"},
	{"arch", "x86_64", "/usr/share/edk2-ovmf/x64/OVMF_CODE.secboot.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"},

	// openSUSE, SLES: qemu-ovmf-x86_64, qemu-uefi-aarch64.
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-code.bin", "/usr/share/qemu/ovmf-x86_64-vars.bin"},
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-4m-code.bin", "/usr/share/qemu/ovmf-x86_64-4m-vars.bin"},
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-ms-code.bin", "/usr/share/qemu/ovmf-x86_64-ms-vars.bin"},
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-ms-4m-code.bin", "/usr/share/qemu/ovmf-x86_64-ms-4m-vars.bin"},
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-smm-ms-code.bin", "/usr/share/qemu/ovmf-x86_64-smm-ms-vars.bin"},
	{"opensuse", "x86_64", "/usr/share/qemu/ovmf-x86_64-smm-suse-code.bin", "/usr/share/qemu/ovmf-x86_64-smm-suse-vars.bin"},
	{"opensuse", "aarch64", "/usr/share/qemu/aavmf-aarch64-code.bin", "/usr/share/qemu/aavmf-aarch64-vars.bin"},
	{"opensuse", "aarch64", "/usr/share/qemu/aavmf-aarch64-ms-code.bin", "/usr/share/qemu/aavmf-aarch64-ms-vars.bin"},
}
