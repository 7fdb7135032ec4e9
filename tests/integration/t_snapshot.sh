# Snapshots: hvctl save writes a VM's whole state to a file, hvctl restore starts it again
# (docs/hvctl.md, "hvctl save" and "hvctl restore"). Every bad file is refused with one line,
# nothing started and nothing left; a full disk leaves no file under the name.

# snap_no_vm NAME: no VM of that name is listed.
snap_no_vm() {
	! "$HVCTL" list 2>/dev/null | grep -q "^$1 " || fail "VM $1 is listed"
}

# A running guest saved keeps running; the file is 0600 and holds only what the guest
# touched; restored (under another name, in another run directory, as on another host), the
# guest continues where it was, verifying its memory.
test_snapshot_save_running_then_restore_elsewhere() {
	local src_run=$T/run-a st size
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm s1 --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=16M rate=50"
	mig_wait_field_above "$T/s1.console" 'memtouch: tick=' gen 1 15
	st=$(mig_field "$T/s1.console" 'memtouch: tick=' tick) # before the save: the saved tick is later
	HV_RUN_DIR=$src_run "$HVCTL" save s1 "$T/s1.snap" >"$T/save.out" 2>"$T/save.err" ||
		{ cat "$T/save.out" "$T/save.err"; fail "hvctl save failed"; }
	cat "$T/save.out"
	grep -q "^saved s1 to $T/s1.snap" "$T/save.out" || fail "no summary"
	[ "$(stat -c %a "$T/s1.snap")" = 600 ] || fail "the snapshot has mode $(stat -c %a "$T/s1.snap")"
	size=$(stat -c %s "$T/s1.snap")
	[ "$size" -lt $((64 << 20)) ] || fail "a 256 MiB guest that touched ~16 MiB made a $size-byte file"
	ls "$T" | grep -q 's1.snap.' && fail "a temporary file was left beside the snapshot"
	HV_RUN_DIR=$src_run "$HVCTL" status s1 | grep -q '^state: *running' || fail "the saved VM does not run on"
	HV_RUN_DIR=$src_run "$HVCTL" stop s1 >/dev/null
	# An existing file is never replaced.
	HV_RUN_DIR=$src_run start_vm s2 --kernel "$GUEST" --mem 64M --cmdline "prog=memtouch ws=4M rate=50"
	wait_for "$T/s2.console" '^memtouch: tick=' 10
	HV_RUN_DIR=$src_run expect_error "'$T/s1.snap' exists: remove it or save under another name" \
		"$HVCTL" save s2 "$T/s1.snap"
	HV_RUN_DIR=$src_run "$HVCTL" stop s2 >/dev/null
	"$HVCTL" restore "$T/s1.snap" --name r1 --console "file:$T/r1.console" --detach >/dev/null ||
		fail "hvctl restore failed"
	"$HVCTL" status r1 | grep -q '^state: *running' || fail "the restored VM does not run"
	wait_for "$T/r1.console" '^memtouch: tick=' 10
	[ "$(mig_first_field "$T/r1.console" 'memtouch: tick=' tick)" -ge "$st" ] || fail "the guest did not go on from where it was"
	mig_wait_field_above "$T/r1.console" 'memtouch: tick=' gen 2 15
	mig_no_corrupt "$T/r1.console"
	grep -q "r1: restored from $T/s1.snap (saved as 's1'), running" "$HV_RUN_DIR/r1.log" ||
		fail "the log does not say where the VM came from"
	"$HVCTL" stop r1 >/dev/null
}

