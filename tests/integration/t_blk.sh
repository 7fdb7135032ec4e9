# virtio-blk from the guest side: the guest's own driver (guests/kernel/virtio_blk.c)
# writes, reads and verifies a raw image through hv's virtio-blk, and the host checks the
# image afterwards (tests/tools/blkverify.c recomputes every block, guests/README.md
# "prog=blkcheck"). Also: a read-only disk, a benchmark run, and a hostile driver.

BLKVERIFY=${BLKVERIFY:-$PWD/$BUILD/tools/blkverify}

# run_guest RC_EXPECTED CONSOLE ARGS...: hvctl run in the foreground (bounded), the exit
# status must be RC_EXPECTED.
run_guest() {
	local want=$1 console=$2 rc=0
	shift 2
	timeout 60 "$HVCTL" run --kernel "$GUEST" --console "file:$console" "$@" 2>"$T/stderr" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		tail -n 20 "$console" >&2
		cat "$T/stderr" >&2
		fail "guest exited with status $rc, expected $want"
	fi
}

done_gen() {
	sed -n 's/^blkcheck: done gen=\([0-9]*\) .*/\1/p' "$1"
}

test_blkcheck_host_verifies_every_block() {
	truncate -s 64M "$T/disk.img"
	run_guest 0 "$T/c" --mem 256M --disk "$T/disk.img" --cmdline "prog=blkcheck passes=2"
	grep -q '^READY' "$T/c" || fail "no READY line"
	! grep -q CORRUPT "$T/c" || fail "the guest found corruption"
	grep -q '^blkcheck: pass=2 blocks=16384 written=32768 verified=32768 ' "$T/c" ||
		{ cat "$T/c"; fail "no complete second pass over 16384 blocks"; }
	gen=$(done_gen "$T/c")
	[ "$gen" = 2 ] || fail "final generation '$gen', expected 2"
	"$BLKVERIFY" "$T/disk.img" 16384 "$gen" >"$T/v" || { cat "$T/v"; fail "host-side check failed"; }
	grep -q '^blkverify: blocks=16384 ok=16384 bad=0$' "$T/v" || { cat "$T/v"; fail "not every block verified"; }
}

test_blkcheck_partial_disk_odd_requests() {
	# Requests of 7 blocks, 3 in flight, over the first 1000 blocks: the rest of the image
	# must stay untouched (all zero), and a stale generation must not verify.
	truncate -s 64M "$T/disk.img"
	run_guest 0 "$T/c" --disk "$T/disk.img" --cmdline "prog=blkcheck blocks=1000 passes=3 chunk=7 qd=3"
	[ "$(done_gen "$T/c")" = 3 ] || { cat "$T/c"; fail "no 'done gen=3'"; }
	"$BLKVERIFY" "$T/disk.img" 1000 3 --zero-rest >"$T/v" || { cat "$T/v"; fail "host-side check failed"; }
	grep -q 'ok=1000 bad=0 rest=zero' "$T/v" || { cat "$T/v"; fail "unexpected check result"; }
	"$BLKVERIFY" "$T/disk.img" 1000 2 >"$T/v2" && fail "generation 2 verified although 3 was written"
	return 0
}

test_blkcheck_detects_corruption() {
	truncate -s 16M "$T/disk.img"
	run_guest 0 "$T/c" --disk "$T/disk.img" --cmdline "prog=blkcheck passes=1"
	# Flip one byte inside block 1234 (word 100), behind the guest's back.
	printf '\xff' | dd of="$T/disk.img" bs=1 seek=$((1234 * 4096 + 800)) conv=notrunc status=none
	run_guest 3 "$T/c2" --disk "$T/disk.img" --cmdline "prog=blkcheck verify=1"
	grep -q '^CORRUPT block=1234 gen=1 word=100 ' "$T/c2" || { tail "$T/c2"; fail "no CORRUPT line for block 1234"; }
	"$BLKVERIFY" "$T/disk.img" 4096 1 >"$T/v" && fail "the host checker missed the flipped byte"
	grep -q '^BAD block=1234 word=100 ' "$T/v" || { cat "$T/v"; fail "host checker names the wrong block"; }
}

