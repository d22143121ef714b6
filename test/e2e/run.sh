#!/bin/bash
# End-to-end tests of xen-channels on real Xen: from a Debian 12 host with apt access
# to one PASS/FAIL line per scenario and a final "N passed, N failed" line.
#   bash test/e2e/run.sh [SCENARIO...]     (default: every test/e2e/scenarios/*.json)
# Stages: host tools -> dom0 packages -> dom0 base image -> Debian guest image ->
# this run's initrd (harness + scenarios + project payload) -> boot Xen + dom0 under
# QEMU TCG once; dom0 runs each scenario in a fresh guest. Knobs: see README.md.
# Exit status: 0 iff every selected scenario passed.
source "$(dirname "$0")/host/common.sh"
cd "$E2E_DIR"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    for f in scenarios/*.json; do scenarios+=("$(basename "$f" .json)"); done
fi
for s in "${scenarios[@]}"; do
    [ -f "scenarios/$s.json" ] || die "no scenario '$s' (scenarios/$s.json)"
done

# The outer QEMU's time limit: boot plus a generous 5 minutes per scenario.
export QEMU_TIMEOUT=${QEMU_TIMEOUT:-$(( 120 + 300 * ${#scenarios[@]} ))}

# One run at a time per cache (the cache and out/ are shared).
exec 5> "$E2E_CACHE/.lock"
flock -n 5 || { log "waiting for another e2e run to finish"; flock 5; }

rm -rf "$E2E_OUT"; mkdir -p "$E2E_OUT"
T0=$EPOCHREALTIME
log "scenarios: ${scenarios[*]}; cache $E2E_CACHE; output $E2E_OUT"

# report_all_failed REASON: the harness could not run the scenarios at all
report_all_failed() {
    for s in "${scenarios[@]}"; do echo "FAIL $s: $1"; done
    echo "0 passed, ${#scenarios[@]} failed"
    exit 1
}
stage_time host-deps  host/host-deps.sh         || report_all_failed "harness setup: installing host tools failed"
stage_time fetch      host/fetch-debs.sh        || report_all_failed "harness setup: downloading dom0 packages failed"
stage_time dom0-base  host/build-dom0-base.sh   || report_all_failed "harness setup: building the dom0 image failed"
stage_time guest-base host/build-guest-base.sh  || report_all_failed "harness setup: building the guest image failed"
stage_time assemble   host/assemble.sh "${scenarios[@]}" || report_all_failed "harness setup: assembling the initrd failed"
: > "$E2E_OUT/results.txt"
stage_time qemu-total host/boot.sh || echo "host/boot.sh failed (see the messages above)" >> "$E2E_OUT/fatal.txt"

passed=0 failed=0
fatal=$(head -n 1 "$E2E_OUT/fatal.txt" 2>/dev/null || true)
for s in "${scenarios[@]}"; do
    if grep -q "^PASS $s " "$E2E_OUT/results.txt"; then
        passed=$((passed + 1))
        [ "${E2E_KEEP_ARTIFACTS:-0}" = 1 ] || rm -rf "${E2E_OUT:?}/$s"
    elif grep -q "^FAIL $s " "$E2E_OUT/results.txt"; then
        failed=$((failed + 1)); log "artefacts of $s: $E2E_OUT/$s/"
    else
        failed=$((failed + 1))
        echo "FAIL $s: no result from dom0 (${fatal:-see $E2E_OUT/serial.log})"
    fi
done
printf '%-22s %7.1f s\n' total "$(bc_sub "$EPOCHREALTIME" "$T0")" >> "$E2E_OUT/timings.txt"
log "timings ($E2E_OUT/timings.txt):"; sed 's/^/    /' "$E2E_OUT/timings.txt" >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
