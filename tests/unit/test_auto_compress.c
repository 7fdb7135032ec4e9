/* --compress auto: when it turns compression on and off, and with which compressor. The
 * inputs are what the sender measures per batch; the numbers below are this machine's
 * (loopback ~3 GiB/s, zlib ~60 MiB/s, zstd ~500 MiB/s of mixed pages). The synthetic tests
 * run as against an older destination (zlib only) unless they say zstd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate/auto_compress.h"
#include "migrate/page_codec.h"

#define MiB (1024.0 * 1024.0)
#define BATCH (256 * 4096ULL)

static bool compressing(const struct auto_compress *ac)
{
	return ac->codec != PAGE_CODEC_COMPRESS_NONE;
}

/* auto, with a destination that speaks zlib, and zstd too if `zstd`. */
static void init_auto(struct auto_compress *ac, bool zstd)
{
	auto_compress_init(ac, MIGRATE_COMPRESS_AUTO);
	assert_null(auto_compress_peer(ac, true, zstd));
}

/* One batch sent raw over a link of link_mibs MiB/s that made the send wait. */
static void raw_batch(struct auto_compress *ac, double link_mibs)
{
	auto_compress_account(ac, BATCH, (uint64_t)(BATCH / (link_mibs * MiB) * 1e9), 0, 0, 0);
	auto_compress_decide(ac);
}

/* One batch through the compressor at comp_mibs with the given ratio, then sent at
 * link_mibs. */
static void comp_batch(struct auto_compress *ac, double link_mibs, double comp_mibs, double ratio)
{
	uint64_t out = (uint64_t)(BATCH * ratio);
	auto_compress_account(ac, out, (uint64_t)(out / (link_mibs * MiB) * 1e9), BATCH, out,
			      (uint64_t)(BATCH / (comp_mibs * MiB) * 1e9));
	auto_compress_decide(ac);
}

static void test_fast_link_never_compresses(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	for (int i = 0; i < 5000; i++) {
		raw_batch(&ac, 2800);
		assert_false(compressing(&ac));
	}
}

static void test_slow_link_compressible_memory_switches_to_zlib(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	raw_batch(&ac, 10); /* a 10 MiB/s link: worth a probe */
	assert_int_equal(ac.codec, PAGE_CODEC_COMPRESS_ZLIB); /* what this destination speaks */
	for (int i = 0; i < 20; i++)
		comp_batch(&ac, 10, 60, 0.05);
	assert_true(compressing(&ac)); /* 20x smaller at 60 MiB/s beats 10 MiB/s raw */
	assert_true(auto_compress_wire_ratio(&ac) < 0.1);
	auto_compress_settle(&ac);
	assert_true(compressing(&ac)); /* proven: kept through the switchover */
}

static void test_incompressible_memory_ends_the_probe_at_once(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	raw_batch(&ac, 300);
	assert_true(compressing(&ac));
	comp_batch(&ac, 300, 60, 0.99);
	assert_false(compressing(&ac));
	assert_true(auto_compress_wire_ratio(&ac) == 1.0);
	/* And it is not tried again soon. */
	for (int i = 0; i < 100; i++) {
		raw_batch(&ac, 300);
		assert_false(compressing(&ac));
	}
}

static void test_cpu_bound_zlib_loses_to_a_medium_link(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	raw_batch(&ac, 300);
	for (int i = 0; i < 8 && compressing(&ac); i++)
		comp_batch(&ac, 300, 60, 0.5); /* 60 MiB/s of pages vs 300 raw */
	assert_false(compressing(&ac));
}

static void test_switchover_ends_an_unproven_probe_and_starts_none(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	raw_batch(&ac, 10);
	assert_true(compressing(&ac));
	comp_batch(&ac, 10, 60, 0.3);
	auto_compress_settle(&ac); /* guest paused mid-probe */
	assert_false(compressing(&ac));
	for (int i = 0; i < 2000; i++) {
		raw_batch(&ac, 10);
		assert_false(compressing(&ac));
	}
}

