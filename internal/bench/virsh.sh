#!/usr/bin/env bash
# virsh.sh HOOK VIRSHSTART OUT.json: the real-libvirt part of `make bench`.
# Times `virsh start --paused` + `virsh destroy` of a UEFI guest with and
# without the hook in alternating blocks (internal/bench/virshstart), on a
# libvirtd this script starts and stops itself, by pid.
#
# Root, Debian. Takes the machine-wide real-libvirt lock (flock, shared with
# make e2e and make demo), installs libvirt/QEMU/OVMF with apt-get if
# missing, and refuses to run when a libvirtd or virtqemud is already
# running or when /etc/libvirt/hooks has a qemu hook of someone else: the
# figure is that of a host whose only hook is this one. Everything it adds
# (guest, hook entry, its config, run markers) is removed at the end, also
# on failure or Ctrl-C; a config of the host's own is put back.
#
# Environment: BENCH_VIRSH_BLOCKS (6), BENCH_VIRSH_N (6 warm + 6 first
# starts per block).
set -uo pipefail
# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
# shellcheck source=../../install/libvirtlib.sh
. "$(dirname "$0")/../../install/libvirtlib.sh"

LOCK=/run/nvram-hook-real-libvirt.lock
if [ "${NVRAM_HOOK_BENCH_LOCKED:-}" != 1 ]; then
	echo "bench: waiting for the real-libvirt lock $LOCK" >&2
	exec env NVRAM_HOOK_BENCH_LOCKED=1 flock "$LOCK" bash "$0" "$@"
fi

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

[ $# -eq 3 ] || die "usage: virsh.sh HOOK VIRSHSTART OUT.json"
HOOK=$1 VIRSHSTART=$2 OUT=$3
[ "$(id -u)" -eq 0 ] || die "the virsh part needs root"
[ -x "$HOOK" ] && [ -x "$VIRSHSTART" ] || die "no $HOOK or $VIRSHSTART"

NAME=nvram-hook-bench
URI=qemu:///system
HOOKS=/etc/libvirt/hooks
ENTRY=$HOOKS/qemu.d/50-nvram
CONF=/etc/libvirt/nvram-hook.conf
CONF_ASIDE=/etc/libvirt/.nvram-hook.conf.bench-aside
NVRAM=/var/lib/libvirt/qemu/nvram/${NAME}_VARS.fd
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
PKGS=(libvirt-daemon-system libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 ovmf)


# --- what to undo -----------------------------------------------------------
our_virtlogd='' our_libvirtd='' made_run_dir='' made_qemu_d='' conf_aside='' conf_ours=''
guest_defined='' work=''


cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$guest_defined" ]; then
		virsh -q -c "$URI" destroy "$NAME" >/dev/null 2>&1
		virsh -q -c "$URI" undefine --nvram "$NAME" >/dev/null 2>&1
	fi
	rm -f "$NVRAM" "/var/log/libvirt/qemu/$NAME.log"
	if [ -L "$ENTRY" ] && [ "$(readlink "$ENTRY")" = "$HOOK" ]; then rm -f "$ENTRY"; fi
	[ -n "$made_qemu_d" ] && rmdir "$HOOKS/qemu.d" 2>/dev/null
	[ -n "$conf_ours" ] && rm -f "$CONF"
	[ -n "$conf_aside" ] && mv -f "$CONF_ASIDE" "$CONF"
	[ -n "$our_libvirtd" ] && lvl_stop "$our_libvirtd" libvirtd
	[ -n "$our_virtlogd" ] && lvl_stop "$our_virtlogd" virtlogd
	lvl_unmark "$made_run_dir"
	[ -n "$work" ] && rm -rf "$work"
	[ "$rc" -eq 0 ] || say "the virsh part FAILED (exit $rc); everything it added is removed"
	exit "$rc"
}

# --- preconditions ----------------------------------------------------------
missing=$(lvl_missing "${PKGS[@]}" | tr '\n' ' ')
if [ -n "$missing" ]; then
	say "installing $missing"
	lvl_install "${PKGS[@]}" || die "could not install $missing"
