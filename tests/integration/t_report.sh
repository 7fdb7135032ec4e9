# The migration report (hvctl migrate --report, hvctl report) and explain mode: the page a
# real browser renders (Debian's chromium, headless) with no console errors, one chart point
# per pre-copy round, and the summary's numbers equal to the final --json event.
EVENTS_REC=$PWD/tests/data/migration-events.jsonl

# json_num FILE KEY: KEY's number in the last line of FILE that has it (a --json log's final event).
json_num() {
	grep "\"$2\":" "$1" | tail -n 1 | grep -Eo "\"$2\":-?[0-9.eE+-]+" | head -n 1 | cut -d: -f2
}

# html_value FILE ID: the data-value of the report's summary cell ID.
html_value() {
	grep -Eo "id=\"$2\" data-value=\"[^\"]*\"" "$1" | head -n 1 | sed 's/.*data-value="\([^"]*\)"/\1/'
}

# same_number A B: equal to a millionth.
same_number() {
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d < 1e-6) }'
}

# report_matches_events HTML EVENTS: the summary is the final event, each line chart has one
# point per round that ended in EVENTS, the pages chart has every round and the switchover.
report_matches_events() {
	local html=$1 ev=$2 rounds k pts
	for k in elapsed_ms downtime_ms wire_bytes zero_pages raw_pages zlib_pages; do
		same_number "$(html_value "$html" $k)" "$(json_num "$ev" $k)" ||
			fail "the report's $k ($(html_value "$html" $k)) is not the final event's ($(json_num "$ev" $k))"
	done
	[ "$(html_value "$html" rounds)" = "$(($(json_num "$ev" round) + 1))" ] || fail "the report's round count is wrong"
	rounds=$(grep -c '"round_end":true' "$ev")
	[ "$rounds" -ge 1 ] || fail "no round ended in $ev"
	for k in rate dirty left estimate limit; do
		pts=$(grep -Eo "data-series=\"$k\" points=\"[^\"]*\"" "$html" | grep -o ',' | wc -l)
		[ "$pts" -eq "$rounds" ] || fail "chart series $k has $pts points for $rounds rounds"
	done
	[ "$(grep -Eo 'data-round="[0-9]+"' "$html" | sort -u | wc -l)" -eq $((rounds + 1)) ] ||
		fail "the pages chart does not have a bar for every round and the switchover"
}

# browser_render HTML: Debian's chromium, headless, renders HTML to $T/page.png and its DOM
# to $T/dom.html; nothing it logs may come from the page (a script error, a failed load).
browser_render() {
	command -v chromium >/dev/null || fail "chromium is not installed (tools/install-deps.sh installs it)"
	local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
		--disable-background-networking --disable-component-update --disable-sync
		--user-data-dir="$T/chromium" --enable-logging=stderr --v=0)
	timeout 90 chromium "${flags[@]}" --window-size=1100,2600 --screenshot="$T/page.png" "file://$1" \
		>/dev/null 2>"$T/chromium.err" || { tail -n 20 "$T/chromium.err"; fail "chromium could not render $1"; }
	timeout 90 chromium "${flags[@]}" --dump-dom "file://$1" >"$T/dom.html" 2>>"$T/chromium.err" ||
		fail "chromium could not load $1"
	! grep -E 'CONSOLE|Failed to load|Uncaught' "$T/chromium.err" || fail "the page logged errors in the browser"
	[ "$(stat -c %s "$T/page.png")" -gt 20000 ] || fail "the screenshot is nearly empty"
	grep -q '<svg' "$T/dom.html" || fail "the browser's DOM has no chart"
}

test_report_of_recorded_events_in_a_browser() {
	"$HVCTL" report "$EVENTS_REC" "$T/r.html" || fail "hvctl report failed"
	[ "$(stat -c %a "$T/r.html")" = 644 ] || fail "the report has mode $(stat -c %a "$T/r.html")"
	ls "$T" | grep -q 'r.html.' && fail "a temporary file was left"
	browser_render "$T/r.html"
	report_matches_events "$T/dom.html" "$EVENTS_REC"
	grep -q 'That fits the 30 ms limit, so hv switched over' "$T/dom.html" || fail "no paragraph on why it converged"
}

test_report_refusals() {
	expect_error "cannot read events '$T/none.jsonl': No such file" "$HVCTL" report "$T/none.jsonl" "$T/r.html"
	echo "not json" >"$T/text"
	expect_error "holds no migration events" "$HVCTL" report "$T/text" "$T/r.html"
	head -n 3 "$EVENTS_REC" >"$T/cut.jsonl"
	expect_error "ends before the migration did" "$HVCTL" report "$T/cut.jsonl" "$T/r.html"
	expect_error "cannot write the report '$T/no/r.html'" "$HVCTL" report "$EVENTS_REC" "$T/no/r.html"
	expect_error "usage: hvctl report EVENTS FILE.html" "$HVCTL" report "$EVENTS_REC"
	[ ! -e "$T/r.html" ] || fail "a refused report left a file"
	# Checked before anything moves: the VM need not even exist for these.
	expect_error "--report '$T/no/r.html': cannot write in directory '$T/no'" \
		"$HVCTL" migrate somevm 127.0.0.1:1 --report "$T/no/r.html"
	expect_error "--json and --explain both write to standard output" \
		"$HVCTL" migrate somevm 127.0.0.1:1 --json --explain
}

# A real migration with --json and --report: the page matches the events; then one with
# --explain, narrated in lines a projector shows whole.
test_report_and_explain_of_a_real_migration() {
	local port
	port=$(mig_unused_port 47261)
	start_vm rp --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M rate=100"
	mig_wait_field_above "$T/rp.console" 'memtouch: tick=' gen 1 15
	mig_receiver rp-dst 127.0.0.1:$port "$T/rp-dst.console"
	"$HVCTL" migrate rp 127.0.0.1:$port --json --report "$T/rp.html" >"$T/rp.json" 2>"$T/err" ||
		{ cat "$T/err"; fail "migrate --json --report failed"; }
	[ -s "$T/rp.html" ] || fail "no report"
	report_matches_events "$T/rp.html" "$T/rp.json"
	if command -v chromium >/dev/null; then
		browser_render "$T/rp.html"
		report_matches_events "$T/dom.html" "$T/rp.json"
	fi
	"$HVCTL" stop rp-dst >/dev/null
	port=$(mig_unused_port $((port + 1)))
	start_vm ex --kernel "$GUEST" --mem 256M --cmdline "prog=memtouch ws=32M rate=100"
	mig_wait_field_above "$T/ex.console" 'memtouch: tick=' gen 1 15
	mig_receiver ex-dst 127.0.0.1:$port "$T/ex-dst.console"
	"$HVCTL" migrate ex 127.0.0.1:$port --explain >"$T/ex.out" 2>"$T/err" || { cat "$T/err"; fail "migrate --explain failed"; }
	cat "$T/ex.out"
	awk 'length > 100 { exit 1 }' "$T/ex.out" || fail "explain printed a line wider than 100 columns"
	grep -q '^round 0: the guest keeps running while we copy the ' "$T/ex.out" || fail "no round 0 line"
	grep -Eq '^  at .* the rest would take .*(another round|switch over)' "$T/ex.out" || fail "no verdict line"
	grep -q '^done: paused ' "$T/ex.out" || fail "no done line"
	grep -q '^migrated ex to ' "$T/ex.out" || fail "no summary after the narration"
	"$HVCTL" stop ex-dst >/dev/null
}
