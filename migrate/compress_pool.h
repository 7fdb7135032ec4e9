/* Compressor threads for the sending side (--compress-threads N, --compress hybrid).
 *
 * A batch of pages is handed to a free worker, which encodes it with an encoder of its own;
 * the sending thread sends whatever has finished, in any order (within a round a page is in
 * one batch only, and every batch of a round is sent before its ROUND_END: the sender waits
 * for the pool to empty first). With `hybrid`, a batch that finds every worker busy while the
 * link has room is not kept waiting: the caller sends it raw at once, so the page rate is the
 * link's plus what the workers save, never less than with no compression. */
#ifndef MIGRATE_COMPRESS_POOL_H
#define MIGRATE_COMPRESS_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/page_codec.h"

#define COMPRESS_POOL_MAX 64

enum compress_job_state { JOB_FREE, JOB_BUSY, JOB_DONE };

struct compress_job {
	struct compress_pool *pool;
	enum compress_job_state state; /* under pool->lock */
	uint64_t gfns[PAGE_CODEC_MAX_PAGES];
	const uint8_t *ptrs[PAGE_CODEC_MAX_PAGES];
	unsigned n;
	enum page_codec_compress codec;
	bool stable;
	int result;            /* page_codec_encode's */
	uint64_t encode_ns;
	struct page_codec_enc enc; /* its stats cover this batch only */
	pthread_t thread;
};

struct compress_pool {
	int n;
	struct compress_job *jobs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	int busy; /* jobs not FREE */
};

/* Starts n (1..COMPRESS_POOL_MAX) workers. 0, or -1 with one hv_error line. */
int compress_pool_start(struct compress_pool *p, int n);
void compress_pool_stop(struct compress_pool *p);
/* Hands the batch to a free worker (the arrays are copied; the pages are read by the worker,
 * so they must stay mapped). false: every worker is busy. */
bool compress_pool_submit(struct compress_pool *p, const uint64_t *gfns, const uint8_t *const *ptrs,
			  unsigned n, enum page_codec_compress codec, bool stable);
/* A finished batch, to send and then compress_pool_release; NULL when none has finished
 * (wait: blocks until one does, if any is in flight). */
struct compress_job *compress_pool_done(struct compress_pool *p, bool wait);
void compress_pool_release(struct compress_pool *p, struct compress_job *j);
/* Workers this host can spare: its online CPUs less one (for the vCPUs and the sender), at
 * least 1. */
int compress_pool_default_threads(void);

#endif
