#!/bin/bash
# Runs every test: cmocka unit tests (plain and ASan+UBSan builds), every fuzz target for
# a bounded time, and the integration tests under real KVM (on a host without /dev/kvm, a
# subset of them inside a QEMU TCG VM with nested KVM). Last line: N passed, N failed, N skipped.
set -u
BUILD=${BUILD:-build}
export BUILD
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
failures=()

run_cmocka() {
	local bin=$1 out rc p f s
	out=$("$bin" 2>&1)
	rc=$?
	s=$(grep -Eo '^\[  SKIPPED \] [0-9]+' <<<"$out" | awk '{s+=$NF} END {print s+0}')
	skipped=$((skipped + s))
	p=$(grep -Eo '^\[  PASSED  \] [0-9]+' <<<"$out" | awk '{s+=$NF} END {print s+0}')
	f=$(grep -Eo '^\[  FAILED  \] [0-9]+' <<<"$out" | awk '{s+=$NF} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or a sanitizer stopped it
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		failures+=("$bin")
		echo "$out" | tail -n 40
	fi
	printf '%-48s %3d passed, %d failed\n' "$bin" "$p" "$f"
}

echo "== unit tests"
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] && run_cmocka "$t"
done
echo "== unit tests under ASan+UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "$BUILD"/tests-asan/test_*; do
	[ -x "$t" ] && run_cmocka "$t"
done

echo "== fuzz (bounded: the migration stream, the device model, virtio-net, device-state restore, HELLO JSON, the control protocol)"
export FUZZ_TIME=${FUZZ_TIME:-20}
# target:seconds (the small parsers need less time to saturate than the stream and devices)
for t in stream:$FUZZ_TIME devices:$FUZZ_TIME net:$FUZZ_TIME devstate:$FUZZ_TIME hello:10 control:10; do
	if FUZZ_TIME=${t#*:} tests/fuzz/run-target.sh "${t%%:*}"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("fuzz ${t%%:*}")
	fi
done

# count_integration LABEL CMD...: CMD runs integration tests (tests/integration/run.sh, maybe
# through a wrapper); its "integration: N passed, N failed, N skipped" line is added to ours.
# Without that line, LABEL counts as one failure.
count_integration() {
	local label=$1 out counts ip if_ is
	shift
	out=$(mktemp)
	"$@" | tee "$out"
	counts=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$out" | tail -1)
	rm -f "$out"
	if [ -z "$counts" ]; then
		failed=$((failed + 1))
		failures+=("$label")
	else
		read -r ip if_ is <<<"$counts"
		passed=$((passed + ip))
		failed=$((failed + if_))
		skipped=$((skipped + is))
	fi
}

# run_integration [REGEX]: tests/integration/run.sh, its counts added to ours.
run_integration() { count_integration "integration runner" tests/integration/run.sh "$@"; }

echo "== integration tests (real KVM)"
run_integration

# Without a usable /dev/kvm here, the tests above that start a guest were skipped. A subset of
# them runs for real inside a QEMU TCG VM whose CPU has SVM, under nested KVM
# (tests/nested/README.md): one of each kind, chosen for coverage per minute. Seconds each
# under TCG on the 2-core development VM: hello 2-8, netecho (virtio-net, TAP in a netns)
# 13-21, idle migration 8-17, memtouch migration 30-44, TLS/PSK refusals and migration 99-154,
# snapshot save/restore 13-22, a corrupted page in the stream 14-20, a disk copied with its
# guest (--storage copy) 15, a stale copy of a disk refused at switchover 36, a guest moved
# A -> B -> A in the lab harness while a client talks to it 55, a post-copy migration 44 and
# one cut during post-copy 16, the VM's boot and the runner ~30: 6.5-8.5 minutes. Left out as too slow there: the 4-vCPU migration (236 s), the
# two namespace hosts (over 300 s); the tests' own limit is raised for TCG, not their
# assertions. If the VM cannot start (no QEMU, no kernel package), that is one failure.
# NESTED_TESTS (a regex of test names) and NESTED_TEST_TIMEOUT (each test's limit) override.
if ! { [ -c /dev/kvm ] && (exec 3<>/dev/kvm) 2>/dev/null; }; then
	echo "== integration tests inside a QEMU TCG VM with nested KVM (no usable /dev/kvm here)"
	HV_TEST_TIMEOUT=${NESTED_TEST_TIMEOUT:-300} NESTED_TIMEOUT=${NESTED_TIMEOUT:-720} \
		count_integration "nested KVM runner (tests/nested/run.sh)" tests/nested/run.sh tests/integration/run.sh \
		"${NESTED_TESTS:-^test_(hello_exits_zero|netecho_ping_and_udp|migrate_idle_hello|migrate_memtouch_rate50|tls_psk_refusals_then_migration|snapshot_save_running_then_restore_elsewhere|migrate_faults_corrupt_page_data|storage_copy_is_identical_and_sparse|policy_a_stale_copy_of_the_disk_is_refused|lab_network_follows_the_guest|migrate_postcopy|migrate_faults_cut_in_postcopy)\$}"
fi

# Lab hosts run for weeks: everything that waits, times out or computes a deadline, once more
# on a host whose monotonic clock reads 23 days of uptime.
echo "== integration tests again, on a host up for 23 days (time namespace)"
HV_TEST_UPTIME=2000000 run_integration \
	'^test_(status_list_stop|pause_resume_keeps_memory_intact|console_pty|migrate_idle_hello|migrate_memtouch_rate50|migrate_cancel|migrate_no_convergence|migrate_json_events|migrate_destination_refusals|migrate_faults_stall_at_ack|migrate_faults_trickled_hello_is_dropped|tls_strays_then_real_source|tls_psk_refusals_then_migration|receive_.*)$'

[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
