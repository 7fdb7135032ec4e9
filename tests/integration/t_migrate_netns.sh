# Live migration between two "lab machines": two network namespaces that the test creates,
# joined by a veth pair (10.77.0.1 in A, 10.77.0.2 in B; nothing in the host's own namespace,
# so no traffic can leave this machine). Each machine has its own run directory, so the VM
# keeps its name on the destination. The runner executes $T/cleanup afterwards; the tests
# also trap EXIT.

# lab_up: creates the namespaces and the link; sets LAB_A and LAB_B.
lab_up() {
	LAB_A=hvA-$$
	LAB_B=hvB-$$
	cat >"$T/cleanup" <<EOF
#!/bin/bash
# Kill what runs in the two namespaces (the VMs and receivers), then delete them (and the veth).
for ns in $LAB_A $LAB_B; do
	for pid in \$(ip netns pids \$ns 2>/dev/null); do kill -9 \$pid 2>/dev/null; done
done
for ns in $LAB_A $LAB_B; do
	for ((i = 0; i < 40; i++)); do [ -z "\$(ip netns pids \$ns 2>/dev/null)" ] && break; sleep 0.05; done
	ip netns del \$ns 2>/dev/null
done
exit 0
EOF
	chmod +x "$T/cleanup"
	trap '"$T/cleanup"' EXIT
	ip netns add "$LAB_A" || fail "cannot create network namespace $LAB_A"
	ip netns add "$LAB_B" || fail "cannot create network namespace $LAB_B"
	ip -n "$LAB_A" link add hv0 type veth peer name hv0 netns "$LAB_B" || fail "cannot create the veth pair"
	ip -n "$LAB_A" addr add 10.77.0.1/24 dev hv0
	ip -n "$LAB_B" addr add 10.77.0.2/24 dev hv0
	for ns in "$LAB_A" "$LAB_B"; do
		ip -n "$ns" link set lo up
		ip -n "$ns" link set hv0 up
	done
	mkdir -p "$T/runA" "$T/runB"
}

# on_a CMD... / on_b CMD...: run a command on lab machine A / B (its namespace, its run dir).
on_a() { ip netns exec "$LAB_A" env HV_RUN_DIR="$T/runA" "$@"; }
on_b() { ip netns exec "$LAB_B" env HV_RUN_DIR="$T/runB" "$@"; }

# lab_rx_bytes NS: bytes received on NS's end of the link.
lab_rx_bytes() { ip netns exec "$1" cat /sys/class/net/hv0/statistics/rx_bytes; }

# lab_key: the two hosts' pre-shared key (one file: they share this filesystem); its path.
lab_key() {
	[ -f "$T/lab.key" ] || "$HVCTL" keygen "$T/lab.key" 2>/dev/null || fail "hvctl keygen failed"
	echo "$T/lab.key"
}

# lab_migrate_a_to_b NAME PORT SRC_CONSOLE DST_CONSOLE [MIGRATE OPTIONS...]: NAME from A to B,
# authenticated with the lab's key, as a lab would across a real network.
lab_migrate_a_to_b() {
	local name=$1 port=$2 dst_console=$4 pid rx0 rx1 w key
	shift 4
	key=$(lab_key)
	pid=$(on_a "$HVCTL" status "$name" --json | grep -Eo '"pid": *[0-9]+' | grep -Eo '[0-9]+$')
	on_b "$HVCTL" receive --listen 10.77.0.2:$port --console "file:$dst_console" --timeout 60 --detach \
		--psk "$key" >/dev/null || fail "hvctl receive in $LAB_B failed"
	rx0=$(lab_rx_bytes "$LAB_B")
	on_a "$HVCTL" migrate "$name" 10.77.0.2:$port --psk "$key" "$@" >"$T/mig.out" 2>"$T/mig.err" ||
		{ cat "$T/mig.out" "$T/mig.err" >&2; fail "migration from $LAB_A to $LAB_B failed"; }
	cat "$T/mig.out"
	grep -q "^migrated $name to 10.77.0.2:$port" "$T/mig.out" || fail "no summary"
	grep -q "^  security *TLSv1.3, .*, pre-shared key" "$T/mig.out" || fail "the migration did not run over TLS"
	rx1=$(lab_rx_bytes "$LAB_B")
	w=$(mig_summary_wire_bytes "$T/mig.out")
	echo "link: $((rx1 - rx0)) bytes into $LAB_B for $w on the wire"
	# Slack for the rounding of the summary's "on the wire" (one decimal of KiB/MiB/GiB).
	[ $((rx1 - rx0)) -ge $((w - w / 10)) ] || fail "the stream did not cross the veth ($((rx1 - rx0)) bytes for $w)"
	mig_wait_pid_gone "$pid" 5
	if on_a "$HVCTL" status "$name" >/dev/null 2>&1; then fail "'$name' still runs on $LAB_A"; fi
	on_b "$HVCTL" status "$name" --json | grep -q '"state": *"running"' || fail "'$name' does not run on $LAB_B"
}

