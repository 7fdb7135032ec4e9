#!/bin/bash
# Runs every test_* function of tests/integration/t_*.sh, each in a fresh subshell with a
# time limit, its own run directory, and cleanup of every process it started.
# Last line: "integration: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
# Relative to the tree: the tests name their tools as $PWD/$BUILD/...
BUILD=$(realpath -m --relative-to=. "$BUILD")
export BUILD
filter=${1:-}
passed=0
failed=0
limit=${HV_TEST_TIMEOUT:-180}

for file in tests/integration/t_*.sh; do
	for fn in $(bash -c "source '$file'; declare -F" | awk '{print $3}' | grep '^test_'); do
		[ -n "$filter" ] && [[ "$fn" != *"$filter"* ]] && continue
		T=$(mktemp -d /tmp/hv-test.XXXXXX)
		start=$EPOCHREALTIME
		timeout --kill-after=10 "$limit" setsid bash -c "
			set -eu
			export T='$T' HV_RUN_DIR='$T/run'
			mkdir -p \"\$HV_RUN_DIR\"
			source tests/integration/lib.sh
			source '$file'
			$fn
		" >"$T/log" 2>&1
		rc=$?
		# Everything the test left running (its process group and any VM in its run dir).
		# Each running VM holds NAME.lock in its run dir, with its pid inside.
		for lock in "$T"/run/*.lock; do [ -s "$lock" ] && kill -9 "$(cat "$lock")" 2>/dev/null; done
		pkill -9 -f -- "$T" 2>/dev/null
		[ -x "$T/cleanup" ] && "$T/cleanup" >/dev/null 2>&1
		secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
		if [ $rc -eq 0 ]; then
			passed=$((passed + 1))
			printf 'PASS %-50s %5ss\n' "$fn" "$secs"
		else
			failed=$((failed + 1))
			[ $rc -eq 124 ] && echo "(timed out after ${limit}s)" >>"$T/log"
			printf 'FAIL %-50s %5ss\n' "$fn" "$secs"
			sed 's/^/    /' "$T/log" | tail -n 30
		fi
		rm -rf "$T"
	done
done
echo "integration: $passed passed, $failed failed"
