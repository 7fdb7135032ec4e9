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

echo "## Guest RAM: first touch at boot (1 GiB guest, prog=memread reads=2)"
echo
echo "The guest reads all of its free RAM twice at CPL3: the first read touches every page for"
echo "the first time (host page faults), the second is the plain read speed."
echo
row "VMM, backing" "1st read ms" "1st MiB/s" "2nd read ms" "2nd MiB/s"
row "------" "-----" "-----" "-----" "-----" | tr ' ' '-'
for b in anon memfd; do
	"$HVCTL" run --mem 1G --mem-backend $b --console "file:$W/boot.log" --kernel "$GUEST" \
		--cmdline "prog=memread reads=2 gap=0" >/dev/null 2>&1
	row "hv --mem-backend $b" "$(ms "$(read_field "$W/boot.log" 1 us)")" "$(read_field "$W/boot.log" 1 rate)" \
		"$(ms "$(read_field "$W/boot.log" 2 us)")" "$(read_field "$W/boot.log" 2 rate)"
	rm -f "$W/boot.log"
done
if [ $have_qemu = 1 ]; then
	timeout 120 qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -M microvm -m 1G \
		-nodefaults -no-user-config -display none -monitor none -serial "file:$W/qboot.log" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST" \
		-append "prog=memread reads=2 gap=0" >/dev/null 2>&1
	row "QEMU $qemu_ver -M microvm" "$(ms "$(read_field "$W/qboot.log" 1 us)")" "$(read_field "$W/qboot.log" 1 rate)" \
		"$(ms "$(read_field "$W/qboot.log" 2 us)")" "$(read_field "$W/qboot.log" 2 rate)"
else
	row "QEMU (not installed)" - - - -
fi
echo

echo "## Guest RAM after a migration (1 GiB idle guest, then prog=memread reads all of it)"
echo
echo "The guest waits (delay=), is migrated idle on loopback, then reads all of its free RAM"
echo "on the destination: memory it never touched, which the migration did not send."
echo
row "VMM, backing (source -> destination)" "read ms" "MiB/s" "migration ms" "on the wire"
row "------" "-----" "-----" "-----" "-----" | tr ' ' '-'
for b in anon memfd; do
	port=$((port + 1))
	"$HVCTL" run --detach --name src --mem 1G --mem-backend $b --console "file:$W/src.log" \
		--kernel "$GUEST" --cmdline "prog=memread delay=5" >/dev/null 2>&1
	wait_line "$W/src.log" READY 20
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name dst --mem-backend $b --console "file:$W/dst.log" \
		--timeout 60 --detach >/dev/null 2>&1
	"$HVCTL" migrate src "127.0.0.1:$port" >"$W/sum" 2>&1
	wait_line "$W/dst.log" '^memread: read=1 ' 120
	row "hv $b -> $b" "$(ms "$(read_field "$W/dst.log" 1 us)")" "$(read_field "$W/dst.log" 1 rate)" \
		"$(sed -n 's/^  total time *\([0-9.]*\).*/\1/p' "$W/sum")" "$(sed -n 's/^  on the wire *//p' "$W/sum")"
	"$HVCTL" stop dst >/dev/null 2>&1
	"$HVCTL" stop src >/dev/null 2>&1
	rm -f "$W"/*.log
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

echo "## Destination population: fresh RAM populated for writing (tests/bench/memfill, 1 GiB)"
echo
echo "What a destination pays before a page can land: MADV_POPULATE_WRITE of new guest RAM."
echo "QEMU's RAM is anonymous memory with MADV_HUGEPAGE, the anon row."
echo
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
	port=$((port + 1))
	"$HVCTL" run --detach --name src --mem 1G --console "file:$W/src.log" --kernel "$GUEST" \
		--cmdline "prog=memtouch ws=900M sweeps=1" >/dev/null 2>&1
	wait_line "$W/src.log" "rate=0 maxgap" 60
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name dst --console "file:$W/dst.log" --timeout 60 \
		--mem-backend "$dst_backend" --detach >/dev/null 2>&1
	# shellcheck disable=SC2086
	"$HVCTL" migrate src "127.0.0.1:$port" $opts >"$W/sum" 2>&1
	inc_row "hv anon -> $dst_backend, ${opts:-default (--compress auto)}" "$(sed -n 's/^  total time *\([0-9.]*\).*/\1/p' "$W/sum")" \
		"$(wire_bytes "$W/sum")"
	"$HVCTL" stop dst >/dev/null 2>&1
	"$HVCTL" stop src >/dev/null 2>&1
	rm -f "$W"/*.log
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
