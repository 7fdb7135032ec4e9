# virtio-net from the guest side: the guest's own driver (guests/kernel/virtio_net.c)
# answers ARP, ping and UDP (prog=netecho) and sends UDP at full speed (prog=netbench)
# through hv's virtio-net on a TAP. Every TAP and address lives in a network namespace
# that the test creates (hvnet-<pid>) and removes in $T/cleanup, even on failure.

UDPECHO=${UDPECHO:-$PWD/$BUILD/tools/udpecho}

# net_setup: namespace $NS with TAP $TAP at 10.88.0.1/24 (the guest will be 10.88.0.2).
net_setup() {
	NS=hvnet-$$
	TAP=hvtap$$
	cat >"$T/cleanup" <<-EOS
		#!/bin/bash
		ip -n $NS link del $TAP 2>/dev/null
		ip netns del $NS 2>/dev/null
		exit 0
	EOS
	chmod +x "$T/cleanup"
	ip netns add "$NS" || fail "cannot create network namespace $NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" tuntap add dev "$TAP" mode tap || fail "cannot create TAP $TAP in $NS"
	ip -n "$NS" addr add 10.88.0.1/24 dev "$TAP"
	ip -n "$NS" link set "$TAP" up
}

test_netecho_ping_and_udp() {
	net_setup
	ip netns exec "$NS" timeout 60 "$HVCTL" run --kernel "$GUEST" --console "file:$T/c" \
		--net "tap=$TAP,mac=52:54:00:88:00:02" \
		--cmdline "prog=netecho ip=10.88.0.2 port=7777 secs=10" 2>"$T/stderr" &
	vm=$!
	wait_for "$T/c" '^READY' 20
	grep -q 'netecho: nic=00:08.0 mac=52:54:00:88:00:02 link=up ip=10.88.0.2 port=7777' "$T/c" ||
		{ cat "$T/c"; fail "netecho did not report the MAC given to hvctl"; }
	ip netns exec "$NS" ping -c 3 -W 2 10.88.0.2 >"$T/ping" || { cat "$T/ping"; fail "ping failed"; }
	ip -n "$NS" neigh show 10.88.0.2 | grep -q 'lladdr 52:54:00:88:00:02' ||
		fail "the host did not learn the guest's MAC by ARP"
	# 50 small and 50 full-size datagrams, each echo compared byte for byte.
	ip netns exec "$NS" "$UDPECHO" 10.88.0.2 7777 50 64 1000 3 >"$T/u1" || { cat "$T/u1"; fail "UDP echo (64 bytes) failed"; }
	ip netns exec "$NS" "$UDPECHO" 10.88.0.2 7777 50 1472 1000 3 >"$T/u2" || { cat "$T/u2"; fail "UDP echo (1472 bytes) failed"; }
	cat "$T/u1" "$T/u2"
	grep -q 'ok=50 bad=0 lost=0' "$T/u1" && grep -q 'ok=50 bad=0 lost=0' "$T/u2" || fail "echo mismatch"
	rc=0
	wait "$vm" || rc=$?
	[ "$rc" -eq 0 ] || { tail -n 20 "$T/c"; cat "$T/stderr"; fail "netecho exited $rc"; }
	line=$(grep '^netecho: done ' "$T/c") || fail "no done line"
	echo "$line"
	[[ "$line" =~ arp=([0-9]+)\ icmp=([0-9]+)\ udp=([0-9]+) ]] || fail "malformed: $line"
	[ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[2]}" -ge 3 ] && [ "${BASH_REMATCH[3]}" -ge 100 ] ||
		fail "counters too low: $line"
}

