#!/bin/bash
# Two lab machines and a client on one Linux host, in network namespaces: a switch (a
# bridge) that hosts A and B and a client are plugged into; on each host a bridge joins the
# uplink and a TAP for a guest; a separate link between A and B carries the migrations.
# Nothing outside the namespaces is touched (docs/lab.md).
#
#   tools/lab.sh up [--ageing SECS] [--hosts 2|3]
#                                     create it (the switch forgets a MAC after SECS, 300;
#                                     --hosts 3 adds host C)
#   tools/lab.sh down                 stop what runs in it and delete it (safe to repeat)
#   tools/lab.sh a|b|c|client CMD...  run CMD on host A, B, C or the client (on the hosts
#                                     with HV_RUN_DIR set to that host's run directory)
#   tools/lab.sh agents               start the agent ('hvctl serve') on every host
#   tools/lab.sh where MAC            which switch port has MAC now: a, b, or none
#   tools/lab.sh demo                 boot a netecho guest on A, move it to B and back while
#                                     the client talks to it; print what the client saw
#
# Addresses: the guest 10.88.0.10 (MAC 52:54:00:88:00:10, TAP tap0 on either host), the
# client 10.88.0.100; the migration network (a second bridge) 10.77.1.1 (A), 10.77.1.2 (B)
# and 10.77.1.3 (C), authenticated with a pre-shared key in the lab's directory. The
# agents listen there (port 7460), each with its directory LAB_DIR/X-images, offering
# guests LAB_GUEST_MEM (default 1G) of memory. LAB=NAME
# (default hvlab) names the namespaces NAME-a, NAME-b, NAME-c, NAME-client, NAME-sw;
# LAB_DIR (default /tmp/NAME) holds the run directories, the key and the logs; BUILD
# (default build) the hvctl, guest and client to use (HVCTL another hvctl).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
LAB=${LAB:-hvlab}
LAB_DIR=${LAB_DIR:-/tmp/$LAB}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$here/$BUILD ;; esac
HVCTL=${HVCTL:-$BUILD/hvctl}
GUEST=$BUILD/guests/hv-guest.elf
CLIENT=$BUILD/tools/labclient
GUEST_IP=10.88.0.10
GUEST_MAC=52:54:00:88:00:10
NS_A=$LAB-a NS_B=$LAB-b NS_HC=$LAB-c NS_C=$LAB-client NS_SW=$LAB-sw
ALL_NS=("$NS_A" "$NS_B" "$NS_HC" "$NS_C" "$NS_SW")

die() {
	echo "lab: $*" >&2
	exit 1
}

exists() { ip netns list 2>/dev/null | grep -q "^$1\( \|$\)"; }

down() {
	for ns in "${ALL_NS[@]}"; do
		exists "$ns" || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	for ns in "${ALL_NS[@]}"; do
		exists "$ns" || continue
		for _ in $(seq 40); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.05; done
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$LAB_DIR"
}

up() {
	local ageing=300 hosts=(a b)
	while [ $# -gt 0 ]; do
		case $1 in
		--ageing)
			[[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 100000 ] ||
				die "--ageing takes a number of seconds (1-100000)"
			ageing=$2
			;;
		--hosts)
			case ${2:-} in 2) hosts=(a b) ;; 3) hosts=(a b c) ;; *) die "--hosts takes 2 or 3" ;; esac
			;;
		*) die "unknown option '$1'; usage: tools/lab.sh up [--ageing SECS] [--hosts 2|3]" ;;
		esac
		shift 2
	done
	[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces)"
	command -v ip >/dev/null || die "ip(8) is missing: apt-get install iproute2"
	for ns in "${ALL_NS[@]}"; do
		exists "$ns" && die "namespace $ns exists: tools/lab.sh down first (or LAB=another)"
	done
	[ -c /dev/net/tun ] || die "/dev/net/tun is missing: the guest's TAPs need the tun module"
	# Whatever fails from here on, nothing half made stays.
	trap 'down; die "setting up failed; nothing was left behind"' ERR
	trap 'down; die "interrupted; nothing was left behind"' INT TERM
	set -E
	local h ns i=0
	for h in "${hosts[@]}"; do mkdir -p "$LAB_DIR/$h" "$LAB_DIR/$h-images"; done
	for ns in "${hosts[@]/#/$LAB-}" "$NS_C" "$NS_SW"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	# The switch, learning as a physical one does.
	ip -n "$NS_SW" link add sw0 type bridge ageing_time $((ageing * 100))
	ip -n "$NS_SW" link set sw0 up
	for h in "${hosts[@]}"; do
		ns=$LAB-$h
		# ("port-": a bare "a" would read as ip's "address")
		ip -n "$NS_SW" link add "port-$h" type veth peer name uplink netns "$ns"
		ip -n "$NS_SW" link set "port-$h" master sw0 up
		ip -n "$ns" link add br0 type bridge
		ip -n "$ns" link set uplink master br0 up
		ip -n "$ns" tuntap add dev tap0 mode tap
		ip -n "$ns" link set tap0 master br0 up
		ip -n "$ns" link set br0 up
	done
	ip -n "$NS_SW" link add port-client type veth peer name eth0 netns "$NS_C"
	ip -n "$NS_SW" link set port-client master sw0 up
	ip -n "$NS_C" addr add 10.88.0.100/24 dev eth0
	ip -n "$NS_C" link set eth0 up
	# The migration network: a second switch, one port per host.
	ip -n "$NS_SW" link add mig0 type bridge
	ip -n "$NS_SW" link set mig0 up
	for h in "${hosts[@]}"; do
		i=$((i + 1))
		ip -n "$NS_SW" link add "mig-$h" type veth peer name mig netns "$LAB-$h"
		ip -n "$NS_SW" link set "mig-$h" master mig0 up
		ip -n "$LAB-$h" addr add "10.77.1.$i/24" dev mig
		ip -n "$LAB-$h" link set mig up
	done
	"$HVCTL" keygen "$LAB_DIR/key" >/dev/null 2>&1 || : # without hvctl built: no key yet
	trap - ERR INT TERM
	echo "lab up: hosts ${hosts[*]/#/$LAB-} (TAP tap0 on each, migration network 10.77.1.1-${#hosts[@]}),"
	echo "client $NS_C (10.88.0.100), switch $NS_SW (forgets a MAC after ${ageing} s)"
}