static void test_fixed_modes_stay_fixed(void **state)
{
	struct auto_compress z, zs, n;

	(void)state;
	auto_compress_init(&z, MIGRATE_COMPRESS_ZLIB);
	auto_compress_init(&zs, MIGRATE_COMPRESS_ZSTD);
	auto_compress_init(&n, MIGRATE_COMPRESS_NONE);
	assert_null(auto_compress_peer(&z, true, true));
	assert_null(auto_compress_peer(&zs, true, true));
	assert_null(auto_compress_peer(&n, false, false));
	for (int i = 0; i < 50; i++) {
		comp_batch(&z, 3000, 60, 0.99);
		comp_batch(&zs, 3000, 600, 0.99);
		raw_batch(&n, 1);
	}
	auto_compress_settle(&z);
	auto_compress_settle(&zs);
	assert_int_equal(z.codec, PAGE_CODEC_COMPRESS_ZLIB);
	assert_int_equal(zs.codec, PAGE_CODEC_COMPRESS_ZSTD);
	assert_int_equal(n.codec, PAGE_CODEC_COMPRESS_NONE);
}

/* What the destination speaks decides auto's candidate, and whether a fixed mode can go on. */
static void test_destination_caps(void **state)
{
	struct auto_compress ac;
	const char *why;

	(void)state;
	init_auto(&ac, true);
	raw_batch(&ac, 10);
	assert_int_equal(ac.codec, PAGE_CODEC_COMPRESS_ZSTD);
	init_auto(&ac, false); /* an older hv: zlib only */
	raw_batch(&ac, 10);
	assert_int_equal(ac.codec, PAGE_CODEC_COMPRESS_ZLIB);
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	assert_null(auto_compress_peer(&ac, false, false)); /* neither: auto is none */
	for (int i = 0; i < 2000; i++) {
		raw_batch(&ac, 1);
		assert_false(compressing(&ac));
	}
	/* --compress zstd to a destination without it: one line with the way out. */
	auto_compress_init(&ac, MIGRATE_COMPRESS_ZSTD);
	why = auto_compress_peer(&ac, true, false);
	assert_non_null(why);
	assert_non_null(strstr(why, "cannot decompress zstd"));
	assert_non_null(strstr(why, "use --compress zlib"));
	assert_non_null(strstr(why, "update hv"));
	assert_null(strchr(why, '\n'));
	auto_compress_init(&ac, MIGRATE_COMPRESS_ZLIB);
	assert_non_null(auto_compress_peer(&ac, false, true));
	auto_compress_init(&ac, MIGRATE_COMPRESS_NONE);
	assert_null(auto_compress_peer(&ac, false, false));
}

/* zstd's speed makes it worth trying on links where zlib never could pay: a 1 GiB/s link
 * with zero-heavy memory (~20x smaller at ~2.5 GiB/s) keeps it; memory it halves at
 * 600 MiB/s, slower than the link, ends the probe. zlib is not even tried there. */
static void test_zstd_on_a_fast_link(void **state)
{
	struct auto_compress ac;

	(void)state;
	init_auto(&ac, false);
	for (int i = 0; i < 2000; i++) {
		raw_batch(&ac, 1024);
		assert_false(compressing(&ac));
	}
	init_auto(&ac, true);
	raw_batch(&ac, 1024);
	assert_int_equal(ac.codec, PAGE_CODEC_COMPRESS_ZSTD);
	for (int i = 0; i < 50; i++)
		comp_batch(&ac, 1024, 2500, 0.05);
	assert_true(compressing(&ac));
	init_auto(&ac, true);
	for (int i = 0; i < 20; i++)
		raw_batch(&ac, 1024);
	assert_true(compressing(&ac));
	comp_batch(&ac, 1024, 600, 0.45);
	assert_false(compressing(&ac)); /* the link rate is trusted: one batch told */
	for (int i = 0; i < 3000; i++)
		raw_batch(&ac, 3000); /* and loopback (~3 GiB/s) is never worth a probe */
	assert_false(compressing(&ac));
}

/* ---- the policy fed with what the real codec measures ----
 * The synthetic tests above hand the policy made-up statistics; these run the real page
 * codec on real page contents (the compressors' time is this machine's), model only the
 * link, and check the invariant: auto never takes longer than none by more than noise, and it
 * does compress where that pays, with the compressor the destination speaks. This is where a
 * fallback batch reporting "nothing went through zlib" would have kept zlib on forever. */

enum content { RANDOM, TEXT, MIXED };

