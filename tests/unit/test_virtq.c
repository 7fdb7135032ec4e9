/* Split virtqueues (devices/virtq.c) on synthetic rings in a guest_mem: normal and
 * indirect chains, every kind of bad descriptor, avail index checks, event-idx
 * suppression, the used ring and the VMM dirty bitmap, and a randomised ring fuzz. */
#include <errno.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtq.h"
#include "hv/guest_mem.h"
#include "hv/layout.h"

#define MEM_SIZE (16 * MiB)
#define QSIZE 8
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define DATA_GPA 0x10000
#define INDIRECT_GPA 0x8000

struct fixture {
	struct guest_mem mem;
	struct virtq q;
	int errors;
	char why[128];
	uint16_t avail_idx;
};

static void on_error(void *opaque, struct virtq *q, const char *why)
{
	struct fixture *f = opaque;

	f->errors++;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static void *gptr(struct fixture *f, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&f->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static void start(struct fixture *f, bool event_idx, bool indirect)
{
	virtq_reset(&f->q);
	f->q.s.size = QSIZE;
	f->q.s.desc_addr = DESC_GPA;
	f->q.s.avail_addr = AVAIL_GPA;
	f->q.s.used_addr = USED_GPA;
	f->q.s.enabled = 1;
	assert_int_equal(virtq_start(&f->q, event_idx, indirect), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (guest_mem_create(&f->mem, MEM_SIZE) < 0)
		return -1;
	virtq_init(&f->q, &f->mem, 0, on_error, f);
	start(f, false, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtq_destroy(&f->q);
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void set_desc(struct fixture *f, uint64_t table, int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = gptr(f, table + 16ull * i, 16);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void publish(struct fixture *f, uint16_t head)
{
	uint16_t *avail = gptr(f, AVAIL_GPA, 4 + 2 * QSIZE + 2);

	avail[2 + f->avail_idx % QSIZE] = head;
	f->avail_idx++;
	avail[1] = f->avail_idx;
}

static void set_avail_idx(struct fixture *f, uint16_t idx)
{
	uint16_t *avail = gptr(f, AVAIL_GPA, 4);

	avail[1] = idx;
}

static uint16_t used_idx(struct fixture *f)
{
	uint16_t *used = gptr(f, USED_GPA, 4);

	return used[1];
}

static void used_elem(struct fixture *f, int i, uint32_t *id, uint32_t *len)
{
	uint32_t *e = gptr(f, USED_GPA + 4 + 8ull * i, 8);

	*id = e[0];
	*len = e[1];
}

static void clear_dirty(struct fixture *f)
{
	uint64_t words = (guest_mem_pages(&f->mem) + 63) / 64;

	for (uint64_t w = 0; w < words; w++)
		guest_mem_take_dirty_word(&f->mem, w);
}

static bool dirty(struct fixture *f, uint64_t gpa)
{
	uint64_t page = gpa / PAGE_SIZE;

	return f->mem.vmm_dirty[page / 64] & (1ull << (page % 64));
}

static void expect_broken(struct fixture *f, struct virtq_chain *c, const char *what)
{
	assert_int_equal(virtq_pop(&f->q, c), -1);
	assert_true(f->q.broken);
	assert_int_equal(f->errors, 1);
	if (what && !strstr(f->why, what))
		fail_msg("error '%s' does not mention '%s'", f->why, what);
	/* Sticky until reset. */
	assert_int_equal(virtq_pop(&f->q, c), -1);
	assert_int_equal(f->errors, 1);
	assert_false(virtq_has_avail(&f->q));
}

static void test_empty(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	assert_false(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &c), 0);
	assert_int_equal(f->errors, 0);
}

static void test_normal_chain(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 3);
	set_desc(f, DESC_GPA, 3, DATA_GPA + 0x1000, 512, VRING_DESC_F_NEXT, 5);
	set_desc(f, DESC_GPA, 5, DATA_GPA + 0x5000, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_true(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.head, 0);
	assert_int_equal(c.n_out, 2);
	assert_int_equal(c.n_in, 1);
	assert_int_equal(c.out_len, 528);
	assert_int_equal(c.in_len, 1);
	assert_ptr_equal(c.iov[0].iov_base, gptr(f, DATA_GPA, 16));
	assert_int_equal(c.iov[1].iov_len, 512);
	assert_ptr_equal(c.iov[2].iov_base, gptr(f, DATA_GPA + 0x5000, 1));
	assert_int_equal(virtq_pop(&f->q, &c), 0);

	clear_dirty(f);
	virtq_push(&f->q, &c, 1);
	assert_int_equal(used_idx(f), 1);
	uint32_t id, len;
	used_elem(f, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 1);
	/* Used ring and the written buffer are dirty; the device-readable data is not. */
	assert_true(dirty(f, USED_GPA));
	assert_true(dirty(f, DATA_GPA + 0x5000));
	assert_false(dirty(f, DATA_GPA));
	assert_false(dirty(f, DATA_GPA + 0x1000));
	assert_false(dirty(f, DESC_GPA));
	assert_int_equal(f->errors, 0);
}

static void test_push_clamps_and_marks_all_writable(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 1, DATA_GPA, 0x2000, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(f, DESC_GPA, 2, DATA_GPA + 0x10000, 0x1000, VRING_DESC_F_WRITE, 0);
	publish(f, 1);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	clear_dirty(f);
	virtq_push(&f->q, &c, 0xffffffffu);
	uint32_t id, len;
	used_elem(f, 0, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 0x3000);
	assert_true(dirty(f, DATA_GPA));
	assert_true(dirty(f, DATA_GPA + 0x1000));
	assert_true(dirty(f, DATA_GPA + 0x10000));
	assert_false(dirty(f, DATA_GPA + 0x2000));
}

static void test_wraparound(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	/* Start near the 16-bit wrap of the free-running indices. */
	virtq_reset(&f->q);
	f->q.s.size = QSIZE;
	f->q.s.desc_addr = DESC_GPA;
	f->q.s.avail_addr = AVAIL_GPA;
	f->q.s.used_addr = USED_GPA;
	f->q.s.last_avail_idx = f->q.s.used_idx = 65533;
	assert_int_equal(virtq_start(&f->q, false, false), 0);
	f->avail_idx = 65533;
	set_desc(f, DESC_GPA, 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	for (int i = 0; i < 6; i++) {
		publish(f, 0);
		assert_int_equal(virtq_pop(&f->q, &c), 1);
		virtq_push(&f->q, &c, 8);
	}
	assert_int_equal(used_idx(f), (uint16_t)(65533 + 6));
	assert_int_equal(f->errors, 0);
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, INDIRECT_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, INDIRECT_GPA, 1, DATA_GPA + 0x100, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(f, INDIRECT_GPA, 2, DATA_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, DESC_GPA, 4, INDIRECT_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 4);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.head, 4);
	assert_int_equal(c.n_out, 1);
	assert_int_equal(c.n_in, 2);
	assert_int_equal(c.in_len, 4097);
	/* Direct descriptors followed by an indirect table. */
	set_desc(f, DESC_GPA, 6, DATA_GPA + 0x3000, 8, VRING_DESC_F_NEXT, 7);
	set_desc(f, INDIRECT_GPA + 0x100, 0, DATA_GPA + 0x4000, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(f, INDIRECT_GPA + 0x100, 1, DATA_GPA + 0x4100, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, DESC_GPA, 7, INDIRECT_GPA + 0x100, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 6);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n_out, 1);
	assert_int_equal(c.n_in, 2);
	assert_int_equal(f->errors, 0);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	start(f, false, false);
	set_desc(f, INDIRECT_GPA, 0, DATA_GPA, 16, 0, 0);
	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, "INDIRECT");
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, INDIRECT_GPA, 0, INDIRECT_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, "nested");
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 24, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, "multiple of 16");
}

static void test_indirect_zero_length(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 0, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, "multiple of 16");
}

static void test_indirect_outside_ram(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, MEM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, "indirect table outside");
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, INDIRECT_GPA, 0, DATA_GPA, 16, 0, 0);
	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	publish(f, 0);
	expect_broken(f, &c, "NEXT");
}

