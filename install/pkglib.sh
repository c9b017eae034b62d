# shellcheck shell=bash disable=SC2034 # it sets variables for the script that sources it
# pkglib.sh: bash helpers shared by debian/build-deb.sh and rpm/build-rpm.sh.

# pkg_machine FILE: the CPU a binary is for, in `uname -m` terms, read from
# its ELF header (a cross-built binary must not get the build host's
# architecture); `uname -m` when FILE is no ELF file.
pkg_machine() {
	local f=$1 b
	# Bytes 0-3 magic, 4 class (2 = 64-bit), 5 data (1 = little endian),
	# 18-19 e_machine in the file's byte order.
	read -r -a b < <(od -An -tu1 -N20 -v -- "$f" 2>/dev/null | tr '\n' ' ')
	if ((${#b[@]} < 20)) || [[ ${b[0]} != 127 || ${b[1]} != 69 || ${b[2]} != 76 || ${b[3]} != 70 ]]; then
		uname -m
		return
	fi
	local class=${b[4]} le=${b[5]} mach
	if [[ $le == 1 ]]; then mach=$((b[18] + 256 * b[19])); else mach=$((256 * b[18] + b[19])); fi
	case $mach/$class/$le in
	62/2/*) echo x86_64 ;;
	3/1/*) echo i686 ;;
	183/2/*) echo aarch64 ;;
	40/1/*) echo armv7l ;;
	21/2/1) echo ppc64le ;;
	21/2/2) echo ppc64 ;;
	22/2/*) echo s390x ;;
	243/2/*) echo riscv64 ;;
	258/2/*) echo loongarch64 ;;
	*)
		echo "unknown ELF machine $mach in $f; set ARCH" >&2
		return 1
		;;
	esac
}

# pkg_deb_arch MACHINE / pkg_rpm_arch MACHINE: the packaging names.
pkg_deb_arch() {
	case $1 in
	x86_64) echo amd64 ;;
	i?86) echo i386 ;;
	aarch64) echo arm64 ;;
	armv7l) echo armhf ;;
	ppc64le) echo ppc64el ;;
	loongarch64) echo loong64 ;;
	*) echo "$1" ;;
	esac
}

pkg_rpm_arch() {
	case $1 in
	i?86) echo i686 ;;
	armv7l) echo armv7hl ;;
	*) echo "$1" ;;
	esac
}

# pkg_date_epoch: the build time, in seconds: SOURCE_DATE_EPOCH if set, else
# the last commit's time, else now. Same tree, same timestamps in the package.
pkg_date_epoch() {
	if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
		echo "$SOURCE_DATE_EPOCH"
	elif git -C "$1" log -1 --format=%ct 2>/dev/null | grep -q .; then
		git -C "$1" log -1 --format=%ct
	else
		date +%s
	fi
}

# pkg_args SCRIPT BINARY OUTDIR: the build scripts' shared command line;
# sets bin and outdir, exits 2 on a wrong call and 1 without the binary.
# PKG_MAINTAINER is a PLACEHOLDER, marked as one in the name and with an
# .invalid address (RFC 2606: never delivered), until the project names a
# maintainer; whoever builds packages to distribute sets MAINTAINER
# (make deb rpm MAINTAINER="Name <address>").
PKG_MAINTAINER="PLACEHOLDER set MAINTAINER <maintainer-unset@libvirt-nvram-hook.invalid>"
pkg_args() {
	local script=$1
	shift
	if (($# != 2)); then
		echo "usage: $script BINARY OUTDIR" >&2
		exit 2
	fi
	bin=$1 outdir=$2
	[[ -f $bin ]] || {
		echo "$script: no binary at $bin (run 'make build')" >&2
		exit 1
	}
}
