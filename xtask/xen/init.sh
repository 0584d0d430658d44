#!/bin/busybox sh
# dom0's /init for `cargo xtask test-xen` (xtask/src/xen/initramfs.rs packs it).
# Starts the Xen tools, runs every case under /cases in order, reports each
# on the console with "@@xt" marker lines that xtask/src/xen/report.rs parses,
# then reboots (QEMU runs with -no-reboot, so that ends the run).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu

say() { echo "@@xt $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
die() { say "dom0-failed $*"; reboot -f; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
for m in $(cat /etc/xt/modules); do insmod "$m" || die "insmod $m"; done
# dom0 has one vCPU, so netback would offer one queue; two, for netfront's
# multi-queue (read when each vif's backend is probed).
echo 2 >/sys/module/xen_netback/parameters/max_queues || die "xen_netback max_queues"
mount -t xenfs xenfs /proc/xen || die "mount xenfs"
mkdir -p /run/xen /run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen/console /var/run
ln -sf /run/xen /var/run/xen

xenstored --pid-file /run/xenstored.pid || die "xenstored"
xen-init-dom0 >/tmp/init-dom0.log 2>&1 || { cat /tmp/init-dom0.log; die "xen-init-dom0"; }
xenconsoled --log=guest --pid-file=/run/xenconsoled.pid || die "xenconsoled"
# The bridge the network cases' vifs join (xtask/xen/vif-bridge), with
# dom0's address on it; guests take static addresses in 10.0.0.0/24.
ip link set lo up
brctl addbr xenbr0 && ip addr add 10.0.0.1/24 dev xenbr0 && ip link set xenbr0 up || die "bridge xenbr0"
# pvboot's network boot fetches the guest images from here (busybox httpd).
httpd -p 10.0.0.1:80 -h /guests || die "httpd"
say "dom0-ready $(uptime_s)"

# section CASE NAME FILE: prints FILE between markers.
section() {
    say "case $1 section $2 begin"
    [ -f "$3" ] && cat "$3"
    echo
    say "case $1 section $2 end"
}

# run_case DIR: xl create -F, wait for the domain to stop, report.
run_case() {
    id=$(basename "$1")
    name=$(cat "$1/name")
    limit=$(cat "$1/timeout")
    say "case $id begin $(uptime_s)"
    # -F: xl stays in the foreground until the domain stops and logs the
    # shutdown reason code; on_* = "preserve" keeps the domain to look at.
    if [ -f "$1/client" ]; then
        # A case with a dom0 side: it runs while the domain does, then
        # the domain is asked to power off (xl shutdown).
        timeout "$limit" xl -v create -F "$1/xl.cfg" >/tmp/xl.log 2>&1 &
        xlpid=$!
        timeout "$limit" sh "$1/client" >/tmp/client.log 2>&1
        echo "client exit $?" >>/tmp/client.log
        xl shutdown "$name" >>/tmp/client.log 2>&1
        wait $xlpid
        rc=$?
    else
        rm -f /tmp/client.log
        timeout "$limit" xl -v create -F "$1/xl.cfg" >/tmp/xl.log 2>&1
        rc=$?
    fi
    say "case $id xl-exit $rc $(uptime_s)"
    if [ $rc -ne 0 ]; then
        # Still running (timeout) or never built: say what state it is in.
        say "case $id state $(xl list "$name" 2>/dev/null | awk 'NR==2 {print $5}')"
        if domid=$(xl domid "$name" 2>/dev/null); then
            xenctx -a "$domid" >/tmp/ctx.log 2>&1
            section "$id" vcpu /tmp/ctx.log
            # Every domain's event channels (pending, masked, bound to
            # what) into Xen's log, read below: says which side lost an event.
            xl debug-keys e
        fi
    fi
    sleep 0.2 # let xenconsoled write out the last console output
    section "$id" xl /tmp/xl.log
    section "$id" console "/var/log/xen/console/guest-$name.log"
    [ -f /tmp/client.log ] && section "$id" client /tmp/client.log
    xl dmesg -c >/tmp/dmesg.log 2>&1
    section "$id" xen /tmp/dmesg.log
    dmesg -c >/tmp/kmsg.log 2>&1
    section "$id" dom0 /tmp/kmsg.log
    # Xen tears the domain down while the next case starts.
    xl destroy "$name" >/dev/null 2>&1 &
    say "case $id end $(uptime_s)"
}

xl dmesg -c >/dev/null
dmesg -c >/dev/null
for c in /cases/*; do [ -f "$c/xl.cfg" ] && run_case "$c"; done
wait
say "done $(uptime_s)"
reboot -f
