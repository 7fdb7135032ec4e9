# What 'hvctl migrate' shows on a real terminal: a tmux pane of a given width runs a slow
# migration (--bandwidth 50M, 192 MiB of incompressible memory, 20 MiB/s rewritten: round 0
# lasts ~4 s, the rounds after it 1.6 s, 0.6 s, ...) and is
# captured every 0.2 s. The bar must grow within a round, never reach the last column, never
# wrap, and the summary must follow. Ports 472xx.

# bar_sample CAPTURE COLS: checks one screen capture (tmux capture-pane -pJ: wrapped lines
# joined, so a wrapped line is longer than the pane) and prints the bar line's
# "ROUND FILL WIDTH" (nothing if no bar is on the screen).
bar_sample() {
	local cap=$1 cols=$2 long
	long=$(sed 's/ *$//' "$cap" | awk -v c="$cols" 'length($0) >= c')
	[ -z "$long" ] || { cat "$cap" >&2; fail "a line reaches column $cols or wraps: '$long'"; }
	grep -m 1 '^\[' "$cap" | awk '{
		inner = substr($0, 2, index($0, "]") - 2)
		fill = gsub(/#/, "#", inner)
		round = "other"
		if (match($0, /round [0-9]+/)) round = substr($0, RSTART + 6, RLENGTH - 6)
		print round, fill, length(inner)
	}'
}

# bar_case COLS NAME PORT: migrates a memtouch guest NAME from a tmux pane COLS wide, to a
# receiver on the first free port from PORT up.
bar_case() {
	local cols=$1 name=$2 port sock="$T/tmux.sock" i cap s=$T/samples done_=0
	port=$(mig_unused_port "$3")
	start_vm "$name" --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=192M fill=full rate=20"
	mig_wait_field_above "$T/$name.console" 'memtouch: tick=' gen 1 30 # all 192M written once
	mig_receiver "$name-dst" 127.0.0.1:$port "$T/$name-dst.console"
	printf '#!/bin/bash\ntmux -S %q kill-server 2>/dev/null\nexit 0\n' "$sock" >"$T/cleanup"
	chmod +x "$T/cleanup"
	trap '"$T/cleanup"' EXIT
	tmux -S "$sock" -f /dev/null new-session -d -s bar -x "$cols" -y 12 \
		"$(printf 'HV_RUN_DIR=%q %q migrate %q 127.0.0.1:%d --bandwidth 50M; echo hvctl-exit=$?; sleep 120' \
			"$HV_RUN_DIR" "$HVCTL" "$name" "$port")" || fail "cannot start tmux"
	: >"$s"
	for ((i = 0; i < 150; i++)); do
		cap="$T/cap.$i"
		tmux -S "$sock" capture-pane -p -J -t bar >"$cap" 2>/dev/null || fail "tmux capture-pane failed"
		bar_sample "$cap" "$cols" >>"$s"
		if grep -q '^hvctl-exit=' "$cap"; then done_=1; break; fi
		sleep 0.2
	done
	[ $done_ = 1 ] || { cat "$cap"; fail "hvctl migrate did not end within 30 s"; }
	echo "--- last screen at $cols columns:"
	cat "$cap"
	echo "--- bar samples (round fill width):"
	tr '\n' ';' <"$s"
	echo
	grep -q '^hvctl-exit=0' "$cap" || fail "hvctl migrate failed"
	grep -q "^migrated $name to 127.0.0.1:$port" "$cap" || fail "no summary after the bar"
	grep -q '^  downtime' "$cap" || fail "the summary lacks the downtime"
	# The bar: seen part-filled in round 0, growing within a round and never shrinking there,
	# the same length all round.
	awk '
		$1 == 0 && $2 > 0 && $2 < $3 { partial = 1 }
		NR > 1 && $1 == r && $3 != w { print "bar length changed within round " r ": " w " -> " $3; bad = 1 }
		NR > 1 && $1 == r && $2 < f { print "bar shrank within round " r ": " f " -> " $2; bad = 1 }
		NR > 1 && $1 == r && $2 > f { grew = 1 }
		{ r = $1; f = $2; w = $3 }
		END {
			if (!partial) print "round 0 never shown part-filled"
			if (!grew) print "the bar never grew within a round"
			exit bad || !partial || !grew
		}' "$s" || fail "the bar does not show the progress of the round"
	mig_no_corrupt "$T/$name.console" "$T/$name-dst.console"
}

test_migrate_bar_80_columns() {
	bar_case 80 bar80 47201
	# At 80 columns: the round, time left and rate still fit.
	grep -q '^\[#*\.*\]  *[0-9]*%  round [0-9]*  ETA [^ ]*  [0-9.]* MiB/s' "$T"/cap.* ||
		fail "no 80-column bar with round, ETA and rate"
}

test_migrate_bar_120_columns() {
	bar_case 120 bar120 47211
	# The width is the terminal's: at 120 columns there is room for what was sent.
	grep -q '^\[.*round [0-9].*  sent [0-9]' "$T"/cap.* || fail "no 120-column bar with the bytes sent"
}
