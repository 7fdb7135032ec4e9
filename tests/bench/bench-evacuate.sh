#!/bin/bash
# Evacuating a host (hvctl evacuate, docs/agent.md): three guests on host A of the lab
# (tools/lab.sh up --hosts 3, an agent on each host) moved to B and C, one at a time and
# two at a time; the total time beside the sum of the three migrations' own times (what a
# script that moves them one after another at best takes) and each guest's downtime.
# Prints a markdown table; numbers, not assertions.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
W=$(mktemp -d /tmp/hv-bench-evac.XXXXXX)
export LAB=hvbenchev$$ LAB_DIR=$W/lab LAB_GUEST_MEM=2G
trap 'tools/lab.sh down; rm -rf "$W"' EXIT

echo "## Evacuating a host"
echo
if [ ! -c /dev/kvm ]; then
	echo "(skipped: no /dev/kvm on this host)"
	echo
	exit 0
fi
tools/lab.sh up --hosts 3 >/dev/null && tools/lab.sh agents >/dev/null || exit 0
for h in a b c; do cp "$GUEST" "$LAB_DIR/$h-images/guest.elf"; done

echo "Three memtouch guests of 256 MiB on host A (each rewriting 16 MiB), moved to hosts B"
echo "and C by 'hvctl evacuate' through the agents (TLS, pre-shared key, the lab's"
echo "migration network). \"Sum of moves\" adds the three migrations' own times: what"
echo "moving them one after the other takes at best, without the agents' work."
echo
row() { printf '| %-22s | %9s | %12s | %14s | %14s |\n' "$@"; }
row "case" "moved" "total s" "sum of moves s" "downtimes ms"
printf '|%s|%s|%s|%s|%s|\n' "------------------------" "-----------" "--------------" "----------------" "----------------"

# one PARALLEL
one() {
	local p=$1 t0 t1 sum downs moved
	for v in g1 g2 g3; do
		tools/lab.sh a "$HVCTL" -H 10.77.1.1 --psk "$LAB_DIR/key" run --kernel guest.elf --name $v --mem 256M \
			--console file:$v.console --cmdline "prog=memtouch ws=16M" >/dev/null || { row "--parallel $p" "start failed" - - -; return; }
	done
	sleep 2
	t0=$(date +%s%N)
	tools/lab.sh a "$HVCTL" evacuate 10.77.1.1 --to 10.77.1.2,10.77.1.3 --parallel "$p" --psk "$LAB_DIR/key" \
		>"$W/evac.out" 2>/dev/null
	t1=$(date +%s%N)
	moved=$(sed -n 's/^evacuated .*: \([0-9]* of [0-9]*\) VMs moved.*/\1/p' "$W/evac.out")
	sum=$(awk '$1 ~ /^g[0-9]$/ && $4 == "s" { s += $3 } END { printf "%.1f", s }' "$W/evac.out")
	downs=$(awk '$1 ~ /^g[0-9]$/ && $6 == "ms" { printf "%s%s", sep, $5; sep = "/" }' "$W/evac.out")
	row "--parallel $p" "$moved" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" "$sum" "$downs"
	for h in b c; do
		for v in g1 g2 g3; do tools/lab.sh $h "$HVCTL" stop $v >/dev/null 2>&1; done
	done
	sleep 1
}

one 1
one 2
echo
