#!/usr/bin/env bash
# demo.sh (`make demo`): libvirt-nvram-hook on a real libvirtd with built-in
# defaults, no config file. A firmware CODE/VARS pair at a path no QEMU
# firmware descriptor names is declared the old way, in qemu.conf's
# `nvram = [ "CODE:VARS" ]` list, which libvirt 9 ignores once descriptors
# exist. Without the hook the guest cannot start; with it, it does.
#
# Root, Debian (installs libvirt/QEMU/OVMF if missing). Starts virtlogd and
# libvirtd only if they are not running, and then stops only those, by pid.
# Everything it adds (guest, hook entry, qemu.conf line, demo directory) is
# removed at the end, also on failure or Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=libvirtlib.sh
. install/libvirtlib.sh

BIN=$PWD/bin/libvirt-nvram-hook
NAME=nvram-hook-demo
DEMO=/srv/nvram-hook-demo
CODE=$DEMO/DEMO_CODE.fd
VARS=$DEMO/DEMO_VARS.fd
URI=qemu:///system
HOOKS=/etc/libvirt/hooks
ENTRY=$HOOKS/qemu.d/50-nvram
CONF=/etc/libvirt/nvram-hook.conf
QEMUCONF=/etc/libvirt/qemu.conf
QEMUCONF_BAK=/etc/libvirt/.qemu.conf.nvram-hook-demo
NVRAM=/var/lib/libvirt/qemu/nvram/${NAME}_VARS.fd
PKGS=(libvirt-daemon-system libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-x86 ovmf qemu-utils)

