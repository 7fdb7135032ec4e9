/* Post-copy without a guest: the destination's userfaultfd loop over real guest RAM (a
 * thread that touches a page still to come waits until the "source" at the other end of a
 * socketpair sends it; an untouched page reads as zero), the checks on what a source may
 * send, and the source's order (a requested page and its run first, then the push goes on
 * from there). Skipped where userfaultfd is not available. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hv/guest_mem.h"
#include "migrate/page_codec.h"
#include "migrate/postcopy_dst.h"
#include "migrate/postcopy_src.h"
#include "migrate/wire.h"

#define PG 4096u
#define NPAGES 256u

static bool have_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* DISCARD ranges as the wire carries them. */
static const uint8_t *ranges(uint8_t *b, const struct wire_range *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		wire_put_u64(b + 16 * i, r[i].gfn);
		wire_put_u64(b + 16 * i + 8, r[i].npages);
	}
	return b;
}

/* A page's content as the source has it now. */
static void fill(uint8_t *page, uint64_t gfn, uint8_t gen)
{
	for (unsigned i = 0; i < PG; i += 8) {
		uint64_t v = gfn << 8 | gen;
		memcpy(page + i, &v, 8);
	}
}

struct toucher {
	volatile uint8_t *page;
	uint8_t first; /* what the guest read */
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	t->first = t->page[0];
	return NULL;
}

/* The source's end: answers the first request with the page asked for, then pushes the
 * rest of `want`, then POSTCOPY_DONE, and expects the ACK. `bogus`: a page that was never
 * announced goes first (a broken or hostile source). */
struct fake_source {
	int fd;
	const uint64_t *want;
	unsigned nwant;
	uint64_t bogus;
	uint64_t asked;
	bool acked;
};

static int send_page(struct wire_conn *c, struct page_codec_enc *e, uint64_t gfn)
{
	static uint8_t page[PG];
	const uint8_t *pages[1] = { page };

	fill(page, gfn, 2);
	if (page_codec_encode(e, &gfn, pages, 1, PAGE_CODEC_COMPRESS_NONE, true) < 0)
		return -1;
	return wire_send_iov(c, WIRE_PAGES, e->iov, e->iovcnt, e->crc_len);
}

static void *source(void *arg)
{
	struct fake_source *f = arg;
	struct wire_conn c;
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	struct page_codec_enc e;
	const uint8_t *entries;
	uint32_t n;

	wire_conn_init_fd(&c, f->fd);
	page_codec_enc_init(&e);
	if (f->bogus) {
		send_page(&c, &e, f->bogus);
		goto out;
	}
	if (wire_recv(&c, &buf, &rec) == 0 && rec.hdr.type == WIRE_PAGE_REQUEST &&
	    wire_parse_page_request(rec.payload, rec.len, &n, &entries, NULL, 0) == 0) {
		f->asked = wire_get_u64(entries);
		send_page(&c, &e, f->asked);
	}
	for (unsigned i = 0; i < f->nwant; i++)
		if (f->want[i] != f->asked)
			send_page(&c, &e, f->want[i]);
	uint8_t done[WIRE_POSTCOPY_DONE_SIZE] = { 0 };
	wire_send(&c, WIRE_POSTCOPY_DONE, done, sizeof(done));
	while (wire_recv(&c, &buf, &rec) == 0)
		if (rec.hdr.type == WIRE_ACK)
			f->acked = true;
out:
	wire_buf_free(&buf);
	page_codec_enc_fini(&e);
	return NULL;
}

/* The destination's side made ready: the ranges announced, dropped from RAM, RAM registered. */
static void arm(struct guest_mem *mem, struct postcopy_dst *p, const struct wire_range *r, uint32_t n)
{
	uint8_t b[16 * 4];
	char err[320];

	assert_true(n <= 4);
	assert_int_equal(postcopy_dst_open(p, mem, err, sizeof(err)), 0);
	assert_int_equal(postcopy_dst_discard(p, ranges(b, r, n), n, err, sizeof(err)), 0);
	assert_int_equal(postcopy_dst_arm(p, err, sizeof(err)), 0);
}

/* Everything one destination test made. */
static void teardown_dst(struct postcopy_dst *p, struct page_codec_dec *dec, const int sv[2], struct guest_mem *mem)
{
	postcopy_dst_close(p);
	page_codec_dec_fini(dec);
	close(sv[0]);
	close(sv[1]);
	guest_mem_destroy(mem);
}

