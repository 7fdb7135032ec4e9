# Guest RAM backings (--mem-backend anon|memfd|hugetlb) under live migration: the default
# anonymous memory really is on transparent huge pages, and the dirty log stays exact on it
# (memtouch at several rates, the smp guest, virtio-blk DMA); every backing migrates, also to
# a destination that chose another one; hugetlb refuses an empty pool up front; an idle 1 GiB
# guest still moves with next to nothing on the wire. Ports 479xx.

HUGEPAGES=/sys/kernel/mm/hugepages/hugepages-2048kB

mem_thp_enabled() {
	! grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
}

# mem_anon_huge_kib PID: KiB of PID's anonymous memory on transparent huge pages.
mem_anon_huge_kib() {
	awk '/^AnonHugePages:/ { print $2 }' "/proc/$1/smaps_rollup"
}

# mem_check_thp NAME: VM NAME's RAM is (partly) on 2 MiB pages, if this host has THP at all.
mem_check_thp() {
	local pid kib
	mem_thp_enabled || return 0
	pid=$(mig_vm_pid "$1")
	kib=$(mem_anon_huge_kib "$pid")
	echo "$1: AnonHugePages ${kib} kB"
	[ "${kib:-0}" -gt 0 ] || fail "VM $1 (pid $pid) has no transparent huge pages; its RAM should be anonymous memory with MADV_HUGEPAGE"
}

# mem_memtouch_hop SRC DST PORT [RECEIVE ARGS...]: migrates the running memtouch guest SRC
# to a new VM DST and checks that memtouch goes on there with every page intact.
mem_memtouch_hop() {
	local src=$1 dst=$2 port pid
	port=$(mig_unused_port "$3")
	shift 3
	pid=$(mig_vm_pid "$src")
	mig_receiver "$dst" 127.0.0.1:$port "$T/$dst.console" "$@"
	mig_migrate "$src" 127.0.0.1:$port
	cat "$T/mig.out"
	mig_wait_pid_gone "$pid" 5
	mig_check_memtouch_continues "$T/$src.console" "$T/$dst.console"
}

mem_stop() {
	local pid
	pid=$(mig_vm_pid "$1")
	"$HVCTL" stop "$1" || fail "stop of $1 failed"
	mig_wait_pid_gone "$pid" 5
}

# Writes at 50 MiB/s, 400 MiB/s and flat out: each rate a different mix of pages dirtied
# before, during and after each dirty-log fetch, all inside 2 MiB host pages.
test_migrate_mem_anon_memtouch_rates() {
	local rate port=47901
	for rate in 50 400 0; do
		start_vm "r$rate-src" --kernel "$GUEST" --mem 512M --cmdline "prog=memtouch ws=64M rate=$rate"
		mig_wait_field_above "$T/r$rate-src.console" 'memtouch: tick=' gen 1 20
		mem_check_thp "r$rate-src"
		mem_memtouch_hop "r$rate-src" "r$rate-dst" $port
		mem_check_thp "r$rate-dst"
		mem_stop "r$rate-dst"
		port=$((port + 1))
	done
}

# Two vCPUs writing their own working sets at once, on huge pages.
test_migrate_mem_anon_smp() {
	local port hb='smp: tick=' d n i t ok
	port=$(mig_unused_port 47911)
	start_vm s-src --kernel "$GUEST" --mem 512M --cpus 2 --cmdline "prog=smp ws=32M"
	wait_for "$T/s-src.console" 'READY cpus=2' 15
	wait_for "$T/s-src.console" "^$hb" 10
	mem_check_thp s-src
	mig_receiver s-dst 127.0.0.1:$port "$T/s-dst.console"
	mig_migrate s-src 127.0.0.1:$port
	cat "$T/mig.out"
	wait_for "$T/s-dst.console" "^$hb" 10
	IFS=, read -r -a d <<<"$(mig_first_field "$T/s-dst.console" "$hb" pages)"
	# Each CPU checks every one of its pages twice over (32M = 8192 pages) on the destination.
	for ((t = 0; t < 300; t++)); do
		IFS=, read -r -a n <<<"$(mig_field "$T/s-dst.console" "$hb" pages)"
		ok=1
		for i in 0 1; do [ "${n[i]:-0}" -ge $((d[i] + 16384)) ] || ok=0; done
		[ $ok = 1 ] && break
		mig_no_corrupt "$T/s-dst.console"
		sleep 0.05
	done
	[ $ok = 1 ] || fail "the smp guest did not go on on the destination (${d[*]} -> ${n[*]})"
	mig_no_corrupt "$T/s-src.console" "$T/s-dst.console"
	mem_stop s-dst
}