/* The encoder's own CPU time: what compressing costs on this machine, without the time this
 * thread spent descheduled (on a busy test host that would be most of it). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void fill_page(uint8_t *p, enum content c, uint64_t index, uint64_t *rng)
{
	static const char *const words[] = { "migration ", "page ", "dirty ", "round ", "guest ",
					     "the ", "of ", "host ", "log ", "switchover " };
	if (c == MIXED)
		c = index % 2 ? TEXT : RANDOM;
	if (c == RANDOM) {
		for (int i = 0; i < 4096; i += 8) {
			*rng ^= *rng << 13;
			*rng ^= *rng >> 7;
			*rng ^= *rng << 17;
			memcpy(p + i, rng, 8);
		}
		return;
	}
	for (int i = 0; i < 4096;) {
		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		const char *w = words[*rng % 10];
		size_t n = strlen(w);
		if (n > (size_t)(4096 - i))
			n = (size_t)(4096 - i);
		memcpy(p + i, w, n);
		i += (int)n;
	}
}

struct run {
	double auto_s, none_s;      /* modelled time to move the pages */
	uint64_t comp_batches;      /* batches auto gave to the compressor */
	uint64_t compressed_pages;  /* pages that went out compressed */
	uint64_t zstd_pages;        /* of them, with zstd */
};

/* Moves `batches` batches of `content` over a link of link_mibs, once with auto (the real
 * codec deciding per batch; the destination speaks zstd if `zstd`) and once as none, and
 * returns the modelled durations. */
static struct run simulate(enum content content, double link_mibs, int batches, bool zstd)
{
	enum { N = 256 };
	uint8_t *mem = malloc((size_t)N * 4096);
	const uint8_t *ptrs[N];
	uint64_t gfns[N], rng = 0x9e3779b97f4a7c15ULL;
	struct page_codec_enc e;
	struct auto_compress ac;
	struct run r = { 0 };

	assert_non_null(mem);
	for (int i = 0; i < N; i++) {
		fill_page(mem + (size_t)i * 4096, content, (uint64_t)i, &rng);
		ptrs[i] = mem + (size_t)i * 4096;
		gfns[i] = (uint64_t)i;
	}
	assert_int_equal(page_codec_enc_init(&e), 0);
	init_auto(&ac, zstd);
	double link_bps = link_mibs * MiB;
	for (int b = 0; b < batches; b++) {
		/* Different contents each batch, so the compressor cannot learn one page. */
		for (int i = 0; i < N; i += 16)
			fill_page(mem + (size_t)i * 4096, content, (uint64_t)(b + i), &rng);
		uint64_t cin = e.stats.compress_in_bytes, cout = e.stats.compress_out_bytes;
		uint64_t zlib0 = e.stats.zlib_pages, zstd0 = e.stats.zstd_pages;
		bool comp = compressing(&ac);
		uint64_t t0 = cpu_ns();
		assert_int_equal(page_codec_encode(&e, gfns, ptrs, N, ac.codec, false), 0);
		uint64_t enc_ns = cpu_ns() - t0;
		uint64_t send_ns = (uint64_t)((double)e.payload_len / link_bps * 1e9);
		auto_compress_account(&ac, e.payload_len, send_ns, e.stats.compress_in_bytes - cin,
				      e.stats.compress_out_bytes - cout, enc_ns);
		auto_compress_decide(&ac);
		/* Auto pays for its encoding (compressing, or hashing raw pages) and the send;
		 * none pays the raw send and the same hashing (not modelled: it is in both). */
		r.auto_s += (double)(comp ? enc_ns : 0) / 1e9 + (double)send_ns / 1e9;
		r.none_s += (double)(N * (4096 + 8) + 8 + 8 * N) / link_bps;
		r.comp_batches += comp;
		r.zstd_pages += e.stats.zstd_pages - zstd0;
		r.compressed_pages += e.stats.zlib_pages - zlib0 + e.stats.zstd_pages - zstd0;
	}
	page_codec_enc_fini(&e);
	free(mem);
	return r;
}

/* The invariant: auto takes at most noise longer than none. 5% is the cost of one full
 * 8-batch probe in 1500 batches of mixed memory (this host's runs vary by far more). */
static void assert_auto_not_slower(const struct run *r, const char *what)
{
	if (r->auto_s > r->none_s * 1.05)
		fail_msg("auto took %.3f s, none %.3f s on %s", r->auto_s, r->none_s, what);
}

