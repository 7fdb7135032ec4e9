# Authenticated, encrypted migration: TLS 1.3 with a pre-shared key or with certificates
# (made here with the openssl tool). Every refusal is one line on each side, the source's
# guest keeps running, and the receiver keeps listening for the real source. Ports 476xx.

FAULTPROXY=${FAULTPROXY:-$PWD/$BUILD/tools/faultproxy}
WIREGEN=${WIREGEN:-$PWD/$BUILD/tools/wiregen}

# tls_src NAME: a source VM whose guest dirties memory and shows it on its console.
tls_src() {
	start_vm "$1" --kernel "$GUEST" --mem 128M --cmdline "prog=memtouch ws=16M rate=50"
	mig_wait_field_above "$T/$1.console" 'memtouch: tick=' gen 1 15
}

# tls_refused NAME ADDR SRC_RE LOG_RE [MIGRATE OPTIONS...]: a migration of NAME to the
# receiver in $T/$RNAME.rerr that TLS refuses: hvctl migrate fails with one line matching
# SRC_RE, the receiver logs one more dropped connection matching LOG_RE and still listens,
# and the guest still runs here.
tls_refused() {
	local name=$1 addr=$2 src_re=$3 log_re=$4 n0 i line
	shift 4
	n0=$(grep -c 'dropped a connection' "$T/$RNAME.rerr" || true)
	expect_error "migration of '$name' failed: .*$src_re.*; the VM keeps running here" \
		"$HVCTL" migrate "$name" "$addr" "$@"
	for ((i = 0; i < 50; i++)); do
		[ "$(grep -c 'dropped a connection' "$T/$RNAME.rerr" || true)" -gt "$n0" ] && break
		sleep 0.1
	done
	line=$(grep 'dropped a connection' "$T/$RNAME.rerr" | tail -n 1)
	printf '  source: %s\n  dest:   %s\n' "$(cat "$T/err")" "$line"
	[ "$(grep -c 'dropped a connection' "$T/$RNAME.rerr" || true)" -eq $((n0 + 1)) ] ||
		{ cat "$T/$RNAME.rerr" >&2; fail "the receiver did not log one dropped connection"; }
	[[ $line =~ $log_re.*still\ listening ]] || { cat "$T/$RNAME.rerr" >&2; fail "receiver log does not match '$log_re'"; }
	kill -0 "$RPID" 2>/dev/null || fail "the receiver ended"
	"$HVCTL" status "$name" --json | grep -q '"state": *"running"' || fail "$name does not run after the refusal"
}

test_tls_keygen_writes_a_private_key_once() {
	local k=$T/a.key
	(umask 000 && "$HVCTL" keygen "$k") 2>"$T/kg.err" || { cat "$T/kg.err" >&2; fail "hvctl keygen failed"; }
	[ "$(stat -c %a "$k")" = 600 ] || fail "the key file has mode $(stat -c %a "$k") under umask 000"
	grep -Eq '^[0-9a-f]{64}$' "$k" || fail "the key file is not 64 hex digits"
	cp "$k" "$T/a.copy"
	expect_error "already exists; a key is never overwritten" "$HVCTL" keygen "$k"
	cmp -s "$k" "$T/a.copy" || fail "keygen changed an existing key"
	"$HVCTL" keygen "$T/b.key" 2>/dev/null || fail "second keygen failed"
	cmp -s "$k" "$T/b.key" && fail "two keys are the same"
	expect_error "usage: hvctl keygen FILE" "$HVCTL" keygen
	# Keys the receiver will not use: readable by others, not a key, a symbolic link.
	chmod 644 "$T/b.key"
	expect_error "key file '.*b.key' can be read by other users \(mode 0644\); chmod 600 it" \
		"$HVCTL" receive --listen 127.0.0.1:47690 --psk "$T/b.key"
	printf 'not a key\n' >"$T/c.key"
	chmod 600 "$T/c.key"
	expect_error "is not a key \(64 hex digits\); make one with 'hvctl keygen FILE'" \
		"$HVCTL" receive --listen 127.0.0.1:47690 --psk "$T/c.key"
	expect_error "cannot use --psk '.*nothing.key': No such file" \
		"$HVCTL" receive --listen 127.0.0.1:47690 --psk "$T/nothing.key"
	expect_error "use either --psk or --tls-cert/--tls-key/--tls-ca, not both" \
		"$HVCTL" receive --listen 127.0.0.1:47690 --psk "$k" --tls-ca "$k"
}

# Without authentication a receiver listens on loopback only, unless the operator says so.
test_tls_receive_off_loopback_needs_a_key_or_insecure() {
	local port
	port=$(mig_unused_port 47691)
	expect_error "0.0.0.0:$port is reachable from other hosts: give --psk FILE .* or --insecure" \
		"$HVCTL" receive --listen "0.0.0.0:$port" --timeout 5
	"$HVCTL" keygen "$T/k" 2>/dev/null
	"$HVCTL" receive --listen "0.0.0.0:$port" --name withkey --psk "$T/k" --detach >/dev/null 2>"$T/k.err" ||
		{ cat "$T/k.err" >&2; fail "a receiver with --psk cannot listen on 0.0.0.0"; }
	"$HVCTL" stop withkey >/dev/null
	"$HVCTL" receive --listen "0.0.0.0:$port" --name insecure --insecure --detach >/dev/null 2>"$T/i.err" ||
		{ cat "$T/i.err" >&2; fail "--insecure did not start"; }
	[ "$(grep -c . "$T/i.err")" -eq 1 ] && grep -q 'without authentication (--insecure): anyone' "$T/i.err" ||
		{ cat "$T/i.err" >&2; fail "--insecure did not warn once"; }
	"$HVCTL" stop insecure >/dev/null
}