static void test_indirect_loop_and_oversize(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	/* A loop inside an indirect table. */
	set_desc(f, INDIRECT_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, INDIRECT_GPA, 1, DATA_GPA, 16, VRING_DESC_F_NEXT, 0);
	set_desc(f, DESC_GPA, 0, INDIRECT_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, &c, NULL);

	/* A huge table of chained non-empty descriptors: more segments than we take. */
	start(f, false, true);
	f->errors = 0;
	int n = VIRTQ_MAX_SEGS + 10;
	for (int i = 0; i < n; i++)
		set_desc(f, 0x100000, i, DATA_GPA, 8, i + 1 < n ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(f, DESC_GPA, 1, 0x100000, (uint32_t)n * 16, VRING_DESC_F_INDIRECT, 0);
	f->avail_idx = 0;
	publish(f, 1);
	expect_broken(f, &c, "too long");
}

/* An indirect table may hold at most the queue size entries: a guest must not make one kick
 * cost the device thread more than walking a full queue. */
static void test_indirect_longer_than_queue(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	for (int i = 0; i <= QSIZE; i++)
		set_desc(f, 0x100000, i, DATA_GPA, 8, i < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(f, DESC_GPA, 0, 0x100000, QSIZE * 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(f, DESC_GPA, 1, 0x100000, (QSIZE + 1) * 16, VRING_DESC_F_INDIRECT, 0);
	/* Exactly the queue size (the last entry ends the chain here) is fine. */
	set_desc(f, 0x100000, QSIZE - 1, DATA_GPA, 8, 0, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n_out, QSIZE);
	virtq_push(&f->q, &c, 0);
	publish(f, 1);
	expect_broken(f, &c, "more entries than the queue size");
}

/* Zero-length descriptors add no segment but are work all the same: they count toward the
 * segment cap, so a chain of them plus a full indirect table is refused. */
static void test_zero_length_descriptors_count(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	enum { BIG = VIRTQ_MAX_SIZE, ZEROS = BIG - 1 };

	virtq_reset(&f->q);
	f->q.s.size = BIG;
	f->q.s.desc_addr = DESC_GPA;
	f->q.s.avail_addr = AVAIL_GPA;
	f->q.s.used_addr = USED_GPA;
	assert_int_equal(virtq_start(&f->q, false, true), 0);
	for (int i = 0; i < ZEROS; i++)
		set_desc(f, DESC_GPA, i, DATA_GPA, 0, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc(f, DESC_GPA, ZEROS, 0x100000, BIG * 16, VRING_DESC_F_INDIRECT, 0);
	for (int i = 0; i < BIG; i++)
		set_desc(f, 0x100000, i, DATA_GPA, 8, i + 1 < BIG ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	publish(f, 0);
	expect_broken(f, &c, "too long");
}

static void test_address_outside_ram(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, MEM_SIZE + 0x1000, 16, 0, 0);
	publish(f, 0);
	expect_broken(f, &c, "outside guest RAM");
}

static void test_buffer_straddles_end_of_ram(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, MEM_SIZE - 8, 16, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	expect_broken(f, &c, "outside guest RAM");
}

static void test_buffer_in_mmio_hole(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, MMIO_HOLE_START, 16, 0, 0);
	publish(f, 0);
	expect_broken(f, &c, "outside guest RAM");
}

static void test_len_overflow(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, UINT64_MAX - 0xfff, 0x2000, 0, 0);
	publish(f, 0);
	expect_broken(f, &c, "wraps");
}

static void test_looping_chain(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC_GPA, 1, DATA_GPA, 16, VRING_DESC_F_NEXT, 2);
	set_desc(f, DESC_GPA, 2, DATA_GPA, 16, VRING_DESC_F_NEXT, 0);
	publish(f, 0);
	expect_broken(f, &c, "loops");
}

static void test_self_loop_zero_length(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	/* Zero-length descriptors add no segment, but the walk still ends. */
	set_desc(f, DESC_GPA, 3, DATA_GPA, 0, VRING_DESC_F_NEXT, 3);
	publish(f, 3);
	expect_broken(f, &c, "loops");
}

static void test_full_length_chain_is_fine(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	for (int i = 0; i < QSIZE; i++)
		set_desc(f, DESC_GPA, i, DATA_GPA + 0x100ull * i, 0x100,
			 i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n_out, QSIZE);
	assert_int_equal(f->errors, 0);
}

static void test_index_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	publish(f, QSIZE); /* head out of range */
	expect_broken(f, &c, "out of range");

	start(f, false, true);
	f->errors = 0;
	f->avail_idx = 0;
	set_desc(f, DESC_GPA, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 200); /* next out of range */
	publish(f, 0);
	expect_broken(f, &c, "out of range");
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, DATA_GPA, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC_GPA, 1, DATA_GPA, 16, 0, 0);
	publish(f, 0);
	expect_broken(f, &c, "readable");
}

