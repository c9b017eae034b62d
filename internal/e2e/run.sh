#!/usr/bin/env bash
# The real-libvirt end-to-end suite (`make e2e`). Installs what is missing
# from Debian packages (libvirt, QEMU, firmware, mmdebstrap), builds or
# reuses the cached Debian 13 (libvirt 11.3) and sid (libvirt 12.8) roots
# (roots.sh; E2E_REBUILD_ROOTS=1 forces a rebuild), runs the Go tests tagged
# e2e (which start and stop their own libvirtd and virtlogd on every host)
# and ends with the scenario x libvirt table and "N passed, N failed".
# Holds the machine-wide real-libvirt lock for the whole run. Needs root. A
# skip (not root, packages not installable, no root for a generation) exits
# 0, except with CI=true, where a skip is a failure.
set -u
cd "$(dirname "$0")/../.." || exit 1
t_all=$SECONDS

skip() {
	echo "e2e: SKIP: $*"
	if [ "${CI:-}" = "true" ]; then
		echo "e2e: CI=true: the real-libvirt suite must run, so this skip is a failure"
		exit 1
	fi
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (it starts libvirtd and installs the hook under /etc/libvirt); run: sudo make e2e"

# One real-libvirt run at a time on this machine (shared /dev/kvm, cgroups,
# ports): the lock every user of a real daemon here takes.
# shellcheck source=../../install/libvirtlib.sh
. install/libvirtlib.sh
lvl_lock e2e || exit 1

pkgs=(libvirt-daemon-system libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 qemu-utils passwd util-linux mmdebstrap)
t0=$SECONDS
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	command -v apt-get >/dev/null || skip "packages missing (${missing[*]}) and no apt-get to install them"
	echo "e2e: installing ${missing[*]}"
	apt-get update || skip "apt-get update failed; cannot install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" ||
		skip "could not install ${missing[*]}"
fi
echo "e2e: timing: packages $((SECONDS - t0))s"

# The newer generations' roots (cached; a second run downloads nothing).
cache=${E2E_ROOT_CACHE:-/var/cache/libvirt-nvram-hook-e2e}
t0=$SECONDS
if ! bash internal/e2e/roots.sh "$cache" trixie sid; then
	[ "${CI:-}" = "true" ] && { echo "e2e: CI=true: a root could not be built"; exit 1; }
	echo "e2e: a root could not be built: its generation is skipped"
fi
echo "e2e: timing: roots $((SECONDS - t0))s"
export E2E_ROOT_CACHE=$cache

GO=${GO:-go}
if ! command -v "$GO" >/dev/null && [ -x /usr/local/go/bin/go ]; then
	GO=/usr/local/go/bin/go
fi
[ -x bin/libvirt-nvram-hook ] || { echo "e2e: bin/libvirt-nvram-hook missing: run make build (make e2e does)"; exit 1; }

log=$(mktemp /tmp/nvram-hook-e2e-output.XXXXXX)
start=$(date +%s)
"$GO" test -tags e2e -count=1 -v -timeout 35m ${E2E_RUN:+-run "$E2E_RUN"} ./internal/e2e/ 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -cE '^[[:space:]]*--- PASS: ' "$log")
failed=$(grep -cE '^[[:space:]]*--- FAIL: ' "$log")
skipped=$(grep -cE '^[[:space:]]*--- SKIP: ' "$log")
rm -f "$log"
echo "e2e: timing: go test $(($(date +%s) - start))s, whole make e2e $((SECONDS - t_all))s"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "e2e: go test exited with status $rc before reporting a failed test (setup failure, panic or timeout: see above)"
fi
if [ "$skipped" -gt 0 ]; then
	echo "e2e: $skipped test(s) skipped"
	if [ "${CI:-}" = "true" ]; then
		echo "e2e: CI=true: a skip is a failure"
		rc=1
	fi
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