test_migrate_netns_two_machines() {
	local a rx0 rx1
	lab_up
	on_a "$HVCTL" run --detach --name lab --console "file:$T/lab-a.console" --kernel "$GUEST" --mem 512M \
		--cmdline "prog=memtouch ws=64M rate=200" >/dev/null || fail "hvctl run in $LAB_A failed"
	mig_wait_field_above "$T/lab-a.console" 'memtouch: tick=' gen 1 15
	# B has nothing listening yet: refused, and A keeps the VM.
	expect_error "connection refused by 10.77.0.2:47201" on_a "$HVCTL" migrate lab 10.77.0.2:47201
	# A receiver other hosts can reach is refused without a key, unless the operator insists.
	expect_error "10.77.0.2:47201 is reachable from other hosts: give --psk FILE" \
		on_b "$HVCTL" receive --listen 10.77.0.2:47201 --timeout 5
	on_a "$HVCTL" status lab >/dev/null || fail "the refused migration hurt the VM"
	# Same name on both machines (separate run directories): no --name needed.
	lab_migrate_a_to_b lab 47201 "$T/lab-a.console" "$T/lab-b.console"
	mig_check_memtouch_continues "$T/lab-a.console" "$T/lab-b.console"
	# And back from B to A.
	on_a "$HVCTL" receive --listen 10.77.0.1:47202 --console "file:$T/lab-a2.console" --timeout 60 --detach \
		--insecure >/dev/null 2>"$T/insecure.err" || fail "hvctl receive in $LAB_A failed"
	grep -q 'without authentication (--insecure)' "$T/insecure.err" || fail "no warning for --insecure"
	rx0=$(lab_rx_bytes "$LAB_A")
	on_b "$HVCTL" migrate lab 10.77.0.1:47202 >"$T/mig.out" 2>"$T/mig.err" ||
		{ cat "$T/mig.err" >&2; fail "migration from $LAB_B back to $LAB_A failed"; }
	rx1=$(lab_rx_bytes "$LAB_A")
	[ $((rx1 - rx0)) -gt $((32 << 20)) ] || fail "only $((rx1 - rx0)) bytes crossed the link back to $LAB_A"
	wait_for "$T/lab-a2.console" '^memtouch: tick=' 10
	a=$(mig_field "$T/lab-b.console" 'memtouch: tick=' pages)
	[ "$(mig_first_field "$T/lab-a2.console" 'memtouch: tick=' pages)" -gt "$a" ] || fail "memtouch restarted on the way back"
	mig_wait_field_above "$T/lab-a2.console" 'memtouch: tick=' gen "$(mig_first_field "$T/lab-a2.console" 'memtouch: tick=' gen)" 10
	mig_no_corrupt "$T/lab-a.console" "$T/lab-b.console" "$T/lab-a2.console"
	on_a "$HVCTL" stop lab || fail "stop on $LAB_A failed"
}

