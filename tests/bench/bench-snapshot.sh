#!/bin/bash
# Snapshot benchmarks: hvctl save and hvctl restore of a 1 GiB guest (idle, half and fully
# filled with incompressible data), each beside QEMU saving and restoring the same guest
# through a file (migrate "exec:cat > FILE", -incoming "exec:cat FILE") and beside this
# disk's sequential write and read rate, measured in the same run. Prints a markdown table.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/hv-bench-snap.XXXXXX")
export HV_RUN_DIR=$W/run
trap 'for l in "$W"/run/*.lock; do [ -s "$l" ] && kill -9 "$(cat "$l")" 2>/dev/null; done; rm -rf "$W"' EXIT

# The disk under the snapshots: 1 GiB written with fsync, then read back from the disk.
dd_rate() { sed -n 's/.*, \([0-9.]*\) \([GM]\)B\/s$/\1 \2/p' | awk '{ printf "%.0f", $2 == "G" ? $1 * 1000 : $1 }'; }
wr=$(dd if=/dev/zero of="$W/dd" bs=1M count=1024 conv=fsync 2>&1 | dd_rate)
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
rd=$(dd if="$W/dd" of=/dev/null bs=1M 2>&1 | dd_rate)
rm -f "$W/dd"

row() { printf '| %-44s | %8s | %9s | %9s | %10s |\n' "$@"; }

# hv_one LABEL "GUEST ARGS" READY_TEXT
hv_one() {
	"$HVCTL" run --detach --name s --mem 1G --console "file:$W/s.log" --kernel "$GUEST" \
		--cmdline "$2" >/dev/null || return
	for _ in $(seq 300); do grep -q "$3" "$W/s.log" 2>/dev/null && break; sleep 0.1; done
	sleep 1
	if ! "$HVCTL" save s "$W/s.snap" --stop >"$W/sum" 2>"$W/err"; then
		row "hv: $1" - - - "failed: $(head -c 40 "$W/err")"
		"$HVCTL" stop s >/dev/null 2>&1
		return
	fi
	for _ in $(seq 100); do [ -e "$HV_RUN_DIR/s.lock" ] || break; sleep 0.05; done
	local total paused size t0 t1
	total=$(sed -n 's/^  total time *\([0-9.]*\).*/\1/p' "$W/sum")
	paused=$(sed -n 's/^  guest paused *\([0-9.]*\).*/\1/p' "$W/sum")
	size=$(du -k "$W/s.snap" | awk '{ printf "%.1f", $1 / 1024 }')
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	t0=$(date +%s%N)
	"$HVCTL" restore "$W/s.snap" --console none --detach >/dev/null 2>"$W/err" || { row "hv: $1" "$total" "$paused" "$size" "failed"; return; }
	t1=$(date +%s%N)
	row "hv: $1" "$total" "$paused" "$size" "$(( (t1 - t0) / 1000000 ))"
	"$HVCTL" stop s >/dev/null 2>&1
	rm -f "$W/s.snap" "$W/s.log"
}

# qemu_one LABEL "GUEST ARGS" READY_TEXT
qemu_one() {
	if ! command -v qemu-system-x86_64 >/dev/null || ! command -v python3 >/dev/null; then
		row "QEMU: $1" - - - "(not installed)"
		return
	fi
	mkdir -p "$W/q"
	local total down bytes rest
	read -r total down bytes rest < <(tests/bench/qemu-snapshot.py "$GUEST" "$2" 1G "$3" "$W/q" 2>"$W/qerr")
	rm -rf "$W/q"
	[ "$total" = "-" ] && { row "QEMU: $1" - - - "failed"; return; }
	row "QEMU $qemu_ver: $1" "$total" "$down" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" "$rest"
}
qemu_ver=$(command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1 | awk '{print $4}')

echo "## Snapshots: save and restore of a 1 GiB guest"
echo
echo "References measured now: this disk writes ${wr:-?} MB/s (dd, 1 GiB, fsync) and reads ${rd:-?} MB/s"
echo "(caches dropped). hv: 'hvctl save --stop' (the guest paused, memory written once, raw),"
echo "then 'hvctl restore --detach' with the page cache dropped, timed until it returns with the"
echo "VM running. QEMU: migrate \"exec:cat > FILE\" of the running guest (its defaults, bandwidth"
echo "cap lifted; total and downtime as QEMU reports), then -incoming \"exec:cat FILE\", timed from"
echo "starting QEMU until it reports running."
echo
row "case" "save ms" "paused ms" "file MiB" "restore ms"
printf '|%s|%s|%s|%s|%s|\n' "----------------------------------------------" "----------" "-----------" "-----------" "------------"
hv_one "1 GiB idle (hello)" "prog=hello secs=300" READY
qemu_one "1 GiB idle (hello)" "prog=hello secs=300" READY
hv_one "1 GiB, 512 MiB incompressible" "prog=memtouch ws=512M sweeps=1 hz=1000" "rate=0 maxgap"
qemu_one "1 GiB, 512 MiB incompressible" "prog=memtouch ws=512M sweeps=1 hz=1000" "rate=0 maxgap"
hv_one "1 GiB, 900 MiB incompressible" "prog=memtouch ws=900M sweeps=1 hz=1000" "rate=0 maxgap"
qemu_one "1 GiB, 900 MiB incompressible" "prog=memtouch ws=900M sweeps=1 hz=1000" "rate=0 maxgap"
echo
