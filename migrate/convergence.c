#include "migrate/convergence.h"
#include "migrate/migrate_json.h"

#include "hv/layout.h"

double convergence_floor_ms(double rtt_ms, double rtts)
{
	return CONVERGENCE_OVERHEAD_MS + rtts * (rtt_ms > 0 ? rtt_ms : 0);
}

double convergence_expected_downtime_ms(uint64_t dirty_pages, double rate_mibs, double wire_ratio,
					double rtt_ms, double rtts)
{
	double rate = rate_mibs > 1 ? rate_mibs : 1;

	return (double)dirty_pages * PAGE_SIZE / (1 << 20) / rate * 1000.0 * wire_ratio +
	       convergence_floor_ms(rtt_ms, rtts);
}

uint32_t convergence_effective_limit_ms(double floor_ms, uint32_t limit_ms)
{
	if (floor_ms <= limit_ms)
		return limit_ms;
	double aim = floor_ms + limit_ms;
	if (aim > MIGRATE_MAX_DOWNTIME_LIMIT_MS)
		return MIGRATE_MAX_DOWNTIME_LIMIT_MS;
	return (uint32_t)((aim + 9.999) / 10) * 10;
}

enum convergence_verdict convergence_decide(struct convergence *c, uint32_t round, uint64_t dirty_pages,
					    double expected_ms, double floor_ms, uint32_t max_downtime_ms,
					    uint32_t max_rounds, enum migrate_on_timeout on_timeout)
{
	/* Within the limit, one more round is still worth it while rounds keep shrinking the
	 * rest by a quarter: less downtime for a little more total time. */
	if (c->have_prev && (double)dirty_pages > 0.75 * (double)c->prev_dirty)
		c->stalled++;
	else
		c->stalled = 0;
	c->have_prev = true;
	c->prev_dirty = dirty_pages;
	/* Good enough is measured above the floor: on a path of 20 ms the estimate never gets
	 * below 12 ms, and nothing left to send is as good as it gets. */
	bool good_enough = expected_ms - (floor_ms > 0 ? floor_ms : 0) <= CONVERGENCE_GOOD_ENOUGH_MS;
	if (expected_ms <= max_downtime_ms && (good_enough || c->stalled >= 2))
		return CONVERGENCE_SWITCH_OVER;
	if (round + 1 >= max_rounds)
		return on_timeout == MIGRATE_ON_TIMEOUT_FORCE ? CONVERGENCE_SWITCH_OVER : CONVERGENCE_GIVE_UP;
	return CONVERGENCE_NEXT_ROUND;
}

uint32_t convergence_throttle(struct convergence *c, uint32_t current_pct, uint64_t dirty_pages,
			      uint64_t sent_pages, uint32_t max_pct)
{
	if (sent_pages && dirty_pages * 2 >= sent_pages)
		c->behind++;
	else
		c->behind = 0;
	uint32_t next = current_pct;
	if (c->behind >= 2 || (current_pct && c->behind))
		next = current_pct ? current_pct + CONVERGENCE_THROTTLE_STEP : CONVERGENCE_THROTTLE_INITIAL;
	return next > max_pct ? max_pct : next;
}
