#!/bin/bash
# Guest RAM benchmarks, each with QEMU on the same guest image in the same run: how fast a
# guest first touches its RAM at boot, how fast it reads RAM a migration never sent, how
# fast a destination host populates fresh RAM, and incompressible 1 GiB migration as a
# fraction of loopback TCP. hv rows per --mem-backend. Numbers, not assertions.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BUILD=$(realpath -m --relative-to=. "$BUILD")
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d /tmp/hv-bench-mem.XXXXXX)
export HV_RUN_DIR=$W/run
port=$((45000 + RANDOM % 1000))
trap 'for l in "$W"/run/*.lock; do [ -s "$l" ] && kill -9 "$(cat "$l")" 2>/dev/null; done; rm -rf "$W"' EXIT
have_qemu=0
command -v qemu-system-x86_64 >/dev/null && command -v python3 >/dev/null && have_qemu=1
qemu_ver=$([ $have_qemu = 1 ] && qemu-system-x86_64 --version | head -1 | awk '{print $4}')

# read_field FILE N KEY: KEY's value in the N-th "memread: read=" line of FILE.
read_field() {
	grep -E '^memread: read=' "$1" 2>/dev/null | sed -n "${2}p" | grep -Eo "(^| )$3=[^ ]+" | cut -d= -f2
}

# wait_line FILE REGEX SECS
wait_line() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