if [ -t 1 ]; then B=$'\e[1m' N=$'\e[0m'; else B='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$@"; }
show() { printf '%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }
showsh() { printf '%s$ %s%s\n' "$B" "$1" "$N"; sh -c "$1"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}
v() { virsh -q -c "$URI" "$@"; }

# --- what to undo -----------------------------------------------------------
our_virtlogd='' our_libvirtd='' daemon_pid='' made_run_dir='' made_qemu_d='' made_demo=''
made_guest='' guest_defined='' entry_added='' entry_aside='' conf_aside='' qemuconf_saved='' reloaded=''


reload_daemon() {
	if [ -n "$daemon_pid" ]; then
		kill -HUP "$daemon_pid"
	elif command -v systemctl >/dev/null; then
		systemctl reload libvirtd 2>/dev/null || systemctl reload virtqemud
	fi
	sleep 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	step "Cleaning up: removing everything the demo added"
	if [ -n "$guest_defined" ]; then
		v destroy "$NAME" >/dev/null 2>&1
		v undefine --nvram "$NAME" >/dev/null 2>&1 && say "guest $NAME undefined, its varstore deleted"
	fi
	[ -n "$made_guest" ] && rm -f "$NVRAM" "/var/log/libvirt/qemu/$NAME.log"
	if [ -n "$entry_added" ]; then
		rm -f "$ENTRY" && say "removed $ENTRY"
	fi
	[ -n "$entry_aside" ] && mv -f "$entry_aside" "$ENTRY" && say "put back your $ENTRY"
	[ -n "$made_qemu_d" ] && rmdir "$HOOKS/qemu.d" 2>/dev/null
	[ -n "$conf_aside" ] && mv -f "$conf_aside" "$CONF" && say "put back your $CONF"
	if [ -n "$qemuconf_saved" ]; then
		cat "$QEMUCONF_BAK" >"$QEMUCONF" && rm -f "$QEMUCONF_BAK" && say "restored $QEMUCONF"
	fi
	if [ -n "$our_libvirtd" ]; then
		lvl_stop "$our_libvirtd" libvirtd && say "stopped the libvirtd the demo started (pid $our_libvirtd)"
	elif [ -n "$reloaded" ]; then
		reload_daemon && say "reloaded libvirtd: it no longer sees the hook"
	fi
	[ -n "$our_virtlogd" ] && lvl_stop "$our_virtlogd" virtlogd && say "stopped the virtlogd the demo started (pid $our_virtlogd)"
	lvl_unmark "$made_run_dir"
	[ -n "$made_demo" ] && rm -rf "$DEMO" && say "removed $DEMO"
	if [ "$rc" -eq 0 ]; then
		printf '\n%sDemo finished: the machine is as it was.%s\n' "$B" "$N"
	else
		printf '\n%sDemo FAILED (exit %d): see above.%s\n' "$B" "$rc" "$N"
	fi
	exit "$rc"
}

# --- preconditions ----------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (it runs libvirtd and installs the hook): sudo make demo"
# One real-libvirt run at a time: the demo sets hook entries, the config
# and qemu.conf aside and reloads the daemon, which would pull the rug from
# under an e2e or bench run.
lvl_lock demo || exit 1
[ -x "$BIN" ] || die "$BIN missing: run make build (make demo does)"
[ -e "$DEMO" ] && die "$DEMO exists: remove it (a leftover of an interrupted demo?) and run again"
if grep -qE '^[[:space:]]*nvram[[:space:]]*=' "$QEMUCONF" 2>/dev/null; then
	die "$QEMUCONF already has an active nvram = [...] list: the demo will not edit it"
fi

step "Installing what is missing (libvirt, QEMU, OVMF)"
missing=$(lvl_missing "${PKGS[@]}" | tr '\n' ' ')
if [ -n "$missing" ]; then
	say "installing: $missing"
	lvl_install "${PKGS[@]}" 2>&1 || die "could not install $missing"
else
	say "all there: ${PKGS[*]}"
fi

trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the firmware pair, declared the old-school way ---------------------
step "1. A firmware CODE/VARS pair at a path no firmware descriptor names"
mkdir -p "$DEMO" && made_demo=1
cp /usr/share/OVMF/OVMF_CODE_4M.fd "$CODE" && cp /usr/share/OVMF/OVMF_VARS_4M.fd "$VARS" || exit 1
chmod 755 "$DEMO" && chmod 644 "$CODE" "$VARS"
show ls -l "$DEMO"

step "2. Declared in $QEMUCONF, as admins have done for years"
cp -p "$QEMUCONF" "$QEMUCONF_BAK" && qemuconf_saved=1
printf '\n# added by libvirt-nvram-hook demo (removed at its end)\nnvram = [ "%s:%s" ]\n' "$CODE" "$VARS" >>"$QEMUCONF"
show tail -n 1 "$QEMUCONF"
say "libvirt 9 ignores this list as soon as QEMU firmware descriptors exist:"
show ls /usr/share/qemu/firmware

# --- libvirtd ---------------------------------------------------------------
step "3. libvirtd"
if [ -e /run/libvirtd.pid ] && [ -e "/proc/$(cat /run/libvirtd.pid)" ]; then
	daemon_pid=$(cat /run/libvirtd.pid)
	say "libvirtd is running (pid $daemon_pid): using it"
elif [ -e /run/virtqemud.pid ] && [ -e "/proc/$(cat /run/virtqemud.pid)" ]; then
	daemon_pid=$(cat /run/virtqemud.pid)
	say "virtqemud is running (pid $daemon_pid): using it"
elif command -v systemctl >/dev/null && systemctl is-active -q libvirtd virtqemud 2>/dev/null; then
	say "libvirt runs under systemd: using it (reloads go through systemctl)"
else
	say "no libvirt daemon running: starting virtlogd and libvirtd for the demo"
	[ -e /run/libvirt ] || made_run_dir=1 # virtlogd and libvirtd make it
	# The markers libvirt checks before autostarting networks, pools and
	# guests: our short-lived daemon autostarts nothing of the machine's.
	lvl_markers
	lvl_kvm_group
	started=0
	lvl_start_daemons || started=$?
	our_virtlogd=$lvl_our_virtlogd our_libvirtd=$lvl_our_libvirtd daemon_pid=$lvl_our_libvirtd
	[ "$started" -eq 0 ] || die "could not start libvirt's daemons"
	[ -n "$our_virtlogd" ] && say "started virtlogd (pid $our_virtlogd)"
	say "started libvirtd (pid $our_libvirtd); it read $QEMUCONF with the nvram list"
fi
for _ in $(seq 120); do v version >/dev/null 2>&1 && break; sleep 0.5; done
show virsh -c "$URI" version --daemon || die "libvirtd does not answer"
v dominfo "$NAME" >/dev/null 2>&1 && die "a guest named $NAME already exists: the demo will not touch it"

# --- the guest --------------------------------------------------------------
step "4. A small UEFI guest on that loader (TCG, no disk: it just sits in the firmware)"
xml=$DEMO/$NAME.xml
lvl_guest_xml qemu "$NAME" 128 "$CODE" >"$xml"
show virsh -c "$URI" define "$xml" && guest_defined=1 made_guest=1 || exit 1
say "libvirt filled in where the varstore goes:"
showsh "virsh -c $URI dumpxml $NAME | grep -A1 '<loader'"

# --- without the hook --------------------------------------------------------
step "5. Without the hook"
if [ -e "$ENTRY" ] || [ -L "$ENTRY" ]; then
	entry_aside=$HOOKS/.50-nvram.demo-aside
	mv "$ENTRY" "$entry_aside" && say "(moved your $ENTRY aside for the demo)"
fi
if [ -e "$CONF" ]; then
	conf_aside=/etc/libvirt/.nvram-hook.conf.demo-aside
	mv "$CONF" "$conf_aside" && say "(moved your $CONF aside: the demo runs on built-in defaults)"
fi
[ -n "$entry_aside" ] && reload_daemon
printf '%s$ virsh -c %s start %s%s\n' "$B" "$URI" "$NAME" "$N"
if v start "$NAME"; then
	die "the guest started without the hook: this machine does not show the problem"
fi
say "That is the problem: the pair in $QEMUCONF is ignored."

# --- with the hook ----------------------------------------------------------
step "6. Installing the hook: one file in $HOOKS/qemu.d, no config"
[ -d "$HOOKS/qemu.d" ] || { mkdir -p "$HOOKS/qemu.d" && made_qemu_d=1; }
show install -m 0755 "$BIN" "$ENTRY" && entry_added=1 || exit 1
say "libvirtd looks for hooks at start and on reload (SIGHUP / systemctl reload):"
reload_daemon && reloaded=1
show "$ENTRY" check
say "What the hook will do for this guest (explain touches nothing):"
showsh "virsh -c $URI dumpxml $NAME | $ENTRY explain"

step "7. Starting the guest (paused first, so the firmware has not yet written to its varstore)"
show virsh -c "$URI" start --paused "$NAME" || exit 1
show ls -l "$NVRAM"
show cmp "$NVRAM" "$VARS" && say "identical: the hook copied $VARS (found in $QEMUCONF)"
show virsh -c "$URI" resume "$NAME" || exit 1
sleep 1
show virsh -c "$URI" domstate "$NAME"
showsh "virsh -c $URI dumpxml $NAME | grep -A1 '<loader'"
if [ -S /dev/log ]; then
	say "The hook logged to syslog (tag libvirt-nvram-hook):"
	if command -v journalctl >/dev/null; then
		journalctl -q -t libvirt-nvram-hook --since "-2min" --no-pager | tail -n 5 | sed 's/^/   /'
	elif [ -r /var/log/syslog ]; then
		grep libvirt-nvram-hook /var/log/syslog | tail -n 5 | sed 's/^/   /'
	fi
else
	say "(no /dev/log here: the hook logged to stderr, which libvirtd keeps only in its debug log;"
	say " set [log] target = file:PATH in $CONF to keep a log file)"
fi

step "8. Removing the demo guest and its varstore"
show virsh -c "$URI" destroy "$NAME"
show virsh -c "$URI" undefine --nvram "$NAME" && guest_defined= || exit 1
show ls -l "$NVRAM" 2>&1
exit 0