# save --compress zstd: a smaller file, its pages as zstd batches; restore reads them back and
# the guest goes on with its memory intact.
test_snapshot_zstd_save_and_restore() {
	local src_run=$T/run-a size
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm zs1 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=16M rate=50 fill=stamp"
	mig_wait_field_above "$T/zs1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run "$HVCTL" save zs1 "$T/zs1.snap" --stop --compress zstd >"$T/save.out" 2>"$T/save.err" ||
		{ cat "$T/save.out" "$T/save.err"; fail "hvctl save --compress zstd failed"; }
	cat "$T/save.out"
	grep -Eq '^ *compressed +[1-9][0-9]* pages with zstd, 0 with zlib$' "$T/save.out" ||
		fail "the summary names no zstd pages"
	size=$(stat -c %s "$T/zs1.snap")
	[ "$size" -lt $((4 << 20)) ] || fail "16 MiB of stamped pages made a $size-byte zstd file"
	for _ in $(seq 50); do HV_RUN_DIR=$src_run "$HVCTL" list 2>/dev/null | grep -q '^zs1 ' || break; sleep 0.1; done
	"$HVCTL" restore "$T/zs1.snap" --console "file:$T/zs1r.console" --detach >/dev/null ||
		fail "hvctl restore of a zstd snapshot failed"
	mig_wait_field_above "$T/zs1r.console" 'memtouch: tick=' gen 1 15
	mig_no_corrupt "$T/zs1r.console"
	"$HVCTL" stop zs1 >/dev/null
}

# save --stop ends the VM once the file is complete; restore --paused starts it paused, and
# resumed it goes on.
test_snapshot_stop_and_restore_paused() {
	local src_run=$T/run-a
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm p1 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=8M rate=50"
	mig_wait_field_above "$T/p1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run "$HVCTL" save p1 "$T/p1.snap" --stop >/dev/null || fail "hvctl save --stop failed"
	for _ in $(seq 50); do HV_RUN_DIR=$src_run "$HVCTL" list 2>/dev/null | grep -q '^p1 ' || break; sleep 0.1; done
	HV_RUN_DIR=$src_run snap_no_vm p1
	"$HVCTL" restore "$T/p1.snap" --paused --console "file:$T/p1r.console" --detach >/dev/null ||
		fail "hvctl restore --paused failed"
	"$HVCTL" status p1 | grep -q '^state: *paused' || fail "the VM is not paused"
	sleep 0.5
	[ ! -s "$T/p1r.console" ] || fail "the guest ran while paused"
	"$HVCTL" resume p1 || fail "resume failed"
	mig_wait_field_above "$T/p1r.console" 'memtouch: tick=' gen 1 15
	mig_no_corrupt "$T/p1r.console"
	"$HVCTL" stop p1 >/dev/null
}

# snap_refused FILE REGEX: restore refuses FILE with one line matching REGEX, starts
# nothing, leaves no VM.
snap_refused() {
	expect_error "$2" "$HVCTL" restore "$1" --name bad --console none
	snap_no_vm bad
}

