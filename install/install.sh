#!/bin/bash
# install.sh: install or uninstall libvirt-nvram-hook from a source tree.
#
#   install.sh install BINARY
#   install.sh uninstall
#
# Environment:
#   PREFIX           default /usr/local; the binary goes to PREFIX/libexec,
#                    the man page to PREFIX/share/man/man8, the license and
#                    third-party notices to PREFIX/share/doc/libvirt-nvram-hook
#   DESTDIR          stage everything under this directory: no daemon is
#                    reloaded and nothing outside DESTDIR is looked at
#   LIBVIRT_VERSION  skip asking the installed libvirt daemon its version
#
# Exit status: 0 done (or nothing to do), 1 failure or refusal, 2 usage.
# Both commands print what they changed and why. Varstores are never touched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")
# Files and directories readable by all whatever the caller's umask: a
# session libvirtd runs hooks as its user.
umask 022
# shellcheck source=hooklib.sh
. "$here/hooklib.sh"

NAME=libvirt-nvram-hook
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
while [[ $DESTDIR == */ ]]; do DESTDIR=${DESTDIR%/}; done
PREFIX=${PREFIX%/}

BIN=$PREFIX/libexec/$NAME         # final path, as libvirt sees it
HOOKS=/etc/libvirt/hooks
ENTRY=$HOOKS/qemu.d/50-nvram      # libvirt >= 6.5
LEGACY=$HOOKS/qemu                # the only hook before libvirt 6.5
CONF=/etc/libvirt/nvram-hook.conf
SAMPLE=$here/nvram-hook.conf
NVRAM_DIR=/var/lib/libvirt/qemu/nvram
MAN=$PREFIX/share/man/man8/$NAME.8
DOC=$PREFIX/share/doc/$NAME
# Plain files installed as they are: source, then destination.
DATA=("$here/$NAME.8" "$MAN" "$top/LICENSE" "$DOC/LICENSE" "$here/THIRD-PARTY-NOTICES" "$DOC/THIRD-PARTY-NOTICES")
QEMU_D_SINCE=6.5

changed=0
unchanged=0
tmpfiles=()
trap 'rm -f "${tmpfiles[@]}"' EXIT

die() {
	echo "$NAME: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: install.sh install BINARY
       install.sh uninstall
environment: PREFIX (default /usr/local), DESTDIR, LIBVIRT_VERSION
EOF
	exit 2
}

# report WHAT PATH STATE [WHY]: one line of the summary. STATE "unchanged",
# "absent" and "kept" count as unchanged, anything else as a change.
report() {
	local what=$1 path=$2 state=$3 why=${4:-}
	case $state in
	unchanged* | absent* | kept* | "left alone"*) unchanged=$((unchanged + 1)) ;;
	*) changed=$((changed + 1)) ;;
	esac
	printf '  %-7s %s: %s%s\n' "$what" "$DESTDIR$path" "$state" "${why:+ ($why)}"
}

note() {
	printf '  %-7s %s\n' "$1" "$2"
}

# is_ours PATH: PATH (under DESTDIR) is a symlink to this PREFIX's binary.
is_ours() {
	[[ -L $DESTDIR$1 && $(readlink -- "$DESTDIR$1") == "$BIN" ]]
}

# present PATH: something is at PATH, a dangling symlink included.
present() {
	[[ -e $1 || -L $1 ]]
}

# newtemp DIR: a fresh temp name in DIR, removed on exit unless renamed.
newtemp() {
	local t
	t=$(mktemp "$1/.$NAME.XXXXXX")
	tmpfiles+=("$t")
	printf '%s\n' "$t"
}

# put_link TARGET PATH: create PATH (under DESTDIR) as a symlink to TARGET
# by renaming a finished link into place. The temp link is made in hooks/,
# not in qemu.d/, where libvirt would run it as a hook of its own.
put_link() {
	local target=$1 path=$2 tmp
	tmp=$(newtemp "$DESTDIR$HOOKS")
	rm -f -- "$tmp"
	ln -s -- "$target" "$tmp"
	mv -fT -- "$tmp" "$DESTDIR$path"
}

