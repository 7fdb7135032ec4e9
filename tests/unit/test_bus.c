/* The PIO/MMIO bus (hv/bus.c): registration, overlap, dispatch, unclaimed and straddling
 * accesses, unregistration, and registration racing with dispatch on other threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hv/bus.h"

struct dev {
	int id;
	int calls;
	uint64_t last_off;
	uint32_t last_len;
	bool last_write;
	uint8_t last_data[8];
};

static void handler(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct dev *d = opaque;

	d->calls++;
	d->last_off = off;
	d->last_len = len;
	d->last_write = is_write;
	if (is_write) {
		memcpy(d->last_data, data, len);
	} else {
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(d->id * 16 + off + i);
	}
}

static void test_register_and_dispatch(void **state)
{
	struct bus b;
	struct dev a = { .id = 1 }, c = { .id = 2 };
	uint8_t data[8];

	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, handler, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x3f8, 8, handler, &c, "c"), 0);

	assert_true(bus_dispatch(&b, 0x1010, data, 4, false));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.last_off, 0x10);
	assert_int_equal(a.last_len, 4);
	assert_int_equal(data[0], 16 + 0x10);
	assert_int_equal(data[3], 16 + 0x13);

	data[0] = 0x5a;
	data[1] = 0xa5;
	assert_true(bus_dispatch(&b, 0x3fd, data, 2, true));
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.last_off, 5);
	assert_true(c.last_write);
	assert_int_equal(c.last_data[0], 0x5a);
	assert_int_equal(c.last_data[1], 0xa5);

	/* First and last byte of a region. */
	assert_true(bus_dispatch(&b, 0x1000, data, 1, false));
	assert_true(bus_dispatch(&b, 0x10ff, data, 1, false));
	assert_int_equal(a.last_off, 0xff);
	bus_destroy(&b);
}

static void test_overlap_rejected(void **state)
{
	struct bus b;
	struct dev a = { .id = 1 };

	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, handler, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, handler, &a, "same"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf80, 0x81, handler, &a, "left"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x10ff, 0x10, handler, &a, "right"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x1040, 0x10, handler, &a, "inside"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x800, 0x1000, handler, &a, "around"), -EEXIST);
	/* Adjacent on both sides is fine. */
	assert_int_equal(bus_register(&b, 0xf00, 0x100, handler, &a, "below"), 0);
	assert_int_equal(bus_register(&b, 0x1100, 0x100, handler, &a, "above"), 0);
	/* Empty, wrapping, no handler. */
	assert_int_equal(bus_register(&b, 0x5000, 0, handler, &a, "empty"), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX - 4, 16, handler, &a, "wrap"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x6000, 16, NULL, &a, "nofn"), -EINVAL);
	bus_destroy(&b);
}

static void test_unclaimed(void **state)
{
	struct bus b;
	struct dev a = { .id = 1 };
	uint8_t data[8];

	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, handler, &a, "a"), 0);
	memset(data, 0, sizeof(data));
	assert_false(bus_dispatch(&b, 0x2000, data, 8, false));
	for (int i = 0; i < 8; i++)
		assert_int_equal(data[i], 0xff);
	assert_false(bus_dispatch(&b, 0xfff, data, 1, true));
	assert_false(bus_dispatch(&b, 0x1100, data, 1, false));
	assert_int_equal(a.calls, 0);

	/* An empty bus claims nothing either. */
	struct bus e;
	bus_init(&e);
	assert_false(bus_dispatch(&e, 0, data, 4, false));
	bus_destroy(&e);
	bus_destroy(&b);
}

static void test_straddling(void **state)
{
	struct bus b;
	struct dev a = { .id = 1 }, c = { .id = 2 };
	uint8_t data[8];

	bus_init(&b);
	assert_int_equal(bus_register(&b, 0xcf8, 4, handler, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0xcfc, 4, handler, &c, "c"), 0);
	/* Crossing from one region into its neighbour: nobody gets it. */
	memset(data, 0, sizeof(data));
	assert_false(bus_dispatch(&b, 0xcfa, data, 4, false));
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[3], 0xff);
	/* Running off the end into nothing. */
	assert_false(bus_dispatch(&b, 0xcfe, data, 4, true));
	/* Starting before the region. */
	assert_false(bus_dispatch(&b, 0xcf6, data, 4, false));
	assert_int_equal(a.calls, 0);
	assert_int_equal(c.calls, 0);
	/* Exactly fitting the tail is fine. */
	assert_true(bus_dispatch(&b, 0xcfe, data, 2, false));
	assert_int_equal(c.last_off, 2);
	bus_destroy(&b);
}

