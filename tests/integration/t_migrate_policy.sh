# The destination's operator decides what an incoming migration opens: a HELLO only
# describes the source's devices. Crafted HELLOs (build/tools/wiregen hello-file) go to a
# real receiver on loopback; real migrations check the matching of --disk to the source's
# disks (order, size, read-only).

WIREGEN=${WIREGEN:-$PWD/$BUILD/tools/wiregen}

POL_HEAD='{"protocol":2,"name":"pol","uuid":"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f","vcpus":1,"cpuid":[],'

# pol_hello NAME PORT JSON [RECEIVE ARGS...]: JSON as the HELLO to a fresh receiver NAME;
# waits for it to end. The answer is in $T/NAME.gen, the receiver's stderr in $T/NAME.rerr.
pol_hello() {
	local name=$1 port=$2 json=$3
	shift 3
	printf '%s' "$json" >"$T/$name.json"
	mig_receiver_bg "$name" "$port" "$@"
	"$WIREGEN" hello-file "127.0.0.1:$port" --hello "$T/$name.json" --wait-ms 5000 >"$T/$name.gen" 2>&1 ||
		{ cat "$T/$name.gen" >&2; fail "wiregen failed"; }
	local rc=0
	wait "$RPID" || rc=$?
	[ "$rc" -eq 125 ] || { cat "$T/$name.rerr" >&2; fail "$name: the receiver exited $rc, expected 125"; }
	[ "$(grep -c . "$T/$name.rerr")" -eq 1 ] || { cat "$T/$name.rerr" >&2; fail "$name: not one line on stderr"; }
}

# pol_refused NAME PEER_RE LOG_RE: the HELLO was refused, the peer got PEER_RE, the log LOG_RE.
pol_refused() {
	local name=$1
	grep -q 'received HELLO_REPLY.*"ok":false' "$T/$name.gen" || { cat "$T/$name.gen" >&2; fail "$name: the HELLO was not refused"; }
	grep -Eq "$2" "$T/$name.gen" || { cat "$T/$name.gen" >&2; fail "$name: the source was not told '$2'"; }
	grep -Eq "^hv: error: incoming migration failed: .*$3" "$T/$name.rerr" ||
		{ cat "$T/$name.rerr" >&2; fail "$name: the destination's log lacks '$3'"; }
}

test_policy_hello_naming_a_root_only_file_is_refused() {
	local port sum0 sum1
	port=$(mig_unused_port 47611)
	head -c 65536 /dev/urandom >"$T/secret"
	chmod 600 "$T/secret"
	sum0=$(stat -c '%s %Y %Z' "$T/secret")$(sha256sum <"$T/secret")
	local json="$POL_HEAD\"mem_size\":16777216,\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"},"
	json+="{\"type\":\"virtio-blk\",\"path\":\"$T/secret\",\"ro\":false,\"size\":65536}]}"
	# A receiver without any disk policy, one with --disk-dir elsewhere: neither opens it.
	pol_hello p1 "$port" "$json"
	pol_refused p1 "policy does not provide disk 0 \(64 KiB|65536 bytes, rw\)" "refused the source's disk 0 .*no --disk"
	! grep -q "secret" "$T/p1.gen" || { cat "$T/p1.gen"; fail "the peer learnt about the path"; }
	mkdir "$T/images"
	pol_hello p2 "$port" "$json" --disk-dir "$T/images"
	pol_refused p2 "policy does not provide disk 0" "--disk-dir $T/images/secret: No such file"
	sum1=$(stat -c '%s %Y %Z' "$T/secret")$(sha256sum <"$T/secret")
	[ "$sum0" = "$sum1" ] || fail "the root-only file changed"
	# Through a symbolic link in the allowed directory: not followed.
	ln -s "$T/secret" "$T/images/secret"
	pol_hello p3 "$port" "$json" --disk-dir "$T/images"
	pol_refused p3 "policy does not provide disk 0" "symbolic link"
	# --shared-storage: only a regular file, and not through a link either.
	json="${json/$T\/secret/$T\/images\/secret}"
	pol_hello p4 "$port" "$json" --shared-storage
	pol_refused p4 "policy does not provide disk 0" "symbolic link"
	json="${json/$T\/images\/secret//dev/null}"
	pol_hello p5 "$port" "$json" --shared-storage
	pol_refused p5 "policy does not provide disk 0" "not a regular file"
}