# put_file SRC PATH MODE: install SRC as PATH (under DESTDIR) atomically: a
# copy to a temp file in the same directory, synced, then renamed over PATH,
# so that a running hook or a crash never sees a half-written file.
put_file() {
	local src=$1 path=$2 mode=$3 tmp
	tmp=$(newtemp "$(dirname -- "$DESTDIR$path")")
	cp -- "$src" "$tmp"
	chmod "$mode" -- "$tmp"
	sync -- "$tmp" 2>/dev/null || true
	mv -fT -- "$tmp" "$DESTDIR$path"
}

# data_what PATH: the summary's word for one of the DATA files.
data_what() {
	[[ $1 == "$MAN" ]] && echo man || echo doc
}

# put_data SRC PATH: install a plain file (mode 0644) unless the same bytes
# are there already.
put_data() {
	local src=$1 path=$2 what
	what=$(data_what "$path")
	if [[ -f $DESTDIR$path && ! -L $DESTDIR$path ]] && cmp -s -- "$src" "$DESTDIR$path"; then
		if [[ $(stat -c %a -- "$DESTDIR$path") == 644 ]]; then
			report "$what" "$path" unchanged
			return
		fi
		chmod 0644 -- "$DESTDIR$path"
		report "$what" "$path" "mode set to 0644"
		return
	fi
	local state=installed
	present "$DESTDIR$path" && state=updated
	mkdir -p -- "$(dirname -- "$DESTDIR$path")"
	put_file "$src" "$path" 0644
	report "$what" "$path" "$state"
}

check_root() {
	if [[ -z $DESTDIR && $EUID -ne 0 ]]; then
		die "must run as root to write $PREFIX/libexec and /etc/libvirt (or set DESTDIR to stage the files in a directory)"
	fi
}

