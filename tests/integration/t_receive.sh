# A receiving VM ('hvctl receive') is a VM from the moment it listens: listed, inspected and
# stopped like any other, and it leaves nothing behind (socket, lock, port) when it ends.
# Ports 472xx.

# rcv_nothing_left NAME PORT: no socket or lock file for NAME, and the port can be bound again.
rcv_nothing_left() {
	local name=$1 port=$2
	[ ! -e "$HV_RUN_DIR/$name.sock" ] || fail "$name.sock left behind in the run directory"
	[ ! -e "$HV_RUN_DIR/$name.lock" ] || fail "$name.lock left behind in the run directory"
	if ss -Htln "sport = :$port" | grep -q .; then fail "port $port is still listened on"; fi
	"$HVCTL" list | grep -q "^$name " && fail "$name still listed"
	return 0
}

# rcv_pid_of_port PORT: the process listening on 127.0.0.1:PORT.
rcv_pid_of_port() {
	ss -Htlnp "sport = :$1" | grep -Eo 'pid=[0-9]+' | head -n 1 | cut -d= -f2
}

test_receive_waiting_is_listed_inspected_and_stopped() {
	local port pid
	port=$(mig_unused_port 47201)
	"$HVCTL" receive --listen 127.0.0.1:$port --name rr --detach >/dev/null || fail "receive failed"
	"$HVCTL" list >"$T/list"
	grep -Eq '^rr +incoming +- +- ' "$T/list" || { cat "$T/list" >&2; fail "hvctl list does not show rr as incoming"; }
	"$HVCTL" status rr >"$T/status" || fail "hvctl status rr failed"
	grep -q "^state: *incoming" "$T/status" || { cat "$T/status" >&2; fail "status: no state incoming"; }
	grep -q "^listen: *127.0.0.1:$port" "$T/status" || { cat "$T/status" >&2; fail "status: no listen address"; }
	"$HVCTL" status rr --json | grep -q '"listen": *"127.0.0.1:'"$port"'"' || fail "status --json: no listen"
	# Its name is taken while it waits.
	expect_error "a VM named 'rr' is already running" \
		"$HVCTL" run --name rr --kernel "$GUEST" --cmdline prog=hello
	expect_error "waiting for an incoming migration" "$HVCTL" pause rr
	expect_error "waiting for an incoming migration" "$HVCTL" resume rr
	pid=$(rcv_pid_of_port "$port")
	[ -n "$pid" ] || fail "nobody listens on $port"
	"$HVCTL" stop rr || fail "hvctl stop rr failed"
	mig_wait_pid_gone "$pid" 5
	rcv_nothing_left rr "$port"
	# The port is free: another receiver can listen there at once.
	"$HVCTL" receive --listen 127.0.0.1:$port --name rr2 --detach >/dev/null ||
		fail "a second receiver cannot listen on port $port"
	"$HVCTL" stop rr2 || fail "hvctl stop rr2 failed"
	rcv_nothing_left rr2 "$port"
}

test_receive_without_name_takes_the_source_name() {
	local port src_run=$T/run-a pid
	port=$(mig_unused_port 47211)
	# Two "hosts": the source has a run directory of its own, so the names do not collide.
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm web1 --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M rate=50"
	wait_for "$T/web1.console" '^memtouch: tick=' 10
	"$HVCTL" receive --listen 127.0.0.1:$port --console "file:$T/dst.console" --detach >/dev/null ||
		fail "receive failed"
	"$HVCTL" list | grep -Eq "^incoming-$port +incoming " || { "$HVCTL" list >&2; fail "not listed as incoming-$port"; }
	HV_RUN_DIR=$src_run "$HVCTL" migrate web1 127.0.0.1:$port >"$T/mig.out" 2>&1 ||
		{ cat "$T/mig.out" >&2; fail "migration failed"; }
	"$HVCTL" status web1 --json | grep -q '"state": *"running"' || fail "web1 is not running on the destination"
	"$HVCTL" list | grep -q "^incoming-$port " && fail "the waiting name is still listed"
	[ ! -e "$HV_RUN_DIR/incoming-$port.sock" ] || fail "incoming-$port.sock left behind"
	[ ! -e "$HV_RUN_DIR/incoming-$port.lock" ] || fail "incoming-$port.lock left behind"
	mig_check_memtouch_continues "$T/web1.console" "$T/dst.console"
	pid=$(mig_vm_pid web1)
	"$HVCTL" stop web1 || fail "stop failed"
	mig_wait_pid_gone "$pid" 5
}

