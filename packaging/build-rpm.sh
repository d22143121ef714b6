#!/usr/bin/env bash
# `npm run pkg:rpm`: builds the xen-channels .rpm with rpmbuild (Debian's rpm package) from a
# staged copy of the source under build/rpm/, in place (--build-in-place), so that %build finds
# the linked node_modules for esbuild. --nodeps: rpm's database on a Debian builder is empty;
# the build dependencies come from apt (packaging/install-build-deps.sh).
# Prints the .rpm's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
changelog_date=$(git log -1 --format=%ad --date=format:'%a %b %d %Y' 2>/dev/null || date +'%a %b %d %Y')
top=$PWD/build/rpm
src=$top/xen-channels-$version

rm -rf "$top"
packaging/stage-source.sh "$src"
(cd "$src" && rpmbuild -bb --nodeps --build-in-place \
  --define "_topdir $top" \
  --define "xc_version $version" \
  --define "xc_maintainer $maintainer" \
  --define "xc_date $changelog_date" \
  rpm/xen-channels.spec) >"$top/build.log" 2>&1 || {
  tail -30 "$top/build.log" >&2
  exit 1
}
echo "$top/RPMS/noarch/xen-channels-$version-1.noarch.rpm"