test_blk_read_only_disk_refuses_writes() {
	truncate -s 64M "$T/disk.img"
	run_guest 0 "$T/c" --disk "$T/disk.img" --cmdline "prog=blkcheck passes=1"
	before=$(sha256sum <"$T/disk.img")
	# blkcheck sees VIRTIO_BLK_F_RO, sends a write anyway: IOERR, block unchanged, exit 7.
	run_guest 7 "$T/ro" --disk "$T/disk.img,ro" --cmdline "prog=blkcheck"
	grep -q 'disk is read-only (VIRTIO_BLK_F_RO)' "$T/ro" || { cat "$T/ro"; fail "the driver did not see the RO feature"; }
	grep -q '^blkcheck: write refused status=IOERR$' "$T/ro" || { cat "$T/ro"; fail "the write was not refused with IOERR"; }
	grep -q '^blkcheck: block 0 unchanged$' "$T/ro" || fail "block 0 changed"
	# Reading still works on the read-only disk.
	run_guest 0 "$T/rv" --disk "$T/disk.img,ro" --cmdline "prog=blkcheck verify=1"
	grep -q '^blkcheck: done gen=1 blocks=16384 ' "$T/rv" || { cat "$T/rv"; fail "read-only verification failed"; }
	after=$(sha256sum <"$T/disk.img")
	[ "$before" = "$after" ] || fail "the read-only image changed"
}

test_blkbench_reports_rates() {
	truncate -s 64M "$T/disk.img"
	run_guest 0 "$T/c" --disk "$T/disk.img" --cmdline "prog=blkbench span=32M qd=16 secs=1"
	line=$(grep '^blkbench: seq_write_mbs=' "$T/c") || { cat "$T/c"; fail "no result line"; }
	echo "$line"
	[[ "$line" =~ ^blkbench:\ seq_write_mbs=([0-9]+)\ seq_read_mbs=([0-9]+)\ rand_read_iops=([0-9]+)$ ]] ||
		fail "malformed result line: $line"
	[ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[2]}" -gt 0 ] && [ "${BASH_REMATCH[3]}" -gt 100 ] ||
		fail "implausible rates: $line"
}

test_virtq_hostile_guest() {
	# Malformed rings, descriptors and requests on disk 0; disk 1 and the NIC (a TAP in a
	# private network namespace) must keep working, and the VMM must survive all of it.
	truncate -s 1M "$T/d0.img"
	truncate -s 1M "$T/d1.img"
	rc=0
	timeout 60 unshare -n "$HVCTL" run --kernel "$GUEST" --console "file:$T/c" \
		--disk "$T/d0.img" --disk "$T/d1.img" --net tap=hvt0 \
		--cmdline "prog=virtq_hostile" 2>"$T/stderr" || rc=$?
	grep '^virtq_hostile: case=' "$T/c" | grep -v ' ok$' >&2 && fail "some cases failed"
	[ "$rc" -eq 0 ] || { tail -n 30 "$T/c"; fail "virtq_hostile exited $rc"; }
	[[ "$(grep '^virtq_hostile: cases=' "$T/c")" =~ cases=([0-9]+)\ passed=([0-9]+) ]] || fail "no summary"
	[ "${BASH_REMATCH[1]}" -ge 20 ] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] ||
		fail "only ${BASH_REMATCH[2]} of ${BASH_REMATCH[1]} cases passed"
	grep -q 'case=net_tx_shorter_than_header .* ok$' "$T/c" || fail "the NIC case did not run"
	# The VMM said why, once per broken device, and did not crash.
	grep -q 'needs a reset by its driver' "$T/stderr" || { cat "$T/stderr"; fail "no warning from the VMM"; }
	! grep -Eqi 'assert|segfault|sanitizer|emulation failure' "$T/stderr" || { cat "$T/stderr"; fail "VMM trouble"; }
}

test_blkcheck_guest_placed_bars() {
	# pci=reassign: the guest places the BARs itself (as for a VMM that leaves them
	# unassigned), so hv must move BAR0 and its notify ioeventfds to where the guest says.
	truncate -s 16M "$T/disk.img"
	run_guest 0 "$T/c" --disk "$T/disk.img" --cmdline "prog=blkcheck passes=2 pci=reassign"
	grep -q '^blkcheck: disk=00:01.0 bar=0xe0010000 ' "$T/c" || { head -n 5 "$T/c"; fail "BAR0 not at the guest's address"; }
	"$BLKVERIFY" "$T/disk.img" 4096 2 >"$T/v" || { cat "$T/v"; fail "host-side check failed"; }
}