static void test_bad_avail_idx(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 0, DATA_GPA, 16, 0, 0);
	set_avail_idx(f, QSIZE); /* exactly a full ring: fine */
	assert_true(virtq_has_avail(&f->q));
	set_avail_idx(f, QSIZE + 1);
	expect_broken(f, &c, "avail index");
	/* Reset makes the queue usable again. */
	start(f, false, true);
	f->errors = 0;
	set_avail_idx(f, 1);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_false(f->q.broken);
}

static void test_unpop(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;

	set_desc(f, DESC_GPA, 2, DATA_GPA, 64, VRING_DESC_F_WRITE, 0);
	publish(f, 2);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	virtq_unpop(&f->q);
	assert_true(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.head, 2);
}

static void test_bad_ring_setup(void **state)
{
	struct fixture *f = *state;
	struct virtq *q = &f->q;

	virtq_reset(q);
	q->s.size = 6; /* not a power of two */
	q->s.desc_addr = DESC_GPA;
	q->s.avail_addr = AVAIL_GPA;
	q->s.used_addr = USED_GPA;
	assert_int_equal(virtq_start(q, false, false), -1);
	assert_int_equal(f->errors, 1);

	virtq_reset(q);
	q->s.size = 512; /* above the maximum */
	q->s.desc_addr = DESC_GPA;
	q->s.avail_addr = AVAIL_GPA;
	q->s.used_addr = USED_GPA;
	assert_int_equal(virtq_start(q, false, false), -1);

	virtq_reset(q);
	q->s.size = QSIZE;
	q->s.desc_addr = DESC_GPA + 8; /* misaligned */
	q->s.avail_addr = AVAIL_GPA;
	q->s.used_addr = USED_GPA;
	assert_int_equal(virtq_start(q, false, false), -1);

	virtq_reset(q);
	q->s.size = QSIZE;
	q->s.desc_addr = DESC_GPA;
	q->s.avail_addr = AVAIL_GPA;
	q->s.used_addr = MEM_SIZE - 16; /* used ring runs past the end of RAM */
	assert_int_equal(virtq_start(q, false, false), -1);
	assert_false(virtq_active(q));
	assert_int_equal(f->errors, 4);
	struct virtq_chain c;
	assert_int_equal(virtq_pop(q, &c), -1);
}

