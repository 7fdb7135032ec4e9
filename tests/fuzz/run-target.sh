#!/bin/sh
# Builds one libFuzzer target (clang, libFuzzer + ASan + UBSan) and runs it: first over its
# checked-in seeds (tests/fuzz/seeds/NAME: valid inputs and every crash found so far, the
# regression seeds), then mutating for a bounded time. Prints one line:
# "NAME: N runs in T s, coverage C edges, no crash" (exit 0), or names the crash input
# (exit 1). Skips with exit 0 when clang's libFuzzer is not installed.
#   run-target.sh NAME     NAME: hello (HELLO JSON) or control (control-socket protocol)
#   FUZZ_TIME   seconds to run (default 30)
#   BUILD       output tree (default build); everything goes to $BUILD/fuzz-NAME/
#   CLANG       compiler (default clang)
set -u
cd "$(dirname "$0")/../.." || exit 1

NAME=${1:?usage: run-target.sh NAME}
BUILD=${BUILD:-build}
FUZZ_TIME=${FUZZ_TIME:-30}
CLANG=${CLANG:-clang}
OUT=$BUILD/fuzz-$NAME
CFLAGS="-std=c11 -D_GNU_SOURCE -I. -g -O1 -Wall -Wextra -Wno-unused-parameter -pthread"
DICT=
case $NAME in
hello)
	SRCS="migrate/wire.c migrate/page_codec.c migrate/cpu_state.c hv/log.c hv/printable.c"
	LIBS="-lz -ljson-c -luuid -lxxhash"
	MAXLEN=65536
	DICT=tests/fuzz/hello.dict ;;
control)
	SRCS="hv/control_proto.c hv/log.c"
	LIBS="-ljson-c"
	MAXLEN=4096 ;;
*)
	echo "run-target.sh: unknown target '$NAME' (hello, control)" >&2
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

rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-*
start=$(date +%s)
set -- -max_total_time="$FUZZ_TIME" -max_len="$MAXLEN" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$OUT/" -print_final_stats=1
[ -n "$DICT" ] && set -- "$@" -dict="$DICT"
"$OUT/fuzz_$NAME" "$@" "$OUT/corpus" "tests/fuzz/seeds/$NAME" 2>&1 | grep -v '^hv: ' >"$OUT/fuzz.log"
rc=0
ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* >/dev/null 2>&1 && rc=1
grep -q 'Done [0-9]* runs' "$OUT/fuzz.log" || rc=1
secs=$(( $(date +%s) - start ))
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$OUT/fuzz.log" | tail -n 1 | cut -d' ' -f2)

if [ "$rc" -ne 0 ]; then
	art=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null | head -n 1)
	echo "fuzz_$NAME: CRASH after ${runs:-?} runs in $secs s: input ${art:-?} (log $OUT/fuzz.log); add it to tests/fuzz/seeds/$NAME/ once fixed"
	grep -m 20 -E 'ERROR|SUMMARY|Assertion|#[0-9]+ 0x' "$OUT/fuzz.log" >&2
	exit 1
fi
echo "fuzz_$NAME: ${runs:-?} runs in $secs s, coverage ${cov:-?} edges, no crash"
