#!/usr/bin/env bash
# Benchmarks of the hook (what `make bench` runs). Whole processes: each
# case is timed by internal/bench/spawn (fork+exec, input file on stdin, no
# shell), interleaved round-robin with its references in the same run. As
# root, also what a user feels: virsh start --paused + destroy of a UEFI
# guest on a real libvirtd with and without the hook (virsh.sh, under the
# machine's real-libvirt lock). internal/bench/report writes
# internal/bench/results.md with the figures and issue #14's budgets next to
# them (reported, not enforced). Inputs are generated into a temp dir and
# removed afterwards; nothing generated is committed.
#
# Needs: Go, coreutils (cp, sync). No root for the process part (as root the
# created varstores are chowned to the qemu user like in production); the
# virsh part needs root and installs Debian's libvirt if missing.
#
# Environment:
#   HOOK=PATH               binary to measure (default: bin/libvirt-nvram-hook
#                           when up to date, else built like `make build`)
#   BENCH_OUT=FILE          results file (default internal/bench/results.md)
#   BENCH_TMPDIR=DIR        where inputs and varstores go; its filesystem
#                           decides what fsync costs (default $TMPDIR or /tmp)
#   BENCH_RUNS_FAST=N       runs per start-up case (default 500)
#   BENCH_RUNS_FILTER=N     runs per 1 MiB filter case (default 100)
#   BENCH_RUNS_CREATE=N     runs per 64 MiB create case (default 20)
#   BENCH_RUNS_SMALL=N      runs per 540 KiB create case (default 60)
#   BENCH_QUIET_LOAD=X      wait until the 1-minute load average is below X
#   BENCH_QUIET_WAIT=SEC    ... for at most SEC seconds (default 0: no wait)
#   BENCH_VIRSH=0           skip the real-libvirt part (default: run it as root)
#   BENCH_VIRSH_BLOCKS=N    its alternating blocks (default 6)
#   BENCH_VIRSH_N=N         warm and first starts per block (default 6 each)
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
out=${BENCH_OUT:-$root/internal/bench/results.md}
n_fast=${BENCH_RUNS_FAST:-500}
n_filter=${BENCH_RUNS_FILTER:-100}
n_create=${BENCH_RUNS_CREATE:-20}
n_small=${BENCH_RUNS_SMALL:-60}
quiet_load=${BENCH_QUIET_LOAD:-0.7}
quiet_wait=${BENCH_QUIET_WAIT:-0}

say() { printf 'bench: %s\n' "$*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

tmp=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/nvram-hook-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
case $tmp in *[[:space:]]*) say "temp dir $tmp contains white space"; exit 1 ;; esac
bin=$tmp/bin
mkdir -p "$bin"

# --- build -----------------------------------------------------------------
# The hook and the references the same way as `make build`.
ldflags="-s -w"
hook=${HOOK:-}
if [ -z "$hook" ] && [ -x bin/libvirt-nvram-hook ] &&
	[ -z "$(find hook internal go.mod go.sum -newer bin/libvirt-nvram-hook \( -name '*.go' -o -name 'go.*' \) ! -name '*_test.go' ! -path 'internal/bench/*' -print -quit)" ]; then
	hook=$root/bin/libvirt-nvram-hook
	hook_desc="bin/libvirt-nvram-hook ($("$hook" --version 2>/dev/null | cut -d' ' -f2))"
fi
if [ -z "$hook" ]; then
	say "building the hook (bin/libvirt-nvram-hook is missing or older than the sources)"
	version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags -X github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/app.Version=$version" -o "$bin/hook" ./hook
	hook=$bin/hook
	hook_desc="built by run.sh from the working tree ($version)"
fi
[ -n "${hook_desc:-}" ] || hook_desc=$hook
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$bin/libvirtcopy" ./internal/bench/libvirtcopy
# The minimal program, and with packages linked in (see minimal/main.go).
for tag in none deps hookdeps; do
	CGO_ENABLED=0 "$GO" build -tags "$tag" -trimpath -ldflags "$ldflags" -o "$bin/min-$tag" ./internal/bench/minimal