on() {
	local who=$1
	shift
	case $who in
	a | b | c) ip netns exec "$LAB-$who" env HV_RUN_DIR="$LAB_DIR/$who" "$@" ;;
	client) ip netns exec "$NS_C" "$@" ;;
	esac
}

where() {
	local mac=${1,,} port
	port=$(bridge -n "$NS_SW" fdb show br sw0 2>/dev/null | awk -v m="$mac" '$1 == m && $2 == "dev" { print $3; exit }')
	case $port in port-a | port-b | port-c) echo "${port#port-}" ;; *) echo none ;; esac
}

# demo_move FROM TO TO_ADDR: the guest "web" over the migration link.
demo_move() {
	on "$2" "$HVCTL" receive --listen "$3:4440" --psk "$LAB_DIR/key" --net tap=tap0 --timeout 60 --detach \
		--console "file:$LAB_DIR/web-to-$2.log" >/dev/null || die "hvctl receive on ${2^^} failed"
	on "$1" "$HVCTL" migrate web "$3:4440" --psk "$LAB_DIR/key" || die "migration ${1^^} -> ${2^^} failed"
	sleep 0.5
}

demo() {
	[ -x "$HVCTL" ] && [ -f "$GUEST" ] && [ -x "$CLIENT" ] || die "build first: make (needs $HVCTL, $GUEST, $CLIENT)"
	exists "$NS_A" || up
	[ -f "$LAB_DIR/key" ] || "$HVCTL" keygen "$LAB_DIR/key" >/dev/null || die "hvctl keygen failed"
	on a "$HVCTL" run --detach --name web --mem 256M --kernel "$GUEST" --console "file:$LAB_DIR/web-a.log" \
		--net tap=tap0,mac=$GUEST_MAC --cmdline "prog=netecho ip=$GUEST_IP" >/dev/null ||
		die "could not start the guest on A"
	for _ in $(seq 100); do grep -q READY "$LAB_DIR/web-a.log" 2>/dev/null && break; sleep 0.1; done
	echo "guest web runs on A; the switch has its MAC on port $(where $GUEST_MAC)"
	# Long enough for both moves, however slow the host; stopped (and reporting) after them.
	on client "$CLIENT" $GUEST_IP 7 600 >"$LAB_DIR/client.out" &
	local client=$!
	sleep 2
	demo_move a b 10.77.1.2
	echo "now on B; the switch has its MAC on port $(where $GUEST_MAC)"
	sleep 3
	demo_move b a 10.77.1.1
	echo "back on A; the switch has its MAC on port $(where $GUEST_MAC)"
	sleep 2
	ip netns pids "$NS_C" | xargs -r kill -TERM
	wait "$client"
	echo "what the client saw (UDP 1000 requests/s, one TCP connection), both moves included:"
	cat "$LAB_DIR/client.out"
	on a "$HVCTL" stop web >/dev/null 2>&1
}

# agents: 'hvctl serve' on every host of the lab, on its migration address, with the lab's
# key, its images directory and tap0; each logs to LAB_DIR/X-agent.log.
agents() {
	local h i=0
	[ -x "$HVCTL" ] || die "build first: make (needs $HVCTL)"
	for h in a b c; do
		i=$((i + 1))
		exists "$LAB-$h" || continue
		on "$h" setsid "$HVCTL" serve --dir "$LAB_DIR/$h-images" --listen "10.77.1.$i" --psk "$LAB_DIR/key" \
			--net tap=tap0 --guest-mem "${LAB_GUEST_MEM:-1G}" </dev/null >>"$LAB_DIR/$h-agent.log" 2>&1 &
		for _ in $(seq 50); do grep -q 'agent: serving' "$LAB_DIR/$h-agent.log" 2>/dev/null && break; sleep 0.1; done
		grep -q 'agent: serving' "$LAB_DIR/$h-agent.log" || die "the agent on ${h^^} did not start: see $LAB_DIR/$h-agent.log"
		echo "agent on ${h^^}: 10.77.1.$i (log $LAB_DIR/$h-agent.log)"
	done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
up) up "$@" ;;
down) down ;;
a | b | c | client)
	[ $# -gt 0 ] || die "usage: tools/lab.sh $cmd CMD..."
	exists "$NS_A" || die "the lab is not up: tools/lab.sh up"
	[ "$cmd" != c ] || exists "$NS_HC" || die "the lab has no host C: tools/lab.sh up --hosts 3"
	on "$cmd" "$@"
	;;
where)
	[ $# -eq 1 ] || die "usage: tools/lab.sh where MAC"
	exists "$NS_SW" || die "the lab is not up: tools/lab.sh up"
	where "$1"
	;;
agents)
	exists "$NS_A" || die "the lab is not up: tools/lab.sh up"
	agents
	;;
demo) demo ;;
*) die "usage: tools/lab.sh up [--ageing SECS] [--hosts 2|3] | down | a|b|c|client CMD... | agents | where MAC | demo" ;;
esac
