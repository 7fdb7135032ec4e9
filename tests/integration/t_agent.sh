# The host agent ('hvctl serve', docs/agent.md): who may use it, what it runs for a
# caller, and (with guests, in tools/lab.sh with three hosts) migrations to an agent, --to
# auto, evacuation, and an agent killed in the middle of one.

# ---- One agent on loopback (no guest needed) ----

# agent_start [OPTIONS...]: an agent on 127.0.0.1:$APORT for directory $T/dir with key
# $T/key; its log in $T/agent.log.
agent_start() {
	mkdir -p "$T/dir"
	[ -f "$T/key" ] || "$HVCTL_BIN" keygen "$T/key" >/dev/null
	APORT=$(mig_unused_port 17460)
	"$HVCTL_BIN" serve --dir "$T/dir" --listen "127.0.0.1:$APORT" --psk "$T/key" "$@" >"$T/agent.log" 2>&1 &
	echo $! >>"$T/pids"
	wait_for "$T/agent.log" 'agent: serving' 10
}
remote() { "$HVCTL_BIN" -H "127.0.0.1:$APORT" --psk "$T/key" "$@"; }

test_agent_refuses_strangers() {
	agent_start
	"$HVCTL_BIN" keygen "$T/other" >/dev/null
	expect_error "did not answer without a key" "$HVCTL_BIN" -H "127.0.0.1:$APORT" list
	expect_error "keys differ" "$HVCTL_BIN" -H "127.0.0.1:$APORT" --psk "$T/other" list
	# A peer that speaks plain JSON, and one that sends escape sequences, get nothing.
	exec 3<>"/dev/tcp/127.0.0.1/$APORT"
	printf '{"cmd":"exec","argv":["list"],"id":1}\n' >&3
	! timeout 12 head -c 1 <&3 | grep -q . || fail "the agent answered a caller without a key"
	exec 3>&-
	exec 3<>"/dev/tcp/127.0.0.1/$APORT"
	printf '\033[2J\033]0;pwned\007\n' >&3
	exec 3>&-
	# Idle strangers hold no door shut for the others.
	for i in 1 2 3 4 5 6; do exec {fd}<>"/dev/tcp/127.0.0.1/$APORT"; done
	remote list >"$T/list.out" || fail "the agent did not serve its key's holder"
	grep -q '^NAME' "$T/list.out" || fail "no list from the agent"
	grep -q 'refused 127.0.0.1:.*does not speak TLS' "$T/agent.log" || fail "the agent did not log the refusal"
	! grep -q $'\033' "$T/agent.log" || fail "the agent's log holds a stranger's escape sequence"
}

test_agent_hosts_table() {
	agent_start --guest-mem 1G
	"$HVCTL_BIN" hosts "127.0.0.1:$APORT,127.0.0.1:1" --psk "$T/key" >"$T/hosts.out" 2>&1 &&
		fail "hvctl hosts succeeded with a host that is not there"
	cat "$T/hosts.out"
	grep -Eq "^  127\.0\.0\.1:$APORT +0 +0 +1024 " "$T/hosts.out" || fail "no row for the agent (0 VMs, 1024 MiB to spare)"
	grep -q "^  127.0.0.1:1 .*connection refused" "$T/hosts.out" || fail "no reason for the missing host"
	awk '{ if (length($0) > 80) exit 1 }' "$T/hosts.out" || fail "the table is wider than 80 columns"
}

test_agent_runs_nothing_outside_its_policy() {
	agent_start --net tap=tap-lab0
	: >"$T/dir/guest.elf"
	expect_error "plain names" remote run --kernel /etc/passwd --name x
	expect_error "plain names" remote run --kernel ../guest.elf --name x
	expect_error "plain names" remote save x ../../tmp/stolen.hvs
	expect_error "plain names" remote restore --name x=/etc/shadow
	expect_error "only the TAPs" remote run --kernel guest.elf --name x --net tap=eth0
	expect_error "agent's to give" remote restore snap.hvs --name x --shared-storage
	expect_error "agent's to give" remote restore snap.hvs --name x --shared
	expect_error "agent's to give" remote run --kernel guest.elf --name x --insec
	expect_error "needs a terminal" remote console x
	expect_error "agent's own job" remote receive --listen 0.0.0.0:1
	expect_error "give --name" remote run --kernel guest.elf
	expect_error "unknown command" remote frobnicate
	# What the agent runs, it runs in its directory: a command's error names no other place.
	expect_error "no VM named 'x'" remote status x
	[ "$(ls "$T/dir")" = "$(printf 'guest.elf\nhv-agent.lock')" ] || fail "something appeared in the agent's directory: $(ls "$T/dir")"
}

