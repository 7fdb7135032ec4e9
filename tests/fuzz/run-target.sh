#!/bin/sh
# Builds one libFuzzer target (clang, libFuzzer + ASan + UBSan) and runs it: first over its
# seeds (valid inputs made by the target's own generator, and those checked in under
# tests/fuzz/seeds/NAME: valid inputs and every crash found so far, the regression seeds),
# then mutating for a bounded time or a number of executions. Prints one line:
# "NAME: N runs in T s, coverage C edges, no crash" (exit 0), or names the crash input
# (exit 1), and leaves "NAME RUNS SECONDS EDGES CRASHES" in $BUILD/fuzz-NAME/summary.
# Skips with exit 0 when clang's libFuzzer is not installed.
#   run-target.sh NAME     NAME: stream (the migration stream), devices (PCI, virtio-pci,
#                          virtqueues, virtio-blk), net (virtio-net's queues and TAP),
#                          devstate (device state restored from a stream), hello (HELLO
#                          JSON), control (control socket)
#   run-target.sh --list   the names, one line
#   FUZZ_TIME   seconds to run (default 30)
#   FUZZ_EXECS  executions to run instead (libFuzzer -runs=; no time limit then)
#   BUILD       output tree (default build); everything goes to $BUILD/fuzz-NAME/
#   CLANG       compiler (default clang)
set -u
cd "$(dirname "$0")/../.." || exit 1

TARGETS="stream devices net devstate hello control"
NAME=${1:?usage: run-target.sh NAME|--list}
if [ "$NAME" = --list ]; then
	echo "$TARGETS"
	exit 0
fi
BUILD=${BUILD:-build}
FUZZ_TIME=${FUZZ_TIME:-30}
CLANG=${CLANG:-clang}
OUT=$BUILD/fuzz-$NAME
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -O1 -Wall -Wextra -Wno-unused-parameter -pthread"
DICT=
# The device targets: no KVM (fake_irq.c), and their I/O threads on a pool (thread_pool.c).
DEV="hv/state_enc.c hv/dev_state.c hv/parse.c tests/fuzz/fake_irq.c tests/fuzz/thread_pool.c"
POOL="-Wl,--wrap=pthread_create,--wrap=pthread_join"
case $NAME in
stream)
	SRCS="migrate/wire.c migrate/page_codec.c migrate/cpu_state.c migrate/snapshot.c migrate/disk_copy.c hv/log.c hv/printable.c hv/state_enc.c"
	LIBS="-lz -lzstd -ljson-c -luuid -lxxhash"
	MAXLEN=131072
	DICT=tests/fuzz/stream.dict ;;
devices)
	SRCS="devices/pci.c devices/virtq.c devices/virtio_pci.c devices/virtio_blk.c hv/bus.c hv/guest_mem.c hv/log.c $DEV"
	LIBS="-lxxhash $POOL"
	MAXLEN=4096 ;;
net)
	SRCS="devices/pci.c devices/virtq.c devices/virtio_pci.c devices/virtio_net.c hv/bus.c hv/guest_mem.c hv/log.c $DEV"
	LIBS="-luuid $POOL"
	MAXLEN=8192 ;;
devstate)
	SRCS="devices/pci.c devices/virtq.c devices/virtio_pci.c devices/virtio_blk.c devices/virtio_net.c devices/virtio_devices.c devices/serial.c hv/bus.c hv/guest_mem.c hv/log.c hv/printable.c migrate/device_state.c migrate/wire.c $DEV"
	LIBS="-ljson-c -luuid -lz -lxxhash $POOL"
	MAXLEN=65536 ;;
hello)
	SRCS="migrate/wire.c migrate/page_codec.c migrate/cpu_state.c hv/log.c hv/printable.c hv/state_enc.c"
	LIBS="-lz -lzstd -ljson-c -luuid -lxxhash"
	MAXLEN=65536
	DICT=tests/fuzz/hello.dict ;;
control)
	SRCS="hv/control_proto.c hv/log.c"
	LIBS="-ljson-c"
	MAXLEN=4096 ;;
