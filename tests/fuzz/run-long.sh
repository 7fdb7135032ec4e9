#!/bin/sh
# make fuzz: every fuzz target for a long run, one after the other (one fuzzing process at a
# time), then a Markdown table of what each did. A crash stops its target (libFuzzer stops
# at the first); its input is named above the table and must become a regression seed
# under tests/fuzz/seeds/NAME once the bug is fixed. Exit 1 if any target crashed.
#   run-long.sh [NAME...]  only these targets (after a fix); the table still shows every
#                          target, from its last run
#   FUZZ_EXECS  executions per target (default 10000000)
#   BUILD, CLANG as for run-target.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
FUZZ_EXECS=${FUZZ_EXECS:-10000000}
export BUILD FUZZ_EXECS

targets=$(tests/fuzz/run-target.sh --list)
# shellcheck disable=SC2086 # the list splits into names
[ $# -gt 0 ] || set -- $targets
rc=0
for t in "$@"; do
	rm -f "$BUILD/fuzz-$t/summary"
	echo "== fuzz_$t: $FUZZ_EXECS executions ($(date '+%F %T'))"
	tests/fuzz/run-target.sh "$t" || rc=1
done

echo
echo "| target | executions | seconds | coverage edges | crashes |"
echo "|---|---:|---:|---:|---:|"
for t in $targets; do
	# No summary: the target was skipped (no libFuzzer) or did not build.
	if ! read -r name runs secs cov crashes 2>/dev/null <"$BUILD/fuzz-$t/summary"; then
		name=$t runs=- secs=- cov=- crashes=-
	fi
	echo "| $name | $runs | $secs | $cov | $crashes |"
done
exit $rc