static void test_interrupt_suppression_no_event_idx(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	uint16_t *avail = gptr(f, AVAIL_GPA, 4);

	set_desc(f, DESC_GPA, 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	/* Nothing pushed yet: nothing to tell. */
	assert_false(virtq_needs_interrupt(&f->q));
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	virtq_push(&f->q, &c, 8);
	assert_true(virtq_needs_interrupt(&f->q));
	assert_false(virtq_needs_interrupt(&f->q)); /* and not twice */
	avail[0] = VRING_AVAIL_F_NO_INTERRUPT;
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &c), 1);
	virtq_push(&f->q, &c, 8);
	assert_false(virtq_needs_interrupt(&f->q));

	/* Device-side: disable sets NO_NOTIFY in the used flags (and marks it dirty). */
	uint16_t *used = gptr(f, USED_GPA, 4);
	clear_dirty(f);
	virtq_disable_notify(&f->q);
	assert_int_equal(used[0], VRING_USED_F_NO_NOTIFY);
	assert_true(dirty(f, USED_GPA));
	assert_false(virtq_enable_notify(&f->q));
	assert_int_equal(used[0], 0);
	publish(f, 0);
	assert_true(virtq_enable_notify(&f->q)); /* something is waiting already */
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	uint16_t *used_event = gptr(f, AVAIL_GPA + 4 + 2 * QSIZE, 2);
	uint16_t *avail_event = gptr(f, USED_GPA + 4 + 8 * QSIZE, 2);

	start(f, true, true);
	set_desc(f, DESC_GPA, 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	/* The driver wants an interrupt once used idx passes 3 (i.e. reaches 4). */
	*used_event = 3;
	bool irq[6];
	for (int i = 0; i < 6; i++) {
		publish(f, 0);
		assert_int_equal(virtq_pop(&f->q, &c), 1);
		virtq_push(&f->q, &c, 8);
		irq[i] = virtq_needs_interrupt(&f->q);
	}
	assert_false(irq[0]); /* used 1 */
	assert_false(irq[1]); /* used 2 */
	assert_false(irq[2]); /* used 3 */
	assert_true(irq[3]);  /* used 4: stepped over used_event 3 */
	assert_false(irq[4]);
	assert_false(irq[5]);
	/* Several pushes between decisions: crossing inside the batch still interrupts. */
	*used_event = 7;
	for (int i = 0; i < 3; i++) {
		publish(f, 0);
		assert_int_equal(virtq_pop(&f->q, &c), 1);
		virtq_push(&f->q, &c, 8);
	}
	assert_true(virtq_needs_interrupt(&f->q)); /* 6 -> 9 passes 7 */
	assert_false(virtq_needs_interrupt(&f->q)); /* nothing new */

	/* Device-side: enable writes avail_event = last_avail_idx, marked dirty. */
	clear_dirty(f);
	assert_false(virtq_enable_notify(&f->q));
	assert_int_equal(*avail_event, 9);
	assert_true(dirty(f, USED_GPA + 4 + 8 * QSIZE));
	/* With event idx, disabling leaves the used flags alone. */
	uint16_t *used = gptr(f, USED_GPA, 4);
	virtq_disable_notify(&f->q);
	assert_int_equal(used[0], 0);
}

