/* --compress auto: when it turns zlib on and off. The inputs are what the sender measures
 * per batch; the numbers below are this machine's (loopback ~3 GiB/s, zlib ~60 MiB/s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "migrate/auto_compress.h"

#define MiB (1024.0 * 1024.0)
#define BATCH (256 * 4096ULL)

/* One batch sent raw over a link of link_mibs MiB/s that made the send wait. */
static void raw_batch(struct auto_compress *ac, double link_mibs)
{
	auto_compress_account(ac, BATCH, (uint64_t)(BATCH / (link_mibs * MiB) * 1e9), 0, 0, 0);
	auto_compress_decide(ac);
}

/* One batch through zlib at zlib_mibs with the given ratio, then sent at link_mibs. */
static void zlib_batch(struct auto_compress *ac, double link_mibs, double zlib_mibs, double ratio)
{
	uint64_t out = (uint64_t)(BATCH * ratio);
	auto_compress_account(ac, out, (uint64_t)(out / (link_mibs * MiB) * 1e9), BATCH, out,
			      (uint64_t)(BATCH / (zlib_mibs * MiB) * 1e9));
	auto_compress_decide(ac);
}

static void test_fast_link_never_compresses(void **state)
{
	struct auto_compress ac;

	(void)state;
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	for (int i = 0; i < 5000; i++) {
		raw_batch(&ac, 2800);
		assert_false(ac.use_zlib);
	}
}

static void test_slow_link_compressible_memory_switches_to_zlib(void **state)
{
	struct auto_compress ac;

	(void)state;
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	raw_batch(&ac, 10); /* a 10 MiB/s link: worth a probe */
	assert_true(ac.use_zlib);
	for (int i = 0; i < 20; i++)
		zlib_batch(&ac, 10, 60, 0.05);
	assert_true(ac.use_zlib); /* 20x smaller at 60 MiB/s beats 10 MiB/s raw */
	assert_true(auto_compress_wire_ratio(&ac) < 0.1);
	auto_compress_settle(&ac);
	assert_true(ac.use_zlib); /* proven: kept through the switchover */
}

static void test_incompressible_memory_ends_the_probe_at_once(void **state)
{
	struct auto_compress ac;

	(void)state;
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	raw_batch(&ac, 300);
	assert_true(ac.use_zlib);
	zlib_batch(&ac, 300, 60, 0.99);
	assert_false(ac.use_zlib);
	assert_true(auto_compress_wire_ratio(&ac) == 1.0);
	/* And it is not tried again soon. */
	for (int i = 0; i < 100; i++) {
		raw_batch(&ac, 300);
		assert_false(ac.use_zlib);
	}
}

static void test_cpu_bound_zlib_loses_to_a_medium_link(void **state)
{
	struct auto_compress ac;

	(void)state;
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	raw_batch(&ac, 300);
	for (int i = 0; i < 8 && ac.use_zlib; i++)
		zlib_batch(&ac, 300, 60, 0.5); /* 60 MiB/s of pages vs 300 raw */
	assert_false(ac.use_zlib);
}

static void test_switchover_ends_an_unproven_probe_and_starts_none(void **state)
{
	struct auto_compress ac;

	(void)state;
	auto_compress_init(&ac, MIGRATE_COMPRESS_AUTO);
	raw_batch(&ac, 10);
	assert_true(ac.use_zlib);
	zlib_batch(&ac, 10, 60, 0.3);
	auto_compress_settle(&ac); /* guest paused mid-probe */
	assert_false(ac.use_zlib);
	for (int i = 0; i < 2000; i++) {
		raw_batch(&ac, 10);
		assert_false(ac.use_zlib);
	}
}

static void test_fixed_modes_stay_fixed(void **state)
{
	struct auto_compress z, n;

	(void)state;
	auto_compress_init(&z, MIGRATE_COMPRESS_ZLIB);
	auto_compress_init(&n, MIGRATE_COMPRESS_NONE);
	for (int i = 0; i < 50; i++) {
		zlib_batch(&z, 3000, 60, 0.99);
		raw_batch(&n, 1);
	}
	auto_compress_settle(&z);
	assert_true(z.use_zlib);
	assert_false(n.use_zlib);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
