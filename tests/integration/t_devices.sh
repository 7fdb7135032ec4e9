# virtio devices from the command line: --disk and --net errors (one clear line each),
# and a guest booting with disks and NICs attached. TAPs live only inside a network
# namespace of the test's own (unshare -n), so they vanish with it.

test_disk_missing() {
	expect_error "disk image '/nonexistent.img' does not exist" \
		"$HVCTL" run --kernel "$GUEST" --disk /nonexistent.img
}

test_disk_read_only_file_needs_ro() {
	truncate -s 1M "$T/ro.img" && chmod 444 "$T/ro.img"
	expect_error "is read-only .*use --disk $T/ro.img,ro" "$HVCTL" run --kernel "$GUEST" --disk "$T/ro.img"
}

test_disk_unreadable() {
	# As root, open() ignores the mode; hv honours it, as it does for a read-only image.
	truncate -s 1M "$T/u.img" && chmod 000 "$T/u.img"
	expect_error "is not readable \(mode 000\); chmod u\+r" "$HVCTL" run --kernel "$GUEST" --disk "$T/u.img,ro"
}

test_disk_empty() {
	: >"$T/empty.img"
	expect_error "smaller than one 512-byte sector" "$HVCTL" run --kernel "$GUEST" --disk "$T/empty.img"
}

test_disk_directory() {
	expect_error "is a directory" "$HVCTL" run --kernel "$GUEST" --disk "$T"
}

test_disk_given_twice() {
	truncate -s 1M "$T/a.img"
	expect_error "given twice" "$HVCTL" run --kernel "$GUEST" --disk "$T/a.img" --disk "$T/a.img,ro"
}

test_too_many_disks() {
	truncate -s 1M "$T/a.img"
	expect_error "at most 4 --disk" "$HVCTL" run --kernel "$GUEST" --disk "$T/a.img" --disk "$T/a.img" \
		--disk "$T/a.img" --disk "$T/a.img" --disk "$T/a.img"
}

test_net_bad_mac() {
	expect_error "mac '01:02:03:04:05:06' is not a valid unicast MAC" \
		"$HVCTL" run --kernel "$GUEST" --net tap=hvt0,mac=01:02:03:04:05:06
}

test_net_bad_spec() {
	expect_error "names no TAP" "$HVCTL" run --kernel "$GUEST" --net mac=52:54:00:00:00:01
}

test_net_name_too_long() {
	expect_error "too long" "$HVCTL" run --kernel "$GUEST" --net tap=abcdefghijklmnopq
}

test_net_not_a_tap() {
	expect_error "'lo' exists but is not a TAP" unshare -n "$HVCTL" run --kernel "$GUEST" --net tap=lo
}

test_net_no_tun_device() {
	# A mount namespace whose /dev/net is empty: /dev/kvm is there, /dev/net/tun is not.
	unshare -m -n bash -c "mount -t tmpfs none /dev/net && exec '$HVCTL' run --kernel '$GUEST' --net tap=hvt0" \
		>"$T/out" 2>"$T/err" && fail "ran without /dev/net/tun"
	grep -q "/dev/net/tun does not exist: load the tun module" "$T/err" || { cat "$T/err"; fail "wrong message"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line"; }
}

test_boot_with_disks_and_nics() {
	truncate -s 64M "$T/d0.img"
	truncate -s 1M "$T/d1.img"
	unshare -n "$HVCTL" run --kernel "$GUEST" --cmdline prog=hello --disk "$T/d0.img" \
		--disk "$T/d1.img,ro" --net tap=hvt0 --net tap=hvt1,mac=52:54:00:12:34:56 \
		>"$T/out" 2>"$T/err" || { cat "$T/err"; fail "guest with devices did not exit 0"; }
	grep -q READY "$T/out" || fail "no READY"
	[ ! -s "$T/err" ] || { cat "$T/err"; fail "unexpected stderr"; }
}
