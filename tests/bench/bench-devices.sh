#!/bin/bash
# Device benchmarks: blkbench (disk) and netbench (UDP, guest to host) on hv, each beside the
# same guest image under QEMU -M pc with virtio-blk-pci / virtio-net-pci (modern only, no
# vhost) on the same image and the same kind of TAP, measured in the same run. The TAP lives
# in a network namespace this script creates and removes. Prints markdown tables.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
UDPECHO=$PWD/$BUILD/tools/udpecho
W=$(mktemp -d /tmp/hv-bench-dev.XXXXXX)
NS=hvbench-$$
TAP=hvbtap$$
export HV_RUN_DIR=$W/run
trap "ip netns del \"$NS\" 2>/dev/null; [ -n \"${KEEP:-}\" ] || rm -rf \"$W\"" EXIT
have_qemu=0
command -v qemu-system-x86_64 >/dev/null && have_qemu=1
QEMU_BASE=(qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -M pc -m 256M -nodefaults
	-no-user-config -nographic -serial stdio -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04
	-kernel "$GUEST")
qemu_ver=$([ $have_qemu = 1 ] && qemu-system-x86_64 --version | head -1 | awk '{print $4}')

row() { printf '| %-46s | %12s | %12s | %14s |\n' "$@"; }

BLK_ARGS="prog=blkbench span=256M qd=16 secs=3"
# blk_result LOG: "seq_write seq_read iops" or three dashes.
blk_result() {
	local l
	l=$(grep -Eo 'seq_write_mbs=[0-9]+ seq_read_mbs=[0-9]+ rand_read_iops=[0-9]+' "$1") || { echo "- - -"; return; }
	echo "$l" | sed 's/[a-z_]*=//g'
}

echo "## Disk: blkbench on a 512 MiB raw image (256 MiB span, 256 KiB sequential I/O, 4 KiB random reads at queue depth 16)"
echo
row "what" "seq write MB/s" "seq read MB/s" "4K rand read IOPS"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------" "--------------" "--------------" "----------------"
# Written once in full first: both VMMs then write into pages already in the host's page
# cache (the first to write a sparse image would otherwise pay for allocating them).
dd if=/dev/zero of="$W/disk.img" bs=1M count=512 conv=fsync status=none
timeout 120 "$HVCTL" run --kernel "$GUEST" --mem 256M --disk "$W/disk.img" --console "file:$W/hv-blk" \
	--cmdline "$BLK_ARGS" >/dev/null 2>&1
read -r w r i < <(blk_result "$W/hv-blk")
row "hv virtio-blk (host page cache)" "$w" "$r" "$i"
if [ $have_qemu = 1 ]; then
	timeout 120 "${QEMU_BASE[@]}" -drive "file=$W/disk.img,if=none,id=d0,format=raw" \
		-device virtio-blk-pci,drive=d0,disable-legacy=on -append "$BLK_ARGS" >"$W/q-blk" 2>&1
	read -r w r i < <(blk_result "$W/q-blk")
	row "QEMU $qemu_ver -M pc virtio-blk-pci" "$w" "$r" "$i"
else
	row "QEMU (not installed)" "-" "-" "-"
fi
echo

# net_one LABEL CMD...: runs netbench (2 s, 1000-byte datagrams) against a UDP sink on the
# TAP's host side; prints the guest's sent rate and what the host received.
NET_ARGS="prog=netbench dst=10.88.0.1 ip=10.88.0.2 port=9999 size=1000 secs=3"
net_one() {
	local label=$1 log=$W/net.log
	shift
	ip netns exec "$NS" "$UDPECHO" --sink 9999 30 1500 >"$W/sink" &
	local sink=$!
	for _ in $(seq 50); do grep -q listening "$W/sink" 2>/dev/null && break; sleep 0.1; done
	timeout 60 ip netns exec "$NS" "$@" >"$log" 2>&1 </dev/null
	[ -s "$log" ] || true
	local l pps mbs got
	l=$(grep -aEo 'pps=[0-9]+ mbs=[0-9]+' "$log" "$W/console" 2>/dev/null | head -n 1)
	wait "$sink"
	if [[ "$l" =~ pps=([0-9]+)\ mbs=([0-9]+) ]]; then
		pps=${BASH_REMATCH[1]} mbs=${BASH_REMATCH[2]}
		got=$(sed -n 's/^udpsink: packets=\([0-9]*\).*/\1/p' "$W/sink")
		row "$label" "$pps" "$mbs" "$((got / 3))"
	else
		row "$label" "-" "-" "-"
	fi
	rm -f "$W/console"
}

echo "## Network: netbench, UDP guest to host through a TAP (1000-byte payloads, 3 s)"
echo
row "what" "sent pps" "sent MB/s" "host rx pps"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------" "--------------" "--------------" "----------------"
if ip netns add "$NS" 2>/dev/null && ip -n "$NS" link set lo up &&
	ip -n "$NS" tuntap add dev "$TAP" mode tap && ip -n "$NS" addr add 10.88.0.1/24 dev "$TAP" &&
	ip -n "$NS" link set "$TAP" up; then
	net_one "hv virtio-net (TAP, vnet header)" "$HVCTL" run --kernel "$GUEST" --mem 256M \
		--net "tap=$TAP" --console "file:$W/console" --cmdline "$NET_ARGS"
	if [ $have_qemu = 1 ]; then
		net_one "QEMU $qemu_ver -M pc virtio-net-pci (no vhost)" "${QEMU_BASE[@]}" \
			-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off" \
			-device virtio-net-pci,netdev=n0,disable-legacy=on -append "$NET_ARGS"
	else
		row "QEMU (not installed)" "-" "-" "-"
	fi
else
	row "(cannot create a network namespace and TAP)" "-" "-" "-"
fi
echo