test_receive_stopped_while_the_guest_arrives() {
	local port pid src
	port=$(mig_unused_port 47221)
	# 160 MiB of random pages at 20 MB/s: about 8 s of pre-copy to stop it in.
	start_vm ms-src --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=160M fill=full sweeps=1"
	wait_for "$T/ms-src.console" 'rate=0 maxgap' 30
	src=$(mig_vm_pid ms-src)
	mig_receiver ms-dst 127.0.0.1:$port "$T/ms-dst.console"
	pid=$(rcv_pid_of_port "$port")
	"$HVCTL" migrate ms-src 127.0.0.1:$port --bandwidth 20M >"$T/mig.out" 2>"$T/mig.err" &
	local mig=$!
	for ((i = 0; i < 100; i++)); do
		"$HVCTL" status ms-dst 2>/dev/null | grep -q "^state: *migrating" && break
		sleep 0.05
	done
	"$HVCTL" status ms-dst >"$T/status" 2>&1
	grep -q "^state: *migrating" "$T/status" || { cat "$T/status" >&2; fail "status never said migrating"; }
	grep -q "^source: *127.0.0.1:" "$T/status" || { cat "$T/status" >&2; fail "status: no source address"; }
	"$HVCTL" list | grep -Eq '^ms-dst +migrating ' || fail "list does not show ms-dst migrating"
	expect_error "still arriving by migration" "$HVCTL" pause ms-dst
	"$HVCTL" stop ms-dst || fail "hvctl stop ms-dst failed"
	mig_wait_pid_gone "$pid" 10
	wait "$mig" && fail "the migration succeeded although the destination was stopped"
	grep -q "stopped" "$T/mig.err" || { cat "$T/mig.err" >&2; fail "the source was not told the destination was stopped"; }
	grep -q "keeps running here" "$T/mig.err" || { cat "$T/mig.err" >&2; fail "no 'keeps running here'"; }
	[ "$(wc -l <"$T/mig.err")" -le 2 ] || { cat "$T/mig.err" >&2; fail "more than one error line"; }
	mig_pid_alive "$src" || fail "the source VM died"
	"$HVCTL" status ms-src --json | grep -q '"state": *"running"' || fail "the source is not running"
	rcv_nothing_left ms-dst "$port"
	mig_no_corrupt "$T/ms-src.console"
}

test_receive_ctrl_c_and_timeout_leave_nothing() {
	local port pid rc
	port=$(mig_unused_port 47231)
	# In the foreground, as a person at a terminal runs it; Ctrl-C is SIGINT to it.
	"$HVCTL" receive --listen 127.0.0.1:$port --name cc --console none >"$T/out" 2>"$T/err" &
	pid=$!
	for ((i = 0; i < 100; i++)); do [ -S "$HV_RUN_DIR/cc.sock" ] && break; sleep 0.05; done
	[ -S "$HV_RUN_DIR/cc.sock" ] || fail "no control socket while waiting"
	kill -INT "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "Ctrl-C while waiting: exit status $rc, want 0"; }
	rcv_nothing_left cc "$port"
	# --timeout runs out: one line, exit 125, nothing left.
	expect_error "no incoming migration within 1 s" \
		"$HVCTL" receive --listen 127.0.0.1:$port --name to --console none --timeout 1
	rcv_nothing_left to "$port"
}

