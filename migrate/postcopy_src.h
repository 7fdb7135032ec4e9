/* Post-copy on the source: once the destination runs the guest (STARTED), the pages it still
 * needs (the switchover's dirty set, announced in DISCARD) are pushed in page order; a page
 * it asks for (PAGE_REQUEST) goes first, with the needed pages right after it, and the push
 * goes on from there (a guest that touches a page mostly touches its neighbours next). Then
 * POSTCOPY_DONE, and the destination's ACK. One thread: requests are read between batches,
 * so the stream (TLS or not) is never used from two threads. */
#ifndef MIGRATE_POSTCOPY_SRC_H
#define MIGRATE_POSTCOPY_SRC_H

#include <stdint.h>

struct wire_conn;

/* Pages after a requested one that go with it (when they are still needed). */
#define POSTCOPY_REQUEST_RUN 16
/* The push keeps at most this much unsent in the socket: a requested page queues behind
 * what is there, so a deep queue is a long fault (megabytes at tens of MB/s: a second). */
#define POSTCOPY_QUEUE_MAX (256 * 1024)
#define POSTCOPY_STALL_MS 30000

struct postcopy_src {
	struct wire_conn *conn;
	uint64_t *needed;  /* one bit per page, cleared as pages are queued */
	uint64_t npages;
	uint64_t left;     /* bits still set */
	/* The engine's batching: queue one page (sends a full batch by itself), send the rest. */
	int (*queue)(void *opaque, uint64_t gfn);
	int (*flush)(void *opaque);
	void *opaque;
	uint64_t requests, requested_pages;
	char err[256];     /* set when the failure is this module's (not queue's or flush's) */
};

/* Sends every needed page, POSTCOPY_DONE, and waits (ack_timeout_ms) for the ACK. 0 or -1. */
int postcopy_src_run(struct postcopy_src *p, int ack_timeout_ms);

#endif
