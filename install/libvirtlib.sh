# shellcheck shell=bash
# libvirtlib.sh: bash helpers shared by the scripts that run a real libvirtd
# of their own (install/demo.sh, internal/bench/virsh.sh, and for its lock
# internal/e2e/run.sh): packages, the daemons' processes, the run-time
# markers that keep a short-lived daemon from autostarting the machine's
# guests, networks and pools, and the real-libvirt lock.

# lvl_missing PKG...: print the Debian packages of the list not installed.
lvl_missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
	done
}

# lvl_install PKG...: install the packages that are missing with apt-get;
# apt's output goes to stderr. Fails if they cannot be installed.
lvl_install() {
	local missing
	missing=$(lvl_missing "$@")
	[ -n "$missing" ] || return 0
	apt-get update -q >&2 || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# lvl_live NAME...: pids of running processes with these names (zombies left
# to init do not count).
lvl_live() {
	ps -eo stat=,pid=,comm= | awk -v names=" $* " '$1 !~ /^Z/ && index(names, " " $3 " ") { print $2 }'
}

# lvl_stop PID NAME: SIGTERM to PID if it still is NAME, wait up to 20 s for
# it to be gone, then SIGKILL. Gone, not a zombie leader: libvirtd's other
# threads still run while its main thread's entry already shows Z.
lvl_stop() {
	local pid=$1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		[ -e "/proc/$pid" ] || return 0
		sleep 0.2
	done
	grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || kill -9 "$pid" 2>/dev/null
	return 0
}

# lvl_markers: create the markers libvirtd checks before autostarting
# domains, networks and storage pools (/run/libvirt/DRIVER/autostarted),
# where missing, and append each one made to the array lvl_made_markers.
lvl_made_markers=()
lvl_markers() {
	local d
	for d in qemu network storage; do
		if [ ! -e "/run/libvirt/$d/autostarted" ]; then
			mkdir -p "/run/libvirt/$d" && : >"/run/libvirt/$d/autostarted" &&
				lvl_made_markers+=("/run/libvirt/$d/autostarted")
		fi
	done
}

# lvl_kvm_group: /dev/kvm group kvm, mode 0660, which udev does on a normal
# host (there is no udev here, so the node is root-only and libvirt finds
# KVM unusable for the qemu user).
lvl_kvm_group() {
	if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
		chgrp kvm /dev/kvm && chmod 660 /dev/kvm
	fi
}

# lvl_start_daemons: start virtlogd (unless one runs) and libvirtd, each as
# a daemon, and wait for libvirtd's pid file. Sets lvl_our_virtlogd (empty
# when a virtlogd ran already) and lvl_our_libvirtd to the pids it started,
# also when it fails halfway, so that the caller stops what did start.
lvl_our_virtlogd='' lvl_our_libvirtd=''
lvl_start_daemons() {
	if [ -z "$(lvl_live virtlogd)" ]; then
		virtlogd -d || { echo "virtlogd -d failed" >&2; return 1; }
		for _ in $(seq 50); do [ -s /run/virtlogd.pid ] && break; sleep 0.1; done
		lvl_our_virtlogd=$(cat /run/virtlogd.pid)
	fi
	libvirtd -d || { echo "libvirtd -d failed" >&2; return 1; }
	for _ in $(seq 100); do [ -s /run/libvirtd.pid ] && break; sleep 0.1; done
	lvl_our_libvirtd=$(cat /run/libvirtd.pid)
}

# lvl_unmark MADE_RUN_DIR: once the daemons started are stopped, remove
# /run/libvirt if MADE_RUN_DIR is non-empty (it did not exist before) and no
# libvirt daemon runs any more; else remove the markers lvl_markers made.
lvl_unmark() {
	if [ -n "$1" ] && [ -z "$(lvl_live libvirtd virtlogd virtqemud)" ]; then
		rm -rf /run/libvirt
	elif [ "${#lvl_made_markers[@]}" -gt 0 ]; then
		rm -f "${lvl_made_markers[@]}"
	fi
}

# lvl_guest_xml TYPE NAME MIB LOADER [NVRAM_ELEMENT]: the XML of a small
# x86_64 UEFI guest (q35, one vCPU, no disk: it sits in the firmware) of
# domain type TYPE (qemu or kvm) on the read-only pflash LOADER, with the
# <nvram> element given, if any.
lvl_guest_xml() {
	cat <<EOF
<domain type='$1'>
  <name>$2</name>
  <memory unit='MiB'>$3</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>$4</loader>${5:+
    $5}
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# lvl_lock WHO: take the machine's real-libvirt lock, which every run of a
# real libvirtd here takes (internal/e2e/run.sh, internal/bench/virsh.sh:
# shared /dev/kvm, cgroups, hook entries, /etc/libvirt), on fd 9 for the
# rest of the script; waits up to 30 min for another run to end.
LVL_LOCK=/run/nvram-hook-real-libvirt.lock
lvl_lock() {
	exec 9>>"$LVL_LOCK" || return 1
	if ! flock -n 9; then
		echo "$1: waiting for $LVL_LOCK (another real-libvirt run holds it; at most 30 min)" >&2
		flock -w 1800 9 || { echo "$1: $LVL_LOCK still held after 30 min" >&2; return 1; }
	fi
}
