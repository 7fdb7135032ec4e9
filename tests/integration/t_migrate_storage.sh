# Shared-nothing migration (hvctl migrate --storage copy): the disk travels with the guest
# into an image the destination creates where its policy says (--disk-dir, --disk), sparse,
# byte for byte what the source's image was at the switchover; refused with one line before
# anything moves when the destination cannot take it; removed again when the migration
# fails. The source's guest and disk are never touched by a failure.

# copy_receiver NAME PORT DIR [ARGS...]: a receiver that copies disks into DIR.
copy_receiver() {
	local name=$1 port=$2 dir=$3
	shift 3
	mkdir -p "$dir"
	mig_receiver "$name" "127.0.0.1:$port" "$T/$name.console" --disk-dir "$dir" "$@"
}

# A guest writing and verifying its whole disk throughout, and 4 MiB of its memory: the copy
# follows every write (round 0 the data, then the blocks written again, the last with the
# guest paused), and the guest finishes its passes on the destination's image, every block
# checked from the host, every page of its working set checked in the guest.
test_storage_copy_while_the_guest_writes() {
	local port
	port=$(mig_unused_port 47871)
	mkdir -p "$T/a"
	truncate -s 64M "$T/a/disk.img"
	start_vm cw --mem 256M --disk "$T/a/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=100 blocks=4096 ws=4M"
	wait_for "$T/cw.console" '^blkcheck: pass=1 ' 30
	copy_receiver cwd "$port" "$T/b"
	# At most 4 rounds: blkcheck rewrites its 16 MiB faster than a slow host (nested, emulated:
	# 4 MiB/s) copies them, so it never converges there; every round and the switchover carry
	# written blocks.
	mig_migrate cw "127.0.0.1:$port" --storage copy --max-rounds 4
	blk_mem_went_on "$T/cwd.console" "$(blk_mem_gen "$T/cw.console")"
	[ -f "$T/b/disk.img" ] || fail "no copy in the destination's --disk-dir"
	[ "$(stat -c %a "$T/b/disk.img")" = 600 ] || fail "the copy is not 0600"
	blk_finished cwd "$T/cwd.console" "$T/b/disk.img" 100 "$T/cw.console" 4096
}