# A detached receiver's log is a file (NAME.log in the run directory, or --log): a refused
# migration's detail is there, where the refusal the source got ("see the destination's
# log") points, and it outlives the receiver. Readable by its owner only.
test_receive_detached_log_has_the_refusal() {
	local port src_run=$T/run-a
	port=$(mig_unused_port 47221)
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm web1 --kernel "$GUEST" --mem 64M --disk "$(truncate -s 1M "$T/d.img"; echo "$T/d.img")" \
		--cmdline "prog=memtouch ws=8M rate=10"
	"$HVCTL" receive --listen 127.0.0.1:$port --name dst --detach >/dev/null || fail "receive failed"
	expect_error "does not provide disk 0 .*see the destination's log" \
		env HV_RUN_DIR="$src_run" "$HVCTL" migrate web1 127.0.0.1:$port
	for _ in $(seq 50); do grep -q 'incoming migration failed' "$HV_RUN_DIR/dst.log" 2>/dev/null && break; sleep 0.1; done
	cat "$HV_RUN_DIR/dst.log"
	grep -q '^--- .* UTC, pid [0-9]*$' "$HV_RUN_DIR/dst.log" || fail "no header line in the log"
	grep -q "^hv: error: incoming migration failed: .*no --disk for it" "$HV_RUN_DIR/dst.log" ||
		fail "the log does not hold the refusal's detail"
	[ "$(stat -c %a "$HV_RUN_DIR/dst.log")" = 600 ] || fail "the log has mode $(stat -c %a "$HV_RUN_DIR/dst.log")"
	# --log names another file; a symbolic link there is not followed.
	ln -s /etc/passwd "$T/evil.log"
	"$HVCTL" receive --listen 127.0.0.1:$port --name dst2 --detach --log "$T/evil.log" >/dev/null ||
		fail "receive --log failed"
	"$HVCTL" stop dst2 >/dev/null
	"$HVCTL" receive --listen 127.0.0.1:$port --name dst3 --detach --log "$T/mine.log" >/dev/null ||
		fail "receive --log failed"
	"$HVCTL" stop dst3 >/dev/null
	for _ in $(seq 50); do grep -q 'stopped while waiting' "$T/mine.log" 2>/dev/null && break; sleep 0.1; done
	grep -q 'dst3: stopped while waiting for a migration' "$T/mine.log" || fail "--log did not get the messages"
	[ "$(stat -c %a "$T/mine.log")" = 600 ] || fail "--log file has mode $(stat -c %a "$T/mine.log")"
	[ -L "$T/evil.log" ] && ! grep -q 'hv:' /etc/passwd || fail "the log followed a symbolic link"
}

# A paused VM arrives paused (no guest instruction runs on the destination until
# 'hvctl resume'), and the summary says so; resumed, the guest goes on where it stopped.
test_receive_paused_vm_arrives_paused() {
	local port src_run=$T/run-a st n0
	port=$(mig_unused_port 47231)
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm p1 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=16M rate=50"
	mig_wait_field_above "$T/p1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run "$HVCTL" pause p1 || fail "pause failed"
	st=$(mig_field "$T/p1.console" 'memtouch: tick=' tick)
	mig_receiver p1 "127.0.0.1:$port" "$T/dst.console"
	HV_RUN_DIR=$src_run mig_migrate p1 "127.0.0.1:$port"
	cat "$T/mig.out"
	grep -q "^  state there     paused, as it was here ('hvctl resume p1' on the destination)" "$T/mig.out" ||
		fail "the summary does not say the VM arrives paused"
	"$HVCTL" status p1 | grep -q '^state: *paused' || fail "the VM does not arrive paused"
	sleep 1
	n0=$(wc -c <"$T/dst.console")
	[ "$n0" -eq 0 ] || { cat "$T/dst.console"; fail "the guest ran on the destination while paused"; }
	grep -q "paused as at the source" "$HV_RUN_DIR/p1.log" || fail "the destination's log does not say paused"
	"$HVCTL" resume p1 || fail "resume on the destination failed"
	wait_for "$T/dst.console" '^memtouch: tick=' 10
	[ "$(mig_first_field "$T/dst.console" 'memtouch: tick=' tick)" -gt "$st" ] || fail "the guest did not go on from where it was"
	mig_no_corrupt "$T/dst.console"
}

