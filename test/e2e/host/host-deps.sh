#!/bin/bash
# Install the host tools the harness needs (only if missing): the outer QEMU, cpio,
# zstd, xz and debootstrap. Nothing Xen-related is installed on the host: the Xen bits
# are only downloaded and unpacked (host/fetch-debs.sh).
source "$(dirname "$0")/common.sh"

need=()
for pair in qemu-system-x86_64:qemu-system-x86 cpio:cpio zstd:zstd xz:xz-utils debootstrap:debootstrap; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt_update_once
    log "installing host packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        > "$E2E_OUT/host-deps.log" 2>&1 || { tail -20 "$E2E_OUT/host-deps.log" >&2; die "apt-get install failed"; }
fi
log "host tools: $(qemu-system-x86_64 --version | head -1)"