static void test_unregister(void **state)
{
	struct bus b;
	struct dev a = { .id = 1 }, c = { .id = 2 };
	uint8_t data[4];

	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x1000, 0x10, handler, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x2000, 0x10, handler, &c, "c"), 0);
	assert_int_equal(bus_unregister(&b, 0x1008), -ENOENT); /* not a base */
	assert_int_equal(bus_unregister(&b, 0x1000), 0);
	assert_false(bus_dispatch(&b, 0x1000, data, 1, false));
	assert_true(bus_dispatch(&b, 0x2000, data, 1, false));
	assert_int_equal(bus_unregister(&b, 0x1000), -ENOENT);
	/* The range is free again. */
	assert_int_equal(bus_register(&b, 0x1000, 0x10, handler, &c, "again"), 0);
	assert_true(bus_dispatch(&b, 0x100f, data, 1, false));
	assert_int_equal(c.calls, 2);
	bus_destroy(&b);
}

/* Many regions registered in scrambled order: the sorted search finds each one. */
static void test_many_regions(void **state)
{
	enum { N = 200 };
	struct bus b;
	static struct dev devs[N];
	uint8_t data[2];

	bus_init(&b);
	for (int k = 0; k < N; k++) {
		int i = (k * 77) % N; /* 77 is coprime to 200: a permutation */
		devs[i].id = i;
		devs[i].calls = 0;
		assert_int_equal(bus_register(&b, 0x10000 + (uint64_t)i * 0x100, 0x80, handler, &devs[i], "d"), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_true(bus_dispatch(&b, 0x10000 + (uint64_t)i * 0x100 + 0x7e, data, 2, false));
		assert_int_equal(devs[i].calls, 1);
		assert_int_equal(devs[i].last_off, 0x7e);
		/* The gap after each region is unclaimed. */
		assert_false(bus_dispatch(&b, 0x10000 + (uint64_t)i * 0x100 + 0x80, data, 1, false));
	}
	for (int i = 0; i < N; i += 2)
		assert_int_equal(bus_unregister(&b, 0x10000 + (uint64_t)i * 0x100), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(bus_dispatch(&b, 0x10000 + (uint64_t)i * 0x100, data, 1, false), i % 2 == 1);
	bus_destroy(&b);
}

/* vCPU threads keep dispatching while another thread moves a region back and forth (as a
 * BAR move does). A handler must never run on a region after bus_unregister returned. */
struct race {
	struct bus bus;
	int alive; /* the opaque is "freed" when 0 */
	int stop;
	long dispatched, misuse;
};

static void race_handler(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct race *r = opaque;

	if (!__atomic_load_n(&r->alive, __ATOMIC_ACQUIRE))
		__atomic_fetch_add(&r->misuse, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0x42, len);
}

static void *race_dispatcher(void *arg)
{
	struct race *r = arg;
	uint8_t data[4];

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		bus_dispatch(&r->bus, 0x1000, data, 4, false);
		bus_dispatch(&r->bus, 0x2000, data, 4, false);
		__atomic_fetch_add(&r->dispatched, 2, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent_move(void **state)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t t[3];

	bus_init(&r->bus);
	r->alive = 1;
	assert_int_equal(bus_register(&r->bus, 0x1000, 0x100, race_handler, r, "moving"), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_dispatcher, r), 0);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int moves = 0;
	do {
		uint64_t from = moves % 2 ? 0x2000 : 0x1000, to = moves % 2 ? 0x1000 : 0x2000;
		assert_int_equal(bus_unregister(&r->bus, from), 0);
		/* Between unregister and register the region is "dead". */
		__atomic_store_n(&r->alive, 0, __ATOMIC_RELEASE);
		struct timespec pause = { 0, 20000 };
		nanosleep(&pause, NULL);
		__atomic_store_n(&r->alive, 1, __ATOMIC_RELEASE);
		assert_int_equal(bus_register(&r->bus, to, 0x100, race_handler, r, "moving"), 0);
		moves++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 200);
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r->misuse, 0);
	assert_true(moves > 10);
	assert_true(r->dispatched > 0);
	bus_destroy(&r->bus);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_dispatch),
		cmocka_unit_test(test_overlap_rejected),
		cmocka_unit_test(test_unclaimed),
		cmocka_unit_test(test_straddling),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_many_regions),
		cmocka_unit_test(test_concurrent_move),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
