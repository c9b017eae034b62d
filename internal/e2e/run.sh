#!/usr/bin/env bash
# The real-libvirt end-to-end suite (`make e2e`). Installs what is missing
# from Debian packages, runs the Go tests tagged e2e (which start and stop
# their own libvirtd, virtlogd and a second libvirt host), and ends with
# "N passed, N failed". Needs root. A skip (not root, packages not
# installable) exits 0, except with CI=true, where a skip is a failure.
set -u
cd "$(dirname "$0")/../.." || exit 1

skip() {
	echo "e2e: SKIP: $*"
	if [ "${CI:-}" = "true" ]; then
		echo "e2e: CI=true: the real-libvirt suite must run, so this skip is a failure"
		exit 1
	fi
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (it starts libvirtd and installs the hook under /etc/libvirt); run: sudo make e2e"

pkgs=(libvirt-daemon-system libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 qemu-utils passwd util-linux)
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

GO=${GO:-go}
if ! command -v "$GO" >/dev/null && [ -x /usr/local/go/bin/go ]; then
	GO=/usr/local/go/bin/go
fi
[ -x bin/libvirt-nvram-hook ] || { echo "e2e: bin/libvirt-nvram-hook missing: run make build (make e2e does)"; exit 1; }

log=$(mktemp /tmp/nvram-hook-e2e-output.XXXXXX)
start=$(date +%s)
"$GO" test -tags e2e -count=1 -v -timeout 15m ./internal/e2e/ 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -cE '^[[:space:]]*--- PASS: ' "$log")
failed=$(grep -cE '^[[:space:]]*--- FAIL: ' "$log")
rm -f "$log"
echo "e2e: took $(($(date +%s) - start))s"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "e2e: go test exited with status $rc before reporting a failed test (setup failure, panic or timeout: see above)"
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
