/* Time for the VMM and its tools: one monotonic clock, and deadlines as their own type.
 *
 * A timeout is a duration ("wait up to 5000 ms"); a deadline is a point on CLOCK_MONOTONIC
 * ("until the clock reads X"). Passing one where the other is expected is the classic bug
 * (a 24 h *timeout* given as a *deadline* is already in the past on a host that has been up
 * for a day), so a deadline is a struct: the compiler refuses a number in its place.
 * Every API takes either `int timeout_ms` or `struct deadline`, never a bare time. */
#ifndef HV_CLOCK_H
#define HV_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct deadline {
	uint64_t at_ns; /* CLOCK_MONOTONIC; UINT64_MAX: never */
};

/* CLOCK_MONOTONIC in ns (its origin is arbitrary: boot, or a time namespace's offset). */
uint64_t clock_now_ns(void);
/* The deadline timeout_ms from now; a negative timeout means never. */
struct deadline deadline_in_ms(int64_t timeout_ms);
struct deadline deadline_never(void);
bool deadline_passed(struct deadline d);
/* What is left, in ms rounded up, for poll(): -1 for never, 0 once passed, and at most
 * INT32_MAX (a poll that returns early is simply repeated). */
int deadline_left_ms(struct deadline d);

#endif
