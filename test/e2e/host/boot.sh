#!/bin/bash
# Boot Xen + the busybox dom0 in qemu-system-x86_64 (TCG) with this run's initrd, and
# demultiplex the serial console while it runs (dom0's runner speaks in E2E-* lines,
# see dom0/runner.mjs):
#   $E2E_OUT/serial.log            whole console, host-timestamped (seconds since start)
#   $E2E_OUT/<scenario>/serial.log the part of it while that scenario ran
#   $E2E_OUT/<scenario>/<file>     artefacts dom0 printed for a failed scenario
#   $E2E_OUT/results.txt           "PASS name secs" / "FAIL name reason" per scenario
#   $E2E_OUT/fatal.txt             why the run ended early (dom0 setup, panic), if it did
# Prints PASS/FAIL lines on stdout as they arrive, progress on stderr.
source "$(dirname "$0")/common.sh"

QEMU_TIMEOUT=${QEMU_TIMEOUT:-900}   # boot + every scenario; run.sh sets 120 s + 300 s per scenario
case "$DOM0_EXTRA" in *,*) die "DOM0_EXTRA must not contain commas (QEMU splits -initrd on them)";; esac
# bootscrub=0: don't scrub all free RAM (QEMU would touch all of it)
XEN_CMDLINE="dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=$QEMU_SMP console=com1 com1=115200,8n1"
XEN_CMDLINE+=" loglvl=all guest_loglvl=all console_timestamps=boot bootscrub=0 $XEN_EXTRA"
DOM0_CMDLINE="console=hvc0 earlyprintk=xen rdinit=/init loglevel=6 $DOM0_EXTRA"
QEMU=(qemu-system-x86_64
      -machine pc -accel "$QEMU_ACCEL" -cpu "$QEMU_CPU" -smp "$QEMU_SMP" -m "$QEMU_MEM"
      -nodefaults -display none -monitor none -serial stdio -no-reboot
      -kernel "$IMAGES/xen" -append "$XEN_CMDLINE"
      -initrd "$IMAGES/vmlinuz $DOM0_CMDLINE,$RUNDIR/dom0-initrd.img")
printf '%q ' "${QEMU[@]}" > "$E2E_OUT/qemu-cmdline.txt"

: > "$E2E_OUT/fatal.txt"

demux() {
    local t0=${EPOCHREALTIME/./} now line rest name secs file="" current=""
    exec 7>> "$E2E_OUT/serial.log"
    while IFS= read -r line; do
        line=${line//$'\r'/}
        now=${EPOCHREALTIME/./}
        now=$(( (now - t0) / 10000 ))
        printf -v line '[%4d.%02d] %s' $((now / 100)) $((now % 100)) "$line"
        printf '%s\n' "$line" >&7
        [ -n "$current" ] && printf '%s\n' "$line" >&8
        line=${line#\[*\] }
        case $line in
            E2E\|*)
                [ -n "$file" ] && printf '%s\n' "${line#E2E|}" >&9 ;;
            E2E-ART-BEGIN\ *)
                read -r name file <<< "${line#E2E-ART-BEGIN }"
                mkdir -p "$E2E_OUT/$name"; exec 9> "$E2E_OUT/$name/$file"; file="$E2E_OUT/$name/$file" ;;
            E2E-ART-END*)
                [ -n "$file" ] && exec 9>&-; file="" ;;
            E2E-PROGRESS\ *)
                rest=${line#E2E-PROGRESS }
                log "$rest"
                if [[ $rest =~ ^([A-Za-z0-9._-]+):\ starting$ ]]; then
                    current=${BASH_REMATCH[1]}; mkdir -p "$E2E_OUT/$current"; exec 8> "$E2E_OUT/$current/serial.log"
                fi ;;
            E2E-TIMING\ *)
                read -r name rest secs <<< "${line#E2E-TIMING }"
                printf '%-22s %7s s  (%s)\n' "$rest" "$secs" "$name" >> "$E2E_OUT/timings.txt" ;;
            E2E-RESULT\ PASS\ *)
                read -r name secs <<< "${line#E2E-RESULT PASS }"
                echo "PASS $name ($secs s)"; echo "PASS $name $secs" >> "$E2E_OUT/results.txt"
                printf '%-22s %7s s\n' "scenario $name" "$secs" >> "$E2E_OUT/timings.txt"
                [ -n "$current" ] && exec 8>&-; current="" ;;
            E2E-RESULT\ FAIL\ *)
                read -r name secs rest <<< "${line#E2E-RESULT FAIL }"
                echo "FAIL $name: $rest"; echo "FAIL $name $rest" >> "$E2E_OUT/results.txt"
                printf '%-22s %7s s\n' "scenario $name" "$secs" >> "$E2E_OUT/timings.txt"
                [ -n "$current" ] && exec 8>&-; current="" ;;
            E2E-FATAL\ *|*"(XEN) Panic"*|*"Kernel panic"*)
                log "$line"; echo "${line#E2E-FATAL }" >> "$E2E_OUT/fatal.txt" ;;
        esac
    done
}

log "booting Xen + dom0 under QEMU ($QEMU_ACCEL, -cpu $QEMU_CPU, ${QEMU_MEM} RAM, timeout ${QEMU_TIMEOUT} s)"
set +e
timeout -k 10 "$QEMU_TIMEOUT" "${QEMU[@]}" < /dev/null 2> "$E2E_OUT/qemu-stderr.log" | demux
qemu_rc=${PIPESTATUS[0]}
set -e
case $qemu_rc in
    0) ;;
    124) echo "QEMU timed out after $QEMU_TIMEOUT s (QEMU_TIMEOUT)" >> "$E2E_OUT/fatal.txt" ;;
    *) echo "QEMU exited with $qemu_rc: $(tail -n 3 "$E2E_OUT/qemu-stderr.log" | tr '\n' ' ')" >> "$E2E_OUT/fatal.txt" ;;
esac