test_policy_hello_naming_a_tap_does_not_create_it() {
	local port tap=hvpol$$
	port=$(mig_unused_port 47621)
	local json="$POL_HEAD\"mem_size\":16777216,\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"},"
	json+="{\"type\":\"virtio-net\",\"tap\":\"$tap\",\"mac\":\"52:54:00:12:34:56\"}]}"
	printf '#!/bin/bash\nip link del %s 2>/dev/null\nexit 0\n' "$tap" >"$T/cleanup"
	chmod +x "$T/cleanup"
	pol_hello t1 "$port" "$json"
	pol_refused t1 "policy does not provide a NIC" "NIC 0 \(MAC 52:54:00:12:34:56\): no --net tap=IF"
	! ip link show "$tap" >/dev/null 2>&1 || fail "the stream created TAP $tap"
	# --net with another MAC than the guest's: refused (the MAC is the guest's identity).
	pol_hello t2 "$port" "$json" --net "tap=$tap,mac=52:54:00:00:00:01"
	pol_refused t2 "policy does not provide a NIC" "names another MAC"
	! ip link show "$tap" >/dev/null 2>&1 || fail "a refused HELLO created TAP $tap"
}

# No control byte from the stream reaches the destination's stderr or the reply.
test_policy_escape_sequences_never_reach_stderr() {
	local port
	port=$(mig_unused_port 47631)
	pol_hello e1 "$port" "$POL_HEAD\"mem_size\":16777216,\"devices\":[{\"type\":\"evil\\u001b[2J\\u0007\"}]}"
	pol_refused e1 "device type 'evil\?\[2J\?'" "device type 'evil\?\[2J\?'"
	pol_hello e2 "$port" "$POL_HEAD\"mem_size\":16777216,\"devices\":[{\"type\":\"virtio-blk\",\"path\":\"/tmp/x\\u001b]0;owned\\u0007\",\"size\":4096}]}" \
		--shared-storage
	pol_refused e2 "bad path" "bad path"
	pol_hello e3 "$port" "$POL_HEAD\"mem_size\":16777216,\"devices\":[{\"type\":\"virtio-net\",\"mac\":\"\\u001b[31m\"}]}"
	pol_refused e3 "bad MAC '\?\[31m'" "bad MAC"
	for f in "$T"/e?.rerr "$T"/e?.gen; do
		! LC_ALL=C grep -q '[[:cntrl:]]' "$f" || { od -c "$f" | head; fail "a control byte from the peer reached $f"; }
	done
}

# A HELLO of ~130 bytes asking for more memory than the host gives is refused before the
# destination populates anything (the receiver stays small).
test_policy_memory_bomb_is_refused() {
	local port avail mem
	port=$(mig_unused_port 47641)
	pol_hello m1 "$port" "$POL_HEAD\"mem_size\":1073741824,\"ram\":[[0,262144]]}" --max-mem 64M
	pol_refused m1 "memory is more than the destination accepts" "VM of 1024 MiB: this host accepts at most 64 MiB \(--max-mem\)"
	# Default: what the host has available (MemAvailable), not RAM + swap.
	avail=$(($(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) * 1024))
	mem=$(((avail * 2 / 4096) * 4096))
	pol_hello m2 "$port" "$POL_HEAD\"mem_size\":$mem,\"ram\":[[0,$((mem / 4096))]]}"
	pol_refused m2 "memory is more than the destination accepts" "\(MemAvailable\)"
	expect_error "--max-mem 'lots' is not a valid size" "$HVCTL" receive --listen 127.0.0.1:$port --max-mem lots
}

# An hv of protocol 1 (before state v2) is refused at its HELLO, both versions named on both
# sides, before anything is opened or populated.
test_policy_protocol_1_source_is_refused() {
	local port
	port=$(mig_unused_port 47661)
	pol_hello v1 "$port" "${POL_HEAD/\"protocol\":2/\"protocol\":1}\"mem_size\":16777216}"
	pol_refused v1 "speaks migration protocol 1, this hv speaks 2" "protocol 1, this hv speaks 2"
}

