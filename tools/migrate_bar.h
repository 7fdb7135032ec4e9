/* The progress line 'hvctl migrate' draws on a terminal: a pure function from one progress
 * event's values and the terminal's width to the text to draw (no I/O, unit-tested). */
#ifndef TOOLS_MIGRATE_BAR_H
#define TOOLS_MIGRATE_BAR_H

#include <stddef.h>

/* The members of one "migration" event that the line shows (docs/control-protocol.md).
 * Numbers come from the peer: any value (negative, NaN, huge) is safe. */
struct migrate_bar_in {
	const char *phase; /* "connect", "precopy", "switchover"; never printed as given */
	double round;
	double round_pages, round_done_pages; /* this round: to go through, done so far */
	double round_bytes, round_elapsed_ms; /* this round: bytes on the wire, time so far */
	double rate_mibs;                     /* the link, measured over the last round */
	double dirty_rate_mibs;               /* the guest, last round (none yet in round 0) */
	double wire_bytes;                    /* the whole migration so far */
	double expected_downtime_ms;
};

/* Writes the line into buf (plain ASCII, at most columns - 1 characters: reaching the last
 * column wraps on many terminals). On a narrow terminal the least useful fields go first:
 * sent and expected downtime, then this round's amount, the dirty rate, the rate; the bar,
 * percentage, round and time left stay longest. Returns the line's length. */
size_t migrate_bar_format(const struct migrate_bar_in *in, int columns, char *buf, size_t len);

/* "12.3 MiB": binary units, one decimal. */
void migrate_bar_bytes(char *buf, size_t len, double bytes);

#endif
