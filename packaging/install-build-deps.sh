#!/usr/bin/env bash
# Installs, from Debian's archive, what building the packages needs (dpkg-buildpackage with
# debhelper, go-md2man for the man pages, rpmbuild) plus, with --test, what
# test/packaging/run.sh checks them with (lintian, rpmlint, debootstrap). Node and node_modules
# (esbuild, postject) come from the repository's `npm ci`. Does nothing when all are present.
set -euo pipefail

packages=(debhelper dpkg-dev go-md2man rpm)
if [[ ${1:-} == --test ]]; then packages+=(lintian rpmlint debootstrap); fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
