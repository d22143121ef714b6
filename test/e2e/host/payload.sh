#!/bin/bash
# The project payload, the ONE step that puts xen-channels into the test machines:
#   host/payload.sh GUEST_ROOT DOM0_ROOT   (overlay roots being assembled)
# For now it copies the built project: dist/ + package.json to /usr/lib/xen-channels/
# in the guest AND in dom0 (same path on both sides, so one script can import it in
# either; dom0 also gets the alias /opt/xen-channels), plus a launcher
# /usr/bin/xen-channel in both when dist/agent/cli/main.js exists. Later this step is
# swapped for installing the project's .deb (dpkg -i in the guest). Also copies the
# e2e JavaScript of test/e2e/node/ to /opt/e2e/ in both, where the project resolves as
# the bare import 'xen-channels'. No dist/ yet: the project part is skipped.
source "$(dirname "$0")/common.sh"
G=${1:?guest overlay root} D=${2:?dom0 overlay root}

mkdir -p "$G/opt/e2e" "$D/opt/e2e"
cp -a "$E2E_DIR/node/." "$G/opt/e2e/"
cp -a "$E2E_DIR/node/." "$D/opt/e2e/"

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
