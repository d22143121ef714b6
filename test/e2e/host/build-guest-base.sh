#!/bin/bash
# Build the Debian 12 guest's base image: debootstrap (minbase + systemd, udev, nodejs,
# qemu-guest-agent, kmod, iproute2, socat, python3-minimal), trimmed and configured for
# a test guest, packed as ONE zstd cpio ($IMAGES/guest-base.cpio.zst). The guest boots
# it as its initramfs with rdinit=/sbin/init (systemd as PID 1, no switch_root).
# Harness and project files are NOT in here: host/assemble.sh appends them per run.
# Cached: debootstrap output in $DEBROOT, the image keyed on this script.
source "$(dirname "$0")/common.sh"

boot_key=$(key_of -- "$SUITE" "$GUEST_PKGS")
if [ "$(cat "$DEBROOT/.e2e-key" 2>/dev/null)" != "$boot_key" ]; then
    mirror=$(debian_mirror)
    log "debootstrap $SUITE (minbase + $GUEST_PKGS)"
    rm -rf "$DEBROOT"
    debootstrap --variant=minbase --include="$GUEST_PKGS" "$SUITE" "$DEBROOT" "$mirror" \
        > "$E2E_OUT/debootstrap.log" 2>&1 ||
        { tail -20 "$E2E_OUT/debootstrap.log" >&2; die "debootstrap failed (log: $E2E_OUT/debootstrap.log)"; }
    echo "$boot_key" > "$DEBROOT/.e2e-key"
fi

image="$IMAGES/guest-base.cpio.zst"
key=$(key_of "$0" -- "$boot_key")
if [ "$(cat "$image.key" 2>/dev/null)" = "$key" ]; then
    log "guest base image: cached ($image)"
    exit 0
fi

R="$E2E_CACHE/guest-root"
rm -rf "$R"; cp -a "$DEBROOT" "$R"; rm -f "$R/.e2e-key"
# What a test guest never reads.
rm -rf "$R"/usr/share/{doc,man,info,locale}/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
       "$R"/var/lib/apt/lists/* "$R"/var/log/*.log "$R"/usr/lib/udev/hwdb.d "$R"/usr/lib/udev/hwdb.bin
# Identity, passwordless root, no filesystems to mount. A fixed machine-id keeps
# systemd out of "first boot" mode (systemd-firstboot would prompt on the console).
echo e2e-guest > "$R/etc/hostname"
sed -i 's/^root:[^:]*:/root::/' "$R/etc/shadow"
: > "$R/etc/fstab"
echo 6a1b2c3d4e5f40718293a4b5c6d7e8f9 > "$R/etc/machine-id"
# Units that only cost boot time under TCG (there are no kernel modules in this
# guest), and every getty: the primary console /dev/hvc0 belongs to the harness
# control server (guest/e2e-ctl), and getty-static would start gettys on tty2..6.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer \
         e2scrub_reap.service modprobe@.service systemd-modules-load.service kmod-static-nodes.service \
         getty.target getty-static.service getty@.service serial-getty@.service console-getty.service; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
mkdir -p "$IMAGES"
(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | zstd -q -T0 -6 > "$image.tmp"
mv "$image.tmp" "$image"
echo "$key" > "$image.key"
log "guest base image: $(du -h "$image" | cut -f1) ($(du -sh "$R" | cut -f1) unpacked)"
rm -rf "$R"