test_netbench_udp_to_host() {
	net_setup
	ip netns exec "$NS" "$UDPECHO" --sink 9999 30 1500 >"$T/sink" &
	sink=$!
	wait_for "$T/sink" 'listening' 10
	timeout 60 ip netns exec "$NS" "$HVCTL" run --kernel "$GUEST" --console "file:$T/c" \
		--net "tap=$TAP" --cmdline "prog=netbench dst=10.88.0.1 ip=10.88.0.2 port=9999 size=1000 secs=2" \
		2>"$T/stderr" || { tail -n 20 "$T/c"; cat "$T/stderr"; fail "netbench failed"; }
	wait "$sink"
	line=$(grep '^netbench: pps=' "$T/c") || { cat "$T/c"; fail "no result line"; }
	cat "$T/sink"
	echo "$line"
	[[ "$line" =~ pps=([0-9]+)\ mbs=([0-9]+)\ sent=([0-9]+)\ size=1000$ ]] || fail "malformed: $line"
	sent=${BASH_REMATCH[3]}
	[[ "$(tail -n 1 "$T/sink")" =~ packets=([0-9]+)\ bytes=([0-9]+) ]] || fail "no sink result"
	got=${BASH_REMATCH[1]}
	[ "$sent" -ge 1000 ] || fail "only $sent packets in 2 s"
	[ "$((BASH_REMATCH[2]))" -eq "$((got * 1000))" ] || fail "datagrams of the wrong size arrived"
	# Transmit is lossless up to the host socket (the TAP back-pressures the device).
	[ "$got" -ge $((sent * 9 / 10)) ] || fail "host received $got of $sent datagrams"
}

# net_hosts A B TAP ADDR: two "lab machines" (network namespaces A and B), each with a TAP
# called TAP at ADDR/24, up; $T/cleanup stops what runs in them and removes them.
net_hosts() {
	local A=$1 B=$2 TAP=$3 addr=$4 ns
	cat >"$T/cleanup" <<-EOS
		#!/bin/bash
		for ns in $A $B; do
			for pid in \$(ip netns pids \$ns 2>/dev/null); do kill -9 \$pid 2>/dev/null; done
		done
		sleep 0.2
		ip -n $A link del $TAP 2>/dev/null
		ip -n $B link del $TAP 2>/dev/null
		ip netns del $A 2>/dev/null
		ip netns del $B 2>/dev/null
		exit 0
	EOS
	chmod +x "$T/cleanup"
	ip netns add "$A" && ip netns add "$B" || fail "cannot create namespaces"
	for ns in "$A" "$B"; do
		ip -n "$ns" link set lo up
		ip -n "$ns" tuntap add dev "$TAP" mode tap || fail "cannot create TAP $TAP in $ns"
		ip -n "$ns" addr add "$addr/24" dev "$TAP"
		ip -n "$ns" link set "$TAP" up
	done
}

test_netecho_guest_announce_after_migration() {
	# Two "lab machines" (namespaces joined by a veth pair, 10.99.0.1 and 10.99.0.2), each
	# with its own TAP of the same name at 10.88.0.1/24. netecho runs on A, is live-migrated
	# to B, and must announce itself there (VIRTIO_NET_F_GUEST_ANNOUNCE: gratuitous ARP and
	# VIRTIO_NET_CTRL_ANNOUNCE_ACK) and answer ping and UDP on B's TAP.
	local A=hvnetA-$$ B=hvnetB-$$ TAP=hvtap$$
	net_hosts "$A" "$B" "$TAP" 10.88.0.1
	ip -n "$A" link add "hvva$$" type veth peer name "hvvb$$" netns "$B" || fail "cannot create the veth pair"
	ip -n "$A" addr add 10.99.0.1/24 dev "hvva$$"
	ip -n "$B" addr add 10.99.0.2/24 dev "hvvb$$"
	ip -n "$A" link set "hvva$$" up
	ip -n "$B" link set "hvvb$$" up

	ip netns exec "$A" "$HVCTL" run --detach --name ann --console "file:$T/a.console" --kernel "$GUEST" \
		--net "tap=$TAP,mac=52:54:00:88:00:02" --cmdline "prog=netecho ip=10.88.0.2 port=7777" \
		>/dev/null || fail "cannot start netecho on A"
	wait_for "$T/a.console" '^READY' 20
	grep -q 'guest_announce=1' "$T/a.console" || { head -n 5 "$T/a.console"; fail "GUEST_ANNOUNCE not negotiated"; }
	ip netns exec "$A" "$UDPECHO" 10.88.0.2 7777 20 >"$T/u1" || { cat "$T/u1"; fail "UDP echo on A failed"; }
	ip netns exec "$B" "$HVCTL" receive --listen 10.99.0.2:47555 --name ann2 --console "file:$T/b.console" \
		--net "tap=$TAP" --timeout 60 --detach --insecure >/dev/null || fail "cannot start the receiver on B"
	ip netns exec "$A" "$HVCTL" migrate ann 10.99.0.2:47555 >"$T/mig.out" 2>&1 ||
		{ cat "$T/mig.out"; fail "migration failed"; }
	wait_for "$T/b.console" '^netecho: announce: gratuitous ARP sent, ack=ok$' 10
	ip netns exec "$B" ping -c 2 -W 2 10.88.0.2 >"$T/ping" || { cat "$T/ping"; fail "no ping answer on B"; }
	ip netns exec "$B" "$UDPECHO" 10.88.0.2 7777 20 >"$T/u2" || { cat "$T/u2"; fail "UDP echo on B failed"; }
	ip -n "$B" neigh show 10.88.0.2 | grep -q 'lladdr 52:54:00:88:00:02' || fail "the MAC changed on B"
	sleep 1.2 # one more counter line: the announcement happened once
	[ "$(count_lines "$T/b.console" '^netecho: announce:')" -eq 1 ] || { tail "$T/b.console"; fail "announced more than once"; }
	! grep -Eq 'CORRUPT|FATAL|hv-guest: exit' "$T/b.console" || fail "the guest failed on B"
	"$HVCTL" stop ann2 || fail "stop failed"
}

