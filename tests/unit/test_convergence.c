/* The switch-over decision of pre-copy (migrate/convergence.c), case by case. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "migrate/convergence.h"
#include "migrate/migrate_json.h"

#define LIMIT 30 /* ms, the default --downtime */

static enum convergence_verdict decide(struct convergence *c, uint32_t round, uint64_t dirty,
				       double expected, uint32_t max_rounds, enum migrate_on_timeout t)
{
	return convergence_decide(c, round, dirty, expected, 0, LIMIT, max_rounds, t);
}

/* Good enough at once: an idle guest switches over after round 0. */
static void test_converged_at_once(void **unused)
{
	struct convergence c = { 0 };

	assert_int_equal(decide(&c, 0, 10, 3.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_SWITCH_OVER);
}

/* Within the limit but above "good enough": more rounds while they shrink the rest by a
 * quarter; once two in a row did not, switch over. One that did not is a hiccup. */
static void test_within_limit_waits_for_two_stalls(void **unused)
{
	struct convergence c = { 0 };

	assert_int_equal(decide(&c, 0, 4000, 20.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(decide(&c, 1, 2000, 15.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(decide(&c, 2, 1900, 14.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(c.stalled, 1);
	assert_int_equal(decide(&c, 3, 1000, 10.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(c.stalled, 0); /* shrank again: the hiccup is forgotten */
	assert_int_equal(decide(&c, 4, 950, 10.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(decide(&c, 5, 990, 10.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_SWITCH_OVER);
}

/* Stalled above the limit: no switch-over, however long it stalls, until rounds run out. */
static void test_stalled_above_limit_runs_on(void **unused)
{
	struct convergence c = { 0 };

	for (uint32_t r = 0; r < 5; r++)
		assert_int_equal(decide(&c, r, 50000, 200.0, 30, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_true(c.stalled >= 2);
}

/* On a path whose round trips alone cost more than "good enough" (20 ms: a floor of 12 ms),
 * a round that leaves nothing, or next to nothing, switches over at once; it used to run
 * round after empty round until the rounds ran out (a throttled guest on a slow host). */
static void test_good_enough_above_the_floor(void **unused)
{
	struct convergence c = { 0 }, d = { 0 };
	double floor = convergence_floor_ms(20, CONVERGENCE_RTTS_START_ON_STATE);

	assert_int_equal(convergence_decide(&c, 3, 0, floor, floor, 100, 30, MIGRATE_ON_TIMEOUT_CANCEL),
			 CONVERGENCE_SWITCH_OVER);
	assert_int_equal(convergence_decide(&d, 3, 40, floor + 4, floor, 100, 30, MIGRATE_ON_TIMEOUT_CANCEL),
			 CONVERGENCE_SWITCH_OVER);
	struct convergence e = { 0 };
	assert_int_equal(convergence_decide(&e, 3, 400, floor + 20, floor, 100, 30, MIGRATE_ON_TIMEOUT_CANCEL),
			 CONVERGENCE_NEXT_ROUND);
	/* Above the limit, a floor changes nothing. */
	struct convergence f = { 0 };
	assert_int_equal(convergence_decide(&f, 3, 0, floor, floor, 10, 30, MIGRATE_ON_TIMEOUT_FORCE),
			 CONVERGENCE_NEXT_ROUND);
}

/* Out of rounds: force switches over, cancel gives up. */
static void test_max_rounds_force_and_cancel(void **unused)
{
	struct convergence c = { 0 }, d = { 0 };

	assert_int_equal(decide(&c, 0, 50000, 200.0, 3, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(decide(&c, 1, 50000, 200.0, 3, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(decide(&c, 2, 50000, 200.0, 3, MIGRATE_ON_TIMEOUT_FORCE), CONVERGENCE_SWITCH_OVER);
	assert_int_equal(decide(&d, 0, 50000, 200.0, 1, MIGRATE_ON_TIMEOUT_CANCEL), CONVERGENCE_GIVE_UP);
	/* A round that converges on the last allowed round switches over even with cancel. */
	struct convergence e = { 0 };
	assert_int_equal(decide(&e, 0, 10, 2.0, 1, MIGRATE_ON_TIMEOUT_CANCEL), CONVERGENCE_SWITCH_OVER);
}

/* A zero limit (possible through the control socket) never fits: rounds run out, then
 * --on-timeout decides. */
static void test_zero_limit(void **unused)
{
	struct convergence c = { 0 };

	assert_int_equal(convergence_decide(&c, 0, 0, 2.0, 0, 0, 2, MIGRATE_ON_TIMEOUT_CANCEL), CONVERGENCE_NEXT_ROUND);
	assert_int_equal(convergence_decide(&c, 1, 0, 2.0, 0, 0, 2, MIGRATE_ON_TIMEOUT_CANCEL), CONVERGENCE_GIVE_UP);
}

/* The estimate: pages at the link rate, scaled by compression, plus the fixed part and
 * 1.5 round trips; a link not yet measured counts as 1 MiB/s, never as infinitely fast. */
static void test_expected_downtime(void **unused)
{
	/* 256 pages = 1 MiB at 1000 MiB/s = 1 ms; raw; no RTT. */
	assert_float_equal(convergence_expected_downtime_ms(256, 1000, 1.0, 0, 1.5), 1.0 + CONVERGENCE_OVERHEAD_MS, 1e-9);
	/* Half the bytes when compression halves them; 10 ms RTT adds 15 ms with a commit
	 * handshake, 5 ms when the destination starts on the state. */
	assert_float_equal(convergence_expected_downtime_ms(256, 1000, 0.5, 10, CONVERGENCE_RTTS_COMMIT),
			   0.5 + CONVERGENCE_OVERHEAD_MS + 15, 1e-9);
	assert_float_equal(convergence_expected_downtime_ms(256, 1000, 0.5, 10, CONVERGENCE_RTTS_START_ON_STATE),
			   0.5 + CONVERGENCE_OVERHEAD_MS + 5, 1e-9);
	assert_float_equal(convergence_expected_downtime_ms(256, 0, 1.0, 0, 1.5), 1000.0 + CONVERGENCE_OVERHEAD_MS, 1e-9);
	assert_float_equal(convergence_expected_downtime_ms(0, 500, 1.0, 0, 1.5), CONVERGENCE_OVERHEAD_MS, 1e-9);
}

/* A path whose round trips alone exceed --downtime: pre-copy aims for that plus the limit,
 * in whole 10 ms; a path that allows the limit keeps it. */
static void test_limit_the_path_cannot_meet(void **unused)
{
	const double commit = CONVERGENCE_RTTS_COMMIT, start = CONVERGENCE_RTTS_START_ON_STATE;

	assert_float_equal(convergence_floor_ms(150, commit), CONVERGENCE_OVERHEAD_MS + 225, 1e-9);
	assert_float_equal(convergence_floor_ms(150, start), CONVERGENCE_OVERHEAD_MS + 75, 1e-9);
	assert_float_equal(convergence_floor_ms(-1, commit), CONVERGENCE_OVERHEAD_MS, 1e-9);
	assert_int_equal(convergence_effective_limit_ms(convergence_floor_ms(0.2, commit), 30), 30);
	assert_int_equal(convergence_effective_limit_ms(convergence_floor_ms(150, commit), 30), 260);
	assert_int_equal(convergence_effective_limit_ms(convergence_floor_ms(150, start), 30), 110);
	assert_int_equal(convergence_effective_limit_ms(convergence_floor_ms(150, commit), 300), 300);
	assert_int_equal(convergence_effective_limit_ms(convergence_floor_ms(40, start), 30), 30);
	assert_int_equal(convergence_effective_limit_ms(1e9, 30), MIGRATE_MAX_DOWNTIME_LIMIT_MS);
}

/* --auto-converge: a guest that keeps dirtying as much as the link sends is throttled from
 * the third round on, 20% first, 10% more per round still behind, never beyond the ceiling;
 * a round that caught up keeps the throttle. */
static void test_throttle_starts_gently_and_climbs(void **unused)
{
	struct convergence c = { 0 };
	uint32_t pct = 0;

	pct = convergence_throttle(&c, pct, 800, 1000, 99); /* behind once: not yet */
	assert_int_equal(pct, 0);
	pct = convergence_throttle(&c, pct, 900, 1000, 99);
	assert_int_equal(pct, CONVERGENCE_THROTTLE_INITIAL);
	pct = convergence_throttle(&c, pct, 700, 900, 99);
	assert_int_equal(pct, 30);
	pct = convergence_throttle(&c, pct, 100, 700, 99); /* caught up: held */
	assert_int_equal(pct, 30);
	pct = convergence_throttle(&c, pct, 600, 1000, 99); /* behind again, already throttled */
	assert_int_equal(pct, 40);
	for (int i = 0; i < 20; i++)
		pct = convergence_throttle(&c, pct, 1000, 1000, 99);
	assert_int_equal(pct, 99);
	struct convergence d = { 0 };
	uint32_t capped = 0;
	for (int i = 0; i < 20; i++)
		capped = convergence_throttle(&d, capped, 1000, 1000, 50);
	assert_int_equal(capped, 50);
}

/* One round behind is a hiccup; a round that sent nothing says nothing. */
static void test_throttle_needs_two_rounds_behind(void **unused)
{
	struct convergence c = { 0 };

	assert_int_equal(convergence_throttle(&c, 0, 600, 1000, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 100, 1000, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 600, 1000, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 50, 0, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 499, 1000, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 500, 1000, 99), 0);
	assert_int_equal(convergence_throttle(&c, 0, 500, 1000, 99), CONVERGENCE_THROTTLE_INITIAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_converged_at_once),
		cmocka_unit_test(test_within_limit_waits_for_two_stalls),
		cmocka_unit_test(test_stalled_above_limit_runs_on),
		cmocka_unit_test(test_max_rounds_force_and_cancel),
		cmocka_unit_test(test_zero_limit),
		cmocka_unit_test(test_good_enough_above_the_floor),
		cmocka_unit_test(test_expected_downtime),
		cmocka_unit_test(test_limit_the_path_cannot_meet),
		cmocka_unit_test(test_throttle_starts_gently_and_climbs),
		cmocka_unit_test(test_throttle_needs_two_rounds_behind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
