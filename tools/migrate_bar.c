#include "tools/migrate_bar.h"

#include <math.h> /* isfinite */
#include <stdio.h>
#include <string.h>

#define PAGE_BYTES 4096.0
#define BAR_MIN 10  /* below this a bar says nothing: it goes */
#define BAR_WANT 16 /* optional fields give way before the bar gets shorter than this */
#define BAR_MAX 40
#define CORE_FIELDS 3 /* percentage, round, time left: kept at BAR_MIN */
/* A rate measured over less than this of the round is mostly the socket buffer filling. */
#define RATE_MIN_MS 200.0
#define FIELD_MAX 48
#define LINE_MAX 512

/* What the peer sent, made safe to print: finite, not negative, not absurdly large. */
static double sane(double v)
{
	if (!isfinite(v) || v < 0)
		return 0;
	return v < 1e15 ? v : 1e15;
}

static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };

/* The binary unit for a number of bytes: its index in units[], and how many bytes it is. */
static int unit_of(double bytes, double *scale)
{
	int i = 0;

	*scale = 1;
	while (bytes / *scale >= 1024 && i < 5) {
		*scale *= 1024;
		i++;
	}
	return i;
}

void migrate_bar_bytes(char *buf, size_t len, double bytes)
{
	double b = sane(bytes), scale;
	int i = unit_of(b, &scale);

	snprintf(buf, len, "%.1f %s", b / scale, units[i]);
}

/* "done/total unit", both in the total's unit. */
static void round_amount(char *buf, size_t len, double done, double total)
{
	double scale;
	int i = unit_of(total, &scale);

	snprintf(buf, len, "%.1f/%.1f %s", done / scale, total / scale, units[i]);
}

/* Whole seconds, rounded up (no libm: secs is small and not negative here). */
static int ceil_secs(double secs)
{
	int s = (int)secs;
	return s + (secs > s);
}

/* "45s", "3m05s", "2h03m": short enough for a narrow line. */
static void duration(char *buf, size_t len, double secs)
{
	if (secs <= 0) {
		snprintf(buf, len, "0s");
	} else if (secs < 1) {
		snprintf(buf, len, "<1s");
	} else if (secs < 60) {
		snprintf(buf, len, "%ds", ceil_secs(secs));
	} else if (secs < 3600) {
		int s = ceil_secs(secs);
		snprintf(buf, len, "%dm%02ds", s / 60, s % 60);
	} else if (secs < 100 * 3600) {
		int m = ceil_secs(secs / 60);
		snprintf(buf, len, "%dh%02dm", m / 60, m % 60);
	} else {
		snprintf(buf, len, ">99h");
	}
}

/* A rate in MiB/s; "--" while unknown. */
static void mibs(char *buf, size_t len, double rate, int known)
{
	if (!known)
		snprintf(buf, len, "-- MiB/s");
	else
		snprintf(buf, len, "%.1f MiB/s", rate < 100000 ? rate : 99999.9);
}

/* Bytes per second this round: measured in the round once it has run long enough, else the
 * last round's figure; 0 when neither is known. */
static double round_rate(const struct migrate_bar_in *in)
{
	double ms = sane(in->round_elapsed_ms), bytes = sane(in->round_bytes);

	if (ms >= RATE_MIN_MS && bytes > 0)
		return bytes / (ms / 1000.0);
	return sane(in->rate_mibs) * 1024 * 1024;
}

/* Seconds until this round has sent what it must: the pages left at this round's wire bytes
 * per page so far (zero pages cost nothing, compressed ones less), at this round's rate.
 * Negative when unknown. */
static double time_left(const struct migrate_bar_in *in, int connecting)
{
	double total = sane(in->round_pages), done = sane(in->round_done_pages);
	double bytes = sane(in->round_bytes), rate = round_rate(in);

	if (connecting)
		return -1;
	if (done >= total)
		return 0;
	if (rate <= 0)
		return -1;
	double per_page = done > 0 && bytes > 0 ? bytes / done : PAGE_BYTES;
	return (total - done) * per_page / rate;
}

