# Helpers for integration tests. Each test runs in its own shell with its own HV_RUN_DIR
# and scratch directory ($T), and everything it started is killed when it ends.
HVCTL=${HVCTL:-$PWD/$BUILD/hvctl}
HVCTL_BIN=${HV_REAL_HVCTL:-$HVCTL} # the executable itself (HVCTL is a wrapper without KVM: run.sh)
GUEST=${GUEST:-$PWD/$BUILD/guests/hv-guest.elf}
GUEST_BZ=${GUEST_BZ:-$PWD/$BUILD/guests/hv-guest.bzimage}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_for FILE REGEX SECONDS: until a line of FILE matches, or fail.
wait_for() {
	local file=$1 re=$2 secs=${3:-20} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -Eq "$re" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "--- $file:" >&2
	tail -n 20 "$file" >&2 2>/dev/null
	fail "no line matching '$re' in $file after ${secs}s"
}

# count_lines FILE REGEX
count_lines() {
	grep -Ec "$2" "$1" 2>/dev/null || true
}

# expect_error EXPECTED_REGEX CMD...: CMD must fail with one line on stderr matching.
expect_error() {
	local re=$1 rc
	shift
	"$@" >"$T/out" 2>"$T/err" && fail "'$*' succeeded but should have failed"
	rc=$?
	[ "$(wc -l <"$T/err")" -ge 1 ] || fail "'$*' failed (rc $rc) without a message"
	grep -Eq -e "$re" "$T/err" || { cat "$T/err" >&2; fail "stderr of '$*' does not match '$re'"; }
	[ "$(grep -c . "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "'$*' printed more than one line on stderr"; }
	return 0
}

# A detached VM with its console in a file: start_vm NAME ARGS...
start_vm() {
	local name=$1
	shift
	"$HVCTL" run --detach --name "$name" --console "file:$T/$name.console" "$@" >/dev/null ||
		fail "hvctl run --detach $name failed"
}

# The heartbeat counter of memtouch: last "pages=" value in the console file.
last_pages() {
	grep -Eo 'pages=[0-9]+' "$1" | tail -n 1 | cut -d= -f2
}

# ---- Migration helpers (t_migrate.sh, t_migrate_netns.sh) ----

# mig_receiver NAME HOST:PORT CONSOLE [ARGS...]: a detached 'hvctl receive' (returns once
# listening) whose guest will be called NAME and write its console to file CONSOLE.
mig_receiver() {
	local name=$1 addr=$2 console=$3
	shift 3
	"$HVCTL" receive --listen "$addr" --name "$name" --console "file:$console" --timeout 60 \
		--detach "$@" >/dev/null || fail "hvctl receive --listen $addr --name $name failed"
}

# mig_receiver_bg NAME PORT [ARGS...]: 'hvctl receive' on 127.0.0.1:PORT in the background,
# not detached, so that its stderr (the destination's log) lands in $T/NAME.rerr and its exit
# status can be waited for (pid in RPID); returns once it listens.
mig_receiver_bg() {
	local name=$1 port=$2 i
	shift 2
	"$HVCTL" receive --listen "127.0.0.1:$port" --name "$name" --console "file:$T/$name.console" \
		--timeout 60 "$@" >"$T/$name.rout" 2>"$T/$name.rerr" &
	RPID=$!
	echo "$RPID" >>"$T/pids"
	for ((i = 0; i < 500; i++)); do
		ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
		kill -0 "$RPID" 2>/dev/null || { cat "$T/$name.rerr" >&2; fail "hvctl receive $name ended at once"; }
		sleep 0.02
	done
	fail "hvctl receive $name does not listen on 127.0.0.1:$port"
}

# mig_unused_port BASE: a port on 127.0.0.1 that nothing listens on, from BASE up.
mig_unused_port() {
	local p=$1
	while ss -Htln "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
	echo "$p"
}