static void test_iov_helpers(void **state)
{
	uint8_t a[3] = { 1, 2, 3 }, b[2] = { 4, 5 }, c[4] = { 6, 7, 8, 9 };
	struct iovec iov[3] = { { a, 3 }, { b, 2 }, { c, 4 } }, out[4];
	uint8_t buf[16];

	assert_int_equal(virtq_iov_len(iov, 3), 9);
	assert_int_equal(virtq_iov_read(iov, 3, 2, buf, 5), 5);
	assert_memory_equal(buf, ((uint8_t[]){ 3, 4, 5, 6, 7 }), 5);
	assert_int_equal(virtq_iov_read(iov, 3, 8, buf, 5), 1);
	assert_int_equal(virtq_iov_read(iov, 3, 20, buf, 5), 0);
	uint8_t w[3] = { 0xa, 0xb, 0xc };
	assert_int_equal(virtq_iov_write(iov, 3, 4, w, 3), 3);
	assert_int_equal(b[1], 0xa);
	assert_int_equal(c[0], 0xb);
	assert_int_equal(c[1], 0xc);
	int n = virtq_iov_slice(iov, 3, 1, 6, out, 4);
	assert_int_equal(n, 3);
	assert_ptr_equal(out[0].iov_base, a + 1);
	assert_int_equal(out[0].iov_len, 2);
	assert_int_equal(out[2].iov_len, 2);
	assert_int_equal(virtq_iov_len(out, n), 6);
	assert_int_equal(virtq_iov_slice(iov, 3, 0, 100, out, 2), 2); /* dst_max */
}