size_t migrate_bar_format(const struct migrate_bar_in *in, int columns, char *buf, size_t len)
{
	enum { PCT, ROUND, ETA, RATE, DIRTY, AMOUNT, SENT, DOWNTIME, NFIELDS };
	char f[NFIELDS][FIELD_MAX], tmp[24];
	const char *phase = in->phase ? in->phase : "";
	int connecting = !strcmp(phase, "connect"), switching = !strcmp(phase, "switchover");
	int postcopy = !strcmp(phase, "postcopy");
	double total = sane(in->round_pages), done = sane(in->round_done_pages);
	double round = sane(in->round);
	double rate = round_rate(in);

	if (!buf || !len)
		return 0;
	buf[0] = 0;
	if (done > total)
		done = total;
	/* A round with nothing to send is complete; before the first round nothing is. */
	double frac = connecting ? 0 : total > 0 ? done / total : 1;

	snprintf(f[PCT], FIELD_MAX, " %3d%%", (int)(frac * 100));
	if (connecting || switching || postcopy)
		snprintf(f[ROUND], FIELD_MAX, "  %s", connecting ? "connecting" : switching ? "switchover" : "post-copy");
	else
		snprintf(f[ROUND], FIELD_MAX, "  round %.0f", round < 99999 ? round : 99999);
	double eta = time_left(in, connecting);
	if (eta < 0)
		snprintf(tmp, sizeof(tmp), "--");
	else
		duration(tmp, sizeof(tmp), eta);
	snprintf(f[ETA], FIELD_MAX, "  ETA %s", tmp);
	mibs(tmp, sizeof(tmp), rate / (1024 * 1024), rate > 0);
	snprintf(f[RATE], FIELD_MAX, "  %s", tmp);
	/* Round 0 ends with the first look at the dirty log: until then no dirty rate and no
	 * downtime estimate (the engine's estimate is never 0 once made). */
	int measured = round >= 1 || sane(in->expected_downtime_ms) > 0;
	mibs(tmp, sizeof(tmp), sane(in->dirty_rate_mibs), measured);
	snprintf(f[DIRTY], FIELD_MAX, "  dirty %s", tmp);
	round_amount(tmp, sizeof(tmp), done * PAGE_BYTES, total * PAGE_BYTES);
	snprintf(f[AMOUNT], FIELD_MAX, "  %s", tmp);
	migrate_bar_bytes(tmp, sizeof(tmp), in->wire_bytes);
	snprintf(f[SENT], FIELD_MAX, "  sent %s", tmp);
	double down = sane(in->expected_downtime_ms);
	if (measured)
		snprintf(f[DOWNTIME], FIELD_MAX, "  downtime %.1f ms", down < 1e6 ? down : 999999.0);
	else
		snprintf(f[DOWNTIME], FIELD_MAX, "  downtime -- ms");

	/* Each field takes at least its usual room, so that the bar keeps its length while the
	 * numbers change ("ETA 9s" -> "ETA 1m05s"); the text after it is what varies. */
	static const int usual[NFIELDS] = {
		[PCT] = 5, [ROUND] = 10, [ETA] = 11, [RATE] = 13, [DIRTY] = 19,
		[AMOUNT] = 17, [SENT] = 16, [DOWNTIME] = 19,
	};
	int room[NFIELDS];
	for (int i = 0; i < NFIELDS; i++) {
		int l = (int)strlen(f[i]);
		room[i] = l > usual[i] ? l : usual[i];
	}

	/* Never the last column; never more than the buffer. */
	int usable = columns - 1;
	if (usable < 0)
		usable = 0;
	if (usable > LINE_MAX)
		usable = LINE_MAX;
	if ((size_t)usable > len - 1)
		usable = (int)(len - 1);

	/* As many fields as fit beside a bar of BAR_WANT; the core ones beside BAR_MIN; with no
	 * room even for that, no bar. */
	int bar = BAR_WANT, n = 0, text = 0;
	while (n < NFIELDS && bar + 2 + text + room[n] <= usable)
		text += room[n++];
	if (n < CORE_FIELDS) {
		bar = BAR_MIN;
		while (n < CORE_FIELDS && bar + 2 + text + room[n] <= usable)
			text += room[n++];
	}
	if (bar + 2 + text > usable) {
		bar = 0;
		n = text = 0;
		/* Without the bar the percentage's leading space goes too. */
		while (n < NFIELDS && text + room[n] - (n == 0) <= usable) {
			text += room[n] - (n == 0);
			n++;
		}
	} else {
		bar = usable - 2 - text;
		if (bar > BAR_MAX)
			bar = BAR_MAX;
	}

	size_t pos = 0;
	if (bar) {
		int fill = (int)(frac * bar);
		buf[pos++] = '[';
		for (int i = 0; i < bar; i++)
			buf[pos++] = i < fill ? '#' : '.';
		buf[pos++] = ']';
	}
	for (int i = 0; i < n; i++) {
		const char *s = f[i] + (!bar && i == 0);
		size_t l = strlen(s);
		memcpy(buf + pos, s, l);
		pos += l;
	}
	buf[pos] = 0;
	return pos;
}