# mig_migrate NAME HOST:PORT [OPTIONS...]: a migration that must succeed; the summary goes to
# $T/mig.out (stderr to $T/mig.err).
mig_migrate() {
	local name=$1 addr=$2
	shift 2
	"$HVCTL" migrate "$name" "$addr" "$@" >"$T/mig.out" 2>"$T/mig.err" ||
		{ cat "$T/mig.out" "$T/mig.err" >&2; fail "hvctl migrate $name $addr $* failed"; }
	grep -q "^migrated $name to $addr" "$T/mig.out" ||
		{ cat "$T/mig.out" >&2; fail "hvctl migrate $name $addr: no summary"; }
}

# mig_summary_pages FILE zero|raw|compressed: a page count from a migrate summary.
mig_summary_pages() {
	local n
	n=$(sed -nE "s/^ *pages +([0-9]+) zero, ([0-9]+) raw, ([0-9]+) compressed.*/\1 \2 \3/p" "$1" |
		awk -v k="$2" '{ print (k == "zero") ? $1 : (k == "raw") ? $2 : $3 }')
	[ -n "$n" ] || { cat "$1" >&2; fail "no 'pages' line in the summary $1"; }
	echo "$n"
}

# mig_summary_wire_bytes FILE: the "on the wire" figure of a migrate summary, in bytes.
mig_summary_wire_bytes() {
	awk '/^ *on the wire/ { m = 1; split("B KiB MiB GiB TiB", u, " ");
		for (i = 1; i <= 5; i++) if ($5 == u[i]) m = 1024 ^ (i - 1);
		printf "%.0f\n", $4 * m }' "$1"
}

# mig_vm_pid NAME: the process id of running VM NAME.
mig_vm_pid() {
	"$HVCTL" status "$1" --json | grep -Eo '"pid": *[0-9]+' | grep -Eo '[0-9]+$'
}

# mig_pid_alive PID: process PID exists and has not exited (a zombie waiting for its parent
# to reap it has exited).
mig_pid_alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# mig_wait_pid_gone PID SECS: until process PID has exited, or fail.
mig_wait_pid_gone() {
	local pid=$1 secs=${2:-5} i
	for ((i = 0; i < secs * 20; i++)); do
		mig_pid_alive "$pid" || return 0
		sleep 0.05
	done
	fail "process $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)) still exists after ${secs}s"
}

# mig_field FILE PREFIX KEY: KEY's value in the last complete line (ended by a newline: the
# guest may be in the middle of one) of FILE that starts with PREFIX.
mig_field() {
	local file=$1 prefix=$2 key=$3
	# -a: one stray non-text byte in a console would make grep print "binary file matches".
	complete_lines "$file" | grep -aE "^$prefix" | tail -n 1 | grep -aEo "(^| )$key=[^ ]+" | cut -d= -f2
}

# complete_lines FILE: FILE without a last line the guest is still writing (its serial
# output arrives a byte at a time, so a number at the end of that line may be cut short).
complete_lines() {
	local s
	# One read of the file: checking its end and then reading it again let a line that grew in
	# between through half written.
	s=$(cat "$1" 2>/dev/null; printf x) 2>/dev/null
	s=${s%x}
	if [[ "$s" == *$'\n' ]]; then
		printf '%s' "$s"
	elif [[ "$s" == *$'\n'* ]]; then
		printf '%s\n' "${s%$'\n'*}"
	fi
}

# mig_first_field FILE PREFIX KEY: KEY's value in the first line of FILE starting with PREFIX.
# Waits (up to 5 s) for that line to be complete.
mig_first_field() {
	local line i
	for ((i = 0; i < 100; i++)); do
		line=$(complete_lines "$1" | grep -aE -m 1 "^$2") || true
		[ -n "$line" ] && break
		sleep 0.05
	done
	grep -Eo "(^| )$3=[^ ]+" <<<"$line" | cut -d= -f2
}

