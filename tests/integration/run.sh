#!/bin/bash
# Runs every test_* function of tests/integration/t_*.sh, each in a fresh subshell with a
# time limit, its own run directory, and cleanup of every process it started.
# Last line: "integration: N passed, N failed, N skipped".
#
# A host without a usable /dev/kvm (a VM without nested virtualisation) cannot start a
# guest: there, a test that fails because hv could not open /dev/kvm counts as skipped
# (no-kvm-hvctl.sh stops it as soon as hv says so), and the others run as usual.
#
# run.sh [REGEX]: only the test functions whose name matches the extended regex.
# HV_TEST_SHOW=1 prints what each passing test wrote, too.
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
skipped=0
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

kvm=yes
if ! { [ -c /dev/kvm ] && (exec 3<>/dev/kvm) 2>/dev/null; }; then
	kvm=no
	export HV_REAL_HVCTL=${HVCTL:-$PWD/$BUILD/hvctl}
	export HVCTL=$PWD/tests/integration/no-kvm-hvctl.sh
	echo "integration: no usable /dev/kvm on this host: tests that start a guest are skipped"
fi

# needed_kvm T: the test in scratch directory T failed for want of /dev/kvm (it was stopped
# by no-kvm-hvctl.sh, or an hv process of it logged that it could not open /dev/kvm).
needed_kvm() {
	[ "$kvm" = no ] || return 1
	[ -e "$1/needs-kvm" ] && return 0
	grep -qs '/dev/kvm' "$1/log" "$1"/run/*.log
}

for file in tests/integration/t_*.sh; do
	for fn in $(bash -c "source '$file'; declare -F" | awk '{print $3}' | grep '^test_'); do
		[ -n "$filter" ] && ! [[ "$fn" =~ $filter ]] && continue
		T=$(mktemp -d /tmp/hv-test.XXXXXX)
		start=$EPOCHREALTIME
		# In a subshell of its own, whose stderr is not ours: a test ended by a signal
		# (no-kvm-hvctl.sh) makes no "Terminated" line here.
		(timeout --kill-after=10 "$limit" setsid "${timens[@]}" bash -c "
			set -eu
			export T='$T' HV_RUN_DIR='$T/run'
			mkdir -p \"\$HV_RUN_DIR\"
			source tests/integration/lib.sh
			source '$file'
			$fn
		" >"$T/log" 2>&1; exit $?) 2>/dev/null
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
			[ -n "${HV_TEST_SHOW:-}" ] && sed 's/^/    /' "$T/log"
		elif needed_kvm "$T"; then
			skipped=$((skipped + 1))
			printf 'SKIP %-50s %5ss (needs /dev/kvm)\n' "$fn$label" "$secs"
		else
			failed=$((failed + 1))
			[ $rc -eq 124 ] && echo "(timed out after ${limit}s)" >>"$T/log"
			printf 'FAIL %-50s %5ss\n' "$fn$label" "$secs"
			sed 's/^/    /' "$T/log" | tail -n 30
		fi
		rm -rf "$T"
	done
done
echo "integration: $passed passed, $failed failed, $skipped skipped"
