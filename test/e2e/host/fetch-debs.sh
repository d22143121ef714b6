#!/bin/bash
# Download the dom0 package closure (Xen 4.17 hypervisor + tools, Debian's 6.1 kernel,
# busybox-static, qemu-system-xen, socat, nodejs 18) as .debs into $DEBS without
# installing anything, then unpack them all into $STAGE with dpkg-deb -x.
# Trick: apt is pointed at an EMPTY dpkg status file, so it believes nothing is
# installed and downloads the complete closure (libc6 included).
# Cached: skipped when $STAGE/.key matches (E2E_REFRESH=1 forces a new download).
source "$(dirname "$0")/common.sh"

key=$(key_of "$0" -- $DOM0_PKGS)
if [ "${E2E_REFRESH:-0}" != 1 ] && [ "$(cat "$STAGE/.key" 2>/dev/null)" = "$key" ]; then
    log "dom0 packages: cached ($STAGE)"
    exit 0
fi

mkdir -p "$DEBS/partial"
status="$E2E_CACHE/empty-dpkg-status"
: > "$status"
download() {
    # shellcheck disable=SC2086
    apt-get install --download-only -y -q --no-install-recommends \
        -o Dir::State::status="$status" -o Dir::Cache::archives="$DEBS" \
        -o Debug::NoLocking=1 $DOM0_PKGS > "$E2E_OUT/fetch.log" 2>&1
}
log "downloading the dom0 package closure"
if ! download; then
    apt_update_once
    download || { tail -20 "$E2E_OUT/fetch.log" >&2; die "apt download failed (log: $E2E_OUT/fetch.log)"; }
fi

# Unpack only the newest version of each package (the cache may hold older ones).
rm -rf "$STAGE"; mkdir -p "$STAGE"
ls "$DEBS"/*.deb | sort -V |
    awk -F/ '{ split($NF, a, "_"); last[a[1]] = $0 } END { for (k in last) print last[k] }' > "$E2E_CACHE/debs.list"
while read -r deb; do dpkg-deb -x "$deb" "$STAGE"; done < "$E2E_CACHE/debs.list"
echo "$key" > "$STAGE/.key"
log "unpacked $(wc -l < "$E2E_CACHE/debs.list") packages into $STAGE ($(du -sh "$STAGE" | cut -f1))"
