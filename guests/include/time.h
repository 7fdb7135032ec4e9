/* hv-guest: the LAPIC tick (100 Hz unless hz=), TSC calibration and progress-gap measurement. */
#ifndef HVG_TIME_H
#define HVG_TIME_H

#include <stdint.h>

#include "arch.h"

extern volatile uint64_t ticks; /* incremented by the BSP's timer interrupt */
extern uint64_t timer_hz;       /* ticks per second */
extern uint64_t tsc_per_ms;     /* 0 until time_calibrate() */

/* Reprograms the BSP's periodic timer to hz ticks per second (1..TIMER_HZ_MAX); a guest
 * that idles with a fast timer is a workload of its own for migration. */
void timer_set_hz(uint64_t hz);

/* Measures the TSC against the tick. 0, or -1 if the timer does not tick. */
int time_calibrate(void);
uint64_t tsc_to_us(uint64_t cycles);

/* Longest time between consecutive progress marks: a paused vCPU (e.g. migration
 * switchover) shows up as one long gap. Marks are a TSC read, cheap at CPL3. */
struct gap {
	uint64_t last;
	uint64_t max_iv;  /* longest gap since the last gap_take() */
	uint64_t max_all; /* longest gap since gap_start() */
};

static inline void gap_mark(struct gap *g)
{
	uint64_t t = rdtsc();
	uint64_t d = t - g->last;
	g->last = t;
	if (d > g->max_iv)
		g->max_iv = d;
}

void gap_start(struct gap *g);
/* Returns the interval maximum in TSC cycles and starts a new interval. */
uint64_t gap_take(struct gap *g);

/* The serial driver marks this gap for every byte it sends (heartbeats are progress). */
extern struct gap *serial_gap;

#endif
