# Booting guests: each program runs, all vCPUs run, the exit status is the guest's.

test_hello_exits_zero() {
	"$HVCTL" run --kernel "$GUEST" --cmdline "prog=hello" --console "file:$T/c" || fail "exit $?"
	grep -q "hello from hv-guest" "$T/c" || fail "no greeting on the console"
	grep -q "READY" "$T/c" || fail "no READY line"
}

test_hello_on_stdio() {
	"$HVCTL" run --kernel "$GUEST" --cmdline "prog=hello" </dev/null >"$T/out" || fail "exit $?"
	grep -q "hello from hv-guest" "$T/out" || fail "no greeting on stdout"
}

test_hello_bzimage() {
	[ -f "$GUEST_BZ" ] || fail "no bzImage build of the guest at $GUEST_BZ"
	"$HVCTL" run --kernel "$GUEST_BZ" --cmdline "prog=hello" --console "file:$T/c" || fail "exit $?"
	grep -q "hello from hv-guest" "$T/c" || fail "no greeting from the bzImage guest"
}

test_guest_exit_status_passes_through() {
	# memtouch with a bad parameter exits with status 5 (guests/README.md).
	rc=0
	"$HVCTL" run --kernel "$GUEST" --cmdline "prog=memtouch ws=banana" --console "file:$T/c" || rc=$?
	[ "$rc" -eq 5 ] || fail "expected exit status 5 from the guest, got $rc"
}

test_memtouch_runs_and_exits() {
	"$HVCTL" run --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M secs=2" \
		--console "file:$T/c" || fail "exit $?"
	grep -q READY "$T/c" || fail "no READY"
	n=$(count_lines "$T/c" '^memtouch: tick=')
	[ "$n" -ge 5 ] || fail "only $n heartbeats in 2 s"
	! grep -q CORRUPT "$T/c" || fail "memtouch reported corruption"
}

test_memtouch_large_guest_high_memory() {
	# 3.5 GiB: RAM continues above the MMIO hole; the guest must still boot and run.
	"$HVCTL" run --kernel "$GUEST" --mem 3584M --cmdline "prog=memtouch ws=16M secs=1" \
		--console "file:$T/c" || fail "exit $?"
	grep -q READY "$T/c" || fail "no READY"
}

smp_runs_all() {
	local cpus=$1
	"$HVCTL" run --kernel "$GUEST" --cpus "$cpus" --mem 512M \
		--cmdline "prog=smp ws=8M secs=2" --console "file:$T/c" || fail "exit $?"
	grep -q "READY cpus=$cpus" "$T/c" || fail "not all $cpus vCPUs came up"
	# Every CPU's page counter must be non-zero in the last heartbeat.
	last=$(grep -Eo 'pages=[0-9,]+' "$T/c" | tail -n 1 | cut -d= -f2)
	[ "$(tr ',' '\n' <<<"$last" | grep -c '^[1-9]')" -eq "$cpus" ] || fail "idle vCPU in '$last'"
	! grep -q CORRUPT "$T/c" || fail "corruption"
}

test_smp_2_cpus() { smp_runs_all 2; }
test_smp_4_cpus() { smp_runs_all 4; }

test_guest_crash_is_reported() {
	# A kernel that triple-faults on its first instruction (tests/guests/triplefault.S).
	rc=0
	timeout 20 "$HVCTL" run --kernel "$BUILD/tools/triplefault.elf" --console none 2>"$T/err" || rc=$?
	[ "$rc" -eq 126 ] || { cat "$T/err"; fail "expected exit status 126 for a crashed guest, got $rc"; }
	grep -q 'guest triple fault' "$T/err" || fail "the reason is missing"
	grep -q 'rax 000000001234abcd' "$T/err" || { cat "$T/err"; fail "the registers are missing"; }
	grep -q 'code at gpa 0x[0-9a-f]*: 0f 0b' "$T/err" || { cat "$T/err"; fail "the instruction bytes (ud2) are missing"; }
	[ ! -e "$HV_RUN_DIR/vm-"*.sock ] || fail "a control socket was left behind"
}

test_guest_reset_through_i8042() {
	# Command 0xfe on port 0x64 (tests/guests/i8042reset.S) ends the VM cleanly.
	rc=0
	timeout 20 "$HVCTL" run --kernel "$BUILD/tools/i8042reset.elf" --console none 2>"$T/err" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/err"; fail "expected a clean exit after the reset, got $rc"; }
}

test_guest_exit_status_never_passes_for_hvctls_own() {
	# A guest that writes 126 (hvctl's "guest crashed") to the debug-exit port
	# (tests/guests/exit126.S): reported as 124, with the real value in the reason.
	rc=0
	timeout 20 "$HVCTL" run --kernel "$BUILD/tools/exit126.elf" --console none 2>"$T/err" || rc=$?
	[ "$rc" -eq 124 ] || { cat "$T/err"; fail "expected exit status 124 for a guest status of 126, got $rc"; }
	grep -q 'guest exited with status 126' "$T/err" || { cat "$T/err"; fail "the guest's real status is not reported"; }
}