# A pre-shared key: a wrong key, no key, and a key where the receiver has none are each
# refused on both sides; the same receiver then takes the real migration, over TLS.
test_tls_psk_refusals_then_migration() {
	local port
	"$HVCTL" keygen "$T/good.key" 2>/dev/null
	"$HVCTL" keygen "$T/bad.key" 2>/dev/null
	tls_src web
	port=$(mig_unused_port 47601)
	RNAME=dst
	mig_receiver_bg dst "$port" --psk "$T/good.key"
	tls_refused web 127.0.0.1:$port "refused the TLS handshake .*the pre-shared keys differ" \
		"TLS handshake with the source failed: binder does not verify" --psk "$T/bad.key"
	tls_refused web 127.0.0.1:$port "accepts only authenticated migrations: give 'hvctl migrate' the same --psk" \
		"it did not start TLS"
	mig_migrate web 127.0.0.1:$port --psk "$T/good.key"
	grep -q "^  security *TLSv1.3, TLS_AES_128_GCM_SHA256, pre-shared key" "$T/mig.out" ||
		{ cat "$T/mig.out" >&2; fail "the summary does not show TLS with the key"; }
	mig_check_memtouch_continues "$T/web.console" "$T/dst.console"
	grep -q "received from 127.0.0.1:[0-9]* (TLSv1.3, TLS_AES_128_GCM_SHA256, pre-shared key), running" \
		"$T/dst.rerr" || { cat "$T/dst.rerr" >&2; fail "the receiver does not log the TLS session"; }
	mig_no_corrupt "$T/dst.console"
	"$HVCTL" stop dst >/dev/null
}

# Post-copy inside TLS: page requests and pages cross one TLS session, read between batches
# on the source and by one thread on the destination (TLS buffers what poll cannot see);
# the guest's memory checks out there.
test_tls_postcopy() {
	local port
	"$HVCTL" keygen "$T/good.key" 2>/dev/null
	tls_src web
	port=$(mig_unused_port 47621)
	RNAME=dst
	mig_receiver_bg dst "$port" --psk "$T/good.key"
	mig_migrate web 127.0.0.1:$port --psk "$T/good.key" --postcopy
	cat "$T/mig.out"
	grep -Eq '^  post-copy +[1-9][0-9]* pages after it started there' "$T/mig.out" ||
		fail "no page came after the guest started there: post-copy did not happen"
	mig_check_memtouch_continues "$T/web.console" "$T/dst.console"
	grep -q "post-copy: [0-9]* pages arrived" "$T/dst.rerr" || { cat "$T/dst.rerr" >&2; fail "the receiver does not report post-copy"; }
	"$HVCTL" stop dst >/dev/null
}

# A key on the source and none on the receiver: refused, both sides say what to do.
test_tls_psk_source_plain_receiver() {
	local port
	"$HVCTL" keygen "$T/good.key" 2>/dev/null
	tls_src web
	port=$(mig_unused_port 47611)
	RNAME=plain
	mig_receiver_bg plain "$port"
	tls_refused web 127.0.0.1:$port "closed the connection during the TLS handshake" \
		"it speaks TLS and this receiver has no key" --psk "$T/good.key"
	"$HVCTL" stop plain >/dev/null
}

