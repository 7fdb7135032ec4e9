# Hardening of the VMM process: how hvctl is built (BIND_NOW, full RELRO, PIE, stack
# protector, FORTIFY), the system-call filter on the VM process, and the guest's exit status
# kept apart from hvctl's own.

test_hvctl_built_hardened() {
	local dyn
	dyn=$(readelf -dW "$HVCTL_BIN")
	grep -Eq 'BIND_NOW|FLAGS.*\bNOW\b' <<<"$dyn" || fail "hvctl is not linked with -z now (lazy binding)"
	grep -q 'FLAGS_1.*PIE' <<<"$dyn" || fail "hvctl is not a position-independent executable"
	readelf -lW "$HVCTL_BIN" | grep -q GNU_RELRO || fail "hvctl has no RELRO segment"
	readelf -sW --dyn-syms "$HVCTL_BIN" | grep -q '__stack_chk_fail' ||
		fail "hvctl has no stack protector (__stack_chk_fail is not referenced)"
	readelf -sW --dyn-syms "$HVCTL_BIN" | grep -Eq '__[a-z]+_chk(@|$| )' ||
		fail "hvctl has no FORTIFY_SOURCE checks (no __*_chk function is referenced)"
}

test_console_file_is_private() {
	# The console log holds whatever the guest prints: only its owner may read it.
	( umask 022; "$HVCTL" run --kernel "$GUEST" --cmdline "prog=hello" --console "file:$T/c" ) ||
		fail "hvctl run failed"
	[ "$(stat -c %a "$T/c")" = 600 ] || fail "console file created with mode $(stat -c %a "$T/c"), expected 600"
}

test_run_dir_writable_by_others_refused() {
	chmod 0777 "$HV_RUN_DIR"
	expect_error "run directory .* writable by group or others.*chmod go-w" \
		"$HVCTL" run --detach --name x --kernel "$GUEST" --cmdline "prog=hello"
	chmod 0755 "$HV_RUN_DIR"
}

test_seccomp_stops_a_forbidden_syscall() {
	# HV_SECCOMP_SELFTEST=1 (a test hook) makes the VM process call execve once its filter
	# is on: the filter must stop it and name the call; without a filter /bin/true would run.
	rc=0
	HV_SECCOMP_SELFTEST=1 timeout 20 "$HVCTL" run --kernel "$GUEST" --cmdline "prog=memtouch ws=8M" \
		--console none 2>"$T/err" || rc=$?
	[ "$rc" -eq 127 ] || { cat "$T/err"; fail "expected exit status 127 (system call refused), got $rc"; }
	grep -q 'system call 59 (execve) refused by the seccomp filter' "$T/err" ||
		{ cat "$T/err"; fail "the refused system call is not named"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line on stderr"; }
}

test_seccomp_can_be_disabled_for_debugging() {
	HV_SECCOMP=0 HV_SECCOMP_SELFTEST=1 "$HVCTL" run --kernel "$GUEST" --cmdline "prog=hello" \
		--console none 2>"$T/err" || { cat "$T/err"; fail "hvctl run with HV_SECCOMP=0 failed"; }
	grep -q 'without its system-call filter' "$T/err" || fail "no warning that the filter is off"
}
