#!/bin/bash
# Long distance: migrations through faultproxy holding every chunk 75 ms each way (~150 ms
# round trip, on loopback), hv beside QEMU on the same guest in the same run. Downtime as
# each reports it, and the guest's own longest stop on the destination (memtouch's
# maxgap_us): the switchover's round trips show there. Numbers, not assertions.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d /tmp/hv-bench-far.XXXXXX)
export HV_RUN_DIR=$W/run
port=$((45000 + RANDOM % 1000))
trap 'for l in "$W"/run/*.lock; do [ -s "$l" ] && kill -9 "$(cat "$l")" 2>/dev/null; done; rm -rf "$W"' EXIT
. tests/bench/lib-migrate.sh
via_delay_ms=75

idle="prog=memtouch ws=1M rate=1 hz=1000"
busy="prog=memtouch ws=64M rate=200"
echo "## Live migration over ~150 ms round trip (faultproxy --delay-ms 75, loopback)"
echo
echo "The guest's stop is what it measured itself on the destination (its clock's longest gap)."
echo "hv's default --downtime is 30 ms, QEMU's downtime-limit 300 ms; both rows of each are shown."
echo
row "case" "total ms" "down ms" "guest gap ms" "rounds" "on the wire" "speed" "converged"
row "---" "---" "---" "---" "---" "---" "---" "---" | tr ' ' '-'
migrate_one "1 GiB, idle with a 1 kHz timer" "$idle" 1G
qemu_one "1 GiB, idle with a 1 kHz timer" "$idle" 1G READY maxgap
migrate_one "64 MiB rewritten at 200 MiB/s" "$busy" 512M
migrate_one "the same, --downtime 300" "$busy" 512M --downtime 300
migrate_one "the same, --auto-converge" "$busy" 512M --auto-converge
migrate_one "the same, --auto-converge --downtime 300" "$busy" 512M --auto-converge --downtime 300
qemu_one "64 MiB rewritten at 200 MiB/s" "$busy" 512M READY maxgap
QEMU_MIGRATE_CAPS=auto-converge qemu_one "the same, auto-converge" "$busy" 512M READY maxgap
echo