done
for p in spawn report geninput virshstart; do
	CGO_ENABLED=0 "$GO" build -trimpath -o "$bin/$p" "./internal/bench/$p"
done

# --- inputs ----------------------------------------------------------------
d=$tmp/in
mkdir -p "$d"
"$bin/geninput" -src testdata/libvirt-9.0 -dir "$d"
x=$d/xml nv=$d/nvram t=$d/tmpl
conf="env=LIBVIRT_NVRAM_HOOK_CONFIG=$d/hook.conf"

# Sanity, untimed: the cases do what they claim.
# shellcheck disable=SC2154 # stdin is set on each call: stdin=FILE check_empty ...
check_empty() { # the hook prints nothing and exits 0
	local got
	got=$("$hook" "$@" <"$stdin") || { say "$* failed"; exit 1; }
	[ -z "$got" ] || { say "$* printed XML"; exit 1; }
}
for op in "start begin" "started begin" "stopped end" "release end" "reconnect begin"; do
	set -- $op
	stdin=$x/$1.xml check_empty uefi-custom $op -
done
stdin=$x/prepare-bios.xml check_empty bios-guest prepare begin -
stdin=$x/prepare-exists.xml check_empty uefi-custom prepare begin -
for op in migrate restore; do
	LIBVIRT_NVRAM_HOOK_CONFIG=$d/hook.conf "$hook" uefi-custom $op begin - <"$x/$op-1m.xml" >"$tmp/$op.out"
	grep -q "<nvram template='$t/OVMF_VARS_4M.fd'>$nv/uefi-custom_VARS.fd</nvram>" "$tmp/$op.out" ||
		{ say "$op filter did not add <nvram>"; exit 1; }
	[ "$(grep -c '<disk ' "$tmp/$op.out")" = 2000 ] || { say "$op filter lost disks"; exit 1; }
done
say "inputs in $d: $(stat -c %s "$x/migrate-1m.xml") bytes of migrate XML, templates $(cd "$t" && stat -c '%n=%s' -- * | tr '\n' ' ')"

# --- quiet machine ---------------------------------------------------------
if [ "$quiet_wait" -gt 0 ]; then
	waited=0
	until below "$(load1)" "$quiet_load" || [ "$waited" -ge "$quiet_wait" ]; do
		say "load $(load1) >= $quiet_load, waiting ($waited/$quiet_wait s)"
		sleep 30
		waited=$((waited + 30))
	done
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
date_start=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# --- timed runs ------------------------------------------------------------
ref_in=stdin=$x/prepare-exists.xml
say "start-up cases: $n_fast runs each"
"$bin/spawn" -n "$n_fast" -warmup $((n_fast / 10 + 1)) -o "$tmp/startup.json" \
	"true $ref_in -- /bin/true" \
	"go-min $ref_in -- $bin/min-none" \
	"go-deps $ref_in -- $bin/min-deps" \
	"go-hookdeps $ref_in -- $bin/min-hookdeps" \
	"start stdin=$x/start.xml -- $hook uefi-custom start begin -" \
	"started stdin=$x/started.xml -- $hook uefi-custom started begin -" \
	"stopped stdin=$x/stopped.xml -- $hook uefi-custom stopped end -" \
	"release stdin=$x/release.xml -- $hook uefi-custom release end -" \
	"reconnect stdin=$x/reconnect.xml -- $hook uefi-custom reconnect begin -" \
	"prepare-bios stdin=$x/prepare-bios.xml -- $hook bios-guest prepare begin -" \
	"prepare-exists stdin=$x/prepare-exists.xml -- $hook uefi-custom prepare begin -" \
	"migrate-small stdin=$x/migrate-small.xml $conf -- $hook uefi-custom migrate begin -"

