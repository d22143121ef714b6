#!/usr/bin/env bash
# `npm run test:packaging`: the package install test. Builds the .deb, the .rpm and the
# standalone (SEA) binary, lints them, installs the .deb with dpkg and the .rpm with rpm into
# fresh copies of a cached Debian 12 root (Debian's own nodejs 18 runs the CLI there), and
# checks that removal and purge leave nothing behind. Needs root (chroot). Prints one
# `PASS name` / `FAIL name: reason` line per check, then `N passed, N failed`; exits 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $EUID -eq 0 ]] || { echo "test/packaging/run.sh: needs root (apt, chroot, dpkg, rpm --root)" >&2; exit 1; }

readonly repo=$PWD
readonly work=$repo/build/packaging-test
readonly cache=$repo/.cache/packaging
version=$(node -p 'require("./package.json").version')
readonly version
passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
note() { echo "  $*"; }

# check NAME COMMAND...: runs COMMAND (in this shell, so it may set variables) with its output
# in build/packaging-test/logs/; a failure's reason is the log's last line. errexit does not
# apply inside a checked command, so multi-step ones chain their steps with &&.
check() {
  local name=$1 log
  log="$work/logs/$(tr -c 'a-zA-Z0-9.\n' '-' <<<"$1").log"
  shift
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name" "$(tail -n 1 "$log") (log: ${log#"$repo"/})"
    return 1
  fi
}

# Every path in a root, minus what changes without the package's doing (dpkg's and apt's own
# bookkeeping files are compared too: only dpkg.log and the status backups are left out).
snapshot() {
  (cd "$1" && find . -xdev \
    -not -path './var/log/dpkg.log' -not -path './var/lib/dpkg/status-old' \
    -not -path './var/lib/dpkg/diversions-old' -not -path './tmp/*' | sort)
}

in_root() { # ROOT COMMAND...: COMMAND chrooted into ROOT, with a clean environment
  chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "${@:2}"
}

fresh_root() { # DIR: a new copy of the cached Debian 12 root
  rm -rf "$1"
  mkdir -p "$1"
  tar -C "$1" -xf "$root_tarball"
}

median_ms() { # COMMAND...: median wall time of 9 runs, in milliseconds
  local start times=()
  for _ in 1 2 3 4 5 6 7 8 9; do
    start=$(date +%s%N)
    "$@" >/dev/null
    times+=($((($(date +%s%N) - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 5p
}

expect_output() { # EXPECTED COMMAND...: COMMAND's stdout is exactly EXPECTED
  local output
  output=$("${@:2}") || return 1
  [[ $output == "$1" ]] || { echo "expected '$1', got '$output'"; return 1; }
}

rm -rf "$work"
mkdir -p "$work/logs"

# The files every package must install, on top of the udev rules found in udev/.
expected_files=(
  /usr/bin/xen-channel
  /usr/lib/xen-channels/xen-channel.mjs
  /usr/lib/xen-channels/maintainer-hooks
  /usr/share/man/man1/xen-channel.1.gz
  /usr/share/man/man8/xen-channels-agent.8.gz
)
for rules in udev/*.rules; do
  [[ -e $rules ]] && expected_files+=("/usr/lib/udev/rules.d/$(basename "$rules")")
done

files_present() { # ROOT UNIT_DIR
  local path missing=0
  for path in "${expected_files[@]}" "$2/xen-channels.service"; do
    [[ -e $1$path ]] || { echo "missing $path"; missing=1; }
  done
  return $missing
}

files_absent() { # ROOT UNIT_DIR
  local path left=0
  for path in "${expected_files[@]}" "$2/xen-channels.service"; do
    [[ ! -e $1$path ]] || { echo "still there: $path"; left=1; }
  done
  return $left
}

# What the agent would have left at run time, plus a foreign virtio-ports link (KVM's) that
# removal must keep.
make_runtime_state() { # ROOT
  mkdir -p "$1/run/udev/rules.d" "$1/run/xen-channels" "$1/dev/vport" "$1/dev/xen-channel" "$1/dev/virtio-ports"
  echo '# generated' >"$1/run/udev/rules.d/61-xen-channels-links.rules"
  echo '{}' >"$1/run/xen-channels/state.json"
  ln -s ../hvc1 "$1/dev/vport/org.example.ctl"
  ln -s ../hvc1 "$1/dev/xen-channel/org.example.ctl"
  ln -s ../hvc2 "$1/dev/virtio-ports/org.qemu.guest_agent.0"
  ln -s ../vport0p1 "$1/dev/virtio-ports/kvm.port"
}

runtime_state_cleaned() { # ROOT: ours gone, the foreign link kept
  local gone
  for gone in /run/udev/rules.d/61-xen-channels-links.rules /run/xen-channels /dev/vport \
    /dev/xen-channel /dev/virtio-ports/org.qemu.guest_agent.0; do
    [[ ! -e $1$gone && ! -L $1$gone ]] || { echo "still there: $gone"; return 1; }
  done
  [[ -L $1/dev/virtio-ports/kvm.port ]] || { echo "foreign link /dev/virtio-ports/kvm.port removed"; return 1; }
  # The test's own leftovers go, so that the purge comparison sees only the package's.
  rm -rf "$1/dev/virtio-ports" "$1/run/udev"
}

same_files() { # BEFORE AFTER
  diff "$1" "$2" >"$2.diff" || { echo "differs: $(grep -c '^[<>]' "$2.diff") paths, e.g. $(grep -m1 '^[<>]' "$2.diff")"; return 1; }
}

# --- steps that set what later checks use -----------------------------------------------------
root_tarball='' deb='' rpm_file='' sea=''
last_line_into() { # VAR COMMAND...: run COMMAND, show its output, keep its last line in VAR
  local output
  output=$("${@:2}") || { echo "$output"; return 1; }
  echo "$output"
  printf -v "$1" '%s' "$(tail -n 1 <<<"$output")"
}

deb_remove() {
  in_root "$deb_root" dpkg -r xen-channels &&
    files_absent "$deb_root" /lib/systemd/system &&
    runtime_state_cleaned "$deb_root"
}

deb_purge() {
  in_root "$deb_root" dpkg -P xen-channels &&
    snapshot "$deb_root" >"$work/deb-root.after" &&
    same_files "$work/deb-root.before" "$work/deb-root.after"
}

verify_unit() { # also keeps the unit's exposure score for the figures
  local unit=/lib/systemd/system/xen-channels.service
  in_root "$deb_root" systemd-analyze verify --man=no "$unit" &&
    exposure=$(in_root "$deb_root" systemd-analyze security --offline=true "$unit" |
      sed -n 's/.*Overall exposure level for [^:]*: //p') &&
    rm -f "$deb_root/run/systemd/systemd-units-load" # systemd-analyze's own trace, not the package's
}

rpm_payload_complete() {
  local listing path
  listing=$(rpm -qlp "$rpm_file") || return 1
  for path in "${expected_files[@]}" /usr/lib/systemd/system/xen-channels.service; do
    grep -qxF "$path" <<<"$listing" || { echo "missing $path"; return 1; }
  done
}

rpm_scriptlets_call_hooks() {
  local scripts
  scripts=$(rpm -qp --scripts "$rpm_file") || return 1
  grep -q 'maintainer-hooks installed' <<<"$scripts" || { echo "%post does not call maintainer-hooks"; return 1; }
  grep -q 'maintainer-hooks removing' <<<"$scripts" || { echo "%preun does not call maintainer-hooks"; return 1; }
}

rpm_install() {
  rpm --root "$rpm_root" --initdb &&
    rpm --root "$rpm_root" --nodeps -i "$rpm_file"
}

rpm_erase() {
  rpm --root "$rpm_root" --nodeps -e xen-channels &&
    files_absent "$rpm_root" /usr/lib/systemd/system &&
    runtime_state_cleaned "$rpm_root"
}

sea_matches_bundle() {
  local args
  for args in '--help' 'no-such-command' 'xs ls /'; do
    # shellcheck disable=SC2086 # each entry is a whole argument list
    [[ $("$sea" $args 2>&1; echo "exit $?") == "$(node build/bundle/xen-channel.mjs $args 2>&1; echo "exit $?")" ]] ||
      { echo "differs for: xen-channel $args"; return 1; }
  done
}

deb_root=$work/deb-root
rpm_root=$work/rpm-root

# --- tools -----------------------------------------------------------------------------------
check 'apt dependencies' packaging/install-build-deps.sh --test || true
check 'debian 12 root (debootstrap, cached)' last_line_into root_tarball test/packaging/make-debian-root.sh "$cache" || true

# --- .deb ------------------------------------------------------------------------------------
if check 'deb builds' last_line_into deb packaging/build-deb.sh; then
  check 'deb lintian: no errors, no unexplained warnings' \
    lintian --fail-on error,warning "$deb" || true
fi
if [[ -n $deb && -n $root_tarball ]]; then
  fresh_root "$deb_root"
  snapshot "$deb_root" >"$work/deb-root.before"
  cp "$deb" "$deb_root/tmp/"
  if check 'deb installs with dpkg -i (maintainer scripts, no udev/systemd running)' \
    in_root "$deb_root" dpkg -i "/tmp/$(basename "$deb")"; then
    check 'deb files in place' files_present "$deb_root" /lib/systemd/system || true
    check 'deb unit enabled (multi-user.target.wants link)' \
      test -L "$deb_root/etc/systemd/system/multi-user.target.wants/xen-channels.service" || true
    check 'deb unit passes systemd-analyze verify' verify_unit || true
    check "deb xen-channel --version on Debian's nodejs $(in_root "$deb_root" node --version)" \
      expect_output "$version" in_root "$deb_root" xen-channel --version || true
    launcher_ms=$(median_ms in_root "$deb_root" xen-channel --version)
    make_runtime_state "$deb_root"
    check 'deb dpkg -r removes files, generated rules, links, /run/xen-channels' deb_remove || true
    rm -f "$deb_root/tmp/$(basename "$deb")"
    check 'deb dpkg -P leaves nothing behind' deb_purge || true
  fi
fi

# --- .rpm ------------------------------------------------------------------------------------
if check 'rpm builds' last_line_into rpm_file packaging/build-rpm.sh; then
  check 'rpm payload (rpm -qlp)' rpm_payload_complete || true
  check 'rpm scriptlets (rpm -qp --scripts)' rpm_scriptlets_call_hooks || true
  check 'rpm rpmlint: no errors, no unexplained warnings' rpmlint -r rpm/xen-channels.rpmlintrc "$rpm_file" || true
fi
if [[ -n $rpm_file && -n $root_tarball ]]; then
  fresh_root "$rpm_root"
  if check 'rpm installs into a scratch root (rpm --root --nodeps -i, scriptlets run)' rpm_install; then
    check 'rpm files in place' files_present "$rpm_root" /usr/lib/systemd/system || true
    check "rpm xen-channel --version on Debian's nodejs" \
      expect_output "$version" in_root "$rpm_root" xen-channel --version || true
    make_runtime_state "$rpm_root"
    check 'rpm -e removes files, generated rules, links, /run/xen-channels' rpm_erase || true
  fi
fi

# --- standalone (SEA) ------------------------------------------------------------------------
if check 'sea builds' last_line_into sea packaging/build-sea.sh; then
  check 'sea --version' expect_output "$version" "$sea" --version || true
  check 'sea runs without node on PATH' expect_output "$version" env PATH=/nonexistent "$sea" --version || true
  check 'sea behaves as the bundle (help text, usage-error and no-xenstore exit codes)' sea_matches_bundle || true
fi

# --- figures ---------------------------------------------------------------------------------
[[ -z $deb ]] || note "deb: $(stat -c %s "$deb") bytes"
[[ -z $rpm_file ]] || note "rpm: $(stat -c %s "$rpm_file") bytes"
[[ -z ${exposure:-} ]] || note "unit exposure (systemd-analyze security --offline): $exposure"
[[ -z ${launcher_ms:-} ]] || note "start-up, installed xen-channel --version (Debian 12 nodejs), median of 9: $launcher_ms ms"
if [[ -n $sea ]]; then
  note "sea: $(stat -c %s "$sea") bytes (node $(node --version) inside)"
  note "start-up, xen-channel --version, median of 9: sea $(median_ms "$sea" --version) ms," \
    "bundle on node $(node --version) $(median_ms node build/bundle/xen-channel.mjs --version) ms"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
