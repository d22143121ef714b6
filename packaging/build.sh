#!/usr/bin/env bash
# Builds what every package flavour installs, from the source tree it lives in: the CLI bundle
# (scripts/bundle.mjs → build/bundle/xen-channel.mjs) and the man pages (packaging/man/*.md →
# build/man/*.[18], converted with go-md2man, version from package.json). Called by
# debian/rules and rpm/xen-channels.spec before packaging/install.sh; needs node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

node scripts/bundle.mjs

version=$(node -p 'require("./package.json").version')
mkdir -p build/man
for source in packaging/man/*.md; do
  page=build/man/$(basename "$source" .md)
  # The header comment is for readers of the source; go-md2man cannot render it.
  grep -v '^<!--.*-->$' "$source" | sed "s/@VERSION@/$version/g" | go-md2man -out "$page"
  echo "man: $page"
done
