#!/bin/bash
# The project payload, the ONE step that puts xen-channels into the test machines:
#   host/payload.sh GUEST_ROOT DOM0_ROOT   (overlay roots being assembled)
# For now it copies the built project: dist/ + package.json to /usr/lib/xen-channels/
# in the guest AND in dom0 (same path on both sides, so one script can import it in
# either; dom0 also gets the alias /opt/xen-channels), plus a launcher
# /usr/bin/xen-channel in both when dist/agent/cli/main.js exists. The project's .deb (from
# `npm run pkg:deb`) goes to the guest's /opt/e2e/xen-channels.deb, for scenarios that
# install it with dpkg -i as a user does. Also puts the e2e JavaScript of test/e2e/node/ in
# /opt/e2e/ in both (TypeScript entry points bundled to .mjs), where the project resolves
# as the bare import 'xen-channels'. No dist/ yet: the project part is skipped.
source "$(dirname "$0")/common.sh"
G=${1:?guest overlay root} D=${2:?dom0 overlay root}

mkdir -p "$G/opt/e2e" "$D/opt/e2e"
# .mjs scripts go as they are; TypeScript entry points (which import the project's sources,
# e.g. the xenstore conformance suite) are bundled by esbuild into one .mjs each for node 18.
for f in "$E2E_DIR"/node/*.mjs; do
    [ -e "$f" ] && cp "$f" "$G/opt/e2e/" && cp "$f" "$D/opt/e2e/"
done
for f in "$E2E_DIR"/node/*.ts; do
    [ -e "$f" ] || continue
    out="$(basename "$f" .ts).mjs"
    "$REPO_DIR/node_modules/.bin/esbuild" "$f" --bundle --platform=node --target=node18 --format=esm \
        --log-level=warning --outfile="$G/opt/e2e/$out"
    cp "$G/opt/e2e/$out" "$D/opt/e2e/$out"
done
# The project's Debian package, for scenarios that install it as a user does (dpkg -i).
deb=$(ls "$REPO_DIR"/build/deb/xen-channels_*_all.deb 2>/dev/null | head -1 || true)
if [ -n "$deb" ]; then
    cp "$deb" "$G/opt/e2e/xen-channels.deb"
    log "project payload: $(basename "$deb") -> /opt/e2e/xen-channels.deb in the guest"
fi

if [ ! -d "$REPO_DIR/dist" ]; then
    log "project payload: no dist/ (run 'npm run build' first to test the project): skipped"
    exit 0
fi
# install_project ROOT PREFIX: dist/ + package.json under PREFIX, launcher in /usr/bin
install_project() {
    local root=$1 prefix=$2
    mkdir -p "$root$prefix"
    cp -a "$REPO_DIR/dist" "$root$prefix/"
    cp "$REPO_DIR/package.json" "$root$prefix/"
    if [ -f "$REPO_DIR/dist/agent/cli/main.js" ]; then
        mkdir -p "$root/usr/bin"
        printf '#!/bin/sh\nexec node %s/dist/agent/cli/main.js "$@"\n' "$prefix" > "$root/usr/bin/xen-channel"
        chmod 755 "$root/usr/bin/xen-channel"
    fi
}
install_project "$G" /usr/lib/xen-channels
install_project "$D" /usr/lib/xen-channels
ln -s /usr/lib/xen-channels "$D/opt/xen-channels"
# /opt/e2e scripts may import the project by name ('xen-channels', 'xen-channels/xenstore')
for root in "$G" "$D"; do
    mkdir -p "$root/opt/e2e/node_modules"
    ln -s /usr/lib/xen-channels "$root/opt/e2e/node_modules/xen-channels"
done
log "project payload: dist/ ($(find "$REPO_DIR/dist" -type f | wc -l) files) -> /usr/lib/xen-channels in guest and dom0$([ -f "$REPO_DIR/dist/agent/cli/main.js" ] && echo ', launcher /usr/bin/xen-channel')"