# Real migrations: the destination's --disk options are matched to the source's disks in
# order, by size and read-only flag; a mismatch is refused at HELLO, the source keeps running.
test_policy_disks_matched_by_order_size_and_ro() {
	local port gen
	port=$(mig_unused_port 47651)
	truncate -s 32M "$T/a.img"
	truncate -s 8M "$T/b.img"
	ln "$T/a.img" "$T/a-dst.img"
	ln "$T/b.img" "$T/b-dst.img"
	start_vm two --mem 256M --disk "$T/a.img" --disk "$T/b.img,ro" --kernel "$GUEST" \
		--cmdline "prog=blkcheck passes=20"
	wait_for "$T/two.console" '^blkcheck: pass=1 ' 30
	# Swapped order: the sizes do not match.
	mig_receiver_bg w1 "$port" --disk "$T/b-dst.img,ro" --disk "$T/a-dst.img"
	expect_error "policy does not provide disk 0 \(32 MiB, rw\); see the destination's log" \
		"$HVCTL" migrate two 127.0.0.1:$port
	wait "$RPID" || true
	grep -q "has 16384 sectors, the source's disk 65536" "$T/w1.rerr" || { cat "$T/w1.rerr"; fail "no detail in the log"; }
	# The writable source disk given read-only here: refused, never opened for writing.
	mig_receiver_bg w2 "$port" --disk "$T/a-dst.img,ro" --disk "$T/b-dst.img,ro"
	expect_error "policy does not provide disk 0 \(32 MiB, rw\)" "$HVCTL" migrate two 127.0.0.1:$port
	wait "$RPID" || true
	grep -q "read-only here but the source's disk is writable" "$T/w2.rerr" || { cat "$T/w2.rerr"; fail "no detail in the log"; }
	# Too few disks named, and nothing else allowed.
	mig_receiver_bg w3 "$port" --disk "$T/a-dst.img"
	expect_error "policy does not provide disk 1 \(8 MiB, ro\)" "$HVCTL" migrate two 127.0.0.1:$port
	wait "$RPID" || true
	"$HVCTL" status two --json | grep -q '"state": *"running"' || fail "the source is not running"
	# In order: the guest goes on writing disk 0 on the destination (disk 1 stays read-only).
	mig_receiver two-dst 127.0.0.1:$port "$T/two-dst.console" --disk "$T/a-dst.img" --disk "$T/b-dst.img"
	mig_migrate two 127.0.0.1:$port
	wait_for "$T/two-dst.console" '^blkcheck: done gen=' 120
	mig_no_corrupt "$T/two.console" "$T/two-dst.console"
	gen=$(sed -n 's/^blkcheck: done gen=\([0-9]*\) .*/\1/p' "$T/two-dst.console")
	[ "$gen" = 20 ] || fail "final generation '$gen', expected 20"
}

# One path, two files: the destination's image has the disk's size but not its content (a
# copy taken while the guest went on writing). The content fingerprint in the disk's state
# refuses it at switchover, with one line on both sides; the source keeps its guest, which
# goes on writing its own image.
test_policy_a_stale_copy_of_the_disk_is_refused() {
	local port
	port=$(mig_unused_port 47661)
	truncate -s 32M "$T/a.img"
	start_vm sc --mem 256M --disk "$T/a.img" --kernel "$GUEST" --cmdline "prog=blkcheck passes=400"
	wait_for "$T/sc.console" '^blkcheck: pass=1 ' 30
	cp --sparse=always "$T/a.img" "$T/stale.img"
	wait_for "$T/sc.console" '^blkcheck: pass=2 ' 30
	mig_receiver_bg st "$port" --disk "$T/stale.img"
	expect_error "disk0: the image here is not the disk the state was saved with" \
		"$HVCTL" migrate sc 127.0.0.1:$port
	local rc=0
	wait "$RPID" || rc=$?
	[ "$rc" -ne 0 ] || fail "the destination exited 0"
	grep -q "^hv: error: incoming migration failed: .*not the disk the state was saved with" "$T/st.rerr" ||
		{ cat "$T/st.rerr"; fail "no such line in the destination's log"; }
	"$HVCTL" status sc --json | grep -q '"state": *"running"' || fail "the source is not running"
	local n
	n=$(grep -c '^blkcheck: pass=' "$T/sc.console")
	wait_for "$T/sc.console" "^blkcheck: pass=$((n + 1)) " 30
	mig_no_corrupt "$T/sc.console"
}
