#!/bin/sh
# Builds the migration-stream fuzz target with clang's libFuzzer + ASan + UBSan and runs it for a
# bounded time. Prints one line: "fuzz_stream: N runs in T s, no crash" (exit 0), or names the
# crash input (exit 1). Skips with exit 0 when clang's libFuzzer is not installed.
#   FUZZ_TIME   seconds to run (default 30)
#   BUILD       output tree (default build); everything goes to $BUILD/fuzz/
#   CLANG       compiler (default clang)
set -u
cd "$(dirname "$0")/../.." || exit 1

BUILD=${BUILD:-build}
FUZZ_TIME=${FUZZ_TIME:-30}
CLANG=${CLANG:-clang}
OUT=$BUILD/fuzz
SRCS="migrate/wire.c migrate/page_codec.c migrate/cpu_state.c hv/log.c hv/printable.c"
LIBS="-lz -ljson-c -luuid -lxxhash"
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -O1 -Wall -Wextra -Wno-unused-parameter"

mkdir -p "$OUT/corpus" "$OUT/seeds" || exit 1

if ! command -v "$CLANG" >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
     "$CLANG" -x c -fsanitize=fuzzer - -o "$OUT/probe" >/dev/null 2>&1; then
	echo "fuzz_stream: skipped ($CLANG with libFuzzer not available)"
	exit 0
fi
rm -f "$OUT/probe"

# shellcheck disable=SC2086
if ! "$CLANG" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$SRCS tests/fuzz/fuzz_stream.c -o "$OUT/fuzz_stream" $LIBS >"$OUT/build.log" 2>&1 ||
   ! "$CLANG" $CFLAGS $SRCS tests/fuzz/gen_seeds.c -o "$OUT/gen_seeds" $LIBS \
	>>"$OUT/build.log" 2>&1; then
	echo "fuzz_stream: build failed (see $OUT/build.log)"
	cat "$OUT/build.log" >&2
	exit 1
fi
"$OUT/gen_seeds" "$OUT/seeds" || { echo "fuzz_stream: seed generation failed"; exit 1; }

rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-*
start=$(date +%s)
"$OUT/fuzz_stream" -max_total_time="$FUZZ_TIME" -max_len=131072 -timeout=10 \
	-rss_limit_mb=2048 -dict=tests/fuzz/stream.dict -artifact_prefix="$OUT/" \
	-print_final_stats=1 "$OUT/corpus" "$OUT/seeds" >"$OUT/fuzz.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$OUT/fuzz.log" | tail -n 1 | cut -d' ' -f2)

if [ "$rc" -ne 0 ]; then
	art=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null | head -n 1)
	echo "fuzz_stream: CRASH after ${runs:-?} runs in $secs s: input $art (log $OUT/fuzz.log)"
	grep -m 20 -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$OUT/fuzz.log" >&2
	exit 1
fi
echo "fuzz_stream: ${runs:-?} runs in $secs s, coverage ${cov:-?} edges, no crash"