# Bad files: missing, a directory, empty, not a snapshot, another version, a damaged header,
# cut short, one byte flipped in memory, in a vCPU's state or in the device state at the end.
test_snapshot_bad_files_are_refused() {
	local src_run=$T/run-a f=$T/good.snap size
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm g1 --kernel "$GUEST" --mem 64M --cmdline "prog=memtouch ws=4M rate=50"
	wait_for "$T/g1.console" '^memtouch: tick=' 10
	HV_RUN_DIR=$src_run "$HVCTL" save g1 "$f" --stop >/dev/null || fail "hvctl save failed"
	size=$(stat -c %s "$f")
	# inspect reads all of it, as a restore would, and starts nothing.
	"$HVCTL" inspect "$f" >"$T/inspect" || { cat "$T/inspect"; fail "hvctl inspect failed"; }
	cat "$T/inspect"
	grep -q "^  saved .*, from VM 'g1'$" "$T/inspect" || fail "inspect does not name the VM"
	grep -q '^  guest           64 MiB RAM, 1 vCPU, CPU model host, running when saved$' "$T/inspect" ||
		fail "inspect does not show the guest"
	grep -Eq '^  state           1 vCPU, 1 device \(com1\)$' "$T/inspect" || fail "inspect does not show the state"
	grep -q '^  stream          protocol 2, .* records, complete' "$T/inspect" || fail "inspect does not say complete"
	awk 'length > 79 { exit 1 }' "$T/inspect" || fail "inspect prints lines wider than 79 columns"
	snap_no_vm g1
	head -c $((size - 9)) "$f" >"$T/cut.snap"
	expect_error "would not restore: .*truncated" "$HVCTL" inspect "$T/cut.snap"
	snap_refused "$T/missing.snap" "cannot open snapshot '$T/missing.snap': No such file"
	mkdir "$T/dir.snap"
	snap_refused "$T/dir.snap" "is not a snapshot file \(not a regular file\)"
	: >"$T/empty.snap"
	snap_refused "$T/empty.snap" "is not a snapshot: the file is empty"
	head -c 4096 /dev/urandom >"$T/random.snap"
	snap_refused "$T/random.snap" "is not an hv snapshot"
	cp "$f" "$T/v9.snap"
	printf '\x09' | dd of="$T/v9.snap" bs=1 seek=8 conv=notrunc status=none
	snap_refused "$T/v9.snap" "is a snapshot of version 9, this hv reads version 1"
	cp "$f" "$T/hdr.snap"
	printf 'X' | dd of="$T/hdr.snap" bs=1 seek=45 conv=notrunc status=none
	snap_refused "$T/hdr.snap" "the snapshot header is damaged"
	head -c $((size / 2)) "$f" >"$T/half.snap"
	snap_refused "$T/half.snap" "cannot restore the snapshot: .*truncated"
	head -c $((size - 9)) "$f" >"$T/cut.snap"
	snap_refused "$T/cut.snap" "cannot restore the snapshot: .*truncated"
	cp "$f" "$T/mem.snap"
	printf '\x5a' | dd of="$T/mem.snap" bs=1 seek=$((size / 2)) conv=notrunc status=none
	snap_refused "$T/mem.snap" "cannot restore the snapshot: .*(CRC|corrupt)"
	# A byte of the first vCPU's state (its record header is found by its magic, version 2
	# and type 5; 100 bytes into the blob is its register section).
	local cpu
	cpu=$(LC_ALL=C grep -obUaP '\x68\x76\x6d\x67\x02\x00\x05\x00' "$f" | tail -n 1 | cut -d: -f1)
	[ -n "$cpu" ] || fail "no vCPU state record in the snapshot"
	cp "$f" "$T/cpu.snap"
	printf '\x5a' | dd of="$T/cpu.snap" bs=1 seek=$((cpu + 32 + 100)) conv=notrunc status=none
	snap_refused "$T/cpu.snap" "cannot restore the snapshot: .*(CRC|corrupt)"
	cp "$f" "$T/dev.snap"
	printf '\x5a' | dd of="$T/dev.snap" bs=1 seek=$((size - 200)) conv=notrunc status=none
	snap_refused "$T/dev.snap" "cannot restore the snapshot: .*(CRC|corrupt)"
	"$HVCTL" restore "$f" --name ok --console none --detach >/dev/null || fail "the good file does not restore"
	"$HVCTL" stop ok >/dev/null
}

# A full filesystem: the save fails with one line, no file under the name and no temporary
# file are left, and the VM runs on.
test_snapshot_full_disk_leaves_nothing() {
	local src_run=$T/run-a mnt=$T/small
	mkdir -p "$src_run" "$mnt"
	mount -t tmpfs -o size=4M tmpfs "$mnt" || fail "cannot mount a small tmpfs"
	printf '#!/bin/bash\numount -l %q 2>/dev/null\nexit 0\n' "$mnt" >"$T/cleanup"
	chmod +x "$T/cleanup"
	HV_RUN_DIR=$src_run start_vm f1 --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=32M rate=50"
	mig_wait_field_above "$T/f1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run expect_error "save of 'f1' failed: .*(No space left|space)" \
		"$HVCTL" save f1 "$mnt/f1.snap" --compress none
	[ -z "$(ls -A "$mnt")" ] || { ls -la "$mnt"; fail "the failed save left files behind"; }
	HV_RUN_DIR=$src_run "$HVCTL" status f1 | grep -q '^state: *running' || fail "the VM does not run on"
	HV_RUN_DIR=$src_run expect_error "cannot save to '$T/nodir/x.snap': directory '$T/nodir' does not exist" \
		"$HVCTL" save f1 "$T/nodir/x.snap"
	umount "$mnt"
	HV_RUN_DIR=$src_run "$HVCTL" stop f1 >/dev/null
}

