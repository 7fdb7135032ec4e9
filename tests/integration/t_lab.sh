# The network follows the guest (tools/lab.sh: hosts A and B and a client on one switch):
# while a client talks to a netecho guest over UDP at 1000 requests a second and over one
# TCP connection, the guest moves A -> B -> A; the switch learns its new port from the
# destination's announcements at once, the longest silence the client sees stays within
# the longest the guest stood still (the switchover, or on a slow host a moment pre-copy
# held it back: the guest measures that itself) plus a small margin, and the TCP
# connection lives on. The same move with
# the announcements switched off leaves the switch sending to the old host until it forgets
# the MAC: that difference is the announcements' work.

GUEST_MAC=52:54:00:88:00:10

# lab CMD...: tools/lab.sh for this test's lab (its own namespaces and directory).
lab() { LAB=hvl$$ LAB_DIR="$T/lab" tools/lab.sh "$@"; }

# lab_start AGEING: the lab, cleaned up whatever happens, and the guest on A.
lab_start() {
	cat >"$T/cleanup" <<CLEAN
#!/bin/bash
LAB=hvl$$ LAB_DIR="$T/lab" $PWD/tools/lab.sh down
CLEAN
	chmod +x "$T/cleanup"
	trap '"$T/cleanup"' EXIT
	lab up --ageing "$1" >/dev/null || fail "tools/lab.sh up failed"
	lab a "$HVCTL" run --detach --name web --mem 128M --kernel "$GUEST" --console "file:$T/web-a.log" \
		--net tap=tap0,mac=$GUEST_MAC --cmdline "prog=netecho ip=10.88.0.10" >/dev/null ||
		fail "the guest did not start on A"
	wait_for "$T/web-a.log" READY 30
}

LAB_MIGRATE_ARGS=()

# lab_move FROM TO PORT CONSOLE [RECEIVE OPTIONS...]: the guest from one host to the other,
# over the migration link, authenticated; prints how long it stood still, in ms: the
# downtime as the source measured it plus the wait for the destination's confirmation that
# the guest runs there (docs/migration.md, the switchover).
lab_move() {
	local from=$1 to=$2 port=$3 console=$4 addr last
	shift 4
	[ "$to" = b ] && addr=10.77.1.2 || addr=10.77.1.1
	lab "$to" "$HVCTL" receive --listen "$addr:$port" --psk "$T/lab/key" --net tap=tap0 --timeout 60 \
		--detach --console "file:$console" "$@" >/dev/null || fail "hvctl receive on $to failed"
	lab "$from" "$HVCTL" migrate web "$addr:$port" --psk "$T/lab/key" --json "${LAB_MIGRATE_ARGS[@]}" >"$T/mig.json" 2>"$T/mig.err" ||
		{ cat "$T/mig.json" "$T/mig.err" >&2; fail "migration $from -> $to failed"; }
	last=$(grep '"event": *"migration-done"' "$T/mig.json") || fail "no migration-done event"
	awk -v l="$last" 'BEGIN {
		match(l, /"downtime_ms": *[0-9.]+/); d = substr(l, RSTART, RLENGTH); sub(/.*: */, "", d)
		match(l, /"confirm_ms": *[0-9.]+/); c = substr(l, RSTART, RLENGTH); sub(/.*: */, "", c)
		printf "%.1f\n", d + c }'
}

# lab_port_is WHICH [SECS]: the switch's forwarding entry for the guest's MAC points at host
# WHICH within SECS (default 2).
lab_port_is() {
	for _ in $(seq $((${2:-2} * 10))); do
		[ "$(lab where $GUEST_MAC)" = "$1" ] && return 0
		sleep 0.1
	done
	fail "the switch has the guest's MAC on port '$(lab where $GUEST_MAC)', not $1"
}

client_field() { sed -n "s/^labclient: $1 .*$2=\\([^ ]*\\).*/\\1/p" "$T/client.out"; }

# lab_client ARGS...: the client against the guest in the background, until lab_client_end;
# CLIENT0 is when it started (ns).
lab_client() {
	CLIENT0=$(date +%s%N)
	lab client "$PWD/$BUILD/tools/labclient" 10.88.0.10 7 600 "$@" >"$T/client.out" 2>&1 &
	CLIENT=$!
}
lab_client_end() {
	# The client itself (CLIENT is the shell that started it in the namespace).
	pkill -TERM -x labclient || fail "the client is gone"
	wait "$CLIENT" || fail "the client failed"
	cat "$T/client.out"
}
since_client() { echo $((($(date +%s%N) - CLIENT0) / 1000000)); }

