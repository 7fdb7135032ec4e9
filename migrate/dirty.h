/* Which guest pages changed since the last look: KVM's dirty log for guest writes, OR'd
 * with the VMM's own bitmap for writes hv made (device DMA, boot tables) that KVM never sees. */
#ifndef MIGRATE_DIRTY_H
#define MIGRATE_DIRTY_H

#include <stdint.h>

struct vm;

struct dirty_tracker {
	struct vm *vm;
	uint64_t *bitmap; /* one bit per 4 KiB page, indexed by memfd offset / 4096 */
	uint64_t *slot_buf;
	uint64_t pages, words;
	int logging;
};

/* Turns on KVM dirty logging and forgets earlier VMM-side writes. 0 or -1. */
int dirty_start(struct dirty_tracker *t, struct vm *vm);
/* Replaces t->bitmap with the pages dirtied since the previous call (or dirty_start).
 * Returns the number of dirty pages, or -1. */
int64_t dirty_collect(struct dirty_tracker *t);
/* Turns logging off and frees the bitmaps. */
void dirty_stop(struct dirty_tracker *t);

#endif
