# Helpers for integration tests. Each test runs in its own shell with its own HV_RUN_DIR
# and scratch directory ($T), and everything it started is killed when it ends.
HVCTL=${HVCTL:-$PWD/$BUILD/hvctl}
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
