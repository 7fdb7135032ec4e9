# The control socket: status, pause/resume, stop, list, names.

test_status_list_stop() {
	start_vm ctl1 --kernel "$GUEST" --cmdline "prog=memtouch ws=8M"
	wait_for "$T/ctl1.console" READY 20
	"$HVCTL" status ctl1 --json >"$T/s" || fail "status failed"
	grep -q '"state": *"running"' "$T/s" || { cat "$T/s"; fail "not running"; }
	"$HVCTL" list >"$T/l" || fail "list failed"
	grep -q '^ctl1 ' "$T/l" || { cat "$T/l"; fail "ctl1 not listed"; }
	"$HVCTL" stop ctl1 || fail "stop failed"
	[ ! -e "$HV_RUN_DIR/ctl1.sock" ] || fail "socket left behind"
	"$HVCTL" list >"$T/l"
	! grep -q '^ctl1 ' "$T/l" || fail "stopped VM still listed"
}

test_pause_resume_keeps_memory_intact() {
	start_vm pr --kernel "$GUEST" --cmdline "prog=memtouch ws=16M"
	wait_for "$T/pr.console" 'memtouch: tick=' 20
	for i in 1 2 3; do
		"$HVCTL" pause pr || fail "pause $i failed"
		"$HVCTL" status pr --json | grep -q '"state": *"paused"' || fail "not paused"
		a=$(last_pages "$T/pr.console")
		sleep 0.5
		b=$(last_pages "$T/pr.console")
		[ "$a" = "$b" ] || fail "guest kept running while paused ($a -> $b)"
		"$HVCTL" resume pr || fail "resume $i failed"
		sleep 0.4
		c=$(last_pages "$T/pr.console")
		[ "$c" != "$b" ] || fail "guest did not continue after resume"
	done
	! grep -q CORRUPT "$T/pr.console" || fail "corruption after pause/resume"
	"$HVCTL" stop pr || fail "stop failed"
}

test_duplicate_name_refused() {
	start_vm dup --kernel "$GUEST" --cmdline "prog=memtouch ws=4M"
	expect_error "already running" "$HVCTL" run --detach --name dup --kernel "$GUEST"
	"$HVCTL" status dup >/dev/null || fail "the first VM was damaged"
	"$HVCTL" stop dup
}

test_stop_unknown_vm() {
	expect_error "no VM named" "$HVCTL" stop nosuchvm
}

test_console_pty() {
	"$HVCTL" run --detach --name con --kernel "$GUEST" --cmdline "prog=memtouch ws=4M" >/dev/null ||
		fail "run failed"
	timeout 3 "$HVCTL" console con </dev/null >"$T/con.out" 2>&1 || true
	grep -q 'memtouch: tick=' "$T/con.out" || { cat "$T/con.out"; fail "no console output"; }
	"$HVCTL" stop con
}