# virtio-blk writes guest RAM from the VMM (reads from the disk): those pages must reach the
# destination too, now inside huge pages.
test_migrate_mem_anon_blkcheck() {
	local port gen
	port=$(mig_unused_port 47921)
	truncate -s 32M "$T/disk.img"
	start_vm b-src --mem 256M --disk "$T/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=30"
	wait_for "$T/b-src.console" '^blkcheck: pass=1 ' 30
	mem_check_thp b-src
	mig_receiver b-dst 127.0.0.1:$port "$T/b-dst.console" --disk "$T/disk.img"
	mig_migrate b-src 127.0.0.1:$port
	wait_for "$T/b-dst.console" '^blkcheck: done gen=' 120
	mig_no_corrupt "$T/b-src.console" "$T/b-dst.console"
	gen=$(sed -n 's/^blkcheck: done gen=\([0-9]*\) .*/\1/p' "$T/b-dst.console")
	[ "$gen" = 30 ] || fail "final generation '$gen', expected 30"
}

# memfd -> anon -> memfd: each side backs RAM as it was told; the stream does not decide.
test_migrate_mem_memfd_and_back() {
	local pid
	start_vm m1 --kernel "$GUEST" --mem 512M --mem-backend memfd --cmdline "prog=memtouch ws=64M rate=200"
	pid=$(mig_vm_pid m1)
	grep -q 'memfd:hv-guest-ram' "/proc/$pid/maps" || fail "m1's RAM is not a memfd"
	mig_wait_field_above "$T/m1.console" 'memtouch: tick=' gen 1 20
	mem_memtouch_hop m1 m2 47931
	mem_check_thp m2
	mem_memtouch_hop m2 m3 47932 --mem-backend memfd
	pid=$(mig_vm_pid m3)
	grep -q 'memfd:hv-guest-ram' "/proc/$pid/maps" || fail "m3's RAM is not a memfd"
	mem_stop m3
}

# mem_hugetlb_pool PAGES: at least PAGES free 2 MiB huge pages, the old vm.nr_hugepages put
# back when the test ends (pass or fail: run.sh runs $T/cleanup).
mem_hugetlb_pool() {
	local want=$1 old free
	old=$(cat /proc/sys/vm/nr_hugepages)
	printf '#!/bin/sh\necho %s > /proc/sys/vm/nr_hugepages\n' "$old" >"$T/cleanup"
	chmod +x "$T/cleanup"
	echo $((old + want)) >/proc/sys/vm/nr_hugepages 2>/dev/null || fail "cannot set vm.nr_hugepages (not root?)"
	free=$(($(cat $HUGEPAGES/free_hugepages) - $(cat $HUGEPAGES/resv_hugepages)))
	[ "$free" -ge "$want" ] || fail "asked for $want more huge pages, the kernel found $free free"
}

test_migrate_mem_hugetlb() {
	local pid resv
	mem_hugetlb_pool 256 # two 256 MiB guests
	start_vm h1 --kernel "$GUEST" --mem 256M --mem-backend hugetlb --cmdline "prog=memtouch ws=64M rate=200"
	resv=$(($(cat /proc/sys/vm/nr_hugepages) - $(cat $HUGEPAGES/free_hugepages) + $(cat $HUGEPAGES/resv_hugepages)))
	[ "$resv" -ge 128 ] || fail "h1 holds $resv huge pages, expected its 128 (256 MiB) in use or reserved"
	mig_wait_field_above "$T/h1.console" 'memtouch: tick=' gen 1 20
	mem_memtouch_hop h1 h2 47941 --mem-backend hugetlb
	pid=$(mig_vm_pid h2)
	grep -q 'hv-guest-ram' "/proc/$pid/maps" || fail "h2 has no guest RAM mapping"
	mem_stop h2
}