/* Seven pages still to come; a thread touches one of them and reads what the source sends,
 * another touches a page nobody ever wrote and reads zero; pre-copy's pages stay. */
static void test_destination_serves_faults(void **unused)
{
	if (!have_uffd())
		skip();
	struct guest_mem mem;
	struct postcopy_dst p;
	char err[320];
	int sv[2];

	assert_int_equal(guest_mem_create(&mem, NPAGES * PG), 0);
	for (uint64_t g = 0; g < 200; g++) /* pre-copy's pages; 200.. never written */
		fill(mem.host + g * PG, g, 1);
	const struct wire_range r[] = { { 10, 5 }, { 40, 2 } };
	arm(&mem, &p, r, 2);
	assert_int_equal(p.discarded, 7);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	static const uint64_t want[] = { 10, 11, 12, 13, 14, 40, 41 };
	struct fake_source f = { .fd = sv[1], .want = want, .nwant = 7 };
	struct toucher needed = { .page = mem.host + 12 * PG }, never = { .page = mem.host + 230 * PG };
	pthread_t ts, t1, t2;
	pthread_create(&t1, NULL, touch, &needed);
	pthread_create(&t2, NULL, touch, &never);
	pthread_create(&ts, NULL, source, &f);

	struct wire_conn c;
	struct page_codec_dec dec;
	wire_conn_init_fd(&c, sv[0]);
	page_codec_dec_init(&dec);
	int rc = postcopy_dst_run(&p, &c, &dec, err, sizeof(err));
	if (rc < 0)
		fail_msg("%s", err);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(ts, NULL);

	assert_int_equal(f.asked, 12);
	assert_true(f.acked);
	assert_int_equal(p.placed, 7);
	assert_true(p.faults >= 2);
	uint8_t want_page[PG];
	fill(want_page, 12, 2);
	assert_int_equal(needed.first, want_page[0]);
	assert_memory_equal(mem.host + 12 * PG, want_page, PG);
	fill(want_page, 41, 2);
	assert_memory_equal(mem.host + 41 * PG, want_page, PG);
	fill(want_page, 15, 1); /* not announced: pre-copy's copy stays */
	assert_memory_equal(mem.host + 15 * PG, want_page, PG);
	assert_int_equal(never.first, 0);
	teardown_dst(&p, &dec, sv, &mem);
}

/* A page that was not announced (or comes twice) is refused: it could overwrite memory the
 * guest has written since it started. */
