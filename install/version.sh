#!/bin/bash
# version.sh VERSION: print VERSION (from `git describe --tags --always
# --dirty`) as an upstream version that is valid for both Debian and RPM:
# digits first, only [A-Za-z0-9.+~], no '-'.
#
#   v1.2.0                    -> 1.2.0
#   v1.2.0-dirty              -> 1.2.0+dirty
#   v1.2.0-3-ga1b2c3d[-dirty] -> 1.2.0+git3.ga1b2c3d[.dirty]  (after 1.2.0)
#   a1b2c3d[-dirty]           -> 0.1.0~gita1b2c3d[.dirty]     (before 0.1.0)
#   anything else, e.g. dev   -> 0.1.0~dev
#
# BASE_VERSION (default 0.1.0) is the release that untagged builds precede.
set -euo pipefail

v=${1-}
base=${BASE_VERSION:-0.1.0}
dirty=
if [[ $v == *-dirty ]]; then
	v=${v%-dirty}
	dirty=1
fi

if [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
	out="$base~git$v${dirty:+.dirty}"
elif [[ $v =~ ^v?([0-9]+(\.[0-9]+)*)-([0-9]+)-(g[0-9a-f]+)$ ]]; then
	out="${BASH_REMATCH[1]}+git${BASH_REMATCH[3]}.${BASH_REMATCH[4]}${dirty:+.dirty}"
elif [[ $v =~ ^v?([0-9]+(\.[0-9]+)*)$ ]]; then
	out="${BASH_REMATCH[1]}${dirty:+"+dirty"}"
else
	clean=$(printf '%s' "$v" | tr -c 'A-Za-z0-9.' '.' | sed -e 's/\.\.*/./g' -e 's/^\.//' -e 's/\.$//')
	out="$base~${clean:-dev}${dirty:+.dirty}"
fi
printf '%s\n' "$out"
