#!/bin/bash
# make bench: measurements printed as tables, each beside its reference measured in the
# same run. Numbers, not assertions: nothing here fails on a slow machine.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HVCTL=$PWD/$BUILD/hvctl
GUEST=$PWD/$BUILD/guests/hv-guest.elf
FB=$PWD/$BUILD/bench/firstbyte
RUNS=${BENCH_RUNS:-7}
export HV_RUN_DIR=$(mktemp -d /tmp/hv-bench.XXXXXX)
trap 'rm -rf "$HV_RUN_DIR"' EXIT

echo "## Boot (hello guest, median of $RUNS runs)"
echo
printf '| %-44s | %14s | %10s |\n' "what" "first byte ms" "exit ms"
printf '|%s|%s|%s|\n' "----------------------------------------------" "----------------" "------------"
read -r fb ex < <("$FB" "$RUNS" "$HVCTL" run --kernel "$GUEST" --mem 128M --cmdline prog=hello)
printf '| %-44s | %14s | %10s |\n' "hv (hvctl run, PVH ELF)" "$fb" "$ex"
if [ -f "$BUILD/guests/hv-guest.bzimage" ]; then
	read -r fb ex < <("$FB" "$RUNS" "$HVCTL" run --kernel "$BUILD/guests/hv-guest.bzimage" --mem 128M --cmdline prog=hello)
	printf '| %-44s | %14s | %10s |\n' "hv (hvctl run, bzImage, 64-bit entry)" "$fb" "$ex"
fi
if command -v qemu-system-x86_64 >/dev/null; then
	read -r fb ex < <("$FB" "$RUNS" qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -M microvm \
		-m 128M -nodefaults -no-user-config -nographic -serial stdio -monitor none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST" -append prog=hello)
	printf '| %-44s | %14s | %10s |\n' "QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') -M microvm (same image)" "$fb" "$ex"
else
	printf '| %-44s | %14s | %10s |\n' "QEMU (not installed)" "-" "-"
fi
echo

echo "## memtouch dirtying rate at CPL3 (native), 3 s"
echo
printf '| %-44s | %14s | %10s |\n' "what" "MiB/s" "pages/s"
printf '|%s|%s|%s|\n' "----------------------------------------------" "----------------" "------------"
log=$(mktemp)
"$HVCTL" run --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=256M secs=3" --console "file:$log" >/dev/null 2>&1
mib=$(grep -Eo 'rate=[0-9]+' "$log" | tail -n 5 | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]+0}')
printf '| %-44s | %14s | %10s |\n' "memtouch ws=256M, as fast as it can (hv)" "$mib" "$((mib * 256))"
rm -f "$log"
echo

for f in tests/bench/bench-*.sh; do
	[ -x "$f" ] && "$f"
done
exit 0