# A slow link: 80 Mbit/s (10 MB/s) from A to B.
lab_slow_link() {
	ip netns exec "$LAB_A" tc qdisc add dev hv0 root tbf rate 80mbit burst 64kb latency 50ms ||
		fail "cannot shape the link with tbf"
}

test_migrate_netns_slow_link_compress_auto() {
	local z r
	lab_up
	lab_slow_link
	on_a "$HVCTL" run --detach --name slow --console "file:$T/slow-a.console" --kernel "$GUEST" --mem 512M \
		--cmdline "prog=memtouch ws=32M rate=5 fill=stamp" >/dev/null || fail "hvctl run in $LAB_A failed"
	mig_wait_field_above "$T/slow-a.console" 'memtouch: tick=' pages 2560 10 # 10 MiB of pages
	lab_migrate_a_to_b slow 47211 "$T/slow-a.console" "$T/slow-b.console" --compress auto --max-rounds 15
	z=$(mig_summary_pages "$T/mig.out" compressed)
	r=$(mig_summary_pages "$T/mig.out" raw)
	[ "$z" -gt 0 ] || fail "--compress auto never chose zlib on a 10 MB/s link (raw $r, compressed $z pages)"
	wait_for "$T/slow-b.console" '^memtouch: tick=' 10
	a=$(mig_field "$T/slow-a.console" 'memtouch: tick=' pages)
	[ "$(mig_first_field "$T/slow-b.console" 'memtouch: tick=' pages)" -gt "$a" ] || fail "memtouch restarted"
	mig_wait_field_above "$T/slow-b.console" 'memtouch: tick=' tick \
		$(($(mig_first_field "$T/slow-b.console" 'memtouch: tick=' tick) + 100)) 5
	mig_no_corrupt "$T/slow-a.console" "$T/slow-b.console"
	on_b "$HVCTL" stop slow || fail "stop on $LAB_B failed"
}

# On the 10 MB/s link, with pages that zlib shrinks ~30x, --compress auto keeps compressing.
# (It once compressed only its 8-batch probe and sent the rest raw: it took sends that only
# filled the socket buffer for the link's rate; auto_compress.c now trusts only sends that
# waited, and a probe ends early on "zlib slower than the link" only once the link was
# measured 16 times.)
test_migrate_netns_slow_link_auto_keeps_zlib() {
	local z r w
	lab_up
	lab_slow_link
	on_a "$HVCTL" run --detach --name zw --console "file:$T/zw-a.console" --kernel "$GUEST" --mem 512M \
		--cmdline "prog=memtouch ws=16M rate=5 fill=stamp" >/dev/null || fail "hvctl run in $LAB_A failed"
	mig_wait_field_above "$T/zw-a.console" 'memtouch: tick=' gen 1 10 # all 16M written once
	lab_migrate_a_to_b zw 47221 "$T/zw-a.console" "$T/zw-b.console" --compress auto --max-rounds 8
	z=$(mig_summary_pages "$T/mig.out" compressed)
	r=$(mig_summary_pages "$T/mig.out" raw)
	w=$(mig_summary_wire_bytes "$T/mig.out")
	wait_for "$T/zw-b.console" '^memtouch: tick=' 10
	mig_no_corrupt "$T/zw-a.console" "$T/zw-b.console"
	[ "$z" -gt "$r" ] && [ "$w" -lt $(((z + r) * 4096 / 2)) ] ||
		fail "--compress auto on a 10 MB/s link sent $r pages raw and only $z compressed ($w bytes on the wire for $(((z + r) * 4096)) bytes of ~30x-compressible pages)"
	on_b "$HVCTL" stop zw || fail "stop on $LAB_B failed"
}

