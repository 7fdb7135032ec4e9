/* hv-guest: the self-verifying memory workload shared by memtouch and smp.
 *
 * A working set of pages is rewritten sequentially, wrapping around; each sweep is one
 * generation g (1, 2, ...). Page i (its index in the whole working set) at generation g:
 *   word 0 = i, word 1 = g,
 *   fill=full:  words 2..511 = mix64(seed(i, g) + w * K2)   (random-looking, incompressible)
 *   fill=stamp: words 2..511 are not written (stay zero).
 * Generation 0 is the all-zero page that RAM starts as. Before a page is rewritten it is
 * checked against what the previous sweep wrote (pages before the cursor are at g, the
 * rest at g-1, so no per-page state is kept). */
#ifndef HVG_TOUCH_H
#define HVG_TOUCH_H

#include <stdint.h>

#include "time.h"

struct touch {
	uint64_t *base;          /* first page of this worker's region */
	uint64_t npages;
	uint64_t first;          /* working-set index of the region's first page */
	int full;                /* fill=full (1) or fill=stamp (0) */
	int cpu;                 /* reported in CORRUPT lines when >= 0 */
	uint64_t gen;            /* generation being written by the current sweep */
	uint64_t cursor;         /* next page of the current sweep */
	volatile uint64_t pages; /* pages written so far */
	uint64_t pps;            /* rate limit in pages/s, 0 = none */
	uint64_t rate_t0, rate_p0;
	struct gap gap;
} __attribute__((aligned(64)));

void touch_init(struct touch *t, uint64_t base, uint64_t npages, uint64_t first, int full,
		int cpu, uint64_t rate_mibps);
/* Waits for the rate budget, then checks and rewrites the next page. On a mismatch prints
 * the CORRUPT line and exits with EXIT_CORRUPT. */
void touch_step(struct touch *t);

/* The value word w of page i holds at generation g (exported for documentation/tests). */
uint64_t touch_expected(uint64_t i, uint64_t g, unsigned w, int full);

/* Test hook: flips one bit in page `index` (of this worker's region) so that the next
 * sweep reports CORRUPT for it (word 7 with fill=full, word 1 with fill=stamp). */
void touch_inject(struct touch *t, uint64_t index);

/* Parses fill=full|stamp (default full); exits EXIT_BADPARAM on anything else. */
int touch_param_fill(const char *prog);

#endif
