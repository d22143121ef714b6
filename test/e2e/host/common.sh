# Shared settings and helpers of the host side of the e2e harness: paths, knobs,
# logging, stage timing, cache keys and the Debian mirror lookup.
# Sourced by run.sh and every host/*.sh script; besides definitions it only creates
# the cache and output folders.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # test/e2e
REPO_DIR="$(cd "$E2E_DIR/../.." && pwd)"

# Everything downloaded or generated lives in the cache (safe to delete at any time).
E2E_CACHE=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xen-channels-e2e}
DEBS="$E2E_CACHE/debs"            # apt's download cache for the dom0 closure
STAGE="$E2E_CACHE/stage"          # every .deb of the closure unpacked with dpkg-deb -x
DEBROOT="$E2E_CACHE/debroot"      # debootstrap output of the Debian 12 guest
IMAGES="$E2E_CACHE/images"        # xen, vmlinuz, dom0-base and guest-base images
RUNDIR="$E2E_CACHE/run"           # per-run assembled boot files
# Logs and failure artefacts of the last run (git-ignored).
E2E_OUT=${E2E_OUT:-$E2E_DIR/out}

XENVER=4.17
SUITE=bookworm
DOM0_PKGS="xen-hypervisor-$XENVER-amd64 xen-utils-$XENVER xenstore-utils linux-image-amd64
           busybox-static qemu-system-xen qemu-system-data socat nodejs"
GUEST_PKGS="systemd,systemd-sysv,udev,nodejs,qemu-guest-agent,kmod,iproute2,socat,python3-minimal"

# Outer machine. qemu64: -cpu max exposes SMAP (PV dom0 crashes at once) and even
# max,-smap gave the Debian guest random userspace segfaults (see README).
QEMU_CPU=${QEMU_CPU:-qemu64}
QEMU_ACCEL=${QEMU_ACCEL:-tcg,thread=multi}
QEMU_SMP=${QEMU_SMP:-2}
QEMU_MEM=${QEMU_MEM:-4G}
DOM0_MEM=${DOM0_MEM:-1536M}
GUEST_MEM=${GUEST_MEM:-1024}      # MiB; the Debian initramfs guest needs >= 768
XEN_EXTRA=${XEN_EXTRA:-}          # appended to the Xen command line
DOM0_EXTRA=${DOM0_EXTRA:-}        # appended to the dom0 kernel command line (no commas!)

log() { printf '[%(%H:%M:%S)T] e2e: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# stage_time NAME CMD...: run CMD, record "NAME seconds" in $E2E_OUT/timings.txt
stage_time() {
    local name=$1 t0=$EPOCHREALTIME rc=0
    shift
    "$@" || rc=$?
    printf '%-22s %7.1f s\n' "$name" "$(bc_sub "$EPOCHREALTIME" "$t0")" >> "$E2E_OUT/timings.txt"
    return $rc
}
bc_sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

# key_of FILE... -- STRING...: sha256 over file contents and extra strings
key_of() {
    { while [ $# -gt 0 ] && [ "$1" != -- ]; do cat "$1"; shift; done
      [ $# -gt 0 ] && shift; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

# apt_update_once: refresh the host's package lists at most once per run
apt_update_once() {
    [ -n "${_E2E_APT_UPDATED:-}" ] && return 0
    log "apt-get update"
    apt-get update -qq >&2
    _E2E_APT_UPDATED=1
}

# debian_mirror: the host's Debian archive URI for $SUITE, read from its apt config
# (deb822 debian.sources first, then sources.list). Never hard-coded in this tree.
debian_mirror() {
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
            tolower($1) == "uris:"   { u = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
            END { if (u != "" && s) print u }' /etc/apt/sources.list.d/debian.sources | head -1)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { if ($(i+1) == suite) print $i; break } }' \
              /etc/apt/sources.list | head -1)
    fi
    [ -n "$uri" ] || die "no Debian '$SUITE' archive found in the host's apt configuration"
    printf '%s\n' "$uri"
}

mkdir -p "$E2E_CACHE" "$E2E_OUT"
