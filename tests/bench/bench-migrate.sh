#!/bin/bash
# Migration benchmarks on loopback, each beside loopback TCP throughput measured in the same
# run. Prints markdown tables. Downtime is shown twice: as the source measures it (guest
# paused -> destination acknowledged and commit sent) and as the guest saw it (the longest
# gap in its progress on the destination, from memtouch's maxgap_us).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d /tmp/hv-bench-mig.XXXXXX)
export HV_RUN_DIR=$W/run
port=$((46000 + RANDOM % 1000))
trap 'for l in "$W"/run/*.lock; do [ -s "$l" ] && kill -9 "$(cat "$l")" 2>/dev/null; done; rm -rf "$W"' EXIT

tcp=$("$BUILD/bench/tcpbw" 2)
recv_args=()
qemu_tls=0
"$HVCTL" keygen "$W/psk" 2>/dev/null
# What one core encrypts with AES-128-GCM in 16 KiB records (OpenSSL's own figure).
aes=$(openssl speed -evp aes-128-gcm -bytes 16384 -seconds 1 2>/dev/null |
	awk '/^AES-128-GCM/ { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1048576 }')
fill=$("$BUILD/bench/memfill" 1024)

field() { sed -n "s/^  $1 *\([0-9.]*\).*/\1/p" "$2"; }

# migrate_one LABEL "GUEST ARGS" MEM [migrate options...]: prints a table row.
migrate_one() {
	local label=$1 cmdline=$2 mem=$3
	shift 3
	port=$((port + 1))
	"$HVCTL" run --detach --name src --mem "$mem" --console "file:$W/src.log" --kernel "$GUEST" \
		--cmdline "$cmdline" >/dev/null || return
	for _ in $(seq 100); do grep -q READY "$W/src.log" 2>/dev/null && break; sleep 0.1; done
	# A guest that fills its memory once (sweeps=) is measured after it went quiet.
	if [[ "$cmdline" == *sweeps=* ]]; then
		for _ in $(seq 200); do grep -q "rate=0 maxgap" "$W/src.log" && break; sleep 0.1; done
	fi
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name dst --console "file:$W/dst.log" --timeout 60 --detach \
		"${recv_args[@]}"
	local rc=0
	"$HVCTL" migrate src "127.0.0.1:$port" "$@" >"$W/sum" 2>"$W/err" || rc=$?
	sleep 0.6
	local gap=$(grep -Eo 'maxgap_us=[0-9]+' "$W/dst.log" 2>/dev/null | head -n 3 | cut -d= -f2 | sort -n | tail -n 1)
	if [ $rc -eq 0 ]; then
		local total=$(field "total time" "$W/sum") down=$(field downtime "$W/sum") rounds=$(field rounds "$W/sum")
		local wire=$(sed -n 's/^  on the wire *//p' "$W/sum")
		local mib=$(awk -v b="$(sed -n 's/.*"wire_bytes":\([0-9]*\).*/\1/p' "$W/sum")" 'BEGIN{print b}')
		printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "$label" "$total" "$down" "$(awk -v g="$gap" 'BEGIN { if (g == "") print "-"; else printf "%.1f", g / 1000 }')" "$rounds" "$wire" "yes"
	else
		printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "$label" "-" "-" "-" "-" "-" "no: $(head -c 60 "$W/err")"
	fi
	"$HVCTL" stop dst >/dev/null 2>&1
	"$HVCTL" stop src >/dev/null 2>&1
	rm -f "$W"/*.log
}

# qemu_one LABEL "GUEST ARGS" MEM READY_TEXT: the same guest migrated by QEMU, as a row.
qemu_one() {
	local r total down bytes
	if ! command -v qemu-system-x86_64 >/dev/null || ! command -v python3 >/dev/null; then
		printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "QEMU: $1" "-" "-" "-" "-" "-" "(QEMU or python3 not installed)"
		return
	fi
	mkdir -p "$W/q"
	r=$(QEMU_MIGRATE_TLS=$qemu_tls tests/bench/qemu-migrate.py "$GUEST" "$2" "$3" "$4" "$W/q" 2>"$W/q/err")
	read -r total down bytes <<<"$r"
	rm -rf "$W/q"
	[ "$total" = "-" ] && { printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "QEMU: $1" - - - - - "failed"; return; }
	printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "QEMU $qemu_ver: $1" "$total" "$down" "-" "-" \
		"$(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }')" "yes"
}
qemu_ver=$(command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1 | awk '{print $4}')

echo "## Live migration on loopback"
echo
echo "References measured now: loopback TCP, one stream, $tcp MiB/s; fresh guest RAM on this"
echo "host (anonymous memory on huge pages populated for writing, as the destination does), $fill MiB/s; QEMU rows: the same"
echo "guest migrated by QEMU -M pc (its defaults, bandwidth cap lifted; total and downtime as QEMU"
echo "reports them). TLS rows: --psk on both sides (TLS 1.3, AES-128-GCM); one core encrypts"
echo "${aes:-?} MiB/s with AES-128-GCM here (openssl speed, 16 KiB blocks). QEMU's TLS rows: tls-creds-psk."
echo
printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %s |\n' "case" "total ms" "down ms" "guest gap ms" "rounds" "on the wire" "converged"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------------" "-----------" "-----------" "------------" "--------" "--------------" "-----------"
migrate_one "1 GiB idle (hello)" "prog=hello secs=120" 1G
qemu_one "1 GiB idle (hello)" "prog=hello secs=120" 1G READY
migrate_one "1 GiB, 900 MiB incompressible, 1 kHz idle" "prog=memtouch ws=900M sweeps=1 hz=1000" 1G
migrate_one "the same, --compress none" "prog=memtouch ws=900M sweeps=1 hz=1000" 1G --compress none
recv_args=(--psk "$W/psk")
migrate_one "the same, --compress none, TLS" "prog=memtouch ws=900M sweeps=1 hz=1000" 1G --compress none --psk "$W/psk"
recv_args=()
qemu_one "900 MiB incompressible, 1 kHz idle" "prog=memtouch ws=900M sweeps=1 hz=1000" 1G "rate=0 maxgap"
qemu_tls=1
qemu_one "the same, TLS (PSK)" "prog=memtouch ws=900M sweeps=1 hz=1000" 1G "rate=0 maxgap"
qemu_tls=0
migrate_one "memtouch 64 MiB at 50 MiB/s" "prog=memtouch ws=64M rate=50" 512M
migrate_one "memtouch 64 MiB at 200 MiB/s" "prog=memtouch ws=64M rate=200" 512M
migrate_one "memtouch 64 MiB at 1000 MiB/s" "prog=memtouch ws=64M rate=1000" 512M
qemu_one "memtouch 64 MiB at 1000 MiB/s" "prog=memtouch ws=64M rate=1000" 512M READY
migrate_one "memtouch 64 MiB at 1000 MiB/s, --compress none" "prog=memtouch ws=64M rate=1000" 512M --compress none
recv_args=(--psk "$W/psk")
migrate_one "the same, TLS" "prog=memtouch ws=64M rate=1000" 512M --compress none --psk "$W/psk"
recv_args=()
qemu_tls=1
qemu_one "memtouch 64 MiB at 1000 MiB/s, TLS (PSK)" "prog=memtouch ws=64M rate=1000" 512M READY
qemu_tls=0
migrate_one "memtouch 64 MiB stamp-only at 50 MiB/s, zlib" "prog=memtouch ws=64M rate=50 fill=stamp" 512M --compress zlib
echo