# Certificates: the receiver takes only a source whose certificate its CA signed and that is
# valid; the source takes only a destination of the name it connects to. Then the real one.
test_tls_certificates_refusals_then_migration() {
	local port p=$T/pki
	tls_pki
	tls_src web
	port=$(mig_unused_port 47621)
	RNAME=dst
	mig_receiver_bg dst "$port" --tls-cert "$p/dst.crt" --tls-key "$p/dst.key" --tls-ca "$p/ca.crt"
	tls_refused web 127.0.0.1:$port "refused this host's certificate .*unknown ca" \
		"the source's certificate was refused: unable to get local issuer certificate" \
		--tls-cert "$p/rogue.crt" --tls-key "$p/rogue.key" --tls-ca "$p/ca.crt"
	tls_refused web 127.0.0.1:$port "refused this host's certificate .*certificate expired" \
		"the source's certificate was refused: certificate has expired" \
		--tls-cert "$p/old.crt" --tls-key "$p/old.key" --tls-ca "$p/ca.crt"
	tls_refused web 127.0.0.1:$port "the destination's certificate was refused: self-signed certificate in certificate chain" \
		"the source refused the TLS handshake \(tlsv1 alert unknown ca\)" \
		--tls-cert "$p/src.crt" --tls-key "$p/src.key" --tls-ca "$p/otherca.crt"
	tls_refused web 127.0.0.1:$port "the destination's certificate was refused: hostname mismatch" \
		"the source refused the TLS handshake" \
		--tls-cert "$p/src.crt" --tls-key "$p/src.key" --tls-ca "$p/ca.crt" --tls-server-name dst.lab
	"$HVCTL" keygen "$T/k" 2>/dev/null
	tls_refused web 127.0.0.1:$port "answered with a certificate, not the pre-shared key" \
		"the source presented no certificate" --psk "$T/k"
	expect_error "certificates need all of --tls-cert, --tls-key and --tls-ca" \
		"$HVCTL" migrate web 127.0.0.1:$port --tls-cert "$p/src.crt" --tls-key "$p/src.key"
	expect_error "private key '.*dst.key' does not belong to certificate|key values mismatch" \
		"$HVCTL" migrate web 127.0.0.1:$port --tls-cert "$p/src.crt" --tls-key "$p/dst.key" --tls-ca "$p/ca.crt"
	mig_migrate web 127.0.0.1:$port --tls-cert "$p/src.crt" --tls-key "$p/src.key" --tls-ca "$p/ca.crt"
	grep -q "^  security *TLSv1.3, .*, certificates" "$T/mig.out" || { cat "$T/mig.out" >&2; fail "no TLS in the summary"; }
	mig_check_memtouch_continues "$T/web.console" "$T/dst.console"
	"$HVCTL" stop dst >/dev/null
}

# One byte of the encrypted stream flipped on the way: the destination refuses the stream
# (nothing of it is used), the source learns why, its guest keeps running.
test_tls_flipped_byte_is_refused_on_both_sides() {
	local port rc=0
	"$HVCTL" keygen "$T/k" 2>/dev/null
	tls_src web
	port=$(mig_unused_port 47631)
	mig_receiver_bg dst "$port" --psk "$T/k"
	faultproxy_start 60 "$port" "$T/proxy.log" --corrupt-at 300000
	"$HVCTL" migrate web "127.0.0.1:$PPORT" --psk "$T/k" >"$T/mig.out" 2>"$T/mig.err" && fail "the altered migration succeeded"
	cat "$T/mig.err"
	[ "$(grep -c . "$T/mig.err")" -eq 1 ] || fail "the source printed more than one line"
	grep -q "the peer found the stream altered in transit (TLS record authentication failed there); the VM keeps running here" \
		"$T/mig.err" || fail "the source does not say the stream was altered"
	wait "$RPID" || rc=$?
	cat "$T/dst.rerr"
	[ "$rc" -eq 125 ] || fail "the receiver exited $rc, expected 125"
	[ "$(grep -c . "$T/dst.rerr")" -eq 1 ] &&
		grep -q "^hv: error: incoming migration failed: .*the stream was altered in transit (TLS record authentication failed)" \
			"$T/dst.rerr" || fail "the receiver does not say the stream was altered"
	grep -q 'flipped' "$T/proxy.log" || fail "the proxy flipped nothing"
	"$HVCTL" status web --json | grep -q '"state": *"running"' || fail "web does not run after the failure"
	mig_wait_field_above "$T/web.console" 'memtouch: tick=' gen "$(mig_field "$T/web.console" 'memtouch: tick=' gen)" 10
	mig_no_corrupt "$T/web.console"
}

# Strangers first: a peer that connects and closes, one that sends garbage, one that
# trickles; then the real source, with the key, into the same receiver.
test_tls_strays_then_real_source() {
	local port t0
	"$HVCTL" keygen "$T/k" 2>/dev/null
	tls_src web
	port=$(mig_unused_port 47641)
	RNAME=dst
	mig_receiver_bg dst "$port" --psk "$T/k"
	"$WIREGEN" empty 127.0.0.1:$port >/dev/null 2>&1
	"$WIREGEN" random 127.0.0.1:$port --wait-ms 3000 >/dev/null 2>&1
	"$WIREGEN" tls-start 127.0.0.1:$port --trickle-ms 500 --wait-ms 3000 >/dev/null 2>&1 &
	local trickler=$!
	sleep 1
	# The real source arrives while the trickler holds the receiver: it waits its turn.
	t0=$SECONDS
	mig_migrate web 127.0.0.1:$port --psk "$T/k"
	echo "the source waited $((SECONDS - t0)) s behind the trickler"
	wait "$trickler"
	cat "$T/dst.rerr"
	grep -q 'closed the connection without sending anything; still listening (1 of 32)' "$T/dst.rerr" ||
		fail "no line for the peer that closed"
	grep -q 'it did not start TLS .*still listening (2 of 32)' "$T/dst.rerr" || fail "no line for the garbage"
	grep -q 'received from .*(TLSv1.3, .*pre-shared key), running' "$T/dst.rerr" || fail "no line for the real source"
	grep -q 'the TLS handshake did not finish within 10 s; still listening (3 of 32)' "$T/dst.rerr" ||
		fail "no line for the trickler"
	mig_check_memtouch_continues "$T/web.console" "$T/dst.console"
	"$HVCTL" stop dst >/dev/null
}