*)
	echo "run-target.sh: unknown target '$NAME' (one of: $TARGETS)" >&2
	exit 2 ;;
esac

mkdir -p "$OUT/corpus" || exit 1
if ! command -v "$CLANG" >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
     "$CLANG" -x c -fsanitize=fuzzer - -o "$OUT/probe" >/dev/null 2>&1; then
	echo "fuzz_$NAME: skipped ($CLANG with libFuzzer not available)"
	exit 0
fi
rm -f "$OUT/probe"

# shellcheck disable=SC2086
if ! "$CLANG" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$SRCS "tests/fuzz/fuzz_$NAME.c" -o "$OUT/fuzz_$NAME" $LIBS >"$OUT/build.log" 2>&1; then
	echo "fuzz_$NAME: build failed (see $OUT/build.log)"
	cat "$OUT/build.log" >&2
	exit 1
fi

# Generated seeds: valid inputs, made with the real code, that the mutations start from.
mkdir -p "$OUT/seeds"
case $NAME in
stream)
	# shellcheck disable=SC2086
	"$CLANG" $CFLAGS $SRCS tests/fuzz/gen_seeds.c -o "$OUT/gen_seeds" $LIBS >>"$OUT/build.log" 2>&1 &&
		"$OUT/gen_seeds" "$OUT/seeds" || { echo "fuzz_$NAME: seed generation failed"; exit 1; } ;;
devices)
	FUZZ_DEVICES_SEED="$OUT/seeds/in-request" "$OUT/fuzz_devices" >/dev/null 2>&1 ||
		{ echo "fuzz_$NAME: seed generation failed"; exit 1; } ;;
net)
	FUZZ_NET_SEEDS="$OUT/seeds" "$OUT/fuzz_net" >/dev/null 2>&1 ||
		{ echo "fuzz_$NAME: seed generation failed"; exit 1; } ;;
devstate)
	FUZZ_DEVSTATE_SEEDS="$OUT/seeds" "$OUT/fuzz_devstate" >/dev/null 2>&1 ||
		{ echo "fuzz_$NAME: seed generation failed"; exit 1; } ;;
esac
# Checked-in seeds (regression inputs above all) run too, after the generated ones.
SEEDS=$OUT/seeds
[ -d "tests/fuzz/seeds/$NAME" ] && SEEDS="$SEEDS tests/fuzz/seeds/$NAME"

rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-*
start=$(date +%s)
if [ -n "${FUZZ_EXECS:-}" ]; then
	set -- -runs="$FUZZ_EXECS"
else
	set -- -max_total_time="$FUZZ_TIME"
fi
set -- "$@" -max_len="$MAXLEN" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$OUT/" -print_final_stats=1
[ -n "$DICT" ] && set -- "$@" -dict="$DICT"
# Devices log a warning for every bad ring they are fed: keep them out of the log.
# shellcheck disable=SC2086
"$OUT/fuzz_$NAME" "$@" "$OUT/corpus" $SEEDS 2>&1 | grep -av '^hv: ' >"$OUT/fuzz.log"
rc=0
ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* >/dev/null 2>&1 && rc=1
grep -aq 'Done [0-9]* runs' "$OUT/fuzz.log" || rc=1
secs=$(( $(date +%s) - start ))
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
cov=$(grep -ao 'cov: [0-9]*' "$OUT/fuzz.log" | tail -n 1 | cut -d' ' -f2)
crashes=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null | wc -l)
echo "$NAME ${runs:-?} $secs ${cov:-?} $crashes" >"$OUT/summary"

if [ "$rc" -ne 0 ]; then
	art=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null | head -n 1)
	echo "fuzz_$NAME: CRASH after ${runs:-?} runs in $secs s: input ${art:-?} (log $OUT/fuzz.log); add it to tests/fuzz/seeds/$NAME/ as a regression seed once fixed"
	grep -a -m 20 -E 'ERROR|SUMMARY|Assertion|^fuzz|#[0-9]+ 0x' "$OUT/fuzz.log" >&2
	exit 1
fi
echo "fuzz_$NAME: ${runs:-?} runs in $secs s, coverage ${cov:-?} edges, no crash"
