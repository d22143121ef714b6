#!/bin/bash
# Assemble this run's boot files from the cached base images plus small overlays
# (uncompressed newc cpio archives appended to the zstd base; the kernel unpacks
# concatenated archives, later files win; each appended archive must start 4-byte
# aligned, or the kernel reports "invalid magic at start of compressed archive"):
#   guest initrd  = guest-base + (control server, unit, helpers, project payload, /opt/e2e)
#   dom0 initrd   = dom0-base  + (/init, runner, scenarios, run.json, payload, guest initrd)
#   host/assemble.sh SCENARIO...   -> $RUNDIR/dom0-initrd.img
source "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || die "assemble: no scenarios"

G="$RUNDIR/guest-overlay" D="$RUNDIR/dom0-overlay"
rm -rf "$RUNDIR"; mkdir -p "$G" "$D"

# append_cpio BASE DIR OUT: OUT = BASE, zero padding to 4 bytes, newc cpio of DIR
append_cpio() {
    local size
    cp "$1" "$3"
    size=$(stat -c %s "$3")
    head -c $(( (4 - size % 4) % 4 )) /dev/zero >> "$3"
    (cd "$2" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >> "$3"
}

# ---- guest overlay: the harness's control path (see guest/e2e-ctl)
H=/usr/lib/e2e-harness
install -D -m755 "$E2E_DIR/guest/e2e-ctl" "$G$H/e2e-ctl"
install -D -m755 "$E2E_DIR/guest/e2e-hvc-serve" "$G$H/e2e-hvc-serve"
install -D -m755 "$E2E_DIR/guest/e2e-hvc-responder" "$G$H/e2e-hvc-responder"
mkdir -p "$G/usr/local/bin"
ln -s "$H/e2e-hvc-serve" "$G/usr/local/bin/e2e-hvc-serve"
install -D -m644 "$E2E_DIR/guest/e2e-ctl.service" "$G/etc/systemd/system/e2e-ctl.service"
mkdir -p "$G/etc/systemd/system/multi-user.target.wants"
ln -s ../e2e-ctl.service "$G/etc/systemd/system/multi-user.target.wants/e2e-ctl.service"

# ---- dom0 overlay: init, runner, the selected scenarios and the run settings
install -m755 "$E2E_DIR/dom0/init.sh" "$D/init"
mkdir -p "$D/opt/e2e-harness/lib" "$D/etc/e2e/scenarios" "$D/boot/guest"
cp "$E2E_DIR/dom0/runner.mjs" "$D/opt/e2e-harness/"
cp "$E2E_DIR"/dom0/lib/*.mjs "$D/opt/e2e-harness/lib/"
names=""
for s in "$@"; do
    cp "$E2E_DIR/scenarios/$s.json" "$D/etc/e2e/scenarios/"
    names="$names${names:+, }\"$s\""
done
cat > "$D/etc/e2e/run.json" <<JSON
{
  "scenarios": [$names],
  "guest": {
    "kernel": "/boot/guest/vmlinux",
    "ramdisk": "/boot/guest/initrd.img",
    "cmdline": "console=hvc0 rdinit=/sbin/init loglevel=4 systemd.show_status=1",
    "memory": $GUEST_MEM,
    "vcpus": 2
  },
  "bootTimeout": ${E2E_BOOT_TIMEOUT:-300},
  "keepArtifacts": $([ "${E2E_KEEP_ARTIFACTS:-0}" = 1 ] && echo true || echo false)
}
JSON

# ---- the project (one swappable step)
"$E2E_DIR/host/payload.sh" "$G" "$D"

append_cpio "$IMAGES/guest-base.cpio.zst" "$G" "$D/boot/guest/initrd.img"
append_cpio "$IMAGES/dom0-base.cpio.zst" "$D" "$RUNDIR/dom0-initrd.img"
log "dom0 initrd: $(du -h "$RUNDIR/dom0-initrd.img" | cut -f1) (guest initrd $(du -h "$D/boot/guest/initrd.img" | cut -f1))"
