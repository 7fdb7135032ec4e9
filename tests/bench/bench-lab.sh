#!/bin/bash
# What a client sees of a migration (tools/lab.sh: hosts A and B and a client on one switch):
# the longest wait for a reply and the replies lost, for UDP at 1000 requests a second, beside
# the downtime the VMM measured and the time the guest stood still (downtime + the wait for
# the destination's confirmation). Prints a markdown table; numbers, not assertions.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
CLIENT=$PWD/$BUILD/tools/labclient
W=$(mktemp -d /tmp/hv-bench-lab.XXXXXX)
export LAB=hvbench$$ LAB_DIR=$W/lab
trap 'tools/lab.sh down; rm -rf "$W"' EXIT
MAC=52:54:00:88:00:10

echo "## The network follows the guest"
echo
if [ ! -c /dev/kvm ]; then
	echo "(skipped: no /dev/kvm on this host)"
	echo
	exit 0
fi
tools/lab.sh up >/dev/null || exit 0

echo "A netecho guest (256 MiB) moved from host A to host B over the lab's migration link"
echo "(TLS, pre-shared key) while the client sends it 1000 UDP requests a second"
echo "(tools/lab.sh, docs/lab.md). \"Stood still\" is the VMM's downtime plus the wait for the"
echo "destination's confirmation that the guest runs; the client's longest wait and its lost"
echo "replies are what a user of the guest saw."
echo
row() { printf '| %-42s | %8s | %14s | %14s | %12s |\n' "$@"; }
row "case" "down ms" "stood still ms" "client wait ms" "replies lost"
printf '|%s|%s|%s|%s|%s|\n' "--------------------------------------------" "----------" "----------------" "----------------" "--------------"

port=4460
# one LABEL "NETECHO ARGS" [RECEIVE OPTIONS...]
one() {
	local label=$1 args=$2 done down conf
	shift 2
	port=$((port + 1))
	tools/lab.sh a "$HVCTL" run --detach --name web --mem 256M --kernel "$GUEST" --console "file:$W/a.log" \
		--net tap=tap0,mac=$MAC --cmdline "prog=netecho ip=10.88.0.10 $args" >/dev/null || { row "$label" - - - "start failed"; return; }
	for _ in $(seq 100); do grep -q READY "$W/a.log" 2>/dev/null && break; sleep 0.1; done
	tools/lab.sh client "$CLIENT" 10.88.0.10 7 60 --no-tcp >"$W/client.out" 2>&1 &
	local client=$!
	sleep 2
	tools/lab.sh b "$HVCTL" receive --listen 10.77.1.2:$port --psk "$LAB_DIR/key" --net tap=tap0 --timeout 60 \
		--detach --console "file:$W/b.log" "$@" >/dev/null
	if tools/lab.sh a "$HVCTL" migrate web 10.77.1.2:$port --psk "$LAB_DIR/key" --json >"$W/mig.json" 2>/dev/null; then
		done=$(grep '"event": *"migration-done"' "$W/mig.json")
		down=$(sed -n 's/.*"downtime_ms": *\([0-9.]*\).*/\1/p' <<<"$done")
		conf=$(sed -n 's/.*"confirm_ms": *\([0-9.]*\).*/\1/p' <<<"$done")
		sleep 2
		pkill -TERM -x labclient
		wait "$client"
		row "$label" "$(printf %.1f "$down")" "$(awk -v a="$down" -v b="$conf" 'BEGIN { printf "%.1f", a + b }')" \
			"$(sed -n 's/.*longest_gap_ms=\([0-9.]*\).*/\1/p' "$W/client.out")" \
			"$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' "$W/client.out")"
	else
		pkill -TERM -x labclient
		wait "$client"
		row "$label" - - - "migration failed"
	fi
	tools/lab.sh b "$HVCTL" stop web >/dev/null 2>&1
	tools/lab.sh a "$HVCTL" stop web >/dev/null 2>&1
	rm -f "$W"/*.log
}

one "idle netecho" ""
one "netecho dirtying 64 MiB of memory" "ws=64M"
one "idle netecho, announcements off" "" --announce-rounds 0 --no-guest-announce
echo