# libvirt_version: sets lv, the version to plan for, and lv_desc, where it
# came from.
libvirt_version() {
	if [[ -n ${LIBVIRT_VERSION:-} ]]; then
		lv=$LIBVIRT_VERSION
		lv_desc="libvirt $lv, from LIBVIRT_VERSION"
	elif [[ -n $DESTDIR ]]; then
		lv=$QEMU_D_SINCE
		lv_desc="libvirt >= $QEMU_D_SINCE assumed: DESTDIR set, the live system is not asked; set LIBVIRT_VERSION to override"
	elif lv=$(nvh_libvirt_version); then
		lv_desc="libvirt $lv, from the installed daemon"
	else
		lv=$QEMU_D_SINCE
		lv_desc="libvirt >= $QEMU_D_SINCE assumed: no libvirtd or virtqemud found; set LIBVIRT_VERSION to override"
	fi
	[[ $lv =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "bad libvirt version '$lv' ($lv_desc)"
}

do_install() {
	local src=$1
	[[ -f $src ]] || die "no binary at $src (run 'make build' first)"
	[[ $PREFIX == /* ]] || die "PREFIX must be an absolute path, not '$PREFIX'"
	check_root
	[[ -f $SAMPLE ]] || die "config sample $SAMPLE is missing"
	local i
	for ((i = 0; i < ${#DATA[@]}; i += 2)); do
		[[ -f ${DATA[i]} ]] || die "${DATA[i]} is missing from the source tree"
		if [[ -d $DESTDIR${DATA[i + 1]} && ! -L $DESTDIR${DATA[i + 1]} ]]; then
			die "refusing to install: $DESTDIR${DATA[i + 1]} is a directory; nothing was changed"
		fi
	done

	# Decide everything before changing anything, so that a refusal leaves
	# the host as it was.
	local had_hook=
	nvh_had_qemu_hook "$DESTDIR" && had_hook=1
	libvirt_version
	local entry legacy_mode=
	if nvh_version_ge "$lv" "$QEMU_D_SINCE"; then
		entry=$ENTRY
	else
		legacy_mode=1
		entry=$LEGACY
		if present "$DESTDIR$LEGACY" && ! is_ours "$LEGACY"; then
			cat >&2 <<EOF
$NAME: refusing to install: libvirt $lv (${lv_desc#*, }) runs only
$LEGACY as its qemu hook (the qemu.d/ directory needs libvirt >= $QEMU_D_SINCE),
and $DESTDIR$LEGACY is someone else's. Nothing was changed. Either:
  1. upgrade libvirt to $QEMU_D_SINCE or later and run this again (the hook then
     goes to $ENTRY, next to your script); or
  2. install the binary alone:
       install -D -m 0755 $src $DESTDIR$BIN
     and call it from your script for the prepare, migrate and restore
     operations as: $BIN "\$1" "\$2" "\$3" "\$4"
     with the same domain XML on its stdin; fail if it fails, and for migrate
     and restore use its stdout, when not empty, as the new domain XML.
EOF
			exit 1
		fi
	fi
	if [[ -d $DESTDIR$BIN && ! -L $DESTDIR$BIN ]]; then
		die "refusing to install: $DESTDIR$BIN is a directory; nothing was changed"
	fi
	if present "$DESTDIR$entry" && ! is_ours "$entry"; then
		local what="something else"
		[[ -L $DESTDIR$entry ]] && what="a symlink to $(readlink -- "$DESTDIR$entry")"
		die "refusing to install: $DESTDIR$entry is $what, not a link to $BIN; nothing was changed (if it is another installation of $NAME, uninstall that first)"
	fi

	echo "$NAME install (PREFIX=$PREFIX${DESTDIR:+, DESTDIR=$DESTDIR}):"

	# The binary. Same bytes: leave it (and its mtime) alone.
	mkdir -p -- "$DESTDIR$PREFIX/libexec"
	if [[ -f $DESTDIR$BIN && ! -L $DESTDIR$BIN ]] && cmp -s -- "$src" "$DESTDIR$BIN"; then
		if [[ $(stat -c %a -- "$DESTDIR$BIN") == 755 ]]; then
			report binary "$BIN" unchanged
		else
			chmod 0755 -- "$DESTDIR$BIN"
			report binary "$BIN" "mode set to 0755"
		fi
	elif present "$DESTDIR$BIN"; then
		put_file "$src" "$BIN" 0755
		report binary "$BIN" "upgraded" "replaced atomically; running hooks finish with the old one, no restart needed"
	else
		put_file "$src" "$BIN" 0755
		report binary "$BIN" installed
	fi

	# The hook entry.
	mkdir -p -- "$DESTDIR$(dirname -- "$entry")"
	if is_ours "$entry"; then
		report hook "$entry" "unchanged" "-> $BIN"
	else
		put_link "$BIN" "$entry"
		report hook "$entry" "created" "-> $BIN; $lv_desc"
	fi
	# Our link in the other place would run the hook twice.
	local other=$LEGACY
	[[ -n $legacy_mode ]] && other=$ENTRY
	if is_ours "$other"; then
		rm -f -- "$DESTDIR$other"
		report hook "$other" "removed" "replaced by $entry"
	fi
	if [[ -z $legacy_mode ]] && present "$DESTDIR$LEGACY" && ! is_ours "$LEGACY"; then
		if nvh_is_hook "$DESTDIR" "$DESTDIR$LEGACY"; then
			report hook "$LEGACY" "left alone" "not ours; libvirt keeps running it, before the qemu.d/ hooks"
		else
			report hook "$LEGACY" "left alone" "not ours; not executable, so libvirt ignores it"
		fi
	fi

	# The config: only when there is none.
	if present "$DESTDIR$CONF"; then
		if cmp -s -- "$SAMPLE" "$DESTDIR$CONF"; then
			report config "$CONF" unchanged
		else
			report config "$CONF" "kept" "exists and differs from the sample; not replaced"
		fi
	else
		mkdir -p -- "$DESTDIR$(dirname -- "$CONF")"
		put_file "$SAMPLE" "$CONF" 0644
		report config "$CONF" installed "every key commented out: built-in defaults apply"
	fi

	# The man page and the license texts: plain files, same bytes left alone.
	for ((i = 0; i < ${#DATA[@]}; i += 2)); do
		put_data "${DATA[i]}" "${DATA[i + 1]}"
	done

	# Reload: libvirtd caches "no qemu hook" from its start (or last SIGHUP)
	# but lists qemu.d/ afresh on every call once it knows of a hook.
	if [[ -n $had_hook ]]; then
		note reload "not needed: libvirt already had a qemu hook, it picks up changes on the next call"
	elif [[ -n $DESTDIR ]]; then
		note reload "skipped: DESTDIR set; this is the first qemu hook there, so reload libvirtd or virtqemud on the target host (systemctl reload, or SIGHUP)"
	else
		note reload "needed: this is the host's first qemu hook"
		local line
		while IFS= read -r line; do
			note reload "$line"
		done < <(nvh_reload_libvirt "" 2>&1)
	fi
	summary
}

do_uninstall() {
	[[ $PREFIX == /* ]] || die "PREFIX must be an absolute path, not '$PREFIX'"
	check_root
	echo "$NAME uninstall (PREFIX=$PREFIX${DESTDIR:+, DESTDIR=$DESTDIR}):"

	local entry
	for entry in "$ENTRY" "$LEGACY"; do
		if is_ours "$entry"; then
			rm -f -- "$DESTDIR$entry"
			report hook "$entry" removed
		elif [[ $entry == "$ENTRY" ]] && present "$DESTDIR$entry"; then
			report hook "$entry" "left alone" "not a link to $BIN"
		fi
	done

	if [[ -d $DESTDIR$BIN && ! -L $DESTDIR$BIN ]]; then
		die "$DESTDIR$BIN is a directory; not removing it"
	elif present "$DESTDIR$BIN"; then
		rm -f -- "$DESTDIR$BIN"
		report binary "$BIN" removed
	else
		report binary "$BIN" "absent"
	fi

	if ! present "$DESTDIR$CONF"; then
		report config "$CONF" "absent"
	elif [[ -f $SAMPLE ]] && cmp -s -- "$SAMPLE" "$DESTDIR$CONF"; then
		rm -f -- "$DESTDIR$CONF"
		report config "$CONF" removed "same as the shipped sample"
	else
		report config "$CONF" "kept" "modified from the shipped sample; delete it yourself if unwanted"
	fi

	local i path
	for ((i = 1; i < ${#DATA[@]}; i += 2)); do
		path=${DATA[i]}
		if [[ -d $DESTDIR$path && ! -L $DESTDIR$path ]]; then
			report "$(data_what "$path")" "$path" "left alone" "a directory, not ours"
		elif present "$DESTDIR$path"; then
			rm -f -- "$DESTDIR$path"
			report "$(data_what "$path")" "$path" removed
		else
			report "$(data_what "$path")" "$path" absent
		fi
	done
	rmdir -- "$DESTDIR$DOC" 2>/dev/null || true

	note nvram "$DESTDIR$NVRAM_DIR: not touched (varstores stay)"
	note reload "not needed: libvirt skips a hook that is gone"
	summary
}

summary() {
	if ((changed == 0)); then
		echo "Nothing changed: all $unchanged unchanged."
	else
		echo "Done: $changed changed, $unchanged unchanged."
	fi
}

case ${1-} in
install)
	(($# == 2)) || usage
	do_install "$2"
	;;
uninstall)
	(($# == 1)) || usage
	do_uninstall
	;;
*) usage ;;
esac