test_agent_start_errors() {
	mkdir -p "$T/dir"
	"$HVCTL_BIN" keygen "$T/key" >/dev/null
	expect_error "--dir DIR is required" "$HVCTL_BIN" serve
	expect_error "is not a directory" "$HVCTL_BIN" serve --dir "$T/none"
	expect_error "unknown or incomplete option '--lisen'" "$HVCTL_BIN" serve --dir "$T/dir" --lisen 1.2.3.4
	expect_error "without a key" "$HVCTL_BIN" serve --dir "$T/dir" --listen 0.0.0.0:1 --migration-address 10.0.0.1
	expect_error "give --migration-address" "$HVCTL_BIN" serve --dir "$T/dir" --listen 0.0.0.0:1 --psk "$T/key"
	expect_error "is every address" "$HVCTL_BIN" serve --dir "$T/dir" --listen 0.0.0.0:1 --psk "$T/key" \
		--migration-address 0.0.0.0
	printf '{"version":1,"vms":[{"name":"../x","origin":"run","since":1}]}' >"$T/dir/hv-agent.json"
	expect_error "damaged.*move it away" "$HVCTL_BIN" serve --dir "$T/dir"
	rm "$T/dir/hv-agent.json"
	agent_start
	expect_error "another agent serves" "$HVCTL_BIN" serve --dir "$T/dir" --listen 127.0.0.1:1
	expect_error "is 'hvctl serve' running there" "$HVCTL_BIN" -H 127.0.0.1:1 --psk "$T/key" list
	expect_error "-H HOST" "$HVCTL_BIN" --psk "$T/key" list
	expect_error "needs a value" "$HVCTL_BIN" -H
	expect_error "add --to auto" "$HVCTL_BIN" migrate vm --hosts a,b
	expect_error "names the host itself" remote evacuate x
}

test_agent_certificates() {
	tls_pki
	local p=$T/pki
	mkdir -p "$T/dir"
	APORT=$(mig_unused_port 17460)
	"$HVCTL_BIN" serve --dir "$T/dir" --listen "127.0.0.1:$APORT" --tls-cert "$p/dst.crt" --tls-key "$p/dst.key" \
		--tls-ca "$p/ca.crt" >"$T/agent.log" 2>&1 &
	echo $! >>"$T/pids"
	wait_for "$T/agent.log" 'agent: serving' 10
	"$HVCTL_BIN" -H "127.0.0.1:$APORT" --tls-cert "$p/src.crt" --tls-key "$p/src.key" --tls-ca "$p/ca.crt" \
		list >"$T/list.out" || fail "a caller with a certificate of the agent's CA was refused"
	grep -q '^NAME' "$T/list.out" || fail "no list from the agent"
	expect_error "refused this side: .*unknown ca" "$HVCTL_BIN" -H "127.0.0.1:$APORT" --tls-cert "$p/rogue.crt" --tls-key "$p/rogue.key" \
		--tls-ca "$p/ca.crt" list
	expect_error "refused this side: .*expired" "$HVCTL_BIN" -H "127.0.0.1:$APORT" --tls-cert "$p/old.crt" --tls-key "$p/old.key" \
		--tls-ca "$p/ca.crt" list
	expect_error "did not answer without a key" "$HVCTL_BIN" -H "127.0.0.1:$APORT" list
}

# ---- Three lab hosts with agents (tools/lab.sh up --hosts 3; guests need KVM) ----

lab3() { LAB=hva$$ LAB_DIR="$T/lab" BUILD="$BUILD" tools/lab.sh "$@"; }