/* Against an older destination (zlib only), then this one (zstd). */
static void test_real_incompressible_memory_is_never_slower_than_none(void **state)
{
	/* A destination still allocating its RAM drains at ~300 MiB/s: worth a probe. 2048
	 * batches are 2 GiB; the probes auto makes on the way must cost nothing visible. */
	for (int zstd = 0; zstd < 2; zstd++) {
		struct run r = simulate(RANDOM, 300, 2048, zstd);

		assert_true(r.comp_batches <= 3);
		assert_int_equal(r.compressed_pages, 0);
		assert_auto_not_slower(&r, zstd ? "random memory, zstd" : "random memory, zlib");
	}
}

static void test_real_mixed_memory_on_a_fast_drain_stays_raw(void **state)
{
	/* Half text, half random pages (~0.6 of raw with zlib): zlib at ~50-100 MiB/s cannot
	 * beat a 300 MiB/s drain. The first probe runs its 8 batches (the link rate is not yet
	 * trusted), a later one ends after one batch. */
	struct run r = simulate(MIXED, 300, 1500, false);

	assert_true(r.comp_batches <= 8 + 2);
	assert_auto_not_slower(&r, "mixed memory");
}

static void test_real_mixed_memory_with_zstd_is_never_slower_than_none(void **state)
{
	/* zstd on the same memory is about as fast as a 300 MiB/s drain: whichever auto keeps,
	 * it must not lose. And on a 1 GiB/s link, where zstd is tried too, it must not either. */
	struct run r = simulate(MIXED, 300, 1500, true);

	assert_auto_not_slower(&r, "mixed memory over 300 MiB/s, zstd");
	r = simulate(MIXED, 1024, 1500, true);
	assert_auto_not_slower(&r, "mixed memory over 1 GiB/s, zstd");
}

static void test_real_compressible_memory_on_a_slow_link_compresses(void **state)
{
	/* Text on a 10 MiB/s link: a few ms of compression per batch buy a much smaller send;
	 * with zstd when the destination speaks it. */
	for (int zstd = 0; zstd < 2; zstd++) {
		struct run r = simulate(TEXT, 10, 40, zstd);

		assert_true(r.comp_batches >= 38);
		assert_true(r.compressed_pages >= 38 * 256);
		assert_int_equal(r.zstd_pages, zstd ? r.compressed_pages : 0);
		if (r.auto_s > r.none_s * 0.7)
			fail_msg("auto took %.3f s, none %.3f s on text over 10 MiB/s (%s)", r.auto_s,
				 r.none_s, zstd ? "zstd" : "zlib");
	}
}

static void test_real_incompressible_memory_on_a_slow_link_stays_raw(void **state)
{
	for (int zstd = 0; zstd < 2; zstd++) {
		struct run r = simulate(RANDOM, 10, 300, zstd);

		assert_true(r.comp_batches <= 1);
		assert_auto_not_slower(&r, "random memory over 10 MiB/s");
	}
}

static void test_real_fast_link_stays_raw(void **state)
{
	/* Loopback: even text is not worth compressing at ~3 GiB/s, and is not tried. */
	struct run r = simulate(TEXT, 2800, 200, true);

	assert_int_equal(r.comp_batches, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_link_never_compresses),
		cmocka_unit_test(test_slow_link_compressible_memory_switches_to_zlib),
		cmocka_unit_test(test_incompressible_memory_ends_the_probe_at_once),
		cmocka_unit_test(test_cpu_bound_zlib_loses_to_a_medium_link),
		cmocka_unit_test(test_switchover_ends_an_unproven_probe_and_starts_none),
		cmocka_unit_test(test_fixed_modes_stay_fixed),
		cmocka_unit_test(test_destination_caps),
		cmocka_unit_test(test_zstd_on_a_fast_link),
		cmocka_unit_test(test_real_incompressible_memory_is_never_slower_than_none),
		cmocka_unit_test(test_real_mixed_memory_on_a_fast_drain_stays_raw),
		cmocka_unit_test(test_real_mixed_memory_with_zstd_is_never_slower_than_none),
		cmocka_unit_test(test_real_compressible_memory_on_a_slow_link_compresses),
		cmocka_unit_test(test_real_incompressible_memory_on_a_slow_link_stays_raw),
		cmocka_unit_test(test_real_fast_link_stays_raw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