say "1 MiB filter cases: $n_filter runs each"
"$bin/spawn" -n "$n_filter" -warmup $((n_filter / 10 + 1)) -o "$tmp/filter.json" \
	"go-min-1m stdin=$x/migrate-1m.xml -- $bin/min-none" \
	"migrate-1m stdin=$x/migrate-1m.xml $conf -- $hook uefi-custom migrate begin -" \
	"restore-1m stdin=$x/restore-1m.xml $conf -- $hook uefi-custom restore begin -"

# A created file is removed after each run (untimed), so every run creates.
create() { # NAME XML-or-- TEMPLATE KIND
	local f=$nv/$1_VARS.fd
	case $4 in
	hook) echo "$1 stdin=$x/$2 $conf stat=$f rm=$f -- $hook uefi-custom prepare begin -" ;;
	cp) echo "$1 stat=$f rm=$f -- cp --sparse=always $t/$3 $f -- sync $f" ;;
	libvirt) echo "$1 stat=$f rm=$f rm=$f.new -- $bin/libvirtcopy $t/$3 $f" ;;
	esac
}
# The hook's names are the ones in the generated XML.
say "64 MiB create cases: $n_create runs each"
"$bin/spawn" -n "$n_create" -warmup 2 -o "$tmp/create.json" \
	"$(create c-aavmf create-aavmf.xml - hook)" \
	"$(create cp-aavmf - AAVMF_VARS.fd cp)" \
	"$(create lv-aavmf - AAVMF_VARS.fd libvirt)"

say "540 KiB create cases: $n_small runs each"
"$bin/spawn" -n "$n_small" -warmup 3 -o "$tmp/create-small.json" \
	"$(create c-ovmf create-ovmf.xml - hook)" \
	"$(create cp-ovmf - OVMF_VARS_4M.fd cp)" \
	"$(create lv-ovmf - OVMF_VARS_4M.fd libvirt)"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- virsh start on a real libvirtd (root) ------------------------------------
virsh_args=()
virsh_failed=''
if [ "${BENCH_VIRSH:-1}" = 0 ]; then
	virsh_args=(-virsh-skipped "skipped (BENCH_VIRSH=0)")
elif [ "$(id -u)" -ne 0 ]; then
	virsh_args=(-virsh-skipped "needs root (make bench as root runs it)")
	say "not root: skipping virsh start on a real libvirtd"
else
	# Its failure is reported in results.md and in the exit status below.
	bash internal/bench/virsh.sh "$hook" "$bin/virshstart" "$tmp/virsh.json" 2>&1 >/dev/null | tee "$tmp/virsh.log" >&2 || true
fi
if [ -s "$tmp/virsh.json" ]; then
	virsh_args=(-virsh "$tmp/virsh.json")
elif [ "${#virsh_args[@]}" -eq 0 ]; then
	why=$(grep '^bench: ' "$tmp/virsh.log" | grep -v waiting | tail -n 1 | sed 's/^bench: //' || true)
	virsh_args=(-virsh-skipped "the real-libvirt part failed: ${why:-see the output of make bench}")
	virsh_failed=1
fi

