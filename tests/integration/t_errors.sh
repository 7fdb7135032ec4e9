# Bad input: one clear line on stderr, a non-zero exit, nothing left behind.

test_missing_kernel() {
	expect_error "cannot open kernel '/nonexistent'" "$HVCTL" run --kernel /nonexistent
}

test_kernel_not_bootable() {
	head -c 65536 /dev/urandom >"$T/junk"
	expect_error "not a PVH ELF" "$HVCTL" run --kernel "$T/junk"
}

test_elf_without_pvh_note() {
	expect_error "kernel ELF" "$HVCTL" run --kernel /bin/true
}

test_bad_mem_size() {
	expect_error "--mem '12Q'" "$HVCTL" run --kernel "$GUEST" --mem 12Q
}

test_mem_more_than_host() {
	expect_error "more than this host has" "$HVCTL" run --kernel "$GUEST" --mem 64T
}

test_zero_cpus() {
	expect_error "--cpus '0'" "$HVCTL" run --kernel "$GUEST" --cpus 0
}

test_unknown_option() {
	expect_error "unknown or incomplete option" "$HVCTL" run --kernel "$GUEST" --frobnicate
}

test_kvm_missing() {
	# A mount namespace with an empty /dev: no /dev/kvm at all.
	unshare -m bash -c "mount -t tmpfs none /dev && exec '$HVCTL' run --kernel '$GUEST' --cmdline prog=hello" \
		>"$T/out" 2>"$T/err" && fail "ran without /dev/kvm"
	grep -q "/dev/kvm does not exist" "$T/err" || { cat "$T/err"; fail "wrong message"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line"; }
}

test_kvm_not_accessible() {
	# An unprivileged user cannot open /dev/kvm (mode 0600 here).
	mkdir -p "$T/nobody" && chmod 777 "$T/nobody" "$T"
	cp "$GUEST" "$T/nobody/g.elf" && chmod 644 "$T/nobody/g.elf"
	HV_RUN_DIR="$T/nobody/run" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$HVCTL" run --kernel "$T/nobody/g.elf" --cmdline prog=hello >"$T/out" 2>"$T/err" &&
		fail "ran without access to /dev/kvm"
	grep -q "cannot open /dev/kvm" "$T/err" || { cat "$T/err"; fail "wrong message"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line"; }
}

# Every command's help: exit 0, on stdout, and no line wider than an 80-column terminal
# can show without wrapping.
test_help_fits_80_columns() {
	local c
	# Every command 'hvctl --help' lists.
	local cmds
	cmds=$("$HVCTL" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
	[ "$(wc -w <<<"$cmds")" -ge 19 ] || fail "hvctl --help lists only: $cmds"
	for c in $cmds; do
		"$HVCTL" "$c" --help >"$T/help" 2>"$T/help.err" || fail "hvctl $c --help exited $?"
		[ -s "$T/help" ] || fail "hvctl $c --help printed nothing on stdout"
		awk -v c="$c" 'length > 79 { printf "hvctl %s --help: %d columns: %s\n", c, length, $0; bad = 1 }
			END { exit bad }' "$T/help" || fail "hvctl $c --help is wider than 79 columns"
	done
	"$HVCTL" --help | awk 'length > 79 { exit 1 }' || fail "hvctl --help is wider than 79 columns"
}
