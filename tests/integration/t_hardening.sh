# Hardening of the VMM process: how hvctl is built (BIND_NOW, full RELRO, PIE, stack
# protector, FORTIFY), the system-call filter on the VM process, and the guest's exit status
# kept apart from hvctl's own.

test_hvctl_built_hardened() {
	local dyn
	dyn=$(readelf -dW "$HVCTL")
	grep -Eq 'BIND_NOW|FLAGS.*\bNOW\b' <<<"$dyn" || fail "hvctl is not linked with -z now (lazy binding)"
	grep -q 'FLAGS_1.*PIE' <<<"$dyn" || fail "hvctl is not a position-independent executable"
	readelf -lW "$HVCTL" | grep -q GNU_RELRO || fail "hvctl has no RELRO segment"
	readelf -sW --dyn-syms "$HVCTL" | grep -q '__stack_chk_fail' ||
		fail "hvctl has no stack protector (__stack_chk_fail is not referenced)"
	readelf -sW --dyn-syms "$HVCTL" | grep -Eq '__[a-z]+_chk(@|$| )' ||
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
