/* The narration of hvctl migrate --explain (migrate_explain.h). */
#include "tools/migrate_explain.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hv/printable.h"
#include "tools/migrate_event.h"

#define PAGE 4096.0
#define MIB (1024.0 * 1024.0)

/* "41.0 MiB", "1.2 GiB", "512 KiB". */
static void size_text(char *b, size_t len, double bytes)
{
	if (bytes >= 1024 * MIB)
		snprintf(b, len, "%.1f GiB", bytes / (1024 * MIB));
	else if (bytes >= MIB)
		snprintf(b, len, "%.1f MiB", bytes / MIB);
	else
		snprintf(b, len, "%.0f KiB", bytes / 1024);
}

static void rate_text(char *b, size_t len, double mibs)
{
	if (mibs >= 1024)
		snprintf(b, len, "%.1f GiB/s", mibs / 1024);
	else
		snprintf(b, len, "%.0f MiB/s", mibs);
}

/* Milliseconds as a person says them: "22 ms", "4.5 ms". */
static void ms_text(char *b, size_t len, double ms)
{
	snprintf(b, len, ms >= 10 || ms == floor(ms) ? "%.0f ms" : "%.1f ms", ms);
}

/* Every line of buf cut to the projector's width (a value can be absurdly long). */
static size_t finish(char *buf, size_t len, int n)
{
	char *line = buf, *nl;

	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	for (;;) {
		nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		if (l > MIGRATE_EXPLAIN_COLUMNS)
			memmove(line + MIGRATE_EXPLAIN_COLUMNS, line + l, strlen(line + l) + 1);
		if (!nl)
			break;
		line = strchr(line, '\n') + 1;
	}
	return strlen(buf);
}

static size_t round_end(struct migrate_explain *x, struct json_object *ev, char *buf, size_t len)
{
	char dirty[24], sent[24], rate[24], est[32], limit[32], verdict[128], throttle[96] = "";
	double round = event_num(ev, "round"), est_ms = event_num(ev, "expected_downtime_ms");
	const char *next = event_str(ev, "next");

	size_text(dirty, sizeof(dirty), event_num(ev, "remaining_pages") * PAGE);
	size_text(sent, sizeof(sent), event_num(ev, "round_bytes"));
	rate_text(rate, sizeof(rate), event_num(ev, "rate_mibs"));
	ms_text(est, sizeof(est), est_ms);
	ms_text(limit, sizeof(limit), x->limit_ms);
	/* Kept short: the second line must fit 100 columns with a rate and a time before it. */
	if (!strcmp(next, "give-up"))
		snprintf(verdict, sizeof(verdict), "over the %s limit, no rounds left: give up", limit);
	else if (!strcmp(next, "postcopy"))
		snprintf(verdict, sizeof(verdict), "post-copy: it starts there now, the rest follows");
	else if (strcmp(next, "switchover") && est_ms <= x->limit_ms)
		snprintf(verdict, sizeof(verdict), "fits the %s limit, still shrinking: one more round", limit);
	else if (strcmp(next, "switchover"))
		snprintf(verdict, sizeof(verdict), "over the %s limit: another round", limit);
	else if (est_ms <= x->limit_ms)
		snprintf(verdict, sizeof(verdict), "fits the %s limit: switch over now", limit);
	else if (round + 1 >= x->max_rounds)
		snprintf(verdict, sizeof(verdict), "over the %s limit, no rounds left: switch over", limit);
	else
		snprintf(verdict, sizeof(verdict), "over the %s limit, not shrinking: switch over", limit);
	double pct = event_num(ev, "throttle_pct");
	if (pct != x->throttle_pct && pct > 0 && pct <= 100)
		snprintf(throttle, sizeof(throttle), "\n  the guest outruns the link: its vCPUs are held back %.0f%% of the time",
			 pct);
	x->throttle_pct = pct;
	return finish(buf, len,
		      snprintf(buf, len, "round %.0f: the guest rewrote %s while we sent %s\n"
					 "  at %s the rest would take %s: %s%s",
			       round, dirty, sent, rate, est, verdict, throttle));
}

size_t migrate_explain_event(struct migrate_explain *x, struct json_object *ev, char *buf, size_t len)
{
	const char *kind = event_str(ev, "event");
	char a[24], b[24], why[MIGRATE_EXPLAIN_COLUMNS + 1];

	if (!len)
		return 0;
	buf[0] = '\0';
	if (!strcmp(kind, "migration-done")) {
		struct json_object *sw = event_member(ev, "switchover");
		return finish(buf, len,
			      snprintf(buf, len, "done: paused %.1f ms (pause %.1f, last pages %.1f, state %.1f, "
						 "load there %.1f); it runs there now",
				       event_num(ev, "downtime_ms"), event_num(sw, "pause_ms"), event_num(sw, "last_pages_ms"),
				       event_num(sw, "state_ms"), event_num(sw, "load_ms")));
	}
	if (!strcmp(kind, "migration-failed")) {
		printable(why, sizeof(why), event_str(ev, "error"));
		return finish(buf, len, snprintf(buf, len, "failed, the guest keeps running here: %s", why));
	}
	if (strcmp(kind, "migration"))
		return 0;
	if (!strcmp(event_str(ev, "phase"), "precopy") && !x->started) {
		x->started = true;
		size_text(a, sizeof(a), event_num(ev, "round_pages") * PAGE);
		size_text(b, sizeof(b), event_num(ev, "ram_pages") * PAGE);
		return finish(buf, len,
			      snprintf(buf, len, "round 0: the guest keeps running while we copy the %s it has "
						 "touched (of %s of RAM)",
				       a, b));
	}
	if (event_flag(ev, "round_end"))
		return round_end(x, ev, buf, len);
	return 0;
}
