#!/bin/bash
# Runs every test_* function of tests/integration/t_*.sh, each in a fresh subshell with a
# time limit, its own run directory, and cleanup of every process it started.
# Last line: "integration: N passed, N failed".
#
# run.sh [REGEX]: only the test functions whose name matches the extended regex.
# HV_TEST_UPTIME=SECONDS runs each test in a time namespace whose CLOCK_MONOTONIC and
# CLOCK_BOOTTIME read SECONDS more than the host's: a lab host that has been up that long
# (anything that mixes up a timeout and a deadline fails there).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
# The tests name outputs as $PWD/$BUILD/...: an absolute BUILD (make BUILD=/tmp/x) becomes relative.
case $BUILD in /*) BUILD=$(realpath -m --relative-to=. "$BUILD") ;; esac
export BUILD
filter=${1:-}
passed=0
failed=0
limit=${HV_TEST_TIMEOUT:-180}
uptime=${HV_TEST_UPTIME:-}
timens=()
label=""
if [ -n "$uptime" ]; then
	timens=(unshare --time --monotonic "$uptime" --boottime "$uptime" --fork)
	label=" (uptime +$((uptime / 86400))d)"
	if ! "${timens[@]}" true 2>/dev/null; then
		echo "FAIL time namespace: 'unshare --time' does not work here (needs root and Linux >= 5.6)"
		echo "integration: 0 passed, 1 failed"
		exit 1
	fi
fi

for file in tests/integration/t_*.sh; do
	for fn in $(bash -c "source '$file'; declare -F" | awk '{print $3}' | grep '^test_'); do
		[ -n "$filter" ] && ! [[ "$fn" =~ $filter ]] && continue
		T=$(mktemp -d /tmp/hv-test.XXXXXX)
		start=$EPOCHREALTIME
		timeout --kill-after=10 "$limit" setsid "${timens[@]}" bash -c "
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
			printf 'PASS %-50s %5ss\n' "$fn$label" "$secs"
		else
			failed=$((failed + 1))
			[ $rc -eq 124 ] && echo "(timed out after ${limit}s)" >>"$T/log"
			printf 'FAIL %-50s %5ss\n' "$fn$label" "$secs"
			sed 's/^/    /' "$T/log" | tail -n 30
		fi
		rm -rf "$T"
	done
done
echo "integration: $passed passed, $failed failed"