# A snapshot of a netecho guest restored on another "host": saved with --stop on A, restored
# on B (its own namespace, TAP and run directory), it keeps its MAC, announces itself there
# and answers UDP and ping on B's TAP.
test_netecho_snapshot_restored_on_another_host() {
	local A=hvsnA-$$ B=hvsnB-$$ TAP=hvst$$
	net_hosts "$A" "$B" "$TAP" 10.86.0.1
	mkdir -p "$T/runA" "$T/runB"
	ip netns exec "$A" env HV_RUN_DIR="$T/runA" "$HVCTL" run --detach --name snap --console "file:$T/a.console" \
		--kernel "$GUEST" --net "tap=$TAP,mac=52:54:00:86:00:02" --cmdline "prog=netecho ip=10.86.0.2 port=7777" \
		>/dev/null || fail "cannot start netecho on A"
	wait_for "$T/a.console" '^READY' 20
	ip netns exec "$A" "$UDPECHO" 10.86.0.2 7777 20 >"$T/u1" || { cat "$T/u1"; fail "UDP echo on A failed"; }
	ip netns exec "$A" env HV_RUN_DIR="$T/runA" "$HVCTL" save snap "$T/snap.snap" --stop >"$T/save.out" 2>&1 ||
		{ cat "$T/save.out"; fail "hvctl save --stop failed"; }
	"$HVCTL" inspect "$T/snap.snap" >"$T/inspect" || { cat "$T/inspect"; fail "hvctl inspect failed"; }
	grep -q '^  net0 ' "$T/inspect" || { cat "$T/inspect"; fail "inspect does not show the NIC"; }
	ip netns exec "$B" env HV_RUN_DIR="$T/runB" "$HVCTL" restore "$T/snap.snap" --net "tap=$TAP" \
		--console "file:$T/b.console" --detach >/dev/null || fail "hvctl restore on B failed"
	wait_for "$T/b.console" '^netecho: announce: gratuitous ARP sent, ack=ok$' 10
	ip netns exec "$B" ping -c 2 -W 2 10.86.0.2 >"$T/ping" || { cat "$T/ping"; fail "no ping answer on B"; }
	ip netns exec "$B" "$UDPECHO" 10.86.0.2 7777 20 >"$T/u2" || { cat "$T/u2"; fail "UDP echo on B failed"; }
	ip -n "$B" neigh show 10.86.0.2 | grep -q 'lladdr 52:54:00:86:00:02' || fail "the MAC changed on B"
	! grep -Eq 'CORRUPT|FATAL|hv-guest: exit' "$T/b.console" || fail "the guest failed on B"
	ip netns exec "$B" env HV_RUN_DIR="$T/runB" "$HVCTL" stop snap || fail "stop failed"
}