# lab3_start: the lab with three hosts and an agent on each; the guest image in every
# agent's directory. A=10.77.1.1 B=.2 C=.3.
lab3_start() {
	cat >"$T/cleanup" <<CLEAN
#!/bin/bash
LAB=hva$$ LAB_DIR="$T/lab" $PWD/tools/lab.sh down
CLEAN
	chmod +x "$T/cleanup"
	trap '"$T/cleanup"' EXIT
	lab3 up --hosts 3 >/dev/null || fail "tools/lab.sh up --hosts 3 failed"
	for h in a b c; do cp "$GUEST" "$T/lab/$h-images/guest.elf"; done
	lab3 agents >/dev/null || fail "the agents did not start"
	KEY=$T/lab/key
}
# on HOST ARGS...: hvctl ARGS as a caller on host HOST (a, b or c) of the lab, with its key.
on() { local h=$1; shift; lab3 "$h" "$HVCTL" "$@" --psk "$KEY"; }
# runs_on NAME: the hosts (a b c) where VM NAME runs (running or paused), as the run
# directories show it.
runs_on() {
	local h
	for h in a b c; do
		lab3 "$h" "$HVCTL_BIN" list --json 2>/dev/null | grep -q "\"name\": *\"$1\"[^}]*\"state\": *\"\\(running\\|paused\\)\"" &&
			printf '%s ' "$h"
	done
	echo
}
# settle NAME...: until each VM runs on exactly one host (a move in flight ends), or fail.
settle() {
	local n where
	for n in "$@"; do
		for _ in $(seq 100); do
			where=$(runs_on "$n")
			[ "$(wc -w <<<"$where")" = 1 ] && break
			sleep 0.3
		done
		[ "$(wc -w <<<"$where")" = 1 ] || fail "VM $n runs on '$where', not on exactly one host"
	done
}

test_agent_migrate_to_agent_and_auto() {
	lab3_start
	on a -H 10.77.1.1 run --kernel guest.elf --name m1 --mem 64M --console file:m1.console \
		--cmdline "prog=memtouch ws=4M" >/dev/null || fail "remote run on A failed"
	on b -H 10.77.1.2 run --kernel guest.elf --name b1 --mem 128M --console file:b1.console \
		--cmdline "prog=memtouch ws=1M" >/dev/null || fail "remote run on B failed"
	wait_for "$T/lab/a-images/m1.console" 'memtouch: tick=' 30
	grep -q '"name": *"m1"' "$T/lab/a-images/hv-agent.json" || fail "A's agent did not record m1"
	# A's agent migrates m1; --to auto asks B and C and takes C, the emptier one.
	on a -H 10.77.1.1 migrate m1 --to auto --hosts 10.77.1.2,10.77.1.3 >"$T/auto.out" 2>&1 ||
		{ cat "$T/auto.out"; fail "migrate --to auto failed"; }
	cat "$T/auto.out"
	grep -q '^  10.77.1.3 .*chosen' "$T/auto.out" || fail "--to auto did not choose C"
	grep -q '^  10.77.1.2 .*fits; less memory' "$T/auto.out" || fail "the table does not say why not B"
	grep -q '^migrated m1 to 10.77.1.3:' "$T/auto.out" || fail "no summary of the migration"
	# (the table and the summary; a warning is one line, like an error)
	grep -v '^hv: ' "$T/auto.out" | awk '{ if (length($0) > 80) exit 1 }' || fail "the output is wider than 80 columns"
	[ "$(runs_on m1)" = "c " ] || fail "m1 runs on '$(runs_on m1)', not on C"
	mig_check_memtouch_continues "$T/lab/a-images/m1.console" "$T/lab/c-images/m1.console"
	grep -q '"name": *"m1"' "$T/lab/c-images/hv-agent.json" || fail "C's agent did not record m1"
	grep -q '"name": *"m1"' "$T/lab/a-images/hv-agent.json" && fail "A's agent still records m1"
	# From C back to A, run on C itself: the destination is A's agent (a host, no port).
	cp "$T/lab/c-images/m1.console" "$T/m1-c.console"
	on c migrate m1 10.77.1.1 >"$T/back.out" 2>&1 || { cat "$T/back.out"; fail "migrate to an agent failed"; }
	[ "$(runs_on m1)" = "a " ] || fail "m1 runs on '$(runs_on m1)', not on A"
	mig_check_memtouch_continues "$T/m1-c.console" "$T/lab/a-images/m1.console"
	# A host that cannot take it is refused with the reason, and the VM stays.
	expect_error "no host of --hosts can take m1" on a migrate m1 --to auto --hosts 10.77.1.1,10.77.1.9:7460
	grep -q 'runs a VM named m1 already' "$T/out" || { cat "$T/out"; fail "the table does not say why not A"; }
	[ "$(runs_on m1)" = "a " ] || fail "m1 moved after a refusal"
}

