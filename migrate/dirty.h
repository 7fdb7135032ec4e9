/* Which guest pages changed since the last look: KVM's dirty log for guest writes, OR'd
 * with the VMM's own bitmap for writes hv made (device DMA, boot tables) that KVM never sees.
 *
 * Two ways to re-arm KVM's log (--dirty-log):
 *   get    KVM_GET_DIRTY_LOG write-protects every page it reports at once, when collected;
 *          a page the guest writes again before it is sent is sent again next round.
 *   clear  KVM's manual protection (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): collecting reports
 *          only, and the sender re-arms each chunk of 4096 pages (KVM_CLEAR_DIRTY_LOG) just
 *          before it reads them, so the write-protect faults are spread over the round and
 *          a write between collecting and sending is not paid for twice. */
#ifndef MIGRATE_DIRTY_H
#define MIGRATE_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

struct dirty_tracker {
	struct vm *vm;
	uint64_t *bitmap; /* one bit per 4 KiB page, indexed by memfd offset / 4096 */
	uint64_t *slot_buf;
	uint64_t pages, words;
	int logging;
	bool manual;      /* clear: dirty_rearm re-arms, dirty_collect only reports */
	uint64_t *clear_buf; /* one chunk's bits, for KVM_CLEAR_DIRTY_LOG */
};

#define DIRTY_CHUNK_PAGES 4096

/* Turns on KVM dirty logging and forgets earlier VMM-side writes; clear_in_chunks: the
 * `clear` way (falls back to `get` where KVM lacks it: t->manual says). 0 or -1. */
int dirty_start(struct dirty_tracker *t, struct vm *vm, bool clear_in_chunks);
/* `clear`: re-arms the log for the pages of t->bitmap in [first_page, first_page + npages)
 * (first_page a multiple of 64), before they are read to be sent. No-op for `get`. 0 or -1. */
int dirty_rearm(struct dirty_tracker *t, uint64_t first_page, uint64_t npages);
/* Replaces t->bitmap with the pages dirtied since the previous call (or dirty_start).
 * Returns the number of dirty pages, or -1. */
int64_t dirty_collect(struct dirty_tracker *t);
/* Turns logging off and frees the bitmaps. */
void dirty_stop(struct dirty_tracker *t);

#endif
