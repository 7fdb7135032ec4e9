# Long-distance migration: 150 ms round-trip time from build/tools/faultproxy --delay-ms 75
# (netem is not available here). The stream is pipelined (HELLO -> HELLO_REPLY and
# END_OF_STATE -> ACK are the only round trips), so the delay adds well under a second; a
# protocol with a round trip per page or per batch would take minutes. Ports 474xx.

FAULTPROXY=${FAULTPROXY:-$PWD/$BUILD/tools/faultproxy}

# ---- helpers (fd_*) ----

fd_setup() {
	[ -x "$FAULTPROXY" ] || fail "$FAULTPROXY is missing: run make"
	: >"$T/pids"
	cat >"$T/cleanup" <<EOF
#!/bin/bash
for p in \$(cat '$T/pids' 2>/dev/null); do kill -9 "\$p" 2>/dev/null; done
exit 0
EOF
	chmod +x "$T/cleanup"
}

fd_port() {
	local p=$1
	while ss -Htan "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
	echo "$p"
}

# fd_receiver NAME PORT: 'hvctl receive' in the background, once it listens.
fd_receiver() {
	local name=$1 port=$2 i
	"$HVCTL" receive --listen "127.0.0.1:$port" --name "$name" --console "file:$T/$name.console" \
		--timeout 60 >"$T/$name.rout" 2>"$T/$name.rerr" &
	echo $! >>"$T/pids"
	for ((i = 0; i < 500; i++)); do
		ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
		sleep 0.02
	done
	fail "hvctl receive --listen 127.0.0.1:$port does not listen"
}

# fd_proxy TARGET_PORT LOG OPTIONS...: sets PPORT, PPID_.
fd_proxy() { faultproxy_start 120 "$@"; }

fd_last_tick() {
	grep -Eo 'memtouch: tick=[0-9]+ gen=' "$1" 2>/dev/null | tail -n 1 | grep -Eo '[0-9]+' || echo 0
}

# fd_alive NAME: running, and its guest makes >= 1 s of progress without corruption.
fd_alive() {
	local name=$1 console=$T/$1.console t0 i
	"$HVCTL" status "$name" --json 2>&1 | grep -q '"state": *"running"' || fail "$name is not running"
	t0=$(fd_last_tick "$console")
	for ((i = 0; i < 60; i++)); do
		[ "$(fd_last_tick "$console")" -ge $((t0 + 100)) ] && break
		sleep 0.05
	done
	[ "$(fd_last_tick "$console")" -ge $((t0 + 100)) ] ||
		{ tail -n 5 "$console" >&2; fail "the guest of $name stopped making progress"; }
	if grep -Eq 'CORRUPT|FATAL|hv-guest: exit' "$console"; then
		grep -E -m 3 'CORRUPT|FATAL|hv-guest: exit' "$console" >&2
		fail "the guest of $name reported a problem"
	fi
	return 0
}

# fd_migrate SRC DST DELAY_MS [MIGRATE OPTIONS...]: SRC -> proxy (DELAY_MS each way) -> DST;
# must succeed. Sets SECS (wall clock of hvctl migrate).
fd_migrate() {
	local src=$1 dst=$2 delay=$3 rport t0 t1 rc=0
	shift 3
	rport=$(fd_port 47400)
	fd_receiver "$dst" "$rport"
	fd_proxy "$rport" "$T/proxy-$dst.log" --delay-ms "$delay"
	t0=$EPOCHREALTIME
	timeout 100 "$HVCTL" migrate "$src" "127.0.0.1:$PPORT" "$@" >"$T/mig-$dst.out" 2>"$T/mig-$dst.err" || rc=$?
	t1=$EPOCHREALTIME
	SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	[ "$rc" -eq 0 ] || { cat "$T/mig-$dst.out" "$T/mig-$dst.err" "$T/$dst.rerr" >&2; fail "migration $src -> $dst (delay $delay ms) failed (exit $rc) after $SECS s"; }
	echo "== $src -> $dst, ${delay} ms each way ($((2 * delay)) ms RTT): $SECS s wall clock"
	sed 's/^/    /' "$T/mig-$dst.out"
	grep -E '^faultproxy: conn=' "$T/proxy-$dst.log" | sed 's/^/    /'
	wait_for "$T/$dst.console" 'memtouch: tick=' 10
	fd_alive "$dst"
}