# How much longer than the guest stood still the client may wait: one request interval,
# the trip of the first announcement through the switch, scheduling.
MARGIN_MS=150

test_lab_network_follows_the_guest() {
	local d1 d2 worst gap
	lab_start 300
	lab_port_is a
	lab_client --gaps 20
	sleep 3
	d1=$(lab_move a b 4441 "$T/web-b.log")
	lab_port_is b
	sleep 3
	# Back in post-copy (--postcopy-after 1: even though it would converge): the NIC's device
	# thread on A waits for the pages of its rings like a vCPU, and the connection must not
	# notice more than a pause.
	LAB_MIGRATE_ARGS=(--postcopy-after 1)
	d2=$(lab_move b a 4442 "$T/web-a2.log")
	LAB_MIGRATE_ARGS=()
	grep -q '"postcopy"' "$T/mig.json" || fail "the move back did not use post-copy"
	lab_port_is a
	sleep 2
	lab_client_end
	# The longest the guest itself did not run (netecho's maxgap_us, on every host): the
	# switchover, and on a slow host also the moments pre-copy held it back.
	local ran
	ran=$(sed -n 's/^netecho: arp=.* maxgap_us=\([0-9]*\)$/\1/p' "$T/web-a.log" "$T/web-b.log" "$T/web-a2.log" |
		sort -n | tail -n 1)
	echo "the guest stood still $d1 ms (A -> B) and $d2 ms (B -> A); its own longest pause $((ran / 1000)) ms"
	worst=$(awk -v a="$d1" -v b="$d2" -v r="$ran" 'BEGIN { w = a > b ? a : b; r /= 1000; print (r > w ? r : w) }')
	gap=$(client_field udp longest_gap_ms)
	[ "$(client_field tcp connection)" = ok ] || fail "the TCP connection did not survive both moves"
	[ "$(client_field tcp sent)" = "$(client_field tcp echoed)" ] || fail "TCP bytes were not all echoed"
	awk -v g="$gap" -v w="$worst" -v m=$MARGIN_MS 'BEGIN { exit !(g <= w + m) }' ||
		fail "the client waited $gap ms for a reply; the guest stood still (or did not run) at most $worst ms"
	grep -q '^netecho: announce: gratuitous ARP sent, ack=ok' "$T/web-b.log" ||
		fail "the guest was not asked to announce itself on B"
}

# The guest idle while it moves (nothing in flight that it would send from the new host),
# so after the move only an announcement tells the switch. Without one the switch keeps
# the guest's MAC on A's port until it forgets it (20 s here) and floods: a client that
# starts then waits; with one (the move back) the switch has it on the new port at once
# and the client is answered from its first request.
test_lab_without_announcements_the_switch_lags() {
	local off on
	lab_start 20
	lab client "$PWD/$BUILD/tools/labclient" 10.88.0.10 7 2 --no-tcp --rate 50 >"$T/warm.out" ||
		fail "the client failed"
	lab_port_is a
	off=$(lab_move a b 4443 "$T/web-b.log" --announce-rounds 0 --no-guest-announce)
	[ "$(lab where $GUEST_MAC)" = a ] || fail "the switch moved the guest's MAC without an announcement"
	! grep -q '^netecho: announce:' "$T/web-b.log" || fail "the guest was asked to announce itself"
	lab_client --no-tcp --rate 50 --gaps 60
	lab_port_is b 30 # forgotten, flooded, answered from B
	sleep 1
	lab_client_end
	awk -v g="$(client_field udp longest_gap_ms)" 'BEGIN { exit !(g >= 2000) }' ||
		fail "without announcements the client waited only $(client_field udp longest_gap_ms) ms"
	echo "without announcements (the guest stood still $off ms) the client waited $(client_field udp longest_gap_ms) ms"
	on=$(lab_move b a 4444 "$T/web-a2.log")
	lab_port_is a
	lab client "$PWD/$BUILD/tools/labclient" 10.88.0.10 7 2 --no-tcp --rate 50 >"$T/client.out" ||
		fail "the client failed"
	cat "$T/client.out"
	[ "$(client_field udp lost)" = 0 ] || fail "with announcements a client right after the move lost replies"
}