/* Random rings: whatever the guest writes, pop either fails cleanly or returns segments
 * that lie inside guest RAM (ASan would catch any access outside as well). */
static void test_random_rings(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	uint8_t *host = f->mem.host;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int chains = 0, broken = 0;

	for (int iter = 0; iter < 4000; iter++) {
		start(f, iter & 1, iter & 2);
		f->errors = 0;
		uint8_t *desc = gptr(f, DESC_GPA, 16 * QSIZE);
		uint8_t *ind = gptr(f, INDIRECT_GPA, 0x400);
		for (int i = 0; i < 16 * QSIZE + 0x400; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			uint8_t v = (uint8_t)seed;
			if (i < 16 * QSIZE)
				desc[i] = v;
			else
				ind[i - 16 * QSIZE] = v;
		}
		/* Bias the fields towards plausible values, so that walks get deep. */
		for (int i = 0; i < QSIZE + 64; i++) {
			uint8_t *d = i < QSIZE ? desc + 16 * i : ind + 16 * (i - QSIZE);
			uint64_t r = seed * (uint64_t)(i + 1);
			if (r % 4) {
				uint64_t addr = (r >> 8) % (MEM_SIZE + 0x2000);
				memcpy(d, &addr, 8);
			}
			if (r % 3) {
				uint32_t len = (uint32_t)((r >> 20) % 0x3000);
				memcpy(d + 8, &len, 4);
			}
			if (r % 5 == 0) {
				uint32_t len = 16 * (uint32_t)((r >> 30) % 70);
				uint64_t addr = INDIRECT_GPA;
				memcpy(d, &addr, 8);
				memcpy(d + 8, &len, 4);
			}
			d[13] = 0;
			d[12] &= 7;
			if (i < QSIZE)
				d[14] %= QSIZE + 1;
			d[15] = 0;
		}
		uint16_t *avail = gptr(f, AVAIL_GPA, 4 + 2 * QSIZE);
		avail[1] = (uint16_t)(seed % (QSIZE + 3));
		for (int i = 0; i < QSIZE; i++)
			avail[2 + i] = (uint16_t)((seed >> (4 * i)) % (QSIZE + 1));
		for (int k = 0; k < QSIZE + 2; k++) {
			int r = virtq_pop(&f->q, &c);
			if (r <= 0) {
				broken += r < 0;
				break;
			}
			chains++;
			for (int i = 0; i < c.n_out + c.n_in; i++) {
				uint8_t *p = c.iov[i].iov_base;
				assert_true(p >= host && p + c.iov[i].iov_len <= host + MEM_SIZE);
			}
			virtq_push(&f->q, &c, (uint32_t)seed);
		}
	}
	assert_true(chains > 100);
	assert_true(broken > 100);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_normal_chain),
		T(test_push_clamps_and_marks_all_writable),
		T(test_wraparound),
		T(test_indirect),
		T(test_indirect_not_negotiated),
		T(test_indirect_nested),
		T(test_indirect_bad_length),
		T(test_indirect_zero_length),
		T(test_indirect_outside_ram),
		T(test_indirect_with_next),
		T(test_indirect_loop_and_oversize),
		T(test_indirect_longer_than_queue),
		T(test_zero_length_descriptors_count),
		T(test_address_outside_ram),
		T(test_buffer_straddles_end_of_ram),
		T(test_buffer_in_mmio_hole),
		T(test_len_overflow),
		T(test_looping_chain),
		T(test_self_loop_zero_length),
		T(test_full_length_chain_is_fine),
		T(test_index_out_of_range),
		T(test_readable_after_writable),
		T(test_bad_avail_idx),
		T(test_unpop),
		T(test_bad_ring_setup),
		T(test_interrupt_suppression_no_event_idx),
		T(test_event_idx),
		T(test_iov_helpers),
		T(test_random_rings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
