/* hv-guest: the tick rate, TSC calibration against the LAPIC timer, and progress gaps. */
#include "time.h"

#include "lapic.h"
#include "layout.h"

uint64_t tsc_per_ms;
uint64_t timer_hz = TIMER_HZ_BOOT;
static uint32_t timer_count = LAPIC_TIMER_COUNT_BOOT; /* LAPIC counts (ns) per tick */

void timer_set_hz(uint64_t hz)
{
	timer_hz = hz;
	timer_count = (uint32_t)(1000000000ULL / hz);
	lapic_write(LAPIC_TIMER_INIT, timer_count); /* restarts the period */
}

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

/* LAPIC current count with the TSC at the middle of the (exiting) MMIO read. */
static uint32_t ccr_read(uint64_t *tsc)
{
	uint64_t a = rdtsc();
	uint32_t v = lapic_read(LAPIC_TIMER_CUR);
	uint64_t b = rdtsc();

	*tsc = a + (b - a) / 2;
	return v;
}

/* TSC cycles against LAPIC timer nanoseconds. The current-count register is computed by
 * KVM from host time when it is read, so it is exact even though tick delivery on PVM is
 * late by up to a few ms. The count is polled (one VM exit per read, tens of µs) and
 * every reload seen adds a period. If the vCPU stalls between two reads (descheduled on
 * a busy host) a reload could pass unseen, so the measurement is split into segments at
 * stalls and only the stall-free segments are summed. 0 on success. */
static int measure(uint64_t want_ns, uint64_t *cycles, uint64_t *ns)
{
	const uint64_t stall = 1ULL << 22; /* < 5 ms at >= 1 GHz: well below the period */
	const uint64_t give_up = 1ULL << 34;
	uint64_t sum_c = 0, sum_ns = 0, t, tp, ts = 0, tg = 0, wraps = 0, wraps_g = 0;
	uint32_t c, prev = 0, cs = 0, cg = 0;
	int in_seg = 0;
	uint64_t t_begin = rdtsc();

	tp = t_begin;
	for (;;) {
		c = ccr_read(&t);
		if (t - t_begin > give_up)
			return -1;
		if (t - tp > stall && in_seg) {
			sum_c += tg - ts;
			sum_ns += (uint64_t)((int64_t)(wraps_g * timer_count) + cs - cg);
			in_seg = 0;
		}
		tp = t;
		if (!in_seg) {
			/* 0 is read between a late expiry and the re-arm: not a usable end. */
			if (c) {
				in_seg = 1;
				ts = tg = t;
				cs = cg = prev = c;
				wraps = wraps_g = 0;
			}
			continue;
		}
		if (c > prev)
			wraps++; /* reloaded: one more period */
		prev = c;
		if (c) {
			tg = t;
			cg = c;
			wraps_g = wraps;
		}
		uint64_t seg_ns = (uint64_t)((int64_t)(wraps_g * timer_count) + cs - cg);
		if (sum_ns + seg_ns >= want_ns) {
			*cycles = sum_c + (tg - ts);
			*ns = sum_ns + seg_ns; /* 1 count = 1 ns: divide-by-1 at 1 GHz (layout.h) */
			return 0;
		}
	}
}

int time_calibrate(void)
{
	/* Generous limit: 2^33 cycles is several seconds on any current CPU. */
	const uint64_t limit = 1ULL << 33;
	uint64_t cycles, ns;

	if (wait_tick(ticks, limit) < 0)
		return -1;
	if (measure(50 * 1000000ULL, &cycles, &ns) == 0 && ns) {
		tsc_per_ms = cycles * 1000000 / ns;
		return 0;
	}
	/* Fallback: whole ticks (delivery jitter makes this a few percent off). */
	uint64_t c0 = rdtsc();
	for (int i = 0; i < 20; i++)
		if (wait_tick(ticks, limit) < 0)
			return -1;
	tsc_per_ms = (rdtsc() - c0) * timer_hz / (20 * 1000);
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