# A guest in the middle of disk I/O, saved with --stop and restored onto the same image (named
# by the restoring host's --disk): it finishes every pass, and every block checks out.
test_snapshot_blkcheck_mid_io() {
	truncate -s 64M "$T/disk.img"
	start_vm b1 --mem 256M --disk "$T/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=20"
	wait_for "$T/b1.console" '^blkcheck: pass=1 ' 30
	"$HVCTL" save b1 "$T/b1.snap" --stop >/dev/null || fail "hvctl save --stop failed"
	for _ in $(seq 100); do [ -e "$HV_RUN_DIR/b1.lock" ] || break; sleep 0.1; done
	expect_error "refused the source's disk 0 .*no --disk for it" "$HVCTL" restore "$T/b1.snap" --console none
	"$HVCTL" restore "$T/b1.snap" --disk "$T/disk.img" --console "file:$T/b1r.console" --detach \
		>/dev/null || fail "hvctl restore --disk failed"
	blk_finished b1 "$T/b1r.console" "$T/disk.img" 20 "$T/b1.console"
}

# The disks are not in a snapshot: an image the guest went on writing after the save is
# refused by restore (memory over a newer disk would corrupt the guest's file system); a copy
# of the image taken with the snapshot, while the VM was paused, restores, and the guest
# finishes every pass on it.
test_snapshot_disk_written_after_save_is_refused() {
	truncate -s 64M "$T/disk.img"
	start_vm w1 --mem 256M --disk "$T/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=0 secs=15 blocks=4096"
	wait_for "$T/w1.console" '^blkcheck: pass=1 ' 30
	"$HVCTL" pause w1 >/dev/null || fail "hvctl pause failed"
	"$HVCTL" save w1 "$T/w1.snap" >/dev/null || fail "hvctl save failed"
	cp --sparse=always "$T/disk.img" "$T/copy.img"
	"$HVCTL" resume w1 >/dev/null || fail "hvctl resume failed"
	blk_finished w1 "$T/w1.console" "$T/disk.img" any "$T/w1.console" 4096
	expect_error "disk0: the image here is not the disk the state was saved with" \
		"$HVCTL" restore "$T/w1.snap" --disk "$T/disk.img" --console none
	"$HVCTL" restore "$T/w1.snap" --disk "$T/copy.img" --console "file:$T/w1r.console" --detach \
		>/dev/null || fail "hvctl restore onto the copy failed"
	# Saved paused, it comes back paused.
	"$HVCTL" resume w1 >/dev/null || fail "hvctl resume of the restored VM failed"
	blk_finished w1 "$T/w1r.console" "$T/copy.img" any "$T/w1r.console" 4096
}

# --live: pre-copy rounds into the file while the guest rewrites its memory, paused only for
# the last; 4 vCPUs on 2 host cores. Restored, the guest goes on with its memory intact.
test_snapshot_live_save_of_a_busy_guest() {
	local src_run=$T/run-a st
	mkdir -p "$src_run"
	HV_RUN_DIR=$src_run start_vm l1 --kernel "$GUEST" --mem 256M --cpus 4 --cmdline "prog=memtouch ws=32M rate=100"
	mig_wait_field_above "$T/l1.console" 'memtouch: tick=' gen 1 15
	HV_RUN_DIR=$src_run "$HVCTL" save l1 "$T/l1.snap" --live --stop --json >"$T/save.json" ||
		{ cat "$T/save.json"; fail "hvctl save --live failed"; }
	grep '"event":"migration-done"' "$T/save.json" | grep -q '"round":[1-9]' ||
		{ tail -n 2 "$T/save.json"; fail "a live save ran no pre-copy round"; }
	st=$(mig_field "$T/l1.console" 'memtouch: tick=' tick)
	for _ in $(seq 100); do [ -e "$src_run/l1.lock" ] || break; sleep 0.1; done
	"$HVCTL" restore "$T/l1.snap" --console "file:$T/l1r.console" --detach >/dev/null || fail "hvctl restore failed"
	wait_for "$T/l1r.console" '^memtouch: tick=' 10
	[ "$(mig_first_field "$T/l1r.console" 'memtouch: tick=' tick)" -ge "$st" ] || fail "the guest did not go on from where it was"
	mig_wait_field_above "$T/l1r.console" 'memtouch: tick=' gen 2 20
	mig_no_corrupt "$T/l1r.console"
	"$HVCTL" stop l1 >/dev/null
}
