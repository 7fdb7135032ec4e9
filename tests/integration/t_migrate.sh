# Live migration on one host over loopback: the guest continues on the destination with its
# memory (memtouch verifies every page), vCPUs and timer intact; failures leave it running on
# the source. Each test has its own ports (471xx).

# The source VM SRC must be gone after a successful migration: its process (PID) exits and
# hvctl no longer knows the name.
mig_check_source_gone() {
	local name=$1 pid=$2
	mig_wait_pid_gone "$pid" 5
	if "$HVCTL" status "$name" >/dev/null 2>&1; then fail "source VM '$name' still answers after migration"; fi
	if "$HVCTL" list | grep -q "^$name "; then fail "source VM '$name' still listed after migration"; fi
	return 0
}

test_migrate_idle_hello() {
	local port pid st dt
	port=$(mig_unused_port 47101)
	start_vm hi-src --kernel "$GUEST" --mem 1G --cmdline "prog=hello secs=60"
	wait_for "$T/hi-src.console" '^hello: tick=' 5
	pid=$(mig_vm_pid hi-src)
	mig_receiver hi-dst 127.0.0.1:$port "$T/hi-dst.console"
	mig_migrate hi-src 127.0.0.1:$port
	cat "$T/mig.out"
	mig_check_source_gone hi-src "$pid"
	st=$(mig_field "$T/hi-src.console" 'hello: tick=' tick)
	# Its timer keeps firing there: two more ticks lines, later than the source's last.
	for ((i = 0; i < 60; i++)); do
		[ "$(count_lines "$T/hi-dst.console" '^hello: tick=')" -ge 2 ] && break
		sleep 0.1
	done
	[ "$(count_lines "$T/hi-dst.console" '^hello: tick=')" -ge 2 ] ||
		{ cat "$T/hi-dst.console" >&2; fail "the destination printed fewer than 2 'hello: tick=' lines in 6 s"; }
	dt=$(mig_first_field "$T/hi-dst.console" 'hello: tick=' tick)
	[ "$dt" -gt "$st" ] || fail "ticks went back: source $st, destination $dt"
	"$HVCTL" status hi-dst --json | grep -q '"state": *"running"' || fail "destination not running"
	mig_no_corrupt "$T/hi-src.console" "$T/hi-dst.console"
	pid=$(mig_vm_pid hi-dst)
	"$HVCTL" stop hi-dst || fail "stop of the destination failed"
	mig_wait_pid_gone "$pid" 5
}

# One memtouch migration: PORT, guest command line.
mig_memtouch_case() {
	local port cmdline=$2 pid
	port=$(mig_unused_port "$1")
	start_vm mt-src --kernel "$GUEST" --mem 512M --cmdline "$cmdline"
	mig_wait_field_above "$T/mt-src.console" 'memtouch: tick=' gen 1 15 # one whole sweep done
	pid=$(mig_vm_pid mt-src)
	mig_receiver mt-dst 127.0.0.1:$port "$T/mt-dst.console"
	mig_migrate mt-src 127.0.0.1:$port
	cat "$T/mig.out"
	mig_check_source_gone mt-src "$pid"
	mig_check_memtouch_continues "$T/mt-src.console" "$T/mt-dst.console"
	"$HVCTL" status mt-dst --json | grep -q '"state": *"running"' || fail "destination not running"
	pid=$(mig_vm_pid mt-dst)
	"$HVCTL" stop mt-dst || fail "stop of the destination failed"
	mig_wait_pid_gone "$pid" 5
}

test_migrate_memtouch_rate50() {
	mig_memtouch_case 47111 "prog=memtouch ws=32M rate=50"
}

test_migrate_memtouch_rate200() {
	mig_memtouch_case 47112 "prog=memtouch ws=64M rate=200"
}

test_migrate_memtouch_unlimited() {
	mig_memtouch_case 47113 "prog=memtouch ws=16M"
}