fi
others=$(lvl_live libvirtd virtqemud | tr '\n' ' ')
[ -z "$others" ] || die "a libvirt daemon is running (pid $others): the bench starts its own and will not use or stop another one"
if [ -e "$HOOKS/qemu" ] || [ -n "$(ls -A "$HOOKS/qemu.d" 2>/dev/null)" ]; then
	die "$HOOKS has qemu hooks already ($(ls -A "$HOOKS/qemu" "$HOOKS/qemu.d" 2>/dev/null | tr '\n' ' ')): the bench measures a host whose only hook is this one"
fi
[ -f "$CODE" ] && [ -f "$VARS" ] || die "no $CODE or $VARS (Debian's ovmf package)"

trap cleanup EXIT
trap 'exit 130' INT TERM
work=$(mktemp -d /tmp/nvram-hook-bench-virsh.XXXXXX)
chmod 755 "$work"

# The hook's config for the run: only its log goes to a file, where
# virshstart checks that the hook created the varstore on every first start
# with the hook and never without it. Everything else is the built-in
# defaults. A config of the host's own is put aside and back.
if [ -e "$CONF" ]; then
	mv "$CONF" "$CONF_ASIDE" && conf_aside=1
fi
printf '# written by internal/bench/virsh.sh for one run; removed at its end\n[log]\ntarget = file:%s/hook.log\nlevel = info\n' "$work" >"$CONF"
conf_ours=1

# The hook is in place before the daemon starts: libvirtd looks for hooks
# at start, then lists qemu.d/ on every call (so removing the entry for the
# blocks without the hook is a directory listing, not a restart).
[ -d "$HOOKS/qemu.d" ] || { mkdir -p "$HOOKS/qemu.d" && made_qemu_d=1; }
ln -s "$HOOK" "$ENTRY"

# --- libvirtd ----------------------------------------------------------------
[ -e /run/libvirt ] || made_run_dir=1
lvl_markers # our daemon autostarts nothing of the machine's
lvl_kvm_group
started=0
lvl_start_daemons || started=$?
our_virtlogd=$lvl_our_virtlogd our_libvirtd=$lvl_our_libvirtd
[ "$started" -eq 0 ] || die "could not start libvirt's daemons"
say "started libvirtd (pid $our_libvirtd)${our_virtlogd:+ and virtlogd (pid $our_virtlogd)}"
for _ in $(seq 120); do virsh -q -c "$URI" version >/dev/null 2>&1 && break; sleep 0.5; done
lv=$(virsh -q -c "$URI" version --daemon 2>/dev/null | sed -n 's/^Running against daemon: *//p')
virsh -q -c "$URI" dominfo "$NAME" >/dev/null 2>&1 && die "a guest named $NAME exists: not touching it"

# --- the guest ----------------------------------------------------------------
# Debian's own firmware, with its template named in the XML: libvirt alone
# can start it (it creates the varstore itself on a first start), and with
# the hook the hook creates it first, from the same template.
type=qemu
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then type=kvm; fi
lvl_guest_xml "$type" "$NAME" 256 "$CODE" "<nvram template='$VARS'>$NVRAM</nvram>" >"$work/$NAME.xml"
rm -f "$NVRAM"
virsh -q -c "$URI" define "$work/$NAME.xml" >/dev/null && guest_defined=1 || die "virsh define failed"
# virshstart's first warm-up start creates the varstore.

say "virsh start --paused + destroy, ${BENCH_VIRSH_BLOCKS:-6} alternating blocks of ${BENCH_VIRSH_N:-6} warm + ${BENCH_VIRSH_N:-6} first starts (libvirt ${lv:-?}, domain type $type)"
"$VIRSHSTART" -uri "$URI" -domain "$NAME" -nvram "$NVRAM" -entry "$ENTRY" -hook "$HOOK" \
	-log "$work/hook.log" -blocks "${BENCH_VIRSH_BLOCKS:-6}" -n "${BENCH_VIRSH_N:-6}" \
	-libvirt "${lv:-unknown}" -type "$type" -o "$OUT" || exit 1
exit 0
