#!/bin/bash
# build-deb.sh BINARY OUTDIR: build the libvirt-nvram-hook .deb with dpkg-deb
# (no debhelper, no Go build: BINARY is packaged as it is) into OUTDIR and
# print its path.
#
# Environment:
#   VERSION            git describe output (make passes it); made a Debian
#                      version by ../version.sh, revision DEB_REVISION (1)
#   ARCH               Debian architecture; default: from BINARY's ELF header
#   MAINTAINER         "Name <address>" for control and changelog; empty: a
#                      placeholder that says it is one (../pkglib.sh)
#   SOURCE_DATE_EPOCH  timestamps inside the package; default: last commit
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
inst=$(dirname "$here")
top=$(dirname "$inst")
# shellcheck source=../pkglib.sh
. "$inst/pkglib.sh"

bin='' outdir='' # set by pkg_args
pkg_args build-deb.sh "$@"
for tool in dpkg-deb gzip md5sum od; do
	command -v "$tool" >/dev/null || {
		echo "build-deb.sh: $tool is needed (apt-get install dpkg gzip coreutils)" >&2
		exit 1
	}
done

name=libvirt-nvram-hook
upstream=$(bash "$inst/version.sh" "${VERSION:-}")
version=$upstream-${DEB_REVISION:-1}
arch=${ARCH:-$(pkg_deb_arch "$(pkg_machine "$bin")")}
maintainer=${MAINTAINER:-$PKG_MAINTAINER}
epoch=$(pkg_date_epoch "$top")
export SOURCE_DATE_EPOCH=$epoch

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022
# mktemp made it 0700, and the package's "./" entry would carry that mode.
chmod 0755 "$stage"
doc=$stage/usr/share/doc/$name

install -d "$stage/DEBIAN" "$stage/usr/libexec" "$stage/etc/libvirt/hooks/qemu.d" \
	"$stage/usr/share/man/man8" "$doc" "$stage/usr/share/lintian/overrides"
install -m 0755 "$bin" "$stage/usr/libexec/$name"
# /etc and /usr are different top-level directories: an absolute link is
# what Debian policy 10.5 asks for here.
ln -s "/usr/libexec/$name" "$stage/etc/libvirt/hooks/qemu.d/50-nvram"
install -m 0644 "$inst/nvram-hook.conf" "$stage/etc/libvirt/nvram-hook.conf"
gzip -9n <"$inst/$name.8" >"$stage/usr/share/man/man8/$name.8.gz"
sed -e "s|@YEAR@|$(date -u -d "@$epoch" +%Y)|" "$here/copyright.in" >"$doc/copyright"
# The licenses of the modules linked into the binary (install/notices).
gzip -9n <"$inst/THIRD-PARTY-NOTICES" >"$doc/THIRD-PARTY-NOTICES.gz"
sed -e "s|@VERSION@|$version|" -e "s|@GIT_VERSION@|${VERSION:-unknown}|" \
	-e "s|@MAINTAINER@|$maintainer|" -e "s|@DATE@|$(date -u -R -d "@$epoch")|" \
	"$here/changelog.in" | gzip -9n >"$doc/changelog.Debian.gz"
install -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/$name"
chmod 0644 "$stage/usr/share/man/man8/$name.8.gz" "$doc/changelog.Debian.gz" "$doc/copyright" "$doc/THIRD-PARTY-NOTICES.gz"

# Maintainer scripts: ../hooklib.sh pasted in at the #HOOKLIB# line.
for script in preinst postinst postrm; do
	while IFS= read -r line; do
		if [[ $line == "#HOOKLIB#" ]]; then
			echo "# ---- install/hooklib.sh ----"
			cat "$inst/hooklib.sh"
			echo "# ---- end of install/hooklib.sh ----"
		else
			printf '%s\n' "$line"
		fi
	done <"$here/$script" >"$stage/DEBIAN/$script"
	chmod 0755 "$stage/DEBIAN/$script"
done
echo /etc/libvirt/nvram-hook.conf >"$stage/DEBIAN/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
# Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, 1 per
# directory and symlink.
size=$(cd "$stage" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' \) -o -printf '1024\n' |
	awk '{ kib += int(($1 + 1023) / 1024) } END { print kib }')
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
	-e "s|@INSTALLED_SIZE@|$size|" "$here/control.in" >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
find "$stage" -exec touch -h -d "@$epoch" {} +

mkdir -p "$outdir"
deb=$outdir/${name}_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
