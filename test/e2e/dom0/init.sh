#!/bin/sh
# /init of the busybox dom0: mounts, Xen kernel modules, xenstored (C), xen-init-dom0,
# xenconsoled, then the scenario runner (node /opt/e2e-harness/runner.mjs), then power
# off. Everything reaches the host through this console; marker lines (E2E-*) are
# parsed by test/e2e/host/boot.sh. A setup failure prints E2E-FATAL and diagnostics.
export PATH=/usr/lib/xen-4.17/bin:/usr/bin:/usr/sbin:/bin:/sbin
export HOME=/root

finish() { sync; echo "E2E-POWEROFF"; poweroff -f; sleep 10; reboot -f; }
fatal() {
    echo "E2E-FATAL dom0: $*"
    echo "===== dmesg"; dmesg | tail -n 60
    echo "===== xl dmesg"; timeout 20 xl dmesg 2>&1 | tail -n 40
    finish
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
mkdir -p /run/xen /run/xenstored /run/e2e /tmp /var/log/xen/console
echo "E2E-PROGRESS dom0 userspace up ($(cut -d' ' -f1 /proc/uptime) s dom0 uptime)"

for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc; do
    insmod /lib/modules/$m.ko || fatal "insmod $m"
done
mount -t xenfs xenfs /proc/xen || fatal "mount xenfs"
# xenstored stays a child of this shell (-N) so that its death is reported at once
# (E2E-XENSTORED-EXIT, read by the runner) instead of showing as hung xenstore calls.
# "e2e.xstrace" on the dom0 command line (DOM0_EXTRA) also traces every request.
xs_trace=; grep -qw e2e.xstrace /proc/cmdline && xs_trace="-T /run/e2e/xenstored.trace"
(
    xenstored -N --pid-file=/run/xenstored.pid $xs_trace > /run/e2e/xenstored.log 2>&1
    rc=$?
    echo "$rc" > /run/e2e/xenstored.exit
    echo "E2E-PROGRESS xenstored EXITED with status $rc ($([ $rc -gt 128 ] && kill -l $((rc - 128))))"
    tail -n 20 /run/e2e/xenstored.log
) &
i=0; while [ ! -S /run/xenstored/socket ]; do
    i=$((i+1)); [ $i -gt 100 ] && fatal "no xenstored socket"; sleep 0.2
done
timeout 30 xen-init-dom0 > /run/e2e/xen-init-dom0.log 2>&1 || fatal "xen-init-dom0: $(cat /run/e2e/xen-init-dom0.log)"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    --timestamp=guest || fatal "xenconsoled"
timeout 60 xl info > /run/e2e/xl-info.txt 2>&1 || fatal "xl info: $(cat /run/e2e/xl-info.txt)"
grep -E '^(xen_version|total_memory|free_memory|nr_cpus)' /run/e2e/xl-info.txt
dmesg -n 3      # dom0 kernel: only errors on the console from here on (dmesg keeps all)
echo "E2E-PROGRESS toolstack ready ($(cut -d' ' -f1 /proc/uptime) s dom0 uptime), node $(node --version)"

node /opt/e2e-harness/runner.mjs || echo "E2E-FATAL runner exited with $?"
finish