# mig_wait_field_above FILE PREFIX KEY VALUE SECS: until KEY (last complete PREFIX line)
# exceeds VALUE, or fail.
mig_wait_field_above() {
	local file=$1 prefix=$2 key=$3 min=$4 secs=${5:-10} i v
	for ((i = 0; i < secs * 20; i++)); do
		v=$(mig_field "$file" "$prefix" "$key")
		[ -n "$v" ] && [ "$v" -gt "$min" ] && return 0
		mig_no_corrupt "$file" # a guest that has stopped will not get there
		sleep 0.05
	done
	echo "--- $file:" >&2
	tail -n 10 "$file" >&2 2>/dev/null
	fail "$key in '$prefix' lines of $file did not exceed $min within ${secs}s (last: ${v:-none})"
}

# mig_no_corrupt FILE...: no guest reported a corrupt page or crashed.
mig_no_corrupt() {
	local f
	for f in "$@"; do
		if grep -Eq 'CORRUPT|FATAL|hv-guest: exit [1-9]' "$f" 2>/dev/null; then
			grep -E -m 3 'CORRUPT|FATAL|exit' "$f" >&2
			fail "the guest reported a problem in $f"
		fi
	done
	return 0
}

# mig_check_memtouch_continues SRC_CONSOLE DST_CONSOLE: after a migration, memtouch goes on
# at the destination where it stopped at the source (tick, gen and pages move on: no restart),
# verifies at least one whole sweep there, lives 2 s of guest time, and nothing is corrupt.
mig_check_memtouch_continues() {
	local src=$1 dst=$2 hb='memtouch: tick=' st sg sp dt dg dp gap
	st=$(mig_field "$src" "$hb" tick)
	sg=$(mig_field "$src" "$hb" gen)
	sp=$(mig_field "$src" "$hb" pages)
	[ -n "$sp" ] || fail "no memtouch heartbeat from the source in $src"
	wait_for "$dst" "^$hb" 10
	dt=$(mig_first_field "$dst" "$hb" tick)
	dg=$(mig_first_field "$dst" "$hb" gen)
	dp=$(mig_first_field "$dst" "$hb" pages)
	gap=$(mig_first_field "$dst" "$hb" maxgap_us)
	echo "source last: tick=$st gen=$sg pages=$sp; destination first: tick=$dt gen=$dg pages=$dp maxgap_us=$gap"
	[ "$dt" -gt "$st" ] || fail "guest ticks went back: source tick=$st, destination tick=$dt"
	[ "$dg" -ge "$sg" ] || fail "memtouch generation went back: source gen=$sg, destination gen=$dg"
	[ "$dp" -gt "$sp" ] || fail "memtouch restarted: source pages=$sp, destination pages=$dp"
	[ "$gap" -lt 5000000 ] || fail "the guest stood still ${gap} us around the switchover"
	mig_wait_field_above "$dst" "$hb" gen $((dg + 1)) 20  # a whole sweep checked here
	mig_wait_field_above "$dst" "$hb" tick $((dt + 200)) 10 # 2 s of guest time
	mig_no_corrupt "$src" "$dst"
}

# faultproxy_start MAX_SECS TARGET_PORT LOG [OPTIONS...]: a faultproxy (tests/tools) on an
# ephemeral loopback port serving one connection to TARGET_PORT; sets PPORT and PPID_ and
# records the pid in $T/pids for cleanup.
faultproxy_start() {
	local secs=$1 target=$2 log=$3 i
	shift 3
	"$FAULTPROXY" 0 "127.0.0.1:$target" --once --max-seconds "$secs" "$@" >"$log" 2>&1 &
	PPID_=$!
	echo "$PPID_" >>"$T/pids"
	for ((i = 0; i < 250; i++)); do
		PPORT=$(sed -nE 's/^faultproxy: listening on 127\.0\.0\.1:([0-9]+)$/\1/p' "$log" 2>/dev/null || true)
		[ -n "$PPORT" ] && return 0
		sleep 0.02
	done
	cat "$log" >&2
	fail "faultproxy did not start"
}

# blk_mem_gen CONSOLE: the generation of blkcheck's memory working set (ws=) in CONSOLE's
# last heartbeat, 0 before the first.
blk_mem_gen() {
	sed -n 's/^blkcheck: pass=.* mem_gen=\([0-9]*\) .*/\1/p' "$1" | tail -n 1 | grep . || echo 0
}

