#!/usr/bin/env bash
# `npm run pkg:sea`: the standalone flavour, build/sea/xen-channel: one executable holding the
# machine's Node binary (Node 20 here; SEA needs >= 20) and the CLI bundle, made with Node's
# single executable application support and postject (devDependency). No Node.js needed on the
# target, but the binary is as big as node itself. Prints the executable's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$PWD/build/sea
rm -rf "$out"
mkdir -p "$out"
node scripts/bundle.mjs >/dev/null

cat >"$out/sea-config.json" <<CONFIG
{
  "main": "$PWD/packaging/sea-bootstrap.cjs",
  "output": "$out/xen-channel.blob",
  "disableExperimentalSEAWarning": true,
  "assets": { "xen-channel.mjs": "$PWD/build/bundle/xen-channel.mjs" }
}
CONFIG
node --experimental-sea-config "$out/sea-config.json" >"$out/build.log"

cp "$(command -v node)" "$out/xen-channel"
chmod u+w "$out/xen-channel"
# The fuse is Node's documented sentinel that marks a binary as carrying a SEA blob.
node_modules/.bin/postject "$out/xen-channel" NODE_SEA_BLOB "$out/xen-channel.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >>"$out/build.log" 2>&1
echo "$out/xen-channel"
