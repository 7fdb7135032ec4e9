#!/bin/bash
# Migration benchmarks on loopback, each beside loopback TCP throughput measured in the same
# run. Prints markdown tables. Downtime is shown twice: as the source measures it (guest
# paused -> it runs on the destination) and as the guest saw it (the longest gap in its
# progress on the destination, from memtouch's maxgap_us).
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
. tests/bench/lib-migrate.sh
"$HVCTL" keygen "$W/psk" 2>/dev/null
# What one core encrypts with AES-128-GCM in 16 KiB records (OpenSSL's own figure).
aes=$(openssl speed -evp aes-128-gcm -bytes 16384 -seconds 1 2>/dev/null |
	awk '/^AES-128-GCM/ { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1048576 }')
fill=$("$BUILD/bench/memfill" 1024)

echo "## Live migration on loopback"
echo
echo "References measured now: loopback TCP, one stream, $tcp MiB/s; fresh guest RAM on this"
echo "host (anonymous memory on huge pages populated for writing, as the destination does), $fill MiB/s; QEMU rows: the same"
echo "guest migrated by QEMU -M pc (its defaults, bandwidth cap lifted; total and downtime as QEMU"
echo "reports them). TLS rows: --psk on both sides (TLS 1.3, AES-128-GCM); one core encrypts"
echo "${aes:-?} MiB/s with AES-128-GCM here (openssl speed, 16 KiB blocks). QEMU's TLS rows: tls-creds-psk."
echo
echo "guest speed: memtouch's write rate while it was migrated, against its rate before."
echo
row "case" "total ms" "down ms" "guest gap ms" "rounds" "on the wire" "speed" "converged"
row "---" "---" "---" "---" "---" "---" "---" "---" | tr ' ' '-'
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
migrate_one "the same, --dirty-log clear" "prog=memtouch ws=64M rate=1000" 512M --compress none --dirty-log clear
migrate_one "memtouch 256 MiB flat out, --bandwidth 200M" "prog=memtouch ws=256M" 1G --compress none --bandwidth 200M
migrate_one "the same, --dirty-log clear" "prog=memtouch ws=256M" 1G --compress none --bandwidth 200M --dirty-log clear
migrate_one "the same, --auto-converge" "prog=memtouch ws=256M" 1G --compress none --bandwidth 200M --auto-converge
migrate_one "the same, --postcopy" "prog=memtouch ws=256M" 1G --compress none --bandwidth 200M --postcopy
migrate_one "memtouch 64 MiB stamp-only at 50 MiB/s, zlib" "prog=memtouch ws=64M rate=50 fill=stamp" 512M --compress zlib
echo
