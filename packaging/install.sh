#!/usr/bin/env bash
# The install layout of xen-channels: the single place that says which file goes where. Used by
# debian/rules and rpm/xen-channels.spec alike, after packaging/build.sh.
# Usage: packaging/install.sh [--debian] [--manifest FILE] DESTDIR
#   --debian    put the systemd unit in /lib/systemd/system: Debian 12's debhelper 13.11 finds
#               (and enables) units only there; with merged /usr it is the same directory.
#   --manifest  also write the installed paths to FILE in rpm %files syntax.
set -euo pipefail

readonly lib_dir=/usr/lib/xen-channels
readonly bin_dir=/usr/bin
readonly udev_rules_dir=/usr/lib/udev/rules.d
readonly man_dir=/usr/share/man
unit_dir=/usr/lib/systemd/system
manifest=''

while [[ $# -gt 1 ]]; do
  case $1 in
    --debian) unit_dir=/lib/systemd/system; shift ;;
    --manifest) manifest=$(realpath -m "$2"); shift 2 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -eq 1 ]] || { echo "usage: $0 [--debian] [--manifest FILE] DESTDIR" >&2; exit 2; }
destdir=$(realpath -m "$1")
cd "$(dirname "$0")/.."

installed=()
put() { # MODE SOURCE TARGET
  install -D -m "$1" "$2" "$destdir$3"
  installed+=("$3")
}

put 0644 build/bundle/xen-channel.mjs "$lib_dir/xen-channel.mjs"
put 0755 packaging/maintainer-hooks.sh "$lib_dir/maintainer-hooks"

launcher=$(mktemp)
trap 'rm -f "$launcher"' EXIT
cat >"$launcher" <<LAUNCHER
#!/bin/sh
# xen-channel: runs the bundled xen-channels CLI with the system's Node.js (>= 18).
exec /usr/bin/node $lib_dir/xen-channel.mjs "\$@"
LAUNCHER
put 0755 "$launcher" "$bin_dir/xen-channel"

put 0644 packaging/xen-channels.service "$unit_dir/xen-channels.service"
put 0644 packaging/xen-channels-udev@.service "$unit_dir/xen-channels-udev@.service"

# Every static rules file the agent's authors ship in udev/, whatever there is at build time.
for rules in udev/*.rules; do
  [[ -e $rules ]] || continue
  put 0644 "$rules" "$udev_rules_dir/$(basename "$rules")"
done

for page in build/man/*.[18]; do
  target=$man_dir/man${page##*.}/$(basename "$page").gz
  mkdir -p "$(dirname "$destdir$target")"
  gzip -9n <"$page" >"$destdir$target"
  chmod 0644 "$destdir$target"
  installed+=("$target")
done

if [[ -n $manifest ]]; then
  { echo "%dir $lib_dir"; printf '%s\n' "${installed[@]}"; } >"$manifest"
fi
printf 'installed %s\n' "${installed[@]}"