# fd_path_rtt_at_least MS FILE REGEX: FILE says "at N ms round trip the switchover alone
# takes about F ms" followed by REGEX (at its end, or where a line ends), with N >= MS (a
# relay's delay is seen) and F = 2 + 0.5 N (the destination starts on the state: the
# switchover waits for half a round trip).
fd_path_rtt_at_least() {
	local line n f
	# (a note on standard output is wrapped for 80 columns: read it as one line)
	line=$(tr -s '\n ' '  ' <"$2" | grep -Eo "at [0-9]+ ms round trip the switchover alone takes about [0-9]+ ms[,:] .*$3") ||
		{ cat "$2"; fail "no line about the path's round trip in $2"; }
	n=$(sed -E 's/^at ([0-9]+) ms.*/\1/' <<<"$line")
	f=$(sed -E 's/.*takes about ([0-9]+) ms.*/\1/' <<<"$line")
	[ "$n" -ge "$1" ] || fail "the round trip was taken for $n ms, not at least $1: $line"
	awk -v n="$n" -v f="$f" 'BEGIN { d = 2 + 0.5 * n - f; exit !(d > -2 && d < 2) }' ||
		fail "the switchover's floor $f ms is not 2 + 0.5 x $n ms"
}

test_migrate_distance_150ms_rtt() {
	local base far ratio
	fd_setup
	start_vm d0 --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M rate=20"
	wait_for "$T/d0.console" 'memtouch: tick=[0-9]+ gen=2 ' 30
	# The same path without delay, for comparison; then 150 ms RTT.
	fd_migrate d0 d1 0
	base=$SECS
	fd_migrate d1 d2 75
	far=$SECS
	# The path alone (half of 150 ms) cannot meet the default 30 ms: said up front, and pre-copy
	# aims for the path plus 30 ms instead of running out of rounds. (No check that loopback
	# gives no warning: under emulation its round trip alone can exceed 20 ms.)
	fd_path_rtt_at_least 150 "$T/mig-d2.out" 'more than --downtime 30: aiming for [0-9]+ ms instead'
	ratio=$(awk -v a="$far" -v b="$base" 'BEGIN {printf "%.1f", (b > 0) ? (a / b) : 0}')
	echo "total time: $base s without delay, $far s with 150 ms RTT (x$ratio)"
	echo "downtime with 150 ms RTT: $(sed -nE 's/^ *downtime +//p' "$T/mig-d2.out") (the --downtime limit is 30 ms by default)"
	# What the guest itself saw (its longest stop, its own clock): half a round trip, the
	# last pages and the load; printed, not asserted (make bench measures it).
	echo "the guest's longest stop there: $(($(grep -Eo 'maxgap_us=[0-9]+' "$T/d2.console" | cut -d= -f2 | sort -n | tail -n 1) / 1000)) ms"
	# Sanity bound only (no timing assertions on a shared 2-core VM): per-page or per-batch
	# round trips would need minutes here.
	awk -v a="$far" 'BEGIN {exit !(a < 30)}' || fail "migration over 150 ms RTT took $far s (>= 30 s): not pipelined?"
	awk -v a="$far" -v b="$base" 'BEGIN {exit !(a <= 10 * b + 1.5)}' ||
		echo "note: more than ~10x the no-delay time ($far s vs $base s)"
	"$HVCTL" stop d2 || fail "stop d2 failed"
}

# With --on-timeout cancel, a limit a relay's delay makes impossible: the rounds decide (one
# stretched HELLO exchange is not evidence enough to refuse), and the reason they give
# counts the relay's round trip (2 ms + half of 150 ms at the least).
test_migrate_distance_cancel_counts_the_relay() {
	local rport est
	fd_setup
	start_vm c0 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=8M"
	wait_for "$T/c0.console" 'memtouch: tick=' 30
	rport=$(fd_port 47440)
	fd_receiver c1 "$rport"
	fd_proxy "$rport" "$T/proxy-c1.log" --delay-ms 75
	expect_error "did not converge in 2 rounds: .*switching now would stop the guest for about [0-9]+ ms" \
		timeout 60 "$HVCTL" migrate c0 "127.0.0.1:$PPORT" --on-timeout cancel --max-rounds 2
	est=$(grep -Eo 'stop the guest for about [0-9]+ ms' "$T/err" | grep -Eo '[0-9]+')
	echo "$(cat "$T/err")"
	[ "$est" -ge 77 ] || fail "the estimate ($est ms) leaves out the relay's 150 ms round trip"
	fd_alive c0
}
