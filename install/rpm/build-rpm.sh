#!/bin/bash
# build-rpm.sh BINARY OUTDIR: build the libvirt-nvram-hook RPM from
# libvirt-nvram-hook.spec with rpmbuild (Debian: apt-get install rpm),
# packaging BINARY as it is, into OUTDIR, and print its path.
#
# Environment:
#   VERSION            git describe output (make passes it); made an RPM
#                      version by ../version.sh
#   ARCH               RPM architecture; default: from BINARY's ELF header
#   MAINTAINER         "Name <address>" for Packager and the changelog;
#                      empty: a placeholder that says it is one (../pkglib.sh)
#   SOURCE_DATE_EPOCH  build time recorded in the package; default: last commit
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
inst=$(dirname "$here")
top=$(dirname "$inst")
# shellcheck source=../pkglib.sh
. "$inst/pkglib.sh"

bin='' outdir='' # set by pkg_args
pkg_args build-rpm.sh "$@"
command -v rpmbuild >/dev/null || {
	echo "build-rpm.sh: rpmbuild is needed (Debian: apt-get install rpm)" >&2
	exit 1
}

name=libvirt-nvram-hook
version=$(bash "$inst/version.sh" "${VERSION:-}")
arch=${ARCH:-$(pkg_rpm_arch "$(pkg_machine "$bin")")}
packager=${MAINTAINER:-$PKG_MAINTAINER}
epoch=$(pkg_date_epoch "$top")
export SOURCE_DATE_EPOCH=$epoch

topdir=$(mktemp -d)
trap 'rm -rf "$topdir"' EXIT
mkdir -p "$topdir"/{SOURCES,SPECS,BUILD,BUILDROOT,RPMS,SRPMS}
install -m 0755 "$bin" "$topdir/SOURCES/$name"
install -m 0644 "$inst/nvram-hook.conf" "$inst/$name.8" "$inst/hooklib.sh" \
	"$top/LICENSE" "$inst/THIRD-PARTY-NOTICES" "$topdir/SOURCES/"
# License: the SPDX expression of everything linked into the binary, as
# install/notices wrote it into the notices (its test keeps them current).
license=$(sed -n 's/^SPDX-License-Identifier of the binary: //p' "$inst/THIRD-PARTY-NOTICES")
[[ -n $license ]] || {
	echo "build-rpm.sh: no SPDX line in $inst/THIRD-PARTY-NOTICES (make notices)" >&2
	exit 1
}

# --target sets the package architecture; nothing is compiled for it.
# --nodeps: the build host need not have libvirt (or an RPM database).
rpmbuild -bb --nodeps --quiet \
	--target "$arch" \
	--define "_topdir $topdir" \
	--define "pkg_version $version" \
	--define "pkg_git ${VERSION:-unknown}" \
	--define "pkg_date $(LC_ALL=C date -u -d "@$epoch" '+%a %b %d %Y')" \
	--define "pkg_packager $packager" \
	--define "pkg_license $license" \
	--define "use_source_date_epoch_as_buildtime 1" \
	--define "clamp_mtime_to_source_date_epoch 1" \
	--define "_buildhost reproducible" \
	"$here/$name.spec" >"$topdir/rpmbuild.log" 2>&1 || {
	cat "$topdir/rpmbuild.log" >&2
	echo "build-rpm.sh: rpmbuild failed" >&2
	exit 1
}

mkdir -p "$outdir"
rpm=$(find "$topdir/RPMS" -name "$name-*.rpm" -print -quit)
[[ -n $rpm ]] || {
	echo "build-rpm.sh: rpmbuild made no package" >&2
	exit 1
}
cp "$rpm" "$outdir/"
echo "$outdir/$(basename "$rpm")"
