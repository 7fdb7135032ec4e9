/* Compressor threads (migrate/compress_pool.c) with the real codec: every batch handed to
 * them comes back encoded so that it decodes to the same pages; a pool whose threads are all
 * taken says so at once (hybrid sends that batch raw instead of waiting); the counters of a
 * thread's batch add up into the sender's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/compress_pool.h"
#include "migrate/page_codec.h"

#define PG PAGE_CODEC_PAGE_SIZE
#define BATCHES 12
#define PER_BATCH 64

static uint8_t src[BATCHES * PER_BATCH][PG], dst[BATCHES * PER_BATCH][PG];

static uint8_t *dst_page(void *opaque, uint64_t gfn)
{
	(void)opaque;
	return gfn < BATCHES * PER_BATCH ? dst[gfn] : NULL;
}

/* Compressible text-like pages, each different. */
static void fill_pages(void)
{
	for (unsigned g = 0; g < BATCHES * PER_BATCH; g++)
		for (unsigned i = 0; i < PG; i++)
			src[g][i] = (uint8_t)("the quick brown fox "[i % 20] + (i / 512 == g % 8 ? g : 0));
}

/* Encodes and decodes a batch the pool finished: payload = descriptor and data of its iov. */
static void decode_job(struct page_codec_dec *d, const struct compress_job *j)
{
	uint8_t *payload = malloc(j->enc.payload_len);
	size_t off = 0;

	assert_non_null(payload);
	assert_int_equal(j->result, 0);
	for (int i = 0; i < j->enc.iovcnt; i++) {
		memcpy(payload + off, j->enc.iov[i].iov_base, j->enc.iov[i].iov_len);
		off += j->enc.iov[i].iov_len;
	}
	assert_int_equal(off, j->enc.payload_len);
	if (page_codec_decode(d, payload, off, BATCHES * PER_BATCH, dst_page, NULL) < 0)
		fail_msg("%s", d->err);
	free(payload);
}

static void test_every_batch_comes_back(void **unused)
{
	struct compress_pool p;
	struct page_codec_dec d;
	struct page_codec_stats total = { 0 };
	uint64_t gfns[PER_BATCH];
	const uint8_t *ptrs[PER_BATCH];

	fill_pages();
	memset(dst, 0xee, sizeof(dst));
	assert_int_equal(page_codec_dec_init(&d), 0);
	assert_int_equal(compress_pool_start(&p, 3), 0);
	for (unsigned b = 0; b < BATCHES; b++) {
		for (unsigned i = 0; i < PER_BATCH; i++) {
			gfns[i] = b * PER_BATCH + i;
			ptrs[i] = src[gfns[i]];
		}
		while (!compress_pool_submit(&p, gfns, ptrs, PER_BATCH,
					     b % 2 ? PAGE_CODEC_COMPRESS_ZSTD : PAGE_CODEC_COMPRESS_ZLIB, true)) {
			struct compress_job *j = compress_pool_done(&p, true);
			assert_non_null(j);
			decode_job(&d, j);
			page_codec_stats_add(&total, &j->enc.stats);
			compress_pool_release(&p, j);
		}
	}
	struct compress_job *j;
	while ((j = compress_pool_done(&p, true))) {
		decode_job(&d, j);
		page_codec_stats_add(&total, &j->enc.stats);
		compress_pool_release(&p, j);
	}
	compress_pool_stop(&p);
	page_codec_dec_fini(&d);
	assert_memory_equal(dst, src, sizeof(src));
	assert_int_equal(total.batches, BATCHES);
	assert_int_equal(total.zlib_pages + total.zstd_pages, BATCHES * PER_BATCH);
	assert_true(total.compress_out_bytes < total.compress_in_bytes / 4);
}

/* One thread, taken: the next batch is refused at once, until the finished one is released. */
static void test_busy_pool_refuses_at_once(void **unused)
{
	struct compress_pool p;
	uint64_t gfn = 0;
	const uint8_t *ptr = src[0];

	fill_pages();
	assert_int_equal(compress_pool_start(&p, 1), 0);
	assert_true(compress_pool_submit(&p, &gfn, &ptr, 1, PAGE_CODEC_COMPRESS_ZSTD, true));
	assert_false(compress_pool_submit(&p, &gfn, &ptr, 1, PAGE_CODEC_COMPRESS_ZSTD, true));
	struct compress_job *j = compress_pool_done(&p, true);
	assert_non_null(j);
	assert_false(compress_pool_submit(&p, &gfn, &ptr, 1, PAGE_CODEC_COMPRESS_ZSTD, true));
	compress_pool_release(&p, j);
	assert_null(compress_pool_done(&p, true)); /* nothing in flight: no wait */
	assert_true(compress_pool_submit(&p, &gfn, &ptr, 1, PAGE_CODEC_COMPRESS_ZSTD, true));
	compress_pool_stop(&p); /* with a batch in flight */
	assert_int_equal(compress_pool_start(&p, 0), -1);
	assert_int_equal(compress_pool_start(&p, COMPRESS_POOL_MAX + 1), -1);
	assert_true(compress_pool_default_threads() >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_batch_comes_back),
		cmocka_unit_test(test_busy_pool_refuses_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