# --- report ----------------------------------------------------------------
small=$(stat -c %s "$x/migrate-small.xml")
cat >"$tmp/spec" <<EOF
section|Start-up: phases with nothing to do (2.4–3 KB of libvirt's XML on stdin, no config)|true,go-min
row|true|/bin/true|
row|go-min|minimal Go (drains stdin)|
row|go-deps|minimal Go + etree, logrus, ini.v1 linked in|
row|go-hookdeps|minimal Go + every package outside internal/ the hook links|
row|start|hook \`start begin\`|go-min<=1.3
row|started|hook \`started begin\`|go-min<=1.3
row|stopped|hook \`stopped end\`|go-min<=1.3
row|release|hook \`release end\`|go-min<=1.3
row|reconnect|hook \`reconnect begin\`|go-min<=1.3
row|prepare-bios|hook \`prepare begin\`, BIOS domain|go-min<=1.3
row|prepare-exists|hook \`prepare begin\`, UEFI, varstore exists|go-min<=1.5
row|migrate-small|hook \`migrate begin\`, $small-byte domain without \`<nvram>\` (the filter adds it; varstore exists)|go-min<=1.5
note|The minimal Go program and the hook are built alike (CGO_ENABLED=0 -trimpath -ldflags "-s -w"); the two "minimal +" rows link packages in without using them: what their initialisation and size cost on every call.
section|migrate/restore filter of a 1 MiB domain XML (2,000 disks, no \`<nvram>\`; the filter adds it and prints the document; varstore exists)|go-min-1m
row|go-min-1m|minimal Go draining the same 1 MiB|
row|migrate-1m|hook \`migrate begin\`, 1 MiB|ms<=100,rssmib<=30
row|restore-1m|hook \`restore begin\`, 1 MiB|ms<=100,rssmib<=30
section|Creating a varstore from the 64 MiB AAVMF template (all zeros, every block allocated, like Debian's)|cp-aavmf,lv-aavmf
row|cp-aavmf|\`cp --sparse=always\`, then \`sync FILE\`|
row|lv-aavmf|libvirt's way: 1 KiB reads/writes, fsync, rename|
row|c-aavmf|hook \`prepare begin\` creating it|alloc<=cp-aavmf
note|The hook run includes everything: XML, config, the template lookup (six firmware descriptors, a qemu.conf, the built-in table), the owner lookup, the copy, fsync of the file, the no-replace commit and fsync of the directory. cp and sync are two processes timed together.
section|Creating a varstore from an OVMF_VARS_4M-like template (540672 bytes of data, no zero block)|cp-ovmf,lv-ovmf
row|cp-ovmf|\`cp --sparse=always\`, then \`sync FILE\`|
row|lv-ovmf|libvirt's way|
row|c-ovmf|hook \`prepare begin\` creating it|
EOF

fs=$(df -PT "$tmp" | awk 'NR == 2 { print $2 " on " $1 }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
# The bench keeps one CPU busy itself, so only the load at the start says
# whether other jobs were running.
note="quiet at the start (1-minute load average ${load_start%% *} < $quiet_load); the bench itself keeps one CPU busy, which the load at the end includes"
below "${load_start%% *}" "$quiet_load" ||
	note="**busy: the 1-minute load average was ${load_start%% *} (not below $quiet_load) at the start; other jobs shared the CPUs, read the ratios with care**"
"$bin/report" -spec "$tmp/spec" -o "$out" \
	-meta "CPU=$cpu" \
	-meta "cores=$(nproc)" \
	-meta "kernel=$(uname -sr)" \
	-meta "Go=$("$GO" version | cut -d' ' -f3-)" \
	-meta "date=$date_start" \
	-meta "commit measured=$(git log -1 --format='%h %s (%cd)' --date=format:'%Y-%m-%d %H:%M' 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- hook internal go.mod go.sum 2>/dev/null || echo ', with uncommitted changes')" \
	-meta "load average at start=$load_start" \
	-meta "load average at end=$load_end" \
	-meta "machine=$note" \
	-meta "temp dir filesystem=$fs" \
	-meta "user=$(id -un)$([ "$(id -u)" = 0 ] && echo ' (root: created varstores are chowned to the qemu user)')" \
	-meta "hook=$hook_desc ($(stat -c %s "$hook") bytes; minimal $(stat -c %s "$bin/min-none"), minimal + deps $(stat -c %s "$bin/min-deps"))" \
	"${virsh_args[@]}" \
	"$tmp/startup.json" "$tmp/filter.json" "$tmp/create.json" "$tmp/create-small.json"
if [ -n "$virsh_failed" ]; then
	say "results written without the real-libvirt figures: the virsh part failed (see above)"
	exit 1
fi