# --offline moves a paused VM without pre-copy rounds (memory once, no dirty log) and it
# arrives paused; a running VM is refused with one line, before anything connects, and keeps
# running.
test_receive_offline_migration_of_a_paused_vm() {
	local port src_run=$T/run-a st
	port=$(mig_unused_port 47251)
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm off1 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=16M rate=50"
	mig_wait_field_above "$T/off1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run expect_error "--offline moves a paused VM and 'off1' is running: 'hvctl pause off1' first" \
		"$HVCTL" migrate off1 "127.0.0.1:$port" --offline
	HV_RUN_DIR=$src_run "$HVCTL" status off1 | grep -q '^state: *running' || fail "the refused VM does not run"
	HV_RUN_DIR=$src_run "$HVCTL" pause off1 || fail "pause failed"
	st=$(mig_field "$T/off1.console" 'memtouch: tick=' tick)
	mig_receiver off1 "127.0.0.1:$port" "$T/dst.console"
	HV_RUN_DIR=$src_run "$HVCTL" migrate off1 "127.0.0.1:$port" --offline --json >"$T/mig.out" ||
		{ cat "$T/mig.out"; fail "the offline migration failed"; }
	grep '"event":"migration-done"' "$T/mig.out" | grep -q '"round":0,.*"paused":true' ||
		{ cat "$T/mig.out"; fail "an offline migration ran pre-copy rounds"; }
	"$HVCTL" status off1 | grep -q '^state: *paused' || fail "the VM does not arrive paused"
	"$HVCTL" resume off1 || fail "resume on the destination failed"
	wait_for "$T/dst.console" '^memtouch: tick=' 10
	[ "$(mig_first_field "$T/dst.console" 'memtouch: tick=' tick)" -gt "$st" ] || fail "the guest did not go on from where it was"
	mig_wait_field_above "$T/dst.console" 'memtouch: tick=' gen 2 15
	mig_no_corrupt "$T/dst.console"
}

# While the guest arrives, the destination's status shows how far the source says it is.
test_receive_status_shows_the_arrival() {
	local port src_run=$T/run-a pid i
	port=$(mig_unused_port 47241)
	mkdir -p "$src_run"
	# 32 MiB written once, then quiet: seconds of pages to send at 8 MB/s, then it converges.
	HV_RUN_DIR=$src_run start_vm a1 --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M sweeps=1"
	wait_for "$T/a1.console" 'rate=0 maxgap' 30
	mig_receiver arr "127.0.0.1:$port" "$T/arr.console"
	# Uncompressed, so that the cap holds it for seconds (auto would shrink these pages, and
	# a quiet guest converges at once: status must have time to look, even under emulation).
	HV_RUN_DIR=$src_run "$HVCTL" migrate a1 "127.0.0.1:$port" --bandwidth 8M --compress none >"$T/mig.out" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		"$HVCTL" status arr >"$T/st" 2>/dev/null || true
		grep -q '^arriving: round [0-9]*, [0-9.]* MiB of pages sent (guest RAM 256 MiB)' "$T/st" && break
		sleep 0.1
	done
	cat "$T/st"
	grep -q '^state: *migrating' "$T/st" || fail "the receiver is not migrating"
	grep -q '^arriving: round' "$T/st" || fail "status does not show the arrival"
	"$HVCTL" status arr --json | grep -q '"arriving": *{ *"round"' || fail "status --json has no arriving object"
	wait "$pid" || { cat "$T/mig.out"; fail "the migration failed"; }
	"$HVCTL" status a1 | grep -q '^arriving' && fail "a running VM still shows an arrival"
	return 0
}
