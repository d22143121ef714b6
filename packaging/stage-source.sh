#!/usr/bin/env bash
# Copies the inputs of a package build (sources, packaging, debian/, rpm/) into DEST, so that
# dpkg-buildpackage and rpmbuild work on a clean copy under build/ and never write into the
# repository or its parent. node_modules (for esbuild) is linked, not copied.
# Usage: packaging/stage-source.sh DEST
set -euo pipefail
dest=$1
cd "$(dirname "$0")/.."

rm -rf "$dest"
mkdir -p "$dest/scripts"
cp -r package.json agent packaging debian rpm "$dest/"
cp scripts/bundle.mjs "$dest/scripts/"
if [[ -d udev ]]; then cp -r udev "$dest/"; fi
ln -s "$PWD/node_modules" "$dest/node_modules"