# evac_guests: on A, memtouch (mt), blkcheck with its disk in A's directory (bk) and
# netecho on A's TAP (ne), each started through A's agent.
evac_guests() {
	truncate -s 4M "$T/lab/a-images/bk.img"
	on a -H 10.77.1.1 run --kernel guest.elf --name mt --mem 64M --console file:mt.console \
		--cmdline "prog=memtouch ws=4M" >/dev/null || fail "mt did not start"
	on a -H 10.77.1.1 run --kernel guest.elf --name bk --mem 64M --console file:bk.console --disk bk.img \
		--cmdline "prog=blkcheck passes=1000000 blocks=1024 qd=2 ws=2M" >/dev/null || fail "bk did not start"
	on a -H 10.77.1.1 run --kernel guest.elf --name ne --mem 64M --console file:ne.console \
		--net tap=tap0,mac=52:54:00:88:00:10 --cmdline "prog=netecho ip=10.88.0.10" >/dev/null ||
		fail "ne did not start"
	wait_for "$T/lab/a-images/mt.console" 'memtouch: tick=' 30
	wait_for "$T/lab/a-images/bk.console" '^blkcheck: ' 30
	wait_for "$T/lab/a-images/ne.console" READY 30
}

test_agent_evacuate_three_guests() {
	lab3_start
	evac_guests
	local gen
	gen=$(blk_mem_gen "$T/lab/a-images/bk.console")
	for v in mt bk ne; do cp "$T/lab/a-images/$v.console" "$T/$v-a.console"; done
	on a evacuate 10.77.1.1 --to 10.77.1.2,10.77.1.3 --parallel 2 --storage copy --downtime 300 >"$T/evac.out" 2>"$T/evac.err" ||
		{ cat "$T/evac.out" "$T/evac.err"; fail "evacuate failed"; }
	cat "$T/evac.out"
	grep -q '^evacuated 10.77.1.1: 3 of 3 VMs moved' "$T/evac.out" || fail "not every VM moved"
	awk '{ if (length($0) > 80) exit 1 }' "$T/evac.out" || fail "the summary is wider than 80 columns"
	for v in mt bk ne; do
		[ "$(wc -w <<<"$(runs_on $v)")" = 1 ] && [ "$(runs_on $v)" != "a " ] || fail "$v runs on '$(runs_on $v)'"
	done
	[ -z "$(lab3 a "$HVCTL_BIN" list --json | grep '"name"')" ] || fail "A still runs a VM"
	local h
	h=$(runs_on mt | tr -d ' ')
	mig_check_memtouch_continues "$T/mt-a.console" "$T/lab/$h-images/mt.console"
	h=$(runs_on bk | tr -d ' ')
	[ -f "$T/lab/$h-images/bk.img" ] || fail "bk's disk was not copied into the agent's directory on ${h^^}"
	blk_mem_went_on "$T/lab/$h-images/bk.console" "$gen"
	h=$(runs_on ne | tr -d ' ')
	lab3 client "$PWD/$BUILD/tools/labclient" 10.88.0.10 7 2 --rate 50 >"$T/client.out" 2>&1 ||
		{ cat "$T/client.out"; fail "netecho does not answer on ${h^^}"; }
	cat "$T/client.out"
	[ "$(lab3 where 52:54:00:88:00:10)" = "$h" ] || fail "the switch has ne's MAC on $(lab3 where 52:54:00:88:00:10), not $h"
	# The largest placed first, each on the host with the most to spare: B and C share them.
	grep -q '10.77.1.2' "$T/evac.out" && grep -q '10.77.1.3' "$T/evac.out" || fail "one host got every VM"
}

