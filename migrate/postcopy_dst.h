/* Post-copy on the destination: the guest runs before all of its memory is here.
 *
 * The pages the source still has to send (its DISCARD records: what was dirty when the guest
 * paused) are dropped from RAM, and RAM is registered with userfaultfd. A vCPU or a device
 * thread that touches one of them waits in the kernel while this module asks the source for
 * it (PAGE_REQUEST) and places it (UFFDIO_COPY) when it arrives; the source pushes the rest
 * meanwhile, and POSTCOPY_DONE ends it. A page outside that set that nobody ever wrote reads
 * as zero. One thread does it all (poll on the userfaultfd and the stream), so the stream,
 * TLS or not, is never used from two threads.
 *
 * Failure once the guest runs is fatal for it: its memory is split between two hosts and the
 * source's copy is stale. The caller must then make sure no thread touches guest RAM again
 * (migrate_incoming ends the process). */
#ifndef MIGRATE_POSTCOPY_DST_H
#define MIGRATE_POSTCOPY_DST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct wire_conn;
struct page_codec_dec;

struct postcopy_dst {
	struct guest_mem *mem;
	int uffd;
	bool armed;
	uint64_t npages;
	uint64_t *needed;    /* one bit per page: announced by DISCARD, not placed yet */
	uint64_t *requested; /* asked for and not placed yet */
	uint64_t discarded;  /* pages DISCARD announced */
	uint64_t discard_end; /* the end of the last range (they ascend) */
	uint64_t placed;     /* of those, placed so far */
	uint64_t faults, zero_faults, requests;
	uint8_t *scratch;    /* one PAGES record's pages, decoded before they are placed */
	uint64_t scratch_gfn[256];
	unsigned nscratch;
};

/* At HELLO: whether this host can take a post-copy migration into mem (a userfaultfd, a
 * backing it can fill page by page). 0, or -1 with the reason in err. */
int postcopy_dst_open(struct postcopy_dst *p, struct guest_mem *mem, char *err, size_t errlen);
/* One DISCARD record's ranges (wire_parse_discard's entries): checked against RAM, ascending
 * and disjoint across records. 0 or -1 with err. */
int postcopy_dst_discard(struct postcopy_dst *p, const uint8_t *entries, uint32_t n, char *err,
			 size_t errlen);
/* Before the guest starts: drops the announced pages from RAM and registers it. 0 or -1. */
int postcopy_dst_arm(struct postcopy_dst *p, char *err, size_t errlen);
/* With the guest running: serves its faults and places what the source sends until
 * POSTCOPY_DONE (then ACK) with every announced page placed. 0, or -1 with err. */
int postcopy_dst_run(struct postcopy_dst *p, struct wire_conn *c, struct page_codec_dec *dec, char *err,
		     size_t errlen);
void postcopy_dst_close(struct postcopy_dst *p);

#endif