# Paused, moved offline: the destination's image equals the source's byte for byte; only the
# data travelled (a 64 MiB disk with 8 MiB written: the copy is sparse); resumed there, the
# guest goes on with its disk.
test_storage_copy_is_identical_and_sparse() {
	local port used
	port=$(mig_unused_port 47875)
	mkdir -p "$T/a"
	truncate -s 64M "$T/a/disk.img"
	dd if=/dev/urandom of="$T/a/disk.img" bs=1M count=8 seek=20 conv=notrunc status=none
	start_vm ci --mem 256M --disk "$T/a/disk.img" --kernel "$GUEST" --cmdline "prog=memtouch ws=16M"
	wait_for "$T/ci.console" 'memtouch: tick=' 20
	"$HVCTL" pause ci >/dev/null || fail "hvctl pause failed"
	copy_receiver cid "$port" "$T/b"
	"$HVCTL" migrate ci "127.0.0.1:$port" --storage copy --offline --json >"$T/ev.json" 2>"$T/mig.err" ||
		{ cat "$T/mig.err"; fail "hvctl migrate --storage copy --offline failed"; }
	cmp "$T/a/disk.img" "$T/b/disk.img" || fail "the copy differs from the source's image"
	# The progress counted the disk's 8 MiB (2048 pages' worth) beside the memory, and the
	# round ended complete.
	python3 - "$T/ev.json" <<'PY' || fail "the progress did not count the disk"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
last = [e for e in ev if e.get("event") == "migration-done"][-1]
# Besides the memory pages it went through (sent, or zero), the disk's.
disk = last["round_done_pages"] - last["pages_sent"] - last["zero_pages"]
ok = disk == 2048 and last["round_done_pages"] == last["round_pages"]
if not ok:
    print("migration-done: %s" % last, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
	used=$(du -k "$T/b/disk.img" | cut -f1)
	[ "$used" -le 12288 ] || fail "the copy takes $used KiB for 8 MiB of data: not sparse"
	"$HVCTL" resume cid >/dev/null || fail "hvctl resume on the destination failed"
	local n
	n=$(grep -c 'memtouch: tick=' "$T/cid.console")
	wait_for "$T/cid.console" "memtouch: tick=$((n + 1))" 20
	mig_no_corrupt "$T/cid.console"
}

# What the destination cannot take is refused in the compatibility check, with one line, and
# nothing is created there or changed here: an existing image (until --force), a copy no
# --disk-dir or --disk allows, a path outside --disk-dir, a file system without room (a
# small tmpfs), a destination without the copy at all.
test_storage_copy_refusals() {
	local port
	port=$(mig_unused_port 47881)
	mkdir -p "$T/a" "$T/b"
	truncate -s 64M "$T/a/disk.img"
	dd if=/dev/urandom of="$T/a/disk.img" bs=1M count=32 conv=notrunc status=none
	start_vm cr --mem 256M --disk "$T/a/disk.img" --kernel "$GUEST" --cmdline "prog=memtouch ws=8M"
	wait_for "$T/cr.console" 'memtouch: tick=' 20
	local sum
	sum=$(md5sum <"$T/a/disk.img")

	echo keep >"$T/b/disk.img"
	mig_receiver_bg r1 "$port" --disk-dir "$T/b"
	expect_error "policy does not provide disk 0 \(64 MiB, rw\); see the destination's log" \
		"$HVCTL" migrate cr "127.0.0.1:$port" --storage copy
	wait "$RPID" || true
	grep -q "exists; remove it, or let 'hvctl receive --force' replace it" "$T/r1.rerr" ||
		{ cat "$T/r1.rerr"; fail "no reason in the destination's log"; }
	[ "$(cat "$T/b/disk.img")" = keep ] || fail "the existing file was changed"

	mig_receiver_bg r2 "$port" --shared-storage
	expect_error "policy does not provide disk 0" "$HVCTL" migrate cr "127.0.0.1:$port" --storage copy
	wait "$RPID" || true
	grep -q "no --disk or --disk-dir to copy it into" "$T/r2.rerr" || { cat "$T/r2.rerr"; fail "no reason for r2"; }

	mkdir -p "$T/c"
	mig_receiver_bg r3 "$port" --disk-dir "$T/c"
	expect_error "policy does not provide disk 0" \
		"$HVCTL" migrate cr "127.0.0.1:$port" --storage copy --dest-disk /etc/hv-evil.img
	wait "$RPID" || true
	grep -q "outside --disk-dir" "$T/r3.rerr" || { cat "$T/r3.rerr"; fail "no reason for r3"; }
	[ ! -e /etc/hv-evil.img ] || fail "a file was created outside --disk-dir"

	mkdir -p "$T/small"
	mount -t tmpfs -o size=16M hvtest "$T/small" || fail "cannot mount a tmpfs"
	printf '#!/bin/bash\numount -l %q 2>/dev/null\nexit 0\n' "$T/small" >"$T/cleanup"
	chmod +x "$T/cleanup"
	mig_receiver_bg r4 "$port" --disk-dir "$T/small"
	expect_error "policy does not provide disk 0" "$HVCTL" migrate cr "127.0.0.1:$port" --storage copy
	wait "$RPID" || true
	grep -q "has 16 MiB free, the copy needs 32 MiB" "$T/r4.rerr" || { cat "$T/r4.rerr"; fail "no reason for r4"; }
	[ -z "$(ls -A "$T/small")" ] || fail "files were left in the small file system"
	umount "$T/small"

	expect_error "--dest-disk names where a copied disk goes; add --storage copy" \
		"$HVCTL" migrate cr "127.0.0.1:$port" --dest-disk "$T/c/x.img"
	expect_error "--storage 'nfs': use shared" "$HVCTL" migrate cr "127.0.0.1:$port" --storage nfs

	"$HVCTL" status cr --json | grep -q '"state": *"running"' || fail "the source is not running"
	"$HVCTL" pause cr >/dev/null
	[ "$(md5sum <"$T/a/disk.img")" = "$sum" ] || fail "the source's image changed"
	"$HVCTL" stop cr >/dev/null
	# --force: the existing image is replaced by the copy.
	"$HVCTL" receive --listen "127.0.0.1:$port" --name r5 --console none --timeout 60 --detach \
		--disk-dir "$T/b" --force >/dev/null || fail "receiver r5 did not start"
	start_vm cr2 --mem 256M --disk "$T/a/disk.img" --kernel "$GUEST" --cmdline "prog=memtouch ws=8M"
	wait_for "$T/cr2.console" 'memtouch: tick=' 20
	"$HVCTL" pause cr2 >/dev/null
	mig_migrate cr2 "127.0.0.1:$port" --storage copy --offline
	cmp "$T/a/disk.img" "$T/b/disk.img" || fail "--force did not replace the image with the copy"
}

# Cancelled in the middle of the copy (the link capped, so that the disk takes seconds): the
# destination removes its partial image, the source's guest runs on with its disk.
test_storage_copy_cancelled_leaves_nothing() {
	local port
	port=$(mig_unused_port 47885)
	mkdir -p "$T/a"
	truncate -s 64M "$T/a/disk.img"
	dd if=/dev/urandom of="$T/a/disk.img" bs=1M count=48 conv=notrunc status=none
	start_vm cc --mem 256M --disk "$T/a/disk.img" --kernel "$GUEST" --cmdline "prog=memtouch ws=8M"
	wait_for "$T/cc.console" 'memtouch: tick=' 20
	mkdir -p "$T/b"
	mig_receiver_bg ccd "$port" --disk-dir "$T/b"
	"$HVCTL" migrate cc "127.0.0.1:$port" --storage copy --bandwidth 8M >"$T/mig.out" 2>"$T/mig.err" &
	local mpid=$!
	for _ in $(seq 100); do [ -e "$T/b/disk.img" ] && break; sleep 0.1; done
	[ -e "$T/b/disk.img" ] || { cat "$T/mig.err" "$T/ccd.rerr"; fail "the copy never started"; }
	sleep 1
	"$HVCTL" migrate --cancel cc >/dev/null || fail "hvctl migrate --cancel failed"
	wait "$mpid" && fail "the cancelled migration exited 0"
	grep -q "cancelled" "$T/mig.err" || { cat "$T/mig.err"; fail "no word of the cancel"; }
	wait "$RPID" || true
	[ ! -e "$T/b/disk.img" ] || fail "the destination left its partial image"
	"$HVCTL" status cc --json | grep -q '"state": *"running"' || fail "the source is not running"
	local n
	n=$(grep -c 'memtouch: tick=' "$T/cc.console")
	wait_for "$T/cc.console" "memtouch: tick=$((n + 1))" 20
}

# Ping-pong: the same guest and disk moved between two "hosts" (two directories) five times
# with its disk, blkcheck writing and verifying its disk and 4 MiB of memory throughout (the
# last move with the guest paused, so that the two images can be compared: identical); it
# finishes every pass.
test_storage_copy_ping_pong() {
	local port here=h1 there=h2 name=pp0 next t
	mkdir -p "$T/h1" "$T/h2"
	truncate -s 64M "$T/h1/disk.img"
	start_vm pp0 --mem 256M --disk "$T/h1/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=300 blocks=4096 ws=4M"
	wait_for "$T/pp0.console" '^blkcheck: pass=1 ' 30
	for i in 1 2 3 4 5; do
		port=$(mig_unused_port $((47890 + i)))
		next=pp$i
		# --force: the image the guest left there on its way out is replaced by its copy.
		copy_receiver "$next" "$port" "$T/$there" --force
		if [ "$i" -lt 5 ]; then
			mig_migrate "$name" "127.0.0.1:$port" --storage copy --max-rounds 3
			blk_mem_went_on "$T/$next.console" "$(blk_mem_gen "$T/$name.console")"
		else
			"$HVCTL" pause "$name" >/dev/null || fail "hvctl pause failed"
			mig_migrate "$name" "127.0.0.1:$port" --storage copy --offline
		fi
		name=$next
		t=$here
		here=$there
		there=$t
	done
	cmp "$T/h1/disk.img" "$T/h2/disk.img" || fail "the copy differs from the image the guest left"
	"$HVCTL" resume "$name" >/dev/null || fail "hvctl resume failed"
	blk_finished "$name" "$T/$name.console" "$T/$here/disk.img" 300 "$T/pp0.console" 4096
}

# hvctl move-disk: the disk of a guest that writes and verifies it (and 4 MiB of its memory)
# throughout moves to a new
# image on this host; the guest finishes every pass on the new image (every block checked
# from the host), the old one is named and left alone. Refusals first, each one line with
# nothing created and the guest undisturbed.
test_move_disk_while_the_guest_writes() {
	truncate -s 64M "$T/old.img"
	mkdir -p "$T/new"
	start_vm md --mem 256M --disk "$T/old.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=0 secs=25 blocks=4096 ws=4M"
	wait_for "$T/md.console" '^blkcheck: pass=1 ' 30
	echo x >"$T/new/taken.img"
	expect_error "moving disk0 of 'md' failed: '$T/new/taken.img' exists; move-disk never replaces a file; the disk stays at $T/old.img" \
		"$HVCTL" move-disk md disk0 "$T/new/taken.img"
	expect_error "this VM has no disk 'disk3'" "$HVCTL" move-disk md 3 "$T/new/x.img"
	expect_error "disk 'sda': name it disk0, disk1" "$HVCTL" move-disk md sda "$T/new/x.img"
	expect_error "cannot move the disk to '$T/nodir/x.img': directory '$T/nodir' does not exist" \
		"$HVCTL" move-disk md disk0 "$T/nodir/x.img"
	expect_error "no migration or disk move is in progress" "$HVCTL" move-disk --cancel md
	[ "$(ls "$T/new")" = taken.img ] || fail "a refused move left a file"
	"$HVCTL" move-disk md disk0 "$T/new/disk.img" >"$T/mv.out" 2>"$T/mv.err" ||
		{ cat "$T/mv.out" "$T/mv.err"; fail "hvctl move-disk failed"; }
	grep -q "^moved disk0 of md to $T/new/disk.img$" "$T/mv.out" || { cat "$T/mv.out"; fail "no summary"; }
	grep -q "old image  *$T/old.img (left as it was" "$T/mv.out" || { cat "$T/mv.out"; fail "the old image is not named"; }
	blk_mem_went_on "$T/md.console" "$(blk_mem_gen "$T/md.console")"
	blk_finished md "$T/md.console" "$T/new/disk.img" any "$T/md.console" 4096
}

# A disk moved, then the VM migrated with its disk: the stream names the new image, the copy
# follows from it.
test_move_disk_then_migrate_with_the_disk() {
	local port
	port=$(mig_unused_port 47897)
	mkdir -p "$T/a" "$T/b"
	truncate -s 64M "$T/a/first.img"
	start_vm mm --mem 256M --disk "$T/a/first.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=100 blocks=4096"
	wait_for "$T/mm.console" '^blkcheck: pass=1 ' 30
	"$HVCTL" move-disk mm 0 "$T/a/second.img" >/dev/null || fail "hvctl move-disk failed"
	copy_receiver mmd "$port" "$T/b"
	mig_migrate mm "127.0.0.1:$port" --storage copy --max-rounds 4
	[ -f "$T/b/second.img" ] || { ls "$T/b"; fail "the copy does not carry the moved image's name"; }
	blk_finished mmd "$T/mmd.console" "$T/b/second.img" 100 "$T/mm.console" 4096
}