test_agent_killed_mid_evacuation() {
	lab3_start
	for v in k1 k2 k3; do
		on a -H 10.77.1.1 run --kernel guest.elf --name $v --mem 96M --console file:$v.console \
			--cmdline "prog=memtouch ws=8M" >/dev/null || fail "$v did not start"
	done
	wait_for "$T/lab/a-images/k3.console" 'memtouch: tick=' 30
	on a evacuate 10.77.1.1 --to 10.77.1.2,10.77.1.3 >"$T/evac.out" 2>"$T/evac.err" &
	local evac=$! agent
	# Once A's agent runs the first migration, it dies.
	wait_for "$T/lab/a-agent.log" 'agent: .*: migrate k' 60
	sleep 0.3
	agent=$(pgrep -f -- "serve --dir $T/lab/a-images") || fail "no agent on A"
	kill -9 $agent
	wait $evac && fail "evacuate reported success with its source agent killed"
	cat "$T/evac.out" "$T/evac.err"
	# (stderr: one line per VM, as the moves end)
	grep -q '^k. -> .*: \(moved\|stayed: .*agent was lost\)' "$T/evac.err" || fail "evacuate does not say where the first VM is"
	grep -q "^k. -> .*: stayed:.*is 'hvctl serve' running there" "$T/evac.err" || fail "evacuate does not say why the others stayed"
	# Every guest runs somewhere, never on two hosts.
	settle k1 k2 k3
	for v in k1 k2 k3; do echo "$v on $(runs_on $v)"; done
	# A restarted agent knows the VMs it started that are still here.
	lab3 agents >/dev/null || fail "A's agent did not restart"
	local left
	left=$(for v in k1 k2 k3; do [ "$(runs_on $v)" = "a " ] && echo $v; done)
	[ -n "$left" ] || fail "every VM left A: the agent was killed too late to test this"
	for v in $left; do
		grep -q "agent: recorded: $v (run)" "$T/lab/a-agent.log" || fail "the restarted agent does not know $v"
	done
	on a -H 10.77.1.1 list >"$T/list.out" || fail "list through the restarted agent failed"
	for v in $left; do grep -q "^$v " "$T/list.out" || fail "$v is not listed by A's agent"; done
	# And the evacuation can be finished.
	on a evacuate 10.77.1.1 --to 10.77.1.2,10.77.1.3 >"$T/evac2.out" 2>&1 || { cat "$T/evac2.out"; fail "the second evacuation failed"; }
	settle k1 k2 k3
	for v in k1 k2 k3; do [ "$(runs_on $v)" != "a " ] || fail "$v is still on A"; done
}

# Ctrl-C during an evacuation: the move in flight ends (the guest on one host), no new move
# starts, and the summary says which guest went and which did not.
test_agent_evacuate_interrupted() {
	lab3_start
	for v in i1 i2; do
		on a -H 10.77.1.1 run --kernel guest.elf --name $v --mem 64M --console file:$v.console \
			--cmdline "prog=memtouch ws=4M" >/dev/null || fail "$v did not start"
	done
	wait_for "$T/lab/a-images/i2.console" 'memtouch: tick=' 30
	lab3 a "$HVCTL" evacuate 10.77.1.1 --to 10.77.1.2 --psk "$KEY" >"$T/evac.out" 2>"$T/evac.err" &
	local evac=$!
	wait_for "$T/evac.err" ' -> 10.77.1.2: starting' 60
	pkill -INT -f -- "evacuate 10.77.1.1 --to 10.77.1.2" || fail "no evacuate to interrupt"
	wait $evac && fail "an interrupted evacuation reported success"
	cat "$T/evac.out" "$T/evac.err"
	grep -q 'no new move starts' "$T/evac.err" || fail "evacuate did not say what Ctrl-C does"
	grep -q '^evacuated 10.77.1.1: 1 of 2 VMs moved' "$T/evac.out" || fail "the summary does not count one move"
	grep -q 'stayed: not started' "$T/evac.out" || fail "the summary does not name the move that did not start"
	settle i1 i2
	[ "$(runs_on i1) $(runs_on i2)" = "b  a " ] || [ "$(runs_on i1) $(runs_on i2)" = "a  b " ] ||
		fail "i1 runs on '$(runs_on i1)', i2 on '$(runs_on i2)'"
}