# smp_leg PORT [MIGRATE OPTIONS...]: a 4-vCPU guest, each vCPU rewriting its own 16M, migrated;
# every vCPU goes on from where it was and checks two sweeps of its pages there.
smp_leg() {
	local port=$1 pid hb='smp: tick=' src dst now i t s d n ok
	shift
	start_vm smp-src --kernel "$GUEST" --mem 512M --cpus 4 --cmdline "prog=smp ws=16M"
	wait_for "$T/smp-src.console" 'READY cpus=4' 15
	wait_for "$T/smp-src.console" "^$hb" 10
	pid=$(mig_vm_pid smp-src)
	mig_receiver smp-dst 127.0.0.1:$port "$T/smp-dst.console"
	mig_migrate smp-src 127.0.0.1:$port "$@"
	cat "$T/mig.out"
	mig_check_source_gone smp-src "$pid"
	src=$(mig_field "$T/smp-src.console" "$hb" pages)
	wait_for "$T/smp-dst.console" "^$hb" 10
	[ "$(mig_first_field "$T/smp-dst.console" "$hb" cpus)" = 4 ] || fail "destination does not report cpus=4"
	dst=$(mig_first_field "$T/smp-dst.console" "$hb" pages)
	IFS=, read -r -a s <<<"$src"
	IFS=, read -r -a d <<<"$dst"
	[ ${#s[@]} -eq 4 ] && [ ${#d[@]} -eq 4 ] || fail "expected 4 per-CPU counters ($src; $dst)"
	for i in 0 1 2 3; do
		if [ "${d[i]}" -lt "${s[i]}" ]; then
			sleep 1
			grep -m 3 CORRUPT "$T/smp-dst.console" >&2
			fail "CPU $i went back: source last $src pages, destination first $dst"
		fi
	done
	# Every CPU goes on: two sweeps of its 16M (4096 pages) each, so all its pages are checked.
	for ((t = 0; t < 200; t++)); do
		now=$(mig_field "$T/smp-dst.console" "$hb" pages)
		IFS=, read -r -a n <<<"$now"
		ok=1
		for i in 0 1 2 3; do [ "${n[i]:-0}" -ge $((d[i] + 8192)) ] || ok=0; done
		[ $ok = 1 ] && break
		sleep 0.05
	done
	echo "per-CPU pages: source last $src, destination first $dst, then $now"
	for i in 0 1 2 3; do
		[ "${n[i]:-0}" -ge $((d[i] + 8192)) ] || fail "CPU $i does not run on the destination (${d[i]} -> ${n[i]:-?} pages in 10 s)"
	done
	mig_no_corrupt "$T/smp-src.console" "$T/smp-dst.console"
	pid=$(mig_vm_pid smp-dst)
	"$HVCTL" stop smp-dst || fail "stop of the destination failed"
	mig_wait_pid_gone "$pid" 5
}

test_migrate_smp_4cpus() { smp_leg "$(mig_unused_port 47121)"; }

# The same in post-copy: four vCPUs fault on missing pages at once, one thread serves them.
test_migrate_smp_4cpus_postcopy() {
	smp_leg "$(mig_unused_port 47126)" --postcopy-after 1
	grep -Eq '^  post-copy +[0-9]+ pages after it started there' "$T/mig.out" || fail "post-copy did not happen"
}

test_migrate_ping_pong() {
	local port hop from to pid cons prev hb='memtouch: tick='
	start_vm pp-a --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=32M rate=100"
	mig_wait_field_above "$T/pp-a.console" "$hb" gen 1 15
	from=pp-a
	prev="$T/pp-a.console"
	for hop in 1 2 3 4 5 6 7 8 9 10; do
		[ $from = pp-a ] && to=pp-b || to=pp-a
		cons="$T/pp-hop$hop.console"
		pid=$(mig_vm_pid $from)
		port=$(mig_unused_port $((47131 + hop)))
		mig_receiver $to 127.0.0.1:$port "$cons"
		mig_migrate $from 127.0.0.1:$port
		echo "hop $hop: $from -> $to: $(grep -E 'downtime|rounds' "$T/mig.out" | tr -s ' ' | tr '\n' ' ')"
		mig_wait_pid_gone "$pid" 5
		# The heartbeat carries on from where the previous host left it.
		wait_for "$cons" "^$hb" 10
		[ "$(mig_first_field "$cons" "$hb" pages)" -gt "$(mig_field "$prev" "$hb" pages)" ] ||
			fail "hop $hop: memtouch restarted ($(mig_field "$prev" "$hb" pages) -> $(mig_first_field "$cons" "$hb" pages) pages)"
		mig_no_corrupt "$prev" "$cons"
		from=$to
		prev=$cons
	done
	# After the last hop: a whole sweep verified and 2 s of life.
	mig_check_memtouch_continues "$T/pp-hop9.console" "$prev"
	"$HVCTL" stop $from || fail "stop failed"
}

test_migrate_no_convergence() {
	local port pid rc a b hb='memtouch: tick='
	port=$(mig_unused_port 47141)
	# Unlimited memtouch rewrites its 32M in a few ms; a 20 MB/s link needs 1.6 s for it.
	start_vm nc --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=32M"
	mig_wait_field_above "$T/nc.console" "$hb" gen 1 15
	pid=$(mig_vm_pid nc)
	mig_receiver nc-dst 127.0.0.1:$port "$T/nc-dst1.console"
	rc=0
	"$HVCTL" migrate nc 127.0.0.1:$port --bandwidth 20M --max-rounds 3 --on-timeout cancel \
		>"$T/out" 2>"$T/err" || rc=$?
	cat "$T/out" "$T/err"
	[ $rc -ne 0 ] || fail "a migration that cannot converge succeeded with --on-timeout cancel"
	grep -q 'did not converge' "$T/err" || fail "no 'did not converge' message"
	[ "$(grep -c . "$T/err")" -eq 1 ] || fail "more than one line on stderr"
	# The guest keeps running here, intact; the receiver gives up.
	mig_pid_alive "$pid" || fail "the source VM process exited"
	"$HVCTL" status nc --json | grep -q '"state": *"running"' || fail "source not running after the failed migration"
	a=$(mig_field "$T/nc.console" "$hb" pages)
	mig_wait_field_above "$T/nc.console" "$hb" pages "$a" 3
	mig_no_corrupt "$T/nc.console"
	for ((i = 0; i < 100; i++)); do pgrep -f -- "$T/nc-dst1.console" >/dev/null || break; sleep 0.05; done
	if pgrep -f -- "$T/nc-dst1.console" >/dev/null; then fail "the receiver did not exit after the cancelled migration"; fi
	# The same with --on-timeout force: the rest goes in one (long) switchover.
	port=$(mig_unused_port $((port + 1)))
	mig_receiver nc-dst 127.0.0.1:$port "$T/nc-dst2.console"
	mig_migrate nc 127.0.0.1:$port --bandwidth 20M --max-rounds 1 --on-timeout force
	cat "$T/mig.out"
	mig_check_source_gone nc "$pid"
	mig_check_memtouch_continues "$T/nc.console" "$T/nc-dst2.console"
	"$HVCTL" stop nc-dst || fail "stop failed"
}

# --auto-converge: a guest that rewrites its 32 MiB at 100 MiB/s cannot converge over a
# 10 MB/s link. With a throttle capped at 50% it still cannot: the migration gives up, and the
# guest, held back until then, runs here at its full speed again. With the default ceiling
# (99%) the rounds shrink and it moves, intact, and runs there at full speed.
test_migrate_auto_converge() {
	local port pid rc before after there max hb='memtouch: tick='
	port=$(mig_unused_port 47161)
	start_vm ac --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M rate=100"
	mig_wait_field_above "$T/ac.console" "$hb" gen 1 30
	sleep 2
	before=$(mig_field "$T/ac.console" "$hb" rate)
	pid=$(mig_vm_pid ac)
	mig_receiver ac-dst 127.0.0.1:$port "$T/ac-dst1.console"
	rc=0
	"$HVCTL" migrate ac 127.0.0.1:$port --bandwidth 10M --max-rounds 7 --on-timeout cancel \
		--auto-converge --max-throttle 50 --json >"$T/ev1" 2>"$T/err" || rc=$?
	[ $rc -eq 1 ] || { tail -n 3 "$T/ev1" "$T/err"; fail "a migration throttled at most 50% converged (exit $rc)"; }
	max=$(grep -Eo '"throttle_pct": *[0-9]+' "$T/ev1" | grep -Eo '[0-9]+$' | sort -n | tail -n 1)
	echo "capped at 50%: the throttle reached ${max:-0}%; $(cat "$T/err")"
	[ "${max:-0}" -eq 50 ] || fail "the throttle reached ${max:-0}%, not its ceiling of 50%"
	grep -q 'did not converge' "$T/err" || fail "no 'did not converge' message"
	mig_pid_alive "$pid" || fail "the source VM process exited"
	# Released: faster than the 50% throttle allowed (the best of its next heartbeats; an
	# emulated CPU shared with the receiver's exit is noisy).
	sleep 3
	after=$(grep -aEo 'memtouch: tick=.* rate=[0-9]+' "$T/ac.console" | tail -n 3 | grep -Eo '[0-9]+$' | sort -n | tail -n 1)
	echo "the guest wrote $before MiB/s before, $after MiB/s after the failed migration"
	[ "$after" -gt $((before * 6 / 10)) ] || fail "the guest still runs slower after the migration failed ($after vs $before MiB/s)"
	grep '"event": *"migration-failed"' "$T/ev1" | grep -Eq '"throttle_pct": *0[,}]' ||
		fail "the final event does not say the throttle was lifted"
	mig_no_corrupt "$T/ac.console"

	port=$(mig_unused_port $((port + 1)))
	mig_receiver ac-dst 127.0.0.1:$port "$T/ac-dst2.console"
	mig_migrate ac 127.0.0.1:$port --bandwidth 10M --on-timeout cancel --downtime 100 --auto-converge
	cat "$T/mig.out"
	grep -Eq '^  throttled +up to [0-9]+% ' "$T/mig.out" || fail "the summary does not say the guest was throttled"
	mig_check_source_gone ac "$pid"
	mig_check_memtouch_continues "$T/ac.console" "$T/ac-dst2.console"
	sleep 3
	there=$(grep -aEo 'memtouch: tick=.* rate=[0-9]+' "$T/ac-dst2.console" | tail -n 3 | grep -Eo '[0-9]+$' | sort -n | tail -n 1)
	echo "there it writes $there MiB/s"
	[ "$there" -gt $((before * 6 / 10)) ] || fail "the guest runs slower on the destination ($there vs $before MiB/s)"
	"$HVCTL" stop ac-dst || fail "stop failed"
}

# busy_leg NAME PORT [MIGRATE OPTIONS...]: a guest NAME rewriting 64 MiB at 200 MiB/s migrated to
# NAME-dst; the summary is in $T/mig.out; the source is gone, the memory checks out there
# (memtouch verifies every page of a whole sweep); NAME-dst is left running.
busy_leg() {
	local name=$1 port=$2 pid
	shift 2
	start_vm "$name" --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=64M rate=200"
	mig_wait_field_above "$T/$name.console" "memtouch: tick=" gen 1 30
	pid=$(mig_vm_pid "$name")
	mig_receiver "$name-dst" 127.0.0.1:$port "$T/$name-dst.console"
	mig_migrate "$name" 127.0.0.1:$port "$@"
	cat "$T/mig.out"
	mig_check_source_gone "$name" "$pid"
	mig_check_memtouch_continues "$T/$name.console" "$T/$name-dst.console"
}

# --postcopy: the busy guest starts on the destination after the first pass over its memory;
# the pages it still lacks follow, those it touches first; the summary says how many came
# after the start and how many on request.
test_migrate_postcopy() {
	busy_leg pc "$(mig_unused_port 47171)" --postcopy
	grep -Eq '^  post-copy +[1-9][0-9]* pages after it started there' "$T/mig.out" ||
		fail "no page came after the guest started there: post-copy did not happen"
	"$HVCTL" stop pc-dst || fail "stop failed"
}

# --dirty-log clear: KVM's log re-armed chunk by chunk just before the pages are read. A
# page the guest writes between the two must still arrive in its last version, over several
# rounds.
test_migrate_dirty_log_clear() {
	busy_leg dl "$(mig_unused_port 47191)" --dirty-log clear --downtime 100
	[ "$(field_rounds "$T/mig.out")" -ge 2 ] || fail "one round only: the re-arming was never used"
	"$HVCTL" stop dl-dst || fail "stop failed"
}

# field_rounds SUMMARY: the rounds a migrate summary reports.
field_rounds() { sed -nE 's/^ *rounds +([0-9]+).*/\1/p' "$1"; }

test_migrate_cancel() {
	local port pid rc mpid
	port=$(mig_unused_port 47151)
	start_vm cx --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=128M rate=100"
	mig_wait_field_above "$T/cx.console" 'memtouch: tick=' pages 20000 15
	expect_error "no migration or disk move is in progress" "$HVCTL" migrate --cancel cx
	pid=$(mig_vm_pid cx)
	mig_receiver cx-dst 127.0.0.1:$port "$T/cx-dst.console"
	# 80 MiB at 5 MB/s: ~16 s if nobody stops it.
	"$HVCTL" migrate cx 127.0.0.1:$port --bandwidth 5M >"$T/out" 2>"$T/err" &
	mpid=$!
	sleep 1.5
	mig_pid_alive $mpid || { cat "$T/out" "$T/err"; fail "the slow migration ended early"; }
	"$HVCTL" migrate --cancel cx || fail "hvctl migrate --cancel failed"
	rc=0
	for ((i = 0; i < 100; i++)); do mig_pid_alive $mpid || break; sleep 0.05; done
	mig_pid_alive $mpid && fail "hvctl migrate still runs 5 s after the cancel"
	wait $mpid || rc=$?
	cat "$T/out" "$T/err"
	[ $rc -eq 1 ] || fail "cancelled migration exited with $rc, not 1"
	grep -q 'cancelled' "$T/err" || fail "the migrate command does not say it was cancelled"
	mig_pid_alive "$pid" || fail "the source VM process exited"
	"$HVCTL" status cx --json | grep -q '"state": *"running"' || fail "source not running after cancel"
	a=$(mig_field "$T/cx.console" 'memtouch: tick=' pages)
	mig_wait_field_above "$T/cx.console" 'memtouch: tick=' pages "$a" 3
	for ((i = 0; i < 100; i++)); do pgrep -f -- "$T/cx-dst.console" >/dev/null || break; sleep 0.05; done
	if pgrep -f -- "$T/cx-dst.console" >/dev/null; then fail "the receiver still runs 5 s after the cancel"; fi
	mig_no_corrupt "$T/cx.console"
	"$HVCTL" stop cx || fail "stop failed"
}

test_migrate_json_events() {
	local port rc
	port=$(mig_unused_port 47161)
	start_vm js --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=16M rate=100"
	mig_wait_field_above "$T/js.console" 'memtouch: tick=' gen 1 15
	# A failure first: nothing listens there.
	rc=0
	"$HVCTL" migrate js 127.0.0.1:"$port" --json >"$T/fail.json" 2>"$T/err" || rc=$?
	[ $rc -eq 1 ] || fail "failed --json migration exited with $rc"
	mig_receiver js-dst 127.0.0.1:$port "$T/js-dst.console"
	"$HVCTL" migrate js 127.0.0.1:$port --json >"$T/ok.json" 2>"$T/err" || { cat "$T/err"; fail "migrate --json failed"; }
	cat "$T/fail.json" "$T/ok.json"
	if command -v python3 >/dev/null; then
		python3 - "$T/ok.json" "$T/fail.json" <<'EOF' || fail "the JSON events are wrong (see above)"
import json, sys
def events(path):
    lines = [l for l in open(path) if l.strip()]
    assert lines, f"{path}: no events"
    return [json.loads(l) for l in lines]  # every stdout line must be one JSON object
ok, bad = events(sys.argv[1]), events(sys.argv[2])
fields = ("phase", "round", "ram_pages", "remaining_pages", "pages_sent", "zero_pages", "raw_pages",
          "zlib_pages", "wire_bytes", "rate_mibs", "dirty_rate_mibs", "expected_downtime_ms",
          "elapsed_ms", "downtime_ms", "compressing")
for e in ok + bad:
    missing = [f for f in fields if f not in e]
    assert not missing, f"event {e.get('event')} lacks {missing}"
assert [e["event"] for e in ok[:-1]] == ["migration"] * (len(ok) - 1), "only progress events before the end"
last = ok[-1]
assert last["event"] == "migration-done", f"last event is {last['event']}"
assert last["phase"] == "done" and "error" not in last
assert last["pages_sent"] > 0 and last["wire_bytes"] >= last["raw_pages"] * 4096
assert 0 < last["downtime_ms"] <= last["elapsed_ms"]
assert last["ram_pages"] == 512 * 256
rounds = [e["round"] for e in ok]
assert rounds == sorted(rounds), f"rounds go back: {rounds}"
elapsed = [e["elapsed_ms"] for e in ok]
assert elapsed == sorted(elapsed), "elapsed_ms goes back"
assert any(e["phase"] == "precopy" for e in ok), "no precopy progress event"
assert bad[-1]["event"] == "migration-failed", f"failure ends with {bad[-1]['event']}"
assert "connection refused" in bad[-1].get("error", ""), bad[-1]
print(f"{len(ok)} events, done after {last['elapsed_ms']:.1f} ms, downtime {last['downtime_ms']:.1f} ms")
EOF
	else
		tail -n 1 "$T/ok.json" | grep -q '^{"event":"migration-done",' || fail "last event is not migration-done"
		grep -vq '^{"event":"migration' "$T/ok.json" && fail "a stdout line is not a migration event"
		for f in phase round pages_sent wire_bytes downtime_ms elapsed_ms; do
			tail -n 1 "$T/ok.json" | grep -q "\"$f\":" || fail "migration-done lacks $f"
		done
		tail -n 1 "$T/fail.json" | grep -q '"event":"migration-failed".*"error":"connection refused' ||
			fail "the failed migration does not end with migration-failed and its error"
	fi
	mig_check_memtouch_continues "$T/js.console" "$T/js-dst.console"
	"$HVCTL" stop js-dst || fail "stop failed"
}

# compress_leg SRC DST PORT MODE [MIGRATE OPTIONS...]: a guest SRC with 32M of stamped pages
# (16 bytes per page, the rest zero: they compress ~100x) migrated with --compress MODE to a
# new receiver DST; its pages must have gone compressed and small. Leaves SRC's pid in CZ_PID
# and the summary's compressed and raw page counts in CZ_Z and CZ_R.
compress_leg() {
	local src=$1 dst=$2 port=$3 mode=$4 w
	shift 4
	start_vm "$src" --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=32M rate=50 fill=stamp"
	mig_wait_field_above "$T/$src.console" 'memtouch: tick=' gen 1 15
	CZ_PID=$(mig_vm_pid "$src")
	mig_receiver "$dst" 127.0.0.1:$port "$T/$dst.console"
	mig_migrate "$src" 127.0.0.1:$port --compress "$mode" "$@"
	cat "$T/mig.out"
	CZ_Z=$(mig_summary_pages "$T/mig.out" compressed)
	CZ_R=$(mig_summary_pages "$T/mig.out" raw)
	w=$(mig_summary_wire_bytes "$T/mig.out")
	[ "$CZ_Z" -ge 8192 ] || fail "--compress $mode: only $CZ_Z compressed pages for a 32M working set"
	[ "$w" -lt $(((CZ_Z + CZ_R) * 4096 / 4)) ] ||
		fail "--compress $mode: $w bytes on the wire for $((CZ_Z + CZ_R)) pages"
	mig_check_memtouch_continues "$T/$src.console" "$T/$dst.console"
}

test_migrate_compress() {
	local port z r w
	port=$(mig_unused_port 47171)
	compress_leg cz-a cz-b "$port" zlib
	# And back, uncompressed (the name cz-a is free again once its first process is gone).
	mig_wait_pid_gone "$CZ_PID" 5
	port=$(mig_unused_port $((port + 1)))
	mig_receiver cz-a 127.0.0.1:$port "$T/cz-a2.console"
	mig_migrate cz-b 127.0.0.1:$port --compress none
	cat "$T/mig.out"
	z=$(mig_summary_pages "$T/mig.out" compressed)
	r=$(mig_summary_pages "$T/mig.out" raw)
	w=$(mig_summary_wire_bytes "$T/mig.out")
	[ "$z" -eq 0 ] || fail "--compress none: $z compressed pages"
	[ "$r" -ge 8192 ] || fail "--compress none: only $r raw pages for a 32M working set"
	[ "$w" -ge $((r * 4096)) ] || fail "--compress none: $w bytes on the wire for $r raw pages"
	mig_check_memtouch_continues "$T/cz-b.console" "$T/cz-a2.console"
	"$HVCTL" stop cz-a || fail "stop failed"
}

# --compress zstd: every compressed page went as zstd (the destination offers it), and the
# summary says so.
test_migrate_compress_zstd() {
	local port zs
	port=$(mig_unused_port 47176)
	compress_leg zs-a zs-b "$port" zstd
	zs=$(sed -nE 's/^ *compressed +([0-9]+) pages with zstd, 0 with zlib$/\1/p' "$T/mig.out")
	[ "$zs" = "$CZ_Z" ] || fail "--compress zstd: $CZ_Z pages compressed, of them '$zs' with zstd"
	"$HVCTL" stop zs-b || fail "stop failed"
}

# Compressor threads: zstd on two threads (every batch waits for one); then hybrid on two
# threads over a 20 MB/s link, where they keep up, so nearly every page still goes
# compressed; the guest's memory checks out each time.
test_migrate_compress_threads() {
	local port
	port=$(mig_unused_port 47177)
	compress_leg ct-a ct-b "$port" zstd --compress-threads 2
	mig_wait_pid_gone "$CZ_PID" 5
	port=$(mig_unused_port $((port + 1)))
	mig_receiver ct-a 127.0.0.1:$port "$T/ct-a2.console"
	mig_migrate ct-b 127.0.0.1:$port --compress hybrid --compress-threads 2 --bandwidth 20M
	cat "$T/mig.out"
	[ "$(mig_summary_pages "$T/mig.out" compressed)" -ge 8192 ] ||
		fail "--compress hybrid over 20 MB/s: only $(mig_summary_pages "$T/mig.out" compressed) pages compressed"
	mig_check_memtouch_continues "$T/ct-b.console" "$T/ct-a2.console"
	"$HVCTL" stop ct-a || fail "stop failed"
}

test_migrate_destination_refusals() {
	local port pid a rc free
	port=$(mig_unused_port 47181)
	start_vm rf --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=16M rate=50"
	wait_for "$T/rf.console" '^memtouch: tick=' 10
	pid=$(mig_vm_pid rf)
	# A receiver reserves its name when it starts: the same name is refused at once.
	expect_error "a VM named 'rf' is already running" \
		"$HVCTL" receive --listen 127.0.0.1:$port --name rf --console none --detach
	# Same host, same run directory, no --name: it would take the source's name, which is
	# taken here, so the destination refuses at the handshake.
	"$HVCTL" receive --listen 127.0.0.1:$port --console "file:$T/rf-dst.console" --timeout 60 \
		--detach >/dev/null || fail "hvctl receive without --name failed"
	# The source learns only that the destination could not set the VM up (the detail, which
	# may name this host's files, stays in the destination's log).
	expect_error "destination refused: the destination could not set up the VM" \
		"$HVCTL" migrate rf 127.0.0.1:$port
	cat "$T/err"
	for ((i = 0; i < 100; i++)); do pgrep -f -- "$T/rf-dst.console" >/dev/null || break; sleep 0.05; done
	if pgrep -f -- "$T/rf-dst.console" >/dev/null; then fail "the refusing receiver did not exit"; fi
	mig_pid_alive "$pid" || fail "the source VM process exited"
	"$HVCTL" status rf --json | grep -q '"state": *"running"' || fail "source not running after the refusal"
	a=$(mig_field "$T/rf.console" 'memtouch: tick=' pages)
	mig_wait_field_above "$T/rf.console" 'memtouch: tick=' pages "$a" 3
	# Nobody listening.
	free=$(mig_unused_port $((port + 1)))
	expect_error "connection refused.*is 'hvctl receive --listen 127.0.0.1:$free' running" \
		"$HVCTL" migrate rf 127.0.0.1:$free
	rc=0
	"$HVCTL" migrate rf 127.0.0.1:$free 2>/dev/null || rc=$?
	[ $rc -eq 1 ] || fail "migrate to a closed port exited with $rc, not 1"
	# No such VM.
	expect_error "no VM named 'nosuchvm'" "$HVCTL" migrate nosuchvm 127.0.0.1:1
	rc=0
	"$HVCTL" migrate nosuchvm 127.0.0.1:1 2>/dev/null || rc=$?
	[ $rc -eq 1 ] || fail "migrate of an unknown VM exited with $rc, not 1"
	# After all that, a real migration still works.
	port=$(mig_unused_port $((free + 1)))
	mig_receiver rf-dst 127.0.0.1:$port "$T/rf-dst2.console"
	mig_migrate rf 127.0.0.1:$port
	mig_check_source_gone rf "$pid"
	wait_for "$T/rf-dst2.console" '^memtouch: tick=' 10
	mig_no_corrupt "$T/rf.console" "$T/rf-dst2.console"
	"$HVCTL" stop rf-dst || fail "stop failed"
}

# --compress auto on memory it cannot shrink, with the link slow enough that zlib is worth a
# try: one failed try, not zlib on every batch (auto once kept compressing random pages for
# the whole migration: 4x slower than none). The guest idles with a 1 kHz timer.
test_migrate_auto_on_random_memory_tries_zlib_once() {
	local port pid tried raw
	port=$(mig_unused_port 47191)
	start_vm ar-a --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=192M fill=full sweeps=1 hz=1000"
	wait_for "$T/ar-a.console" 'rate=0 maxgap' 30
	pid=$(mig_vm_pid ar-a)
	mig_receiver ar-b 127.0.0.1:$port "$T/ar-b.console"
	"$HVCTL" migrate ar-a 127.0.0.1:$port --bandwidth 200M --json >"$T/events" 2>"$T/mig.err" ||
		{ cat "$T/mig.err" >&2; fail "migration failed"; }
	grep '"event": *"migration-done"' "$T/events" >"$T/done" || fail "no migration-done event"
	tried=$(grep -Eo '"deflate_pages": *[0-9]+' "$T/done" | grep -Eo '[0-9]+$')
	raw=$(grep -Eo '"raw_pages": *[0-9]+' "$T/done" | grep -Eo '[0-9]+$')
	echo "pages given to zlib: $tried, sent raw: $raw"
	[ "$raw" -ge 45000 ] || fail "only $raw raw pages for 192 MiB of random memory"
	# A try is one batch of 256 pages; one per 1024 raw batches is the most auto may spend.
	[ "$tried" -le $((256 * (raw / (256 * 1024) + 2))) ] ||
		fail "auto gave $tried pages to zlib on random memory ($raw sent raw)"
	mig_check_source_gone ar-a "$pid"
	# Idle after its one sweep: it keeps ticking there, and its memory is as it was.
	wait_for "$T/ar-b.console" '^memtouch: tick=' 10
	mig_no_corrupt "$T/ar-a.console" "$T/ar-b.console"
	"$HVCTL" stop ar-b || fail "stop failed"
}
