#!/usr/bin/env bash
# Owns the pristine Debian 12 root that the install test unpacks for every run: built once with
# debootstrap (minbase + nodejs, udev, systemd, the package's runtime dependencies) from the
# mirror this machine's apt already uses, then kept as a tarball in the git-ignored cache.
# Usage: make-debian-root.sh CACHE_DIR  → prints the tarball's path. Delete the tarball to rebuild.
set -euo pipefail

cache_dir=$1
suite=bookworm
tarball="$cache_dir/debian-$suite-root.tar"

# The mirror is read from apt's own configuration, never written down here.
debian_mirror() {
  local uri=''
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || { echo "make-debian-root: no Debian mirror found in apt's sources" >&2; exit 1; }
  echo "$uri"
}

if [[ ! -f $tarball ]]; then
  mkdir -p "$cache_dir"
  staging=$(mktemp -d "$cache_dir/root.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  debootstrap --variant=minbase --include=nodejs,udev,systemd "$suite" "$staging" "$(debian_mirror)" \
    >"$cache_dir/debootstrap.log" 2>&1 || {
    tail -20 "$cache_dir/debootstrap.log" >&2
    exit 1
  }
  # Downloaded .debs are not part of the root under test.
  rm -f "$staging"/var/cache/apt/archives/*.deb
  tar -C "$staging" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
echo "$tarball"