# On the slow link the switchover stays near the downtime limit. (It once took 5x the limit
# although pre-copy predicted ~2 ms: the last records queued behind what earlier rounds left
# in the socket send buffer and the link's queue. The source now drains the socket before
# it decides and counts 1.5 round trips in the estimate.)
test_migrate_netns_slow_link_downtime_limit() {
	local d gap
	lab_up
	lab_slow_link
	on_a "$HVCTL" run --detach --name dl --console "file:$T/dl-a.console" --kernel "$GUEST" --mem 512M \
		--cmdline "prog=memtouch ws=32M rate=5" >/dev/null || fail "hvctl run in $LAB_A failed"
	mig_wait_field_above "$T/dl-a.console" 'memtouch: tick=' pages 2560 10
	lab_migrate_a_to_b dl 47231 "$T/dl-a.console" "$T/dl-b.console" --compress none --downtime 30 \
		--max-rounds 15
	wait_for "$T/dl-b.console" '^memtouch: tick=' 10
	mig_no_corrupt "$T/dl-a.console" "$T/dl-b.console"
	d=$(awk '/^ *downtime/ { printf "%d", $2 }' "$T/mig.out")
	gap=$(mig_first_field "$T/dl-b.console" 'memtouch: tick=' maxgap_us)
	echo "downtime: $d ms reported, $((gap / 1000)) ms seen by the guest"
	[ "$d" -le 100 ] && [ "$gap" -le 100000 ] ||
		fail "--downtime 30 on a 10 MB/s link: the switchover took $d ms (the guest stood still $((gap / 1000)) ms)"
	on_b "$HVCTL" stop dl || fail "stop on $LAB_B failed"
}

# Storage between the two machines, blkcheck writing and verifying its disk and 4 MiB of
# memory throughout: first shared (both see one directory; B opens the source's path,
# --shared-storage), then back to A with the disk copied into A's own directory (--storage
# copy). The guest finishes every pass on the copy, checked from the host.
test_migrate_netns_shared_then_copied_storage() {
	local key
	lab_up
	key=$(lab_key)
	mkdir -p "$T/shared" "$T/a-local"
	truncate -s 64M "$T/shared/disk.img"
	on_a "$HVCTL" run --detach --name st --console "file:$T/st-a.console" --kernel "$GUEST" --mem 256M \
		--disk "$T/shared/disk.img" --cmdline "prog=blkcheck passes=300 blocks=4096 ws=4M" >/dev/null || fail "hvctl run in $LAB_A failed"
	wait_for "$T/st-a.console" '^blkcheck: pass=1 ' 30
	on_b "$HVCTL" receive --listen 10.77.0.2:47211 --console "file:$T/st-b.console" --timeout 60 --detach \
		--psk "$key" --shared-storage >/dev/null || fail "hvctl receive in $LAB_B failed"
	on_a "$HVCTL" migrate st 10.77.0.2:47211 --psk "$key" >"$T/mig.out" 2>"$T/mig.err" ||
		{ cat "$T/mig.out" "$T/mig.err" >&2; fail "the shared-storage migration failed"; }
	blk_mem_went_on "$T/st-b.console" "$(blk_mem_gen "$T/st-a.console")"
	on_a "$HVCTL" receive --listen 10.77.0.1:47212 --console "file:$T/st-a2.console" --timeout 60 --detach \
		--psk "$key" --disk-dir "$T/a-local" >/dev/null || fail "hvctl receive in $LAB_A failed"
	on_b "$HVCTL" migrate st 10.77.0.1:47212 --psk "$key" --storage copy --max-rounds 3 >"$T/mig.out" 2>"$T/mig.err" ||
		{ cat "$T/mig.out" "$T/mig.err" >&2; fail "the migration with the disk copied failed"; }
	grep -q '^  disks copied ' "$T/mig.out" || { cat "$T/mig.out"; fail "the summary does not name the copy"; }
	blk_mem_went_on "$T/st-a2.console" "$(blk_mem_gen "$T/st-b.console")"
	HV_RUN_DIR=$T/runA blk_finished st "$T/st-a2.console" "$T/a-local/disk.img" 300 "$T/st-a.console" 4096
	mig_no_corrupt "$T/st-b.console"
}
