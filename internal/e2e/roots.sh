#!/usr/bin/env bash
# Builds (or reuses) the Debian roots the real-libvirt suite runs its newer
# libvirt hosts in: trixie (Debian 13, libvirt 11.3) and sid (libvirt 12.8).
#
#   roots.sh CACHE_DIR SUITE...
#
# Each root is CACHE_DIR/SUITE, built with mmdebstrap from the Debian mirror
# the machine already uses. A root is reused when its stamp file says it was
# built from the same package list less than a week ago and its daemons and
# emulators run; otherwise (missing, broken, older, or E2E_REBUILD_ROOTS=1)
# it is built again into CACHE_DIR/SUITE.new and renamed into place, so a
# half-built root is never used. Roots are built concurrently. Prints one
# "root SUITE: reused|built in Ns" line per suite; exits non-zero if any
# root could not be had.
set -u

cache=$1
shift
mkdir -p "$cache"

# Everything every scenario needs, so that no later step needs a rebuild.
# mmdebstrap installs no Recommends: the riscv64/misc emulators come without
# theirs (as asked in libvirt-facts.md).
pkgs=libvirt-daemon-system,libvirt-clients,qemu-system-x86,qemu-system-arm,qemu-system-riscv,qemu-system-misc,qemu-utils,ovmf,qemu-efi-aarch64,qemu-efi-riscv64,qemu-efi-loongarch64,procps
stamp_of() { printf 'packages=%s\n' "$pkgs"; }

# The mirror the machine's own apt uses for Debian.
mirror=$(grep -hoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
	grep -v security | head -n1 | tr -d ' ')
mirror=${mirror:-http://deb.debian.org/debian}

# usable ROOT: the stamp matches, is younger than a week, and the binaries run.
usable() {
	local root=$1
	[ -f "$root/.nvram-hook-e2e-root" ] || return 1
	[ "$(sed -n '/^packages=/p' "$root/.nvram-hook-e2e-root")" = "$(stamp_of)" ] || return 1
	[ -n "$(find "$root/.nvram-hook-e2e-root" -mtime -7)" ] || return 1
	local b
	for b in usr/sbin/libvirtd usr/sbin/virtlogd usr/bin/virsh usr/bin/qemu-system-x86_64 \
		usr/bin/qemu-system-aarch64 usr/bin/qemu-system-riscv64 usr/bin/qemu-system-loongarch64 usr/bin/qemu-img; do
		[ -x "$root/$b" ] || return 1
	done
	chroot "$root" /usr/sbin/libvirtd --version >/dev/null 2>&1 || return 1
	chroot "$root" /usr/bin/qemu-system-x86_64 --version >/dev/null 2>&1 || return 1
	# Nothing of a previous run may be mounted in it.
	! grep -q " $root/" /proc/self/mounts
}

build() {
	local suite=$1 root=$cache/$1 t0=$SECONDS
	if [ "${E2E_REBUILD_ROOTS:-}" != 1 ] && usable "$root"; then
		echo "root $suite: reused $root ($(chroot "$root" /usr/sbin/libvirtd --version))"
		return 0
	fi
	if grep -q " $root" /proc/self/mounts; then
		echo "root $suite: $root has mounts left (another run?): not rebuilding it" >&2
		return 1
	fi
	local opts=()
	# sid on the mirror is a dated snapshot: its Release file has expired.
	[ "$suite" = sid ] && opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
	rm -rf "$root.new"
	if ! mmdebstrap --quiet --variant=apt --include="$pkgs" "${opts[@]}" "$suite" "$root.new" "$mirror" >"$cache/$suite.build.log" 2>&1; then
		echo "root $suite: mmdebstrap failed; last lines of $cache/$suite.build.log:" >&2
		tail -n 20 "$cache/$suite.build.log" >&2
		rm -rf "$root.new"
		return 1
	fi
	stamp_of >"$root.new/.nvram-hook-e2e-root"
	date -u +built=%FT%TZ >>"$root.new/.nvram-hook-e2e-root"
	rm -rf "$root"
	mv "$root.new" "$root"
	if ! usable "$root"; then
		echo "root $suite: built, but its libvirtd or QEMU does not run" >&2
		return 1
	fi
	echo "root $suite: built in $((SECONDS - t0))s from $mirror ($(chroot "$root" /usr/sbin/libvirtd --version), $(du -sh "$root" | cut -f1))"
}

pids=()
for s in "$@"; do
	build "$s" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
	wait "$p" || rc=1
done
exit $rc
