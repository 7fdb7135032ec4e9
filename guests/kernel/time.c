/* hv-guest: TSC calibration against the 100 Hz LAPIC tick, and progress gaps. */
#include "time.h"

#include "layout.h"

uint64_t tsc_per_ms;

/* Waits for the tick to change; -1 if it does not within `limit` TSC cycles. */
static int wait_tick(uint64_t from, uint64_t limit)
{
	uint64_t t0 = rdtsc();

	while (ticks == from) {
		if (rdtsc() - t0 > limit)
			return -1;
		cpu_relax();
	}
	return 0;
}

int time_calibrate(void)
{
	/* Generous limit: 2^33 cycles is several seconds on any current CPU. */
	const uint64_t limit = 1ULL << 33;
	const uint64_t n = 5;

	if (wait_tick(ticks, limit) < 0)
		return -1;
	uint64_t t = ticks, c0 = rdtsc();
	for (uint64_t i = 0; i < n; i++) {
		if (wait_tick(t, limit) < 0)
			return -1;
		t = ticks;
	}
	uint64_t c1 = rdtsc();
	tsc_per_ms = (c1 - c0) / (n * 1000 / TIMER_HZ);
	if (!tsc_per_ms)
		tsc_per_ms = 1;
	return 0;
}

uint64_t tsc_to_us(uint64_t cycles)
{
	if (!tsc_per_ms)
		return 0;
	/* cycles * 1000 / tsc_per_ms without overflow for gaps up to hours */
	return cycles / tsc_per_ms * 1000 + cycles % tsc_per_ms * 1000 / tsc_per_ms;
}

void gap_start(struct gap *g)
{
	g->last = rdtsc();
	g->max_iv = 0;
	g->max_all = 0;
}

uint64_t gap_take(struct gap *g)
{
	uint64_t m = g->max_iv;

	g->max_iv = 0;
	if (m > g->max_all)
		g->max_all = m;
	return m;
}
