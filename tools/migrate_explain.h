/* hvctl migrate --explain: the migration narrated one line per step, in plain language, with
 * the live numbers ("round 3: the guest rewrote 41.0 MiB while we sent 64.0 MiB; ..."). For a
 * projector: no line longer than MIGRATE_EXPLAIN_COLUMNS. A pure function of the events
 * (docs/control-protocol.md), unit-tested; hvctl prints what it returns. */
#ifndef TOOLS_MIGRATE_EXPLAIN_H
#define TOOLS_MIGRATE_EXPLAIN_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define MIGRATE_EXPLAIN_COLUMNS 100
#define MIGRATE_EXPLAIN_MAX 512 /* a buffer that holds what one event says (three lines at most) */

struct migrate_explain {
	double limit_ms;   /* --downtime */
	double max_rounds; /* --max-rounds */
	bool started;      /* round 0 was announced */
	double throttle_pct; /* --auto-converge: the throttle last said */
};

/* The line (without newline) for event ev, or 0 and "" when the event adds nothing worth
 * saying (a progress report in the middle of a round). Values come from the VM process:
 * any value is safe; the line never exceeds MIGRATE_EXPLAIN_COLUMNS characters. */
size_t migrate_explain_event(struct migrate_explain *x, struct json_object *ev, char *buf, size_t len);

#endif
