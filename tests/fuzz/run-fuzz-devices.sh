#!/bin/sh
# Builds the device fuzz target (PCI config, virtio-pci MMIO, virtqueues, virtio-blk requests)
# with clang's libFuzzer + ASan + UBSan and runs it for a bounded time. Prints one line:
# "fuzz_devices: N runs in T s, no crash" (exit 0), or names the crash input (exit 1). Skips
# with exit 0 when clang's libFuzzer is not installed.
#   FUZZ_TIME   seconds to run (default 30)
#   BUILD       output tree (default build); everything goes to $BUILD/fuzz-devices/
#   CLANG       compiler (default clang)
set -u
cd "$(dirname "$0")/../.." || exit 1

BUILD=${BUILD:-build}
FUZZ_TIME=${FUZZ_TIME:-30}
CLANG=${CLANG:-clang}
OUT=$BUILD/fuzz-devices
SRCS="devices/pci.c devices/virtq.c devices/virtio_pci.c devices/virtio_blk.c hv/bus.c hv/guest_mem.c hv/log.c"
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -O1 -Wall -Wextra -Wno-unused-parameter -pthread"

mkdir -p "$OUT/corpus" || exit 1
if ! command -v "$CLANG" >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
     "$CLANG" -x c -fsanitize=fuzzer - -o "$OUT/probe" >/dev/null 2>&1; then
	echo "fuzz_devices: skipped ($CLANG with libFuzzer not available)"
	exit 0
fi
rm -f "$OUT/probe"

# shellcheck disable=SC2086
if ! "$CLANG" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$SRCS tests/fuzz/fuzz_devices.c -o "$OUT/fuzz_devices" >"$OUT/build.log" 2>&1; then
	echo "fuzz_devices: build failed (see $OUT/build.log)"
	cat "$OUT/build.log" >&2
	exit 1
fi

mkdir -p "$OUT/seeds"
FUZZ_DEVICES_SEED="$OUT/seeds/in-request" "$OUT/fuzz_devices" >/dev/null 2>&1 ||
	{ echo "fuzz_devices: seed generation failed"; exit 1; }

rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-*
start=$(date +%s)
# The device logs a warning for every bad ring it is fed: keep them out of the log.
"$OUT/fuzz_devices" -max_total_time="$FUZZ_TIME" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$OUT/" -print_final_stats=1 "$OUT/corpus" "$OUT/seeds" 2>&1 |
	grep -v '^hv: ' >"$OUT/fuzz.log"
rc=0
ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* >/dev/null 2>&1 && rc=1
grep -q 'Done [0-9]* runs' "$OUT/fuzz.log" || rc=1
secs=$(( $(date +%s) - start ))
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$OUT/fuzz.log" | tail -n 1 | cut -d' ' -f2)

if [ "$rc" -ne 0 ]; then
	art=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null | head -n 1)
	echo "fuzz_devices: CRASH after ${runs:-?} runs in $secs s: input ${art:-?} (log $OUT/fuzz.log)"
	grep -m 20 -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$OUT/fuzz.log" >&2
	exit 1
fi
echo "fuzz_devices: ${runs:-?} runs in $secs s, coverage ${cov:-?} edges, no crash"
