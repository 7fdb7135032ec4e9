#!/bin/bash
# make demo: boot a guest whose memory checks itself, then live-migrate it to a second
# hv process on this machine and watch it carry on. Everything it starts, it stops.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d /tmp/hv-demo.XXXXXX)
export HV_RUN_DIR=$W/run
PORT=${DEMO_PORT:-4440}
cleanup() {
	"$HVCTL" stop demo-src >/dev/null 2>&1
	"$HVCTL" stop demo-dst >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

say "Boot a guest: 2 vCPUs, 512 MiB, memtouch rewriting 64 MiB at 200 MiB/s, every page self-checking"
"$HVCTL" run --detach --name demo-src --cpus 2 --mem 512M --console "file:$W/src.log" \
	--kernel "$GUEST" --cmdline "prog=memtouch ws=64M rate=200" || exit 1
wait_line "$W/src.log" 'memtouch: tick=' || { echo "guest did not start"; cat "$W/src.log"; exit 1; }
sleep 1
"$HVCTL" list
tail -n 2 "$W/src.log"

say "A key both hosts share: hvctl keygen (the migration then runs over TLS 1.3)"
"$HVCTL" keygen "$W/migration.key" || exit 1

say "Start the destination: hvctl receive --listen 127.0.0.1:$PORT --psk KEY"
"$HVCTL" receive --listen "127.0.0.1:$PORT" --name demo-dst --console "file:$W/dst.log" \
	--psk "$W/migration.key" --timeout 60 --detach || exit 1
"$HVCTL" list

say "Live-migrate: hvctl migrate demo-src 127.0.0.1:$PORT --psk KEY"
"$HVCTL" migrate demo-src "127.0.0.1:$PORT" --psk "$W/migration.key" || exit 1

say "The guest runs on the destination; its heartbeat and generation counters carry on"
wait_line "$W/dst.log" 'memtouch: tick=' || { echo "no heartbeat on the destination"; exit 1; }
sleep 1
"$HVCTL" list
echo "last heartbeat before:  $(grep 'memtouch: tick=' "$W/src.log" | tail -n 1)"
echo "first heartbeat after:  $(grep 'memtouch: tick=' "$W/dst.log" | head -n 1)"
echo "latest heartbeat:       $(grep 'memtouch: tick=' "$W/dst.log" | tail -n 1)"
if grep -q CORRUPT "$W/src.log" "$W/dst.log"; then
	echo "CORRUPT: the guest found a page that lost its content"
	exit 1
fi
echo "no page lost its content (memtouch checks every page before rewriting it)"

say "Stop the guest"
"$HVCTL" stop demo-dst
echo "demo done"
