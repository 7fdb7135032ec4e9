#!/bin/bash
# Storage benchmarks: a shared-nothing migration (the disk travels with the guest) and a
# live disk move on one host, each beside the same done by QEMU the way libvirt does it
# (blockdev-mirror into an NBD export on the destination, then migrate; blockdev-mirror
# into a new file, then block-job-complete), on the same image in the same run, and beside
# the disk's and the link's raw rates. Prints markdown tables; numbers, not assertions.
#   BENCH_DISK_MIB  the disk (default 1024; half of it is written with random data)
#   BENCH_MEM       the guest's RAM (default 512M)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
DISK_MIB=${BENCH_DISK_MIB:-1024}
MEM=${BENCH_MEM:-512M}
W=$(mktemp -d /tmp/hv-bench-storage.XXXXXX)
export HV_RUN_DIR=$W/run
port=$((45000 + RANDOM % 1000))
trap 'for l in "$W"/run/*.lock; do [ -s "$l" ] && kill -9 "$(cat "$l")" 2>/dev/null; done; rm -rf "$W"' EXIT

echo "## Storage: the disk moves too"
echo
if [ ! -c /dev/kvm ]; then
	echo "(skipped: no /dev/kvm on this host)"
	echo
	exit 0
fi

lo_bytes() { cat /sys/class/net/lo/statistics/tx_bytes; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# event_field FILE EVENT KEY: KEY of the last EVENT in a file of JSON lines.
event_field() {
	python3 -c 'import json, sys
v = "-"
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == sys.argv[2] and sys.argv[3] in e:
        v = e[sys.argv[3]]
print(("%.1f" % v) if isinstance(v, float) else v)' "$@"
}
# max_lat CONSOLE FROM: the longest I/O wait blkcheck reported in heartbeats FROM.. (ms).
max_lat() {
	sed -n 's/^blkcheck: pass=.* maxlat_us=\([0-9]*\).*/\1/p' "$1" | tail -n +"$2" |
		sort -n | tail -n 1 | awk '{ printf "%.1f", $1 / 1000 }'
}
heartbeats() { grep -c '^blkcheck: pass=' "$1"; }
wait_line() {
	for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# The image: DISK_MIB, every other 4 MiB written with random data (half of it), the rest
# holes, as a disk that has been used.
mkdir -p "$W/a" "$W/b"
img=$W/a/disk.img
truncate -s "${DISK_MIB}M" "$img"
for ((off = 0; off < DISK_MIB; off += 8)); do
	dd if=/dev/urandom of="$img" bs=1M count=4 seek=$off conv=notrunc status=none
done
cp --sparse=always "$img" "$W/pristine.img"
data_mib=$(($(du -k "$img" | cut -f1) / 1024))

tcp=$("$BUILD/bench/tcpbw" 2)
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
disk=$(dd if="$img" of=/dev/null bs=1M 2>&1 | awk '/copied/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^[MG]B\/s/) { v = $i; if ($(i + 1) ~ /^GB/) v *= 1000; printf "%.0f", v * 1000000 / 1048576 } }')
qemu_ver=$(command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1 | awk '{print $4}')

echo "A guest with $MEM of RAM (idle: hello) and a $DISK_MIB MiB disk with $data_mib MiB of random"
echo "data in 4 MiB extents (the rest never written), moved on loopback. References measured now:"
echo "loopback TCP, one stream, $tcp MiB/s; reading the image with the page cache dropped,"
echo "${disk:-?} MiB/s. \"On the wire\" is loopback's byte count over the whole move, for both"
echo "(QEMU's disk goes over NBD beside its migration stream). \"Allocated\" is what the copy"
echo "takes on the destination's file system; \"identical\": cmp of the two images afterwards."
echo
row() { printf '| %-46s | %9s | %9s | %12s | %10s | %9s |\n' "$@"; }
row "shared-nothing migration" "total s" "down ms" "on the wire" "allocated" "identical"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------------" "-----------" "-----------" "--------------" "------------" "-----------"
same() { cmp -s "$1" "$2" && echo yes || echo NO; }
alloc() { echo "$(($(du -k "$1" | cut -f1) / 1024)) MiB"; }

# hv: hvctl migrate --storage copy into the receiver's --disk-dir.
port=$((port + 1))
if "$HVCTL" run --detach --name src --mem "$MEM" --disk "$img" --console "file:$W/src.log" \
	--kernel "$GUEST" --cmdline "prog=hello secs=3600" >/dev/null && wait_line "$W/src.log" READY; then
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name dst --disk-dir "$W/b" --console "file:$W/dst.log" \
		--timeout 120 --detach >/dev/null
	lo0=$(lo_bytes)
	if "$HVCTL" migrate src "127.0.0.1:$port" --storage copy --json >"$W/ev" 2>"$W/err"; then
		lo1=$(lo_bytes)
		"$HVCTL" pause dst >/dev/null 2>&1
		row "hv: migrate --storage copy" \
			"$(awk -v t="$(event_field "$W/ev" migration-done elapsed_ms)" 'BEGIN { printf "%.1f", t / 1000 }')" \
			"$(event_field "$W/ev" migration-done downtime_ms)" "$(mib $((lo1 - lo0))) MiB" \
			"$(alloc "$W/b/disk.img")" "$(same "$img" "$W/b/disk.img")"
	else
		row "hv: migrate --storage copy" - - - - "failed: $(head -c 60 "$W/err" | tr -cd '[:print:]')"
	fi
fi
"$HVCTL" stop dst >/dev/null 2>&1
"$HVCTL" stop src >/dev/null 2>&1
rm -f "$W/b/disk.img"

# QEMU: blockdev-mirror into the destination's NBD export, then migrate.
if [ -n "$qemu_ver" ] && command -v python3 >/dev/null; then
	mkdir -p "$W/q"
	lo0=$(lo_bytes)
	r=$(tests/bench/qemu-storage.py migrate "$GUEST" "prog=hello secs=3600" "$MEM" READY \
		"$img" "$W/b/disk.img" "$W/q" 2>"$W/q/err")
	read -r total down _ <<<"${r:--}"
	lo1=$(lo_bytes)
	if [ "$total" != "-" ]; then
		row "QEMU $qemu_ver: blockdev-mirror to NBD + migrate" \
			"$(awk -v t="$total" 'BEGIN { printf "%.1f", t / 1000 }')" "$down" "$(mib $((lo1 - lo0))) MiB" \
			"$(alloc "$W/b/disk.img")" "$(same "$img" "$W/b/disk.img")"
	else
		row "QEMU $qemu_ver: blockdev-mirror to NBD + migrate" - - - - "failed: $(tail -n 1 "$W/q/err" | head -c 60 | tr -cd '[:print:]')"
	fi
	rm -rf "$W/q" "$W/b/disk.img"
else
	row "QEMU (not installed)" - - - - -
fi
echo

# The disk moved on this host while blkcheck writes and verifies its first 16 MiB.
echo "The same disk moved to a new file on this host while the guest (blkcheck, 16 MiB,"
echo "queue depth 8) writes and verifies it. The guest's longest I/O wait is blkcheck's"
echo "maxlat_us: the longest it waited for a completion, before the move and around it."
echo
mrow() { printf '| %-46s | %9s | %6s | %20s | %20s | %16s |\n' "$@"; }
mrow "live disk move" "total s" "rounds" "guest wait before ms" "guest wait during ms" "device paused ms"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------------" "-----------" "--------" "----------------------" "----------------------" "------------------"
blk="prog=blkcheck passes=0 secs=3600 blocks=4096"
cp --sparse=always "$W/pristine.img" "$img"
if "$HVCTL" run --detach --name mv --mem "$MEM" --disk "$img" --console "file:$W/mv.log" \
	--kernel "$GUEST" --cmdline "$blk" >/dev/null && wait_line "$W/mv.log" '^blkcheck: pass=3 '; then
	sleep 2
	n0=$(heartbeats "$W/mv.log")
	grep '^blkcheck: pass=' "$W/mv.log" | sed -n "2,${n0}p" >"$W/b.log"
	before=$(max_lat "$W/b.log" 1)
	if "$HVCTL" move-disk mv disk0 "$W/a/moved.img" --json >"$W/ev" 2>"$W/err"; then
		sleep 2
		mrow "hv: move-disk" \
			"$(awk -v t="$(event_field "$W/ev" move-disk-done elapsed_ms)" 'BEGIN { printf "%.1f", t / 1000 }')" \
			"$(($(event_field "$W/ev" move-disk-done round) + 1))" "$before" "$(max_lat "$W/mv.log" $((n0 + 1)))" "$(event_field "$W/ev" move-disk-done stall_ms)"
	else
		mrow "hv: move-disk" - - - - "failed: $(head -c 40 "$W/err" | tr -cd '[:print:]')"
	fi
	grep -q CORRUPT "$W/mv.log" && echo "(hv: the guest reported corruption)"
fi
"$HVCTL" stop mv >/dev/null 2>&1
if [ -n "$qemu_ver" ] && command -v python3 >/dev/null; then
	cp --sparse=always "$W/pristine.img" "$img"
	rm -f "$W/a/moved.img"
	mkdir -p "$W/q"
	r=$(tests/bench/qemu-storage.py move "$GUEST" "$blk" "$MEM" "blkcheck: pass=3 " \
		"$img" "$W/a/moved.img" "$W/q" 2>"$W/q/err")
	read -r total n0 _ <<<"${r:--}"
	if [ "$total" != "-" ]; then
		grep '^blkcheck: pass=' "$W/q/qsrc.log" | head -n "$n0" | tail -n +2 >"$W/b.log"
		mrow "QEMU $qemu_ver: blockdev-mirror + complete" \
			"$(awk -v t="$total" 'BEGIN { printf "%.1f", t / 1000 }')" - "$(max_lat "$W/b.log" 1)" \
			"$(max_lat "$W/q/qsrc.log" $((n0 + 1)))" "-"
	else
		mrow "QEMU $qemu_ver: blockdev-mirror + complete" - - - - "failed: $(tail -n 1 "$W/q/err" | head -c 40 | tr -cd '[:print:]')"
	fi
	grep -q CORRUPT "$W/q/qsrc.log" && echo "(QEMU: the guest reported corruption)"
fi
echo