static void test_destination_refuses_unannounced_pages(void **unused)
{
	if (!have_uffd())
		skip();
	struct guest_mem mem;
	struct postcopy_dst p;
	char err[320];
	int sv[2];

	assert_int_equal(guest_mem_create(&mem, NPAGES * PG), 0);
	const struct wire_range r[] = { { 3, 1 } };
	arm(&mem, &p, r, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct fake_source f = { .fd = sv[1], .bogus = 7 };
	pthread_t ts;
	pthread_create(&ts, NULL, source, &f);
	struct wire_conn c;
	struct page_codec_dec dec;
	wire_conn_init_fd(&c, sv[0]);
	page_codec_dec_init(&dec);
	assert_int_equal(postcopy_dst_run(&p, &c, &dec, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "page 0x7 arrived twice or unannounced"));
	pthread_join(ts, NULL);
	teardown_dst(&p, &dec, sv, &mem);
}

/* DISCARD ranges must lie inside RAM, be non-empty and ascend across records. */
static void test_discard_ranges_are_checked(void **unused)
{
	if (!have_uffd())
		skip();
	struct guest_mem mem;
	struct postcopy_dst p;
	uint8_t b[16 * 2];
	char err[320];

	assert_int_equal(guest_mem_create(&mem, NPAGES * PG), 0);
	assert_int_equal(postcopy_dst_open(&p, &mem, err, sizeof(err)), 0);
	const struct wire_range bad[][1] = { { { 0, 0 } }, { { NPAGES, 1 } }, { { NPAGES - 1, 2 } },
					     { { 1, UINT64_MAX } } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(postcopy_dst_discard(&p, ranges(b, bad[i], 1), 1, err, sizeof(err)), -1);
	const struct wire_range ok[] = { { 20, 4 } }, back[] = { { 22, 1 } };
	assert_int_equal(postcopy_dst_discard(&p, ranges(b, ok, 1), 1, err, sizeof(err)), 0);
	assert_int_equal(postcopy_dst_discard(&p, ranges(b, back, 1), 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DISCARD range"));
	postcopy_dst_close(&p);
	guest_mem_destroy(&mem);
}

struct order {
	uint64_t gfn[4096];
	unsigned n;
};

static int record(void *opaque, uint64_t gfn)
{
	struct order *o = opaque;

	o->gfn[o->n++] = gfn;
	return 0;
}

static int no_flush(void *opaque)
{
	(void)opaque;
	return 0;
}

/* The destination's end for the source test: it has asked for page 500 already, then it
 * waits for POSTCOPY_DONE and confirms. */
static void *destination(void *arg)
{
	struct wire_conn *c = arg;
	struct wire_buf buf = { 0 };
	struct wire_record rec;

	while (wire_recv(c, &buf, &rec) == 0)
		if (rec.hdr.type == WIRE_POSTCOPY_DONE) {
			wire_send(c, WIRE_ACK, NULL, 0);
			break;
		}
	wire_buf_free(&buf);
	return NULL;
}

/* A request is served before the push, with the 16 pages from it, and the push goes on
 * after them, wrapping around; every needed page goes exactly once. */
static void test_source_serves_requests_first(void **unused)
{
	static uint64_t needed[2048 / 64];
	static struct order o;
	int sv[2];
	pthread_t td;

	for (uint64_t g = 100; g < 1100; g++)
		needed[g / 64] |= 1ull << (g % 64);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct wire_conn dst, src;
	wire_conn_init_fd(&dst, sv[1]);
	uint64_t ask = 500;
	assert_int_equal(wire_send_page_request(&dst, &ask, 1), 0);
	pthread_create(&td, NULL, destination, &dst);
	wire_conn_init_fd(&src, sv[0]);
	struct postcopy_src p = { .conn = &src, .needed = needed, .npages = 2048, .left = 1000,
				  .queue = record, .flush = no_flush, .opaque = &o };
	if (postcopy_src_run(&p, 5000) < 0)
		fail_msg("%s", p.err);
	pthread_join(td, NULL);
	assert_int_equal(o.n, 1000);
	for (unsigned i = 0; i < POSTCOPY_REQUEST_RUN; i++)
		assert_int_equal(o.gfn[i], 500 + i);
	assert_int_equal(o.gfn[POSTCOPY_REQUEST_RUN], 500 + POSTCOPY_REQUEST_RUN);
	assert_int_equal(o.gfn[999], 499); /* wrapped around to the start */
	assert_int_equal(p.requested_pages, POSTCOPY_REQUEST_RUN);
	static bool seen[2048];
	for (unsigned i = 0; i < o.n; i++) {
		assert_false(seen[o.gfn[i]]);
		seen[o.gfn[i]] = true;
	}
	close(sv[0]);
	close(sv[1]);
}

/* The wire payloads: counts, flags, sizes. */
static void test_wire_lists(void **unused)
{
	uint8_t b[8 + 16 * 2];
	const uint8_t *e;
	uint32_t n;

	wire_put_u32(b, 2);
	wire_put_u32(b + 4, 0);
	assert_int_equal(wire_parse_discard(b, 8 + 32, &n, &e, NULL, 0), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(e, b + 8);
	assert_int_equal(wire_parse_discard(b, 8 + 31, &n, &e, NULL, 0), WIRE_E_PAYLOAD);
	wire_put_u32(b + 4, 1);
	assert_int_equal(wire_parse_discard(b, 8 + 32, &n, &e, NULL, 0), WIRE_E_PAYLOAD);
	wire_put_u32(b, 0);
	wire_put_u32(b + 4, 0);
	assert_int_equal(wire_parse_discard(b, 8, &n, &e, NULL, 0), WIRE_E_PAYLOAD);
	wire_put_u32(b, WIRE_REQUEST_MAX + 1);
	assert_int_equal(wire_parse_page_request(b, 8 + 8 * (WIRE_REQUEST_MAX + 1), &n, &e, NULL, 0), WIRE_E_PAYLOAD);
	wire_put_u32(b, 3);
	assert_int_equal(wire_parse_page_request(b, 8 + 24, &n, &e, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_destination_serves_faults),
		cmocka_unit_test(test_destination_refuses_unannounced_pages),
		cmocka_unit_test(test_discard_ranges_are_checked),
		cmocka_unit_test(test_source_serves_requests_first),
		cmocka_unit_test(test_wire_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
