#!/usr/bin/env bash
# `npm run pkg:deb`: builds the xen-channels .deb with dpkg-buildpackage on a staged copy of the
# source under build/deb/ (dpkg-buildpackage writes its results to the parent directory, which
# is then build/deb/, not the repository's parent). debian/changelog is written here from
# package.json's version and debian/control's maintainer. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
work=$PWD/build/deb
src=$work/xen-channels-$version

rm -rf "$work"
packaging/stage-source.sh "$src"

maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
changelog_date=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$src/debian/changelog" <<CHANGELOG
xen-channels ($version) unstable; urgency=medium

  * Release $version, built from the xen-channels repository.

 -- $maintainer  $changelog_date
CHANGELOG

(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
  tail -30 "$work/build.log" >&2
  exit 1
}
echo "$work/xen-channels_${version}_all.deb"
