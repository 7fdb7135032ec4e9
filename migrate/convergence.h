/* When pre-copy stops: the switch-over decision after each round, as a pure function of
 * what the round measured, so that every case (converged, stalled, out of rounds with
 * force or cancel) is tested without a guest (tests/unit/test_convergence.c). */
#ifndef MIGRATE_CONVERGENCE_H
#define MIGRATE_CONVERGENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "migrate/migrate.h"

/* Below this much above its floor (the round trips and the fixed part, which no round can
 * shrink) the estimate is as good as it gets: switch over at once. */
#define CONVERGENCE_GOOD_ENOUGH_MS 5.0
/* The fixed part of a switch-over (state save and load, the vCPUs' stop and start). */
#define CONVERGENCE_OVERHEAD_MS 2.0
/* Round trips a switch-over waits for with the guest paused: the state's way across when the
 * destination starts on it (WIRE_CAP_START_ON_STATE); with a commit handshake, also the ACK
 * back and COMMIT across. */
#define CONVERGENCE_RTTS_START_ON_STATE 0.5
#define CONVERGENCE_RTTS_COMMIT 1.5
/* --auto-converge: the first throttle, the step per round still behind, the default ceiling. */
#define CONVERGENCE_THROTTLE_INITIAL 20
#define CONVERGENCE_THROTTLE_STEP 10

enum convergence_verdict {
	CONVERGENCE_NEXT_ROUND,  /* another pre-copy round */
	CONVERGENCE_SWITCH_OVER, /* pause the guest and send the rest */
	CONVERGENCE_GIVE_UP,     /* out of rounds with --on-timeout cancel */
};

/* What the decision remembers between rounds. Zeroed before round 0. */
struct convergence {
	bool have_prev;
	uint64_t prev_dirty; /* pages dirty after the previous round */
	unsigned stalled;    /* rounds in a row that did not shrink the rest by a quarter */
	unsigned behind;     /* rounds in a row whose guest dirtied half of what they sent */
};

/* The pause switching over now would cost: the dirty pages at the link rate (MiB/s; at
 * least 1) times what compression leaves of them (wire_ratio, 1 for raw), the fixed part,
 * and `rtts` round trips of rtt_ms (CONVERGENCE_RTTS_*). */
double convergence_expected_downtime_ms(uint64_t dirty_pages, double rate_mibs, double wire_ratio,
					double rtt_ms, double rtts);

/* The least any switch-over takes on a path of rtt_ms: the fixed part and `rtts` round trips
 * (what the estimate adds to the pages). */
double convergence_floor_ms(double rtt_ms, double rtts);
/* The downtime limit pre-copy aims for when the path makes --downtime `limit_ms`
 * impossible (floor_ms above it): the limit on top of the floor, rounded up to 10 ms, so
 * the guest pauses for what the link costs plus what the user allowed. limit_ms itself
 * when it can be met. */
uint32_t convergence_effective_limit_ms(double floor_ms, uint32_t limit_ms);

/* After round `round` (from 0) left `dirty_pages` dirty with `expected_ms` of pause, of which
 * floor_ms (convergence_floor_ms) no round can shrink: switch over when the estimate fits
 * max_downtime_ms and either it is good enough or the rounds stopped shrinking the rest
 * (twice in a row: once may be a hiccup); when the last of max_rounds ends, on_timeout
 * decides. */
enum convergence_verdict convergence_decide(struct convergence *c, uint32_t round, uint64_t dirty_pages,
					    double expected_ms, double floor_ms, uint32_t max_downtime_ms,
					    uint32_t max_rounds, enum migrate_on_timeout on_timeout);

/* --auto-converge, after a round that another round follows: the vCPU throttle (percent of
 * their time held back) for the next one. A round is behind when the guest dirtied at least
 * half as many pages as it sent; after two such rounds in a row the throttle starts at
 * CONVERGENCE_THROTTLE_INITIAL, and every further round behind adds
 * CONVERGENCE_THROTTLE_STEP, never beyond max_pct. A round that is not behind keeps the
 * throttle where it is (easing off would only let the guest catch up again). */
uint32_t convergence_throttle(struct convergence *c, uint32_t current_pct, uint64_t dirty_pages,
			      uint64_t sent_pages, uint32_t max_pct);

#endif
