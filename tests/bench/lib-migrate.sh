# Shared by the migration benchmarks (bench-migrate.sh, bench-distance.sh): one hv migration
# or one QEMU migration of the same guest, as a markdown table row. The caller sets BUILD,
# HVCTL, GUEST, W (a work directory), HV_RUN_DIR and port.
recv_args=()
qemu_tls=0
via_delay_ms=0 # through faultproxy --delay-ms (each way) when not 0
FAULTPROXY=$PWD/$BUILD/tools/faultproxy

field() { sed -n "s/^  $1 *\([0-9.]*\).*/\1/p" "$2"; }

# row LABEL TOTAL DOWN GAP ROUNDS WIRE SPEED CONVERGED
row() { printf '| %-46s | %9s | %9s | %10s | %6s | %12s | %7s | %s |\n' "$@"; }

# guest_speed LOG FROM_LINE: memtouch's write rate while it was migrated (its heartbeats after
# line FROM_LINE) as a percentage of its rate just before, or "-": what dirty tracking,
# throttling and the sender's CPU cost the guest.
guest_speed() {
	awk -v from="$2" '/memtouch: tick=/ { r = $0; sub(/.* rate=/, "", r); sub(/ .*/, "", r)
		if (NR <= from) before = r; else { sum += r; n++ } }
		END { if (before > 0 && n) printf "%.0f%%", 100 * sum / n / before; else print "-" }' "$1"
}

# max_gap LOG: the guest's longest stop in ms (memtouch's maxgap_us, its first heartbeats
# after arriving), or "-".
max_gap() {
	grep -Eo 'maxgap_us=[0-9]+' "$1" 2>/dev/null | head -n 3 | cut -d= -f2 | sort -n | tail -n 1 |
		awk '{ printf "%.1f", $1 / 1000; n = 1 } END { if (!n) print "-" }'
}

# via_proxy PORT: the port to migrate to: PORT, or a faultproxy in front of it that holds
# every chunk via_delay_ms each way (one connection).
via_proxy() {
	[ "$via_delay_ms" -eq 0 ] && { echo "$1"; return; }
	"$FAULTPROXY" 0 "127.0.0.1:$1" --delay-ms "$via_delay_ms" --once >"$W/proxy.log" 2>&1 &
	for _ in $(seq 100); do
		sed -n 's/^faultproxy: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$W/proxy.log" | grep . && return
		sleep 0.05
	done
}

# migrate_one LABEL "GUEST ARGS" MEM [migrate options...]: prints a table row.
migrate_one() {
	local label=$1 cmdline=$2 mem=$3
	shift 3
	port=$((port + 1))
	"$HVCTL" run --detach --name src --mem "$mem" --console "file:$W/src.log" --kernel "$GUEST" \
		--cmdline "$cmdline" >/dev/null || return
	for _ in $(seq 100); do grep -q READY "$W/src.log" 2>/dev/null && break; sleep 0.1; done
	# A guest that fills its memory once (sweeps=) is measured after it went quiet.
	if [[ "$cmdline" == *sweeps=* ]]; then
		for _ in $(seq 200); do grep -q "rate=0 maxgap" "$W/src.log" && break; sleep 0.1; done
	fi
	sleep 1
	"$HVCTL" receive --listen "127.0.0.1:$port" --name dst --console "file:$W/dst.log" --timeout 60 --detach \
		"${recv_args[@]}"
	local rc=0 to from speed
	to=$(via_proxy "$port")
	from=$(wc -l <"$W/src.log")
	"$HVCTL" migrate src "127.0.0.1:$to" "$@" >"$W/sum" 2>"$W/err" || rc=$?
	speed=$(guest_speed "$W/src.log" "$from")
	sleep 0.6
	if [ $rc -eq 0 ]; then
		local total=$(field "total time" "$W/sum") down=$(field downtime "$W/sum") rounds=$(field rounds "$W/sum")
		local wire=$(sed -n 's/^  on the wire *//p' "$W/sum")
		row "$label" "$total" "$down" "$(max_gap "$W/dst.log")" "$rounds" "$wire" "$speed" "yes"
	else
		row "$label" "-" "-" "-" "-" "-" "-" "no: $(head -c 60 "$W/err")"
	fi
	"$HVCTL" stop dst >/dev/null 2>&1
	"$HVCTL" stop src >/dev/null 2>&1
	wait
	rm -f "$W"/*.log
}

# qemu_one LABEL "GUEST ARGS" MEM READY_TEXT [AFTER_TEXT]: the same guest migrated by QEMU, as
# a row; with AFTER_TEXT (a line the guest prints on the destination), the guest's stop too.
# QEMU_MIGRATE_CAPS / QEMU_MIGRATE_DOWNTIME_MS in the environment pass through.
qemu_one() {
	local r total down bytes gap=-
	if ! command -v qemu-system-x86_64 >/dev/null || ! command -v python3 >/dev/null; then
		row "QEMU: $1" "-" "-" "-" "-" "-" "-" "(QEMU or python3 not installed)"
		return
	fi
	mkdir -p "$W/q"
	r=$(QEMU_MIGRATE_TLS=$qemu_tls QEMU_MIGRATE_DELAY_MS=$([ "$via_delay_ms" -ne 0 ] && echo "$via_delay_ms") \
		FAULTPROXY=$FAULTPROXY tests/bench/qemu-migrate.py "$GUEST" "$2" "$3" "$4" "$W/q" ${5:+"$5"} 2>"$W/q/err")
	read -r total down bytes <<<"$r"
	[ -n "${5:-}" ] && gap=$(max_gap "$W/q/qdst.log")
	rm -rf "$W/q"
	[ "$total" = "-" ] && { row "QEMU: $1" - - - - - - "failed"; return; }
	row "QEMU $qemu_ver: $1" "$total" "$down" "$gap" "-" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }')" "-" "yes"
}
qemu_ver=$(command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1 | awk '{print $4}')