# blk_mem_went_on CONSOLE GEN: blkcheck's memory working set in CONSOLE went at least two
# generations past GEN (every page checked and rewritten at least once since then), with no
# corruption seen.
blk_mem_went_on() {
	local console=$1 gen=$2
	for _ in $(seq 300); do
		[ "$(blk_mem_gen "$console")" -ge $((gen + 2)) ] && break
		grep -q '^blkcheck: done' "$console" && break
		sleep 0.2
	done
	! grep -q CORRUPT "$console" || fail "the guest found corruption in memory or on disk"
	[ "$(blk_mem_gen "$console")" -ge $((gen + 2)) ] ||
		fail "the memory working set went from generation $gen only to $(blk_mem_gen "$console")"
}

# blk_finished NAME CONSOLE IMAGE PASSES [OTHER_CONSOLE] [BLOCKS]: blkcheck in VM NAME
# (console CONSOLE) finished all PASSES (any: a secs= run) with no corruption seen (in either console), and once
# the VM is gone, every block of IMAGE verifies from the host (BLOCKS: its blocks= option,
# default 16384, a whole 64 MiB disk).
blk_finished() {
	local name=$1 console=$2 image=$3 passes=$4 other=${5:-$2} blocks=${6:-16384} gen
	wait_for "$console" '^blkcheck: done gen=' 120
	! grep -q CORRUPT "$other" "$console" || fail "the guest found corruption"
	gen=$(sed -n 's/^blkcheck: done gen=\([0-9]*\) .*/\1/p' "$console")
	# "any": a run bounded by secs=, as many passes as it made.
	[ "$gen" = "$passes" ] || { [ "$passes" = any ] && [ "${gen:-0}" -ge 1 ]; } ||
		fail "final generation '$gen', expected $passes"
	# Let the guest's exit finish, then check the image from the host.
	for _ in $(seq 50); do [ -e "$HV_RUN_DIR/$name.sock" ] || break; sleep 0.1; done
	"${BLKVERIFY:-$PWD/$BUILD/tools/blkverify}" "$image" "$blocks" "$gen" >"$T/v" ||
		{ cat "$T/v"; fail "host-side check failed"; }
	grep -q "^blkverify: blocks=$blocks ok=$blocks bad=0\$" "$T/v" || { cat "$T/v"; fail "not every block verified"; }
}

# tls_pki: a CA, another CA, and certificates signed by them in $T/pki: dst (127.0.0.1 and
# localhost), src (src.lab), rogue (127.0.0.1, by the other CA), old (src.lab, expired in 2020).
tls_pki() {
	local d=$T/pki
	mkdir -p "$d/db"
	(
		cd "$d" || exit 1
		for ca in ca otherca; do
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key \
				-out $ca.crt -days 30 -subj "/CN=hv test $ca" 2>/dev/null || exit 1
		done
		cert() { # NAME CA SAN
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
				-out "$1.csr" -subj "/CN=$1" 2>/dev/null || exit 1
			printf 'subjectAltName=%s\n' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" \
				-days 30 -extfile "$1.ext" 2>/dev/null || exit 1
		}
		cert dst ca "IP:127.0.0.1,DNS:localhost"
		cert src ca "DNS:src.lab"
		cert rogue otherca "IP:127.0.0.1"
		# An expired certificate needs explicit dates: 'openssl ca' can set them.
		: >db/index.txt
		echo 01 >db/serial
		printf '[ca]\ndefault_ca=t\n[t]\ndatabase=db/index.txt\nnew_certs_dir=db\nserial=db/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' >ca.cnf
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout old.key -out old.csr \
			-subj "/CN=old" 2>/dev/null || exit 1
		openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in old.csr -out old.crt \
			-startdate 20200101000000Z -enddate 20200201000000Z -extfile src.ext >/dev/null 2>&1 || exit 1
		chmod 600 ./*.key
	) || fail "cannot make test certificates with openssl"
}
