#!/bin/bash
# The package-manager side of xen-channels, shared by the .deb maintainer scripts and the .rpm
# scriptlets (installed as /usr/lib/xen-channels/maintainer-hooks):
#   installed  after install/upgrade: reload udev's rules and replay "add" for the Xen consoles
#              that already exist, so their links appear without a reboot;
#   removing   before removal (the agent is already stopped): delete what the agent made at run
#              time: the generated rules, the links to hvc ttys, /run/xen-channels.
# Never fails the package operation because udev is absent (chroot, container): it is skipped.
set -euo pipefail

readonly generated_rules=/run/udev/rules.d/61-xen-channels-links.rules
readonly state_dir=/run/xen-channels
readonly link_dirs=(/dev/vport /dev/xen-channel /dev/virtio-ports)

udevd_running() {
  [[ -S /run/udev/control ]] && command -v udevadm >/dev/null
}

udevadm_or_warn() {
  udevadm "$@" || echo "xen-channels: udevadm $* failed (exit $?); continuing" >&2
}

case "${1:-}" in
  installed)
    if udevd_running; then
      udevadm_or_warn control --reload
      udevadm_or_warn trigger --subsystem-match=xen --action=add
    fi
    ;;
  removing)
    rm -f "$generated_rules"
    rm -rf "$state_dir"
    for dir in "${link_dirs[@]}"; do
      [[ -d $dir ]] || continue
      # Only links to hvc ttys are ours; virtio-ports/ may also hold KVM's own links.
      find "$dir" -maxdepth 1 -type l -lname '*/hvc[0-9]*' -delete
      rmdir --ignore-fail-on-non-empty "$dir"
    done
    if udevd_running; then
      udevadm_or_warn control --reload
      # udev forgets the links (and systemd their .device units) once the hvc ttys are
      # re-evaluated without the generated rules.
      udevadm_or_warn trigger --subsystem-match=tty --sysname-match='hvc*' --action=change
    fi
    ;;
  *)
    echo "usage: $0 installed|removing" >&2
    exit 2
    ;;
esac