ms() { awk -v u="$1" 'BEGIN { if (u == "") print "-"; else printf "%.0f", u / 1000 }'; }
row() { printf '| %-40s | %12s | %10s | %12s | %10s |\n' "$@"; }
head_row() { row "$@"; row ------ ----- ----- ----- ----- | tr ' ' '-'; }
# boot_row LABEL LOG: both reads of a prog=memread reads=2 boot.
boot_row() {
	row "$1" "$(ms "$(read_field "$2" 1 us)")" "$(read_field "$2" 1 rate)" \
		"$(ms "$(read_field "$2" 2 us)")" "$(read_field "$2" 2 rate)"
}
# hv_migrate SRC_BACKEND DST_BACKEND CMDLINE READY_REGEX [MIGRATE OPTIONS...]: boots a 1 GiB
# guest "srcPORT", waits for READY_REGEX in its log, migrates it to "dstPORT" on loopback
# (summary in $W/sum); the destination keeps running (hv_stop ends both). Fresh names each
# time: a VM that is still exiting holds its name a little longer.
hv_migrate() {
	local sb=$1 db=$2 cmdline=$3 ready=$4
	shift 4
	port=$((port + 1))
	"$HVCTL" run --detach --name "src$port" --mem 1G --mem-backend "$sb" --console "file:$W/src.log" \
		--kernel "$GUEST" --cmdline "$cmdline" >/dev/null 2>&1
	wait_line "$W/src.log" "$ready" 60
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name "dst$port" --mem-backend "$db" --console "file:$W/dst.log" \
		--timeout 60 --detach >/dev/null 2>&1
	"$HVCTL" migrate "src$port" "127.0.0.1:$port" "$@" >"$W/sum" 2>&1
}
hv_stop() {
	"$HVCTL" stop "dst$port" >/dev/null 2>&1
	"$HVCTL" stop "src$port" >/dev/null 2>&1
	rm -f "$W"/*.log
}
sum_total_ms() { sed -n 's/^  total time *\([0-9.]*\).*/\1/p' "$W/sum"; }

# section TITLE LINE...: a heading and its explanation.
section() { printf '## %s\n\n' "$1"; shift; printf '%s\n' "$@"; echo; }

section "Guest RAM: first touch at boot (1 GiB guest, prog=memread reads=2)" \
	"The guest reads all of its free RAM twice at CPL3: the first read touches every page for" \
	"the first time (host page faults), the second is the plain read speed."
head_row "VMM, backing" "1st read ms" "1st MiB/s" "2nd read ms" "2nd MiB/s"
for b in anon memfd; do
	"$HVCTL" run --mem 1G --mem-backend $b --console "file:$W/boot.log" --kernel "$GUEST" \
		--cmdline "prog=memread reads=2 gap=0" >/dev/null 2>&1
	boot_row "hv --mem-backend $b" "$W/boot.log"
	rm -f "$W/boot.log"
done
if [ $have_qemu = 1 ]; then
	timeout 120 qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -M microvm -m 1G \
		-nodefaults -no-user-config -display none -monitor none -serial "file:$W/qboot.log" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST" \
		-append "prog=memread reads=2 gap=0" >/dev/null 2>&1
	boot_row "QEMU $qemu_ver -M microvm" "$W/qboot.log"
else
	row "QEMU (not installed)" - - - -
fi
echo

section "Guest RAM after a migration (1 GiB idle guest, then prog=memread reads all of it)" \
	"The guest waits (delay=), is migrated idle on loopback, then reads all of its free RAM" \
	"on the destination: memory it never touched, which the migration did not send."
head_row "VMM, backing (source -> destination)" "read ms" "MiB/s" "migration ms" "on the wire"
for b in anon memfd; do
	hv_migrate $b $b "prog=memread delay=5" READY
	wait_line "$W/dst.log" '^memread: read=1 ' 120
	row "hv $b -> $b" "$(ms "$(read_field "$W/dst.log" 1 us)")" "$(read_field "$W/dst.log" 1 rate)" \
		"$(sum_total_ms)" "$(sed -n 's/^  on the wire *//p' "$W/sum")"
	hv_stop
done
if [ $have_qemu = 1 ]; then
	mkdir -p "$W/q"
	read -r total _ bytes < <(tests/bench/qemu-migrate.py "$GUEST" "prog=memread delay=8" 1G READY "$W/q" \
		"memread: read=1 " 2>"$W/q.err")
	row "QEMU $qemu_ver -M pc" "$(ms "$(read_field "$W/q/qdst.log" 1 us)")" "$(read_field "$W/q/qdst.log" 1 rate)" \
		"$total" "$(awk -v b="$bytes" 'BEGIN { if (b == "-") print "-"; else printf "%.1f MiB", b / 1048576 }')"
	rm -rf "$W/q"
else
	row "QEMU (not installed)" - - - -
fi
echo

section "Destination population: fresh RAM populated for writing (tests/bench/memfill, 1 GiB)" \
	"What a destination pays before a page can land: MADV_POPULATE_WRITE of new guest RAM." \
	"QEMU's RAM is anonymous memory with MADV_HUGEPAGE, the anon row."
printf '| %-40s | %10s | %10s |\n' "backing" "MiB/s" "ms/GiB"
printf '|%s|%s|%s|\n' "------------------------------------------" "------------" "------------"
for b in anon memfd; do
	r=$("$BUILD/bench/memfill" 1024 $b)
	label="hv --mem-backend $b"
	[ $b = anon ] && label="$label (= QEMU's RAM)"
	printf '| %-40s | %10s | %10s |\n' "$label" "$r" "$(awk -v r="$r" 'BEGIN { printf "%.0f", 1024000 / r }')"
done
echo

echo "## Incompressible 1 GiB migration (memtouch ws=900M sweeps=1, quiet) vs loopback TCP"
echo
tcp=$("$BUILD/bench/tcpbw" 2)
echo "Loopback TCP, one stream, measured now: $tcp MiB/s. Throughput = bytes on the wire / total time."
echo
printf '| %-40s | %9s | %12s | %9s | %9s |\n' "case" "total ms" "on the wire" "MiB/s" "of TCP"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------------------" "-----------" "--------------" "-----------" "-----------"
# inc_row LABEL TOTAL_MS BYTES
inc_row() {
	awk -v l="$1" -v t="$2" -v b="$3" -v tcp="$tcp" 'BEGIN {
		if (t == "" || b == "" || t == "-" || b == "-") { printf "| %-40s | %9s | %12s | %9s | %9s |\n", l, "-", "-", "-", "-"; exit }
		r = b / 1048576 / (t / 1000)
		printf "| %-40s | %9.0f | %8.1f MiB | %9.0f | %9.2f |\n", l, t, b / 1048576, r, r / tcp }'
}
wire_bytes() {
	awk '/^ *on the wire/ { m = 1; split("B KiB MiB GiB TiB", u, " ");
		for (i = 1; i <= 5; i++) if ($5 == u[i]) m = 1024 ^ (i - 1);
		printf "%.0f\n", $4 * m }' "$1"
}
for c in "anon --compress none" "anon" "memfd --compress none"; do
	read -r dst_backend opts <<<"$c"
	# shellcheck disable=SC2086
	hv_migrate anon "$dst_backend" "prog=memtouch ws=900M sweeps=1" "rate=0 maxgap" $opts
	inc_row "hv anon -> $dst_backend, ${opts:-default (--compress auto)}" "$(sum_total_ms)" "$(wire_bytes "$W/sum")"
	hv_stop
done
if [ $have_qemu = 1 ]; then
	mkdir -p "$W/q"
	read -r total _ bytes < <(tests/bench/qemu-migrate.py "$GUEST" "prog=memtouch ws=900M sweeps=1" 1G \
		"rate=0 maxgap" "$W/q" 2>"$W/q.err")
	inc_row "QEMU $qemu_ver -M pc (its defaults)" "$total" "$bytes"
	rm -rf "$W/q"
else
	inc_row "QEMU (not installed)" - -
fi
echo