test_migrate_mem_hugetlb_refusals() {
	local old rc
	old=$(cat /proc/sys/vm/nr_hugepages)
	printf '#!/bin/sh\necho %s > /proc/sys/vm/nr_hugepages\n' "$old" >"$T/cleanup"
	chmod +x "$T/cleanup"
	echo 0 >/proc/sys/vm/nr_hugepages
	expect_error 'needs 128 huge pages of 2 MiB .*sysctl vm.nr_hugepages=128' \
		"$HVCTL" run --kernel "$GUEST" --mem 256M --mem-backend hugetlb --console none
	expect_error 'not a multiple of the 2 MiB huge page size' \
		"$HVCTL" run --kernel "$GUEST" --mem 3M --mem-backend hugetlb --console none
	expect_error 'hugetlb:/proc: not a hugetlbfs mount' \
		"$HVCTL" run --kernel "$GUEST" --mem 256M --mem-backend hugetlb:/proc --console none
	expect_error "--mem-backend 'hugepage': use anon, memfd or hugetlb\[:PATH\]" \
		"$HVCTL" run --kernel "$GUEST" --mem-backend hugepage
	rc=0
	"$HVCTL" receive --listen 127.0.0.1:47951 --mem-backend hugepage 2>"$T/err" || rc=$?
	[ $rc = 2 ] || fail "hvctl receive with a bad --mem-backend exited $rc, expected 2"
	grep -q "'hugepage': use anon, memfd or hugetlb" "$T/err" || { cat "$T/err"; fail "wrong message"; }
	# A destination whose pool is empty refuses the migration; the source keeps running.
	start_vm e-src --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=16M rate=50"
	wait_for "$T/e-src.console" '^memtouch: tick=' 10
	mig_receiver_bg e-dst 47952 --mem-backend hugetlb
	"$HVCTL" migrate e-src 127.0.0.1:47952 >"$T/mig.out" 2>"$T/mig.err" && fail "migration to an empty hugetlb pool succeeded"
	# The source hears a generic refusal; the destination's log says how to reserve pages.
	grep -q 'destination refused' "$T/mig.err" || { cat "$T/mig.err"; fail "no refusal on the source"; }
	wait "$RPID" 2>/dev/null || true
	grep -q 'vm.nr_hugepages' "$T/e-dst.rerr" || { cat "$T/e-dst.rerr"; fail "the destination's refusal does not say how to reserve huge pages"; }
	"$HVCTL" status e-src --json | grep -q '"state": *"running"' || fail "the source stopped running"
	mem_stop e-src
}

# An idle 1 GiB guest: only what it touched crosses (huge pages make whole 2 MiB runs
# populated, but their zero pages are not sent).
test_migrate_mem_idle_1g() {
	local port bytes raw
	port=$(mig_unused_port 47961)
	start_vm i-src --kernel "$GUEST" --mem 1G --cmdline "prog=hello secs=60"
	wait_for "$T/i-src.console" '^hello: tick=' 5
	mig_receiver i-dst 127.0.0.1:$port "$T/i-dst.console"
	mig_migrate i-src 127.0.0.1:$port
	cat "$T/mig.out"
	bytes=$(mig_summary_wire_bytes "$T/mig.out")
	raw=$(mig_summary_pages "$T/mig.out" raw)
	[ "$bytes" -lt $((4 * 1024 * 1024)) ] || fail "an idle 1 GiB guest took $bytes bytes on the wire"
	[ "$raw" -lt 1024 ] || fail "an idle 1 GiB guest sent $raw raw pages"
	wait_for "$T/i-dst.console" '^hello: tick=' 10
	mem_stop i-dst
}
