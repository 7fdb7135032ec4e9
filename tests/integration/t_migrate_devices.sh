# Live migration of a guest that is using a virtio-blk disk while it writes and verifies it.
# The destination's operator names the backends (--disk, or --shared-storage for the same
# path); the stream only describes the source's disks.

BLKVERIFY=${BLKVERIFY:-$PWD/$BUILD/tools/blkverify}

# blkcheck_leg PORT [MIGRATE OPTIONS...]: a guest writing and verifying its disk, migrated to a
# destination that opens the same image under its own name; it finishes its passes there.
blkcheck_leg() {
	local port=$1
	shift
	truncate -s 64M "$T/disk.img"
	# The destination's own name for the same image (a second link, as another host's mount).
	ln "$T/disk.img" "$T/dst-disk.img"
	start_vm bsrc --mem 256M --disk "$T/disk.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=40"
	wait_for "$T/bsrc.console" '^blkcheck: pass=1 ' 30
	"$HVCTL" receive --listen 127.0.0.1:$port --name bdst --console "file:$T/bdst.console" \
		--disk "$T/dst-disk.img" --timeout 60 --detach || fail "receiver did not start"
	"$HVCTL" migrate bsrc 127.0.0.1:$port "$@" >"$T/mig" 2>&1 || { cat "$T/mig"; fail "migration failed"; }
	cat "$T/mig"
	grep -q '^migrated bsrc' "$T/mig" || fail "no summary"
	# The guest finishes its passes on the destination: every block written and read back.
	blk_finished bdst "$T/bdst.console" "$T/disk.img" 40 "$T/bsrc.console"
}

test_migrate_blkcheck_mid_io() { blkcheck_leg 47811; }

# The same in post-copy (--postcopy-after 1: even if it would converge): the device
# thread touches rings and buffers the guest has not got yet, and waits for them like a vCPU.
test_migrate_blkcheck_mid_io_postcopy() {
	blkcheck_leg 47812 --postcopy-after 1
	grep -Eq '^  post-copy +[0-9]+ pages after it started there' "$T/mig" || fail "post-copy did not happen"
}

test_migrate_refused_when_disk_missing_on_destination() {
	truncate -s 16M "$T/disk.img"
	start_vm dsrc --mem 256M --disk "$T/disk.img" --kernel "$GUEST" --cmdline "prog=memtouch ws=8M"
	wait_for "$T/dsrc.console" 'memtouch: tick=' 20
	# The destination cannot reach the image: it must refuse before any page moves, and tell
	# the source no more than what is missing (no path: no file-existence oracle).
	mv "$T/disk.img" "$T/moved.img"
	mig_receiver_bg ddst 47812 --shared-storage
	"$HVCTL" migrate dsrc 127.0.0.1:47812 >"$T/out" 2>"$T/err" && fail "migration succeeded without the disk"
	grep -q "policy does not provide disk 0 (16 MiB, rw); see the destination's log" "$T/err" ||
		{ cat "$T/err"; fail "wrong message"; }
	! grep -q "disk.img" "$T/err" || { cat "$T/err"; fail "the source learnt the destination's path"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line"; }
	wait "$RPID" && fail "the receiver exited 0"
	grep -q "refused the source's disk 0 ('$T/disk.img'.*--shared-storage: No such file" "$T/ddst.rerr" ||
		{ cat "$T/ddst.rerr"; fail "the destination's log lacks the detail"; }
	"$HVCTL" status dsrc --json | grep -q '"state": *"running"' || fail "the source is not running"
	a=$(last_pages "$T/dsrc.console"); sleep 0.5; b=$(last_pages "$T/dsrc.console")
	[ "$a" != "$b" ] || fail "the source guest stopped making progress"
	"$HVCTL" stop dsrc
}
