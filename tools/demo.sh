#!/bin/bash
# make demo: two "lab machines" (network namespaces joined by a virtual cable), a guest whose
# memory checks itself on host A, live-migrated to host B over TLS with --explain narrating
# every round, and an HTML report of the migration left in $BUILD/demo-report.html (opened by
# nobody: the demo prints where it is). docs/tutorial.md starts from what this prints.
# Everything it starts, it stops, also on Ctrl-C. Needs root (namespaces), like KVM.
#   DEMO_RATE=MiB/s   how fast the guest rewrites its memory (default 200)
#   DEMO_DOWNTIME=MS  the downtime limit (default 30, hvctl's own default)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
REPORT=$PWD/$BUILD/demo-report.html
RATE=${DEMO_RATE:-200}
DOWNTIME=${DEMO_DOWNTIME:-30}
W=$(mktemp -d /tmp/hv-demo.XXXXXX)
A=hvdemoA-$$
B=hvdemoB-$$
PORT=4440

cleanup() {
	trap - EXIT INT TERM
	for ns in "$A" "$B"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	sleep 0.3
	for ns in "$A" "$B"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$W"
}
interrupted() {
	echo
	echo "demo interrupted: stopping the guests and removing the two lab hosts"
	cleanup
	exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
	echo "demo: $*" >&2
	exit 1
}
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
on_a() { ip netns exec "$A" env HV_RUN_DIR="$W/runA" "$@"; }
on_b() { ip netns exec "$B" env HV_RUN_DIR="$W/runB" "$@"; }

[ "$(id -u)" -eq 0 ] || die "run it as root (it creates network namespaces and uses /dev/kvm)"
[ -x "$HVCTL" ] && [ -f "$GUEST" ] || die "build first: make"

say "Two lab hosts: network namespaces $A (10.78.0.1) and $B (10.78.0.2), one cable between them"
ip netns add "$A" && ip netns add "$B" || die "cannot create network namespaces"
ip -n "$A" link add hv0 type veth peer name hv0 netns "$B" || die "cannot create the cable (veth)"
ip -n "$A" addr add 10.78.0.1/24 dev hv0
ip -n "$B" addr add 10.78.0.2/24 dev hv0
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set hv0 up
done
mkdir -p "$W/runA" "$W/runB"

say "Host A: boot a guest (2 vCPUs, 512 MiB) rewriting 64 MiB at $RATE MiB/s, every page self-checking"
on_a "$HVCTL" run --detach --name demo --cpus 2 --mem 512M --console "file:$W/a.console" \
	--kernel "$GUEST" --cmdline "prog=memtouch ws=64M rate=$RATE" || die "hvctl run failed"
wait_line "$W/a.console" 'memtouch: tick=' || die "the guest did not start: $(tail -n 3 "$W/a.console")"
sleep 1
on_a "$HVCTL" list
tail -n 1 "$W/a.console"

say "A key both hosts share (hvctl keygen): the migration runs over TLS 1.3"
"$HVCTL" keygen "$W/migration.key" || die "hvctl keygen failed"

say "Host B: hvctl receive --listen 10.78.0.2:$PORT --psk KEY (waits for one guest)"
on_b "$HVCTL" receive --listen "10.78.0.2:$PORT" --console "file:$W/b.console" \
	--psk "$W/migration.key" --timeout 60 --detach || die "hvctl receive failed"
on_b "$HVCTL" list

say "Host A: hvctl migrate demo 10.78.0.2:$PORT --psk KEY --downtime $DOWNTIME --explain --report ..."
on_a "$HVCTL" migrate demo "10.78.0.2:$PORT" --psk "$W/migration.key" --downtime "$DOWNTIME" \
	--explain --report "$REPORT" | tee "$W/migrate.out"
[ "${PIPESTATUS[0]}" -eq 0 ] || die "the migration failed; the guest keeps running on host A"

say "Host B runs the guest now; its heartbeat and generation counters carry on"
wait_line "$W/b.console" 'memtouch: tick=' || die "no heartbeat on host B"
sleep 1
on_b "$HVCTL" list
echo "last heartbeat on A:   $(grep 'memtouch: tick=' "$W/a.console" | tail -n 1)"
echo "first heartbeat on B:  $(grep 'memtouch: tick=' "$W/b.console" | head -n 1)"
echo "latest heartbeat on B: $(grep 'memtouch: tick=' "$W/b.console" | tail -n 1)"
grep -q CORRUPT "$W/a.console" "$W/b.console" && die "CORRUPT: the guest found a page that lost its content"
echo "no page lost its content (memtouch checks every page before it rewrites it)"
on_b "$HVCTL" stop demo >/dev/null

say "Your numbers (docs/tutorial.md refers to them)"
rounds=$(sed -n 's/^  rounds *\([0-9]*\).*/\1/p' "$W/migrate.out")
down=$(sed -n 's/^  downtime *\(.*\)/\1/p' "$W/migrate.out")
wire=$(sed -n 's/^  on the wire *\(.*\)/\1/p' "$W/migrate.out")
echo "rounds:       $rounds ($((rounds - 1)) while the guest ran, then the switchover)"
echo "downtime:     $down (the limit was $DOWNTIME ms)"
echo "on the wire:  $wire for 64 MiB the guest kept rewriting"
grep -m1 '^round 0: the guest rewrote' "$W/migrate.out" | sed 's/^/round 0:      /; s/round 0:      round 0: /round 0:      /'
echo
echo "report: $REPORT"
echo "        (open it in a browser; the tutorial is docs/tutorial.md)"
echo "demo done"
