/* page_codec: zero/raw/zlib batches, zero-copy encoding, strict decoding in memory and straight
 * from a stream into "guest RAM". */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "migrate/page_codec.h"
#include "page_batch.h"
#include "migrate/wire.h"

#define PG PAGE_CODEC_PAGE_SIZE

/* ---- A fake guest: npages of RAM, with an optional hole ---- */

struct guest {
	uint8_t *mem;
	uint64_t npages;
	uint64_t hole; /* page with no backing (page_ptr NULL); UINT64_MAX for none */
};

static uint8_t *guest_page_ptr(void *opaque, uint64_t gfn)
{
	struct guest *g = opaque;

	if (gfn >= g->npages || gfn == g->hole)
		return NULL;
	return g->mem + gfn * PG;
}

static void guest_init(struct guest *g, uint64_t npages)
{
	g->npages = npages;
	g->hole = UINT64_MAX;
	g->mem = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->mem != MAP_FAILED);
}

static void guest_fini(struct guest *g)
{
	munmap(g->mem, g->npages * PG);
}

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Page contents by kind: 0 zero, 1 random (incompressible), 2 text-like (compressible). */
static void fill_page(uint8_t *p, int kind, unsigned seed)
{
	if (kind == 0) {
		memset(p, 0, PG);
	} else if (kind == 1) {
		for (unsigned i = 0; i < PG; i++)
			p[i] = (uint8_t)rng();
	} else {
		for (unsigned i = 0; i < PG; i++)
			p[i] = (uint8_t)("page number %u of the test guest\n"[i % 33] + (i / 512 == seed % 8));
	}
}

/* Concatenates the encoder's iovecs into one payload buffer. */
static uint8_t *flatten(const struct page_codec_enc *e, size_t *len)
{
	uint8_t *b = malloc(e->payload_len ? e->payload_len : 1);
	size_t off = 0;

	for (int i = 0; i < e->iovcnt; i++) {
		memcpy(b + off, e->iov[i].iov_base, e->iov[i].iov_len);
		off += e->iov[i].iov_len;
	}
	assert_int_equal(off, e->payload_len);
	*len = off;
	return b;
}

/* ---- Memory transport (as in test_wire) ---- */

struct mem_pipe {
	uint8_t *buf;
	size_t len, cap, rpos;
};

static ssize_t mem_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct mem_pipe *p = opaque;
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++) {
		if (p->len + iov[i].iov_len > p->cap) {
			p->cap = (p->len + iov[i].iov_len) * 2 + 4096;
			p->buf = realloc(p->buf, p->cap);
			assert_non_null(p->buf);
		}
		memcpy(p->buf + p->len, iov[i].iov_base, iov[i].iov_len);
		p->len += iov[i].iov_len;
		n += iov[i].iov_len;
	}
	return (ssize_t)n;
}

static ssize_t mem_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct mem_pipe *p = opaque;
	size_t n = 0;

	for (int i = 0; i < iovcnt && p->rpos < p->len; i++) {
		size_t take = iov[i].iov_len;

		if (take > p->len - p->rpos)
			take = p->len - p->rpos;
		memcpy(iov[i].iov_base, p->buf + p->rpos, take);
		p->rpos += take;
		n += take;
	}
	return (ssize_t)n;
}

static const struct wire_conn_ops mem_ops = { .readv = mem_readv, .writev = mem_writev };

/* ---- Tests ---- */

static void test_is_zero(void **unused)
{
	uint8_t *p = aligned_alloc(64, PG);
	const unsigned pos[] = { 0, 7, 8, 63, 64, 100, 2048, 4032, 4095 };

	memset(p, 0, PG);
	assert_true(page_codec_is_zero(p));
	for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		p[pos[i]] = 0x01;
		assert_false(page_codec_is_zero(p));
		p[pos[i]] = 0x80;
		assert_false(page_codec_is_zero(p));
		p[pos[i]] = 0;
	}
	assert_true(page_codec_is_zero(p));
	free(p);
}

static void test_raw_roundtrip_zero_copy(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	uint64_t gfns[PAGE_CODEC_MAX_PAGES];
	const uint8_t *pages[PAGE_CODEC_MAX_PAGES];
	size_t len;
	uint8_t *payload;
	unsigned n = PAGE_CODEC_MAX_PAGES, nzero = 0;

	guest_init(&src, 1024);
	guest_init(&dst, 1024);
	memset(dst.mem, 0x5a, 1024 * PG); /* stale data: zero pages must be cleared */
	for (unsigned i = 0; i < n; i++) {
		/* Runs of adjacent pages, some zero. */
		gfns[i] = i < 100 ? 10 + i : 300 + 2 * i;
		fill_page(src.mem + gfns[i] * PG, i % 5 == 0 ? 0 : 1, i);
		nzero += i % 5 == 0;
		pages[i] = src.mem + gfns[i] * PG;
	}
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	assert_int_equal(page_codec_encode(&e, gfns, pages, n, PAGE_CODEC_COMPRESS_NONE, false), 0);
	/* Live: the CRC covers the descriptor only; each data page carries a hash instead. */
	assert_int_equal(e.payload_len, PAGE_CODEC_DESC_SIZE(n) + (n - nzero) * (PG + PAGE_CODEC_HASH_SIZE));
	assert_int_equal(e.crc_len, PAGE_CODEC_DESC_SIZE(n));
	assert_int_equal(e.desc[3], PAGE_CODEC_F_HASHED);
	/* Zero-copy: the iovecs point into the source RAM, adjacent pages merged. */
	assert_ptr_equal(e.iov[1].iov_base, src.mem + 11 * PG);
	assert_int_equal(e.iov[1].iov_len, 4 * PG); /* gfns 11..14 (10 and 15 are zero) */
	assert_true(e.iovcnt < (int)(n - nzero) + 1);
	assert_int_equal(e.stats.zero_pages, nzero);
	assert_int_equal(e.stats.raw_pages, n - nzero);

	payload = flatten(&e, &len);
	assert_int_equal(page_codec_decode(&d, payload, len, dst.npages, guest_page_ptr, &dst), 0);
	for (unsigned i = 0; i < n; i++)
		assert_memory_equal(dst.mem + gfns[i] * PG, src.mem + gfns[i] * PG, PG);
	assert_int_equal(d.stats.zero_pages, nzero);
	assert_int_equal(d.stats.zero_writes, nzero);
	assert_int_equal(d.stats.raw_pages, n - nzero);
	assert_int_equal(d.stats.wire_bytes, len);

	/* Stable pages: the CRC covers everything. */
	assert_int_equal(page_codec_encode(&e, gfns, pages, n, PAGE_CODEC_COMPRESS_NONE, true), 0);
	assert_int_equal(e.crc_len, e.payload_len);

	free(payload);
	page_codec_enc_fini(&e);
	page_codec_dec_fini(&d);
	guest_fini(&src);
	guest_fini(&dst);
}

static void test_zlib_and_fallback(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	uint64_t gfns[64];
	const uint8_t *pages[64];
	size_t len;
	uint8_t *payload;

	guest_init(&src, 128);
	guest_init(&dst, 128);
	for (unsigned i = 0; i < 64; i++) {
		gfns[i] = 127 - i;
		fill_page(src.mem + gfns[i] * PG, i == 7 ? 0 : 2, i);
		pages[i] = src.mem + gfns[i] * PG;
	}
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 64, PAGE_CODEC_COMPRESS_ZLIB, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_ZLIB);
	assert_true(e.payload_len < 63 * PG / 4);
	assert_int_equal(e.crc_len, e.payload_len); /* a private copy: fully checksummed */
	assert_int_equal(e.stats.zlib_pages, 63);
	assert_int_equal(e.stats.zero_pages, 1);
	payload = flatten(&e, &len);
	assert_int_equal(page_codec_decode(&d, payload, len, dst.npages, guest_page_ptr, &dst), 0);
	assert_memory_equal(dst.mem, src.mem, 128 * PG);
	assert_int_equal(d.stats.zlib_pages, 63);
	assert_int_equal(d.stats.zero_writes, 0); /* the destination page was already zero */
	free(payload);

	/* The same encoder again (deflateReset path), now incompressible: falls back to raw. */
	for (unsigned i = 0; i < 64; i++)
		fill_page(src.mem + gfns[i] * PG, 1, i);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 64, PAGE_CODEC_COMPRESS_ZLIB, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_RAW);
	assert_int_equal(e.stats.zlib_fallbacks, 1);
	assert_int_equal(e.payload_len, PAGE_CODEC_DESC_SIZE(64) + 64 * (PG + PAGE_CODEC_HASH_SIZE));
	payload = flatten(&e, &len);
	assert_int_equal(page_codec_decode(&d, payload, len, dst.npages, guest_page_ptr, &dst), 0);
	assert_memory_equal(dst.mem, src.mem, 128 * PG);
	free(payload);

	/* A single compressible page among random ones. */
	fill_page(src.mem + gfns[0] * PG, 2, 0);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 1, PAGE_CODEC_COMPRESS_ZLIB, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_ZLIB);
	payload = flatten(&e, &len);
	assert_int_equal(page_codec_decode(&d, payload, len, dst.npages, guest_page_ptr, &dst), 0);
	assert_memory_equal(dst.mem + gfns[0] * PG, src.mem + gfns[0] * PG, PG);
	free(payload);

	page_codec_enc_fini(&e);
	page_codec_dec_fini(&d);
	guest_fini(&src);
	guest_fini(&dst);
}

/* Zero pages on decode: a page that is already zero is only read, never written. */
static void test_zero_pages_not_written(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	uint64_t gfns[4] = { 0, 1, 2, 3 };
	const uint8_t *pages[4];
	size_t len;
	uint8_t *payload;

	guest_init(&src, 4);
	guest_init(&dst, 4);
	for (int i = 0; i < 4; i++)
		pages[i] = src.mem + i * PG;
	dst.mem[2 * PG + 17] = 1; /* only page 2 has stale data */
	/* Pages 0, 1, 3 of the destination are read-only: a write would crash the test. */
	assert_int_equal(mprotect(dst.mem, 2 * PG, PROT_READ), 0);
	assert_int_equal(mprotect(dst.mem + 3 * PG, PG, PROT_READ), 0);

	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 4, PAGE_CODEC_COMPRESS_ZLIB, false), 0);
	assert_int_equal(e.payload_len, PAGE_CODEC_DESC_SIZE(4)); /* no data at all */
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_RAW);
	payload = flatten(&e, &len);
	assert_int_equal(page_codec_decode(&d, payload, len, 4, guest_page_ptr, &dst), 0);
	assert_int_equal(d.stats.zero_pages, 4);
	assert_int_equal(d.stats.zero_writes, 1);
	assert_int_equal(dst.mem[2 * PG + 17], 0);
	free(payload);
	page_codec_enc_fini(&e);
	page_codec_dec_fini(&d);
	guest_fini(&src);
	guest_fini(&dst);
}

static void test_encode_errors(void **unused)
{
	struct page_codec_enc e;
	uint8_t *page = calloc(1, PG);
	uint64_t gfns[PAGE_CODEC_MAX_PAGES + 1] = { 0 };
	const uint8_t *pages[PAGE_CODEC_MAX_PAGES + 1];

	for (unsigned i = 0; i <= PAGE_CODEC_MAX_PAGES; i++)
		pages[i] = page;
	page_codec_enc_init(&e);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 0, PAGE_CODEC_COMPRESS_NONE, false),
			 WIRE_E_ARG);
	assert_int_equal(page_codec_encode(&e, gfns, pages, PAGE_CODEC_MAX_PAGES + 1,
					   PAGE_CODEC_COMPRESS_NONE, false), WIRE_E_ARG);
	gfns[1] = WIRE_GFN_MAX + 1;
	assert_int_equal(page_codec_encode(&e, gfns, pages, 2, PAGE_CODEC_COMPRESS_NONE, false),
			 WIRE_E_ARG);
	gfns[1] = WIRE_GFN_MAX;
	assert_int_equal(page_codec_encode(&e, gfns, pages, 2, PAGE_CODEC_COMPRESS_NONE, false), 0);
	pages[1] = NULL;
	assert_int_equal(page_codec_encode(&e, gfns, pages, 2, PAGE_CODEC_COMPRESS_NONE, false),
			 WIRE_E_ARG);
	page_codec_enc_fini(&e);
	free(page);
}

/* A hand-made payload: header fields, entries, data. */
struct craft {
	uint8_t b[8 + 8 * 300 + 8 * PG];
	size_t len;
};

static void craft_begin(struct craft *c, unsigned count, unsigned enc, unsigned reserved,
			uint32_t data_len)
{
	memset(c->b, 0, 8);
	wire_put_u16(c->b, (uint16_t)count);
	c->b[2] = (uint8_t)enc;
	c->b[3] = (uint8_t)reserved;
	wire_put_u32(c->b + 4, data_len);
	c->len = 8;
}

static void craft_entry(struct craft *c, uint64_t gfn, uint64_t kind)
{
	wire_put_u64(c->b + c->len, gfn | (kind << 56));
	c->len += 8;
}

static void craft_data(struct craft *c, const void *p, size_t n)
{
	memcpy(c->b + c->len, p, n);
	c->len += n;
}

static int decode_craft(struct craft *c, struct guest *g, char *err)
{
	struct page_codec_dec d;
	int rc;

	page_codec_dec_init(&d);
	rc = page_codec_decode(&d, c->b, c->len, g->npages, guest_page_ptr, g);
	strcpy(err, d.err);
	page_codec_dec_fini(&d);
	return rc;
}

/* zlib-compresses n copies of a page of byte v. */
static size_t zpages(uint8_t *out, size_t cap, unsigned n, uint8_t v)
{
	uint8_t *in = malloc((size_t)n * PG + 1);
	uLongf olen = cap;

	memset(in, v, (size_t)n * PG);
	assert_int_equal(compress2(out, &olen, in, (uLong)n * PG, 1), Z_OK);
	free(in);
	return olen;
}

static void test_decode_errors(void **unused)
{
	struct guest g;
	struct craft *c = malloc(sizeof(*c));
	char err[256];
	uint8_t *z = malloc(64 * 1024), *page = malloc(PG);
	size_t zl;

	guest_init(&g, 16);
	g.hole = 5;
	memset(g.mem, 0x77, 16 * PG);
	memset(page, 0x11, PG);

	/* Good baseline: one raw page, one zero page. */
	craft_begin(c, 2, 0, 0, PG);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 1);
	craft_data(c, page, PG);
	assert_int_equal(decode_craft(c, &g, err), 0);
	assert_int_equal(g.mem[PG], 0x11);
	assert_int_equal(g.mem[2 * PG], 0);
	memset(g.mem, 0x77, 16 * PG);

	/* Too short for a header; count 0 and 257; encoding 2; reserved byte. */
	assert_int_equal(page_codec_decode(&(struct page_codec_dec){ 0 }, c->b, 7, 16,
					   guest_page_ptr, &g), WIRE_E_PAYLOAD);
	craft_begin(c, 0, 0, 0, 0);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "batch of 0 pages"));
	craft_begin(c, PAGE_CODEC_MAX_PAGES + 1, 0, 0, 0);
	for (unsigned i = 0; i <= PAGE_CODEC_MAX_PAGES; i++)
		craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 2, 0, 0);
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "encoding 2"));
	craft_begin(c, 1, 0, 2, 0); /* an unknown flag */
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 1, PAGE_CODEC_F_HASHED, 0); /* hashes only go with raw batches */
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);

	/* data_len disagreeing with the payload length, both ways. */
	craft_begin(c, 1, 0, 0, PG);
	craft_entry(c, 1, 0);
	craft_data(c, page, PG - 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 0, 0, PG - 1);
	craft_entry(c, 1, 0);
	craft_data(c, page, PG);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	/* Raw data_len consistent with the payload but not with the data entries. */
	craft_begin(c, 2, 0, 0, PG);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_data(c, page, PG);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "2 data pages but 4096"));

	/* Unknown kind; page numbers out of range, in a hole, past the 56-bit field. */
	craft_begin(c, 1, 0, 0, 0);
	craft_entry(c, 1, 2);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 0, 0, 0);
	craft_entry(c, 16, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_RANGE);
	assert_non_null(strstr(err, "page 0x10 (entry 0) is outside guest RAM (16 pages)"));
	craft_begin(c, 1, 0, 0, 0);
	craft_entry(c, 5, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_RANGE);
	craft_begin(c, 1, 0, 0, 0);
	craft_entry(c, (1ull << 56) - 1, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_RANGE);
	/* A bad entry after good ones: nothing is written. */
	craft_begin(c, 3, 0, 0, 2 * PG);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_entry(c, 99, 1);
	craft_data(c, page, PG);
	craft_data(c, page, PG);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_RANGE);
	for (size_t i = 0; i < 16 * PG; i++)
		if (g.mem[i] != 0x77)
			fail_msg("byte %zu written by a rejected batch", i);

	/* zlib: no data pages; compressed size not smaller than raw; corrupt data. */
	craft_begin(c, 1, 1, 0, 4);
	craft_entry(c, 1, 1);
	craft_data(c, "abcd", 4);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 1, 0, PG);
	craft_entry(c, 1, 0);
	craft_data(c, page, PG);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "compressed bytes"));
	craft_begin(c, 1, 1, 0, 16);
	craft_entry(c, 1, 0);
	craft_data(c, "not zlib at all!", 16);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "corrupt zlib"));

	/* zlib bomb: 8 pages of data declared as 1. */
	zl = zpages(z, 64 * 1024, 8, 'A');
	craft_begin(c, 1, 1, 0, (uint32_t)zl);
	craft_entry(c, 1, 0);
	craft_data(c, z, zl);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "more than the declared 1 pages"));
	/* One byte more than declared. */
	{
		uint8_t *in = malloc(PG + 1);
		uLongf olen = 64 * 1024;

		memset(in, 'B', PG + 1);
		assert_int_equal(compress2(z, &olen, in, PG + 1, 1), Z_OK);
		free(in);
		craft_begin(c, 1, 1, 0, (uint32_t)olen);
		craft_entry(c, 1, 0);
		craft_data(c, z, olen);
		assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "more than"));
	}
	/* Fewer pages than declared: 1 page of data declared as 3; and one byte short. */
	zl = zpages(z, 64 * 1024, 1, 'C');
	craft_begin(c, 3, 1, 0, (uint32_t)zl);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_entry(c, 3, 0);
	craft_data(c, z, zl);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "fewer than the declared 3 pages"));
	{
		uint8_t *in = malloc(PG);
		uLongf olen = 64 * 1024;

		memset(in, 'D', PG);
		assert_int_equal(compress2(z, &olen, in, PG - 1, 1), Z_OK);
		craft_begin(c, 1, 1, 0, (uint32_t)olen);
		craft_entry(c, 1, 0);
		craft_data(c, z, olen);
		assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "fewer"));
		free(in);
	}
	/* Bytes after the end of the zlib stream; a stream cut short. */
	zl = zpages(z, 64 * 1024, 2, 'E');
	craft_begin(c, 2, 1, 0, (uint32_t)zl + 3);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_data(c, z, zl);
	craft_data(c, "xyz", 3);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "after the end"));
	craft_begin(c, 2, 1, 0, (uint32_t)zl - 5);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_data(c, z, zl - 5);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	/* And the good one decodes. */
	craft_begin(c, 2, 1, 0, (uint32_t)zl);
	craft_entry(c, 1, 0);
	craft_entry(c, 2, 0);
	craft_data(c, z, zl);
	assert_int_equal(decode_craft(c, &g, err), 0);
	assert_int_equal(g.mem[2 * PG + 4095], 'E');

	free(z);
	free(page);
	free(c);
	guest_fini(&g);
}

/* Every prefix and every bit flip of valid payloads: errors or success, never a crash or an
 * out-of-bounds access (run under ASan). */
static void test_decode_truncations_and_flips(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	uint64_t gfns[6] = { 3, 4, 9, 1, 0, 7 };
	const uint8_t *pages[6];

	guest_init(&src, 10);
	guest_init(&dst, 10);
	for (int i = 0; i < 6; i++) {
		fill_page(src.mem + gfns[i] * PG, i == 2 ? 0 : 2, (unsigned)i);
		pages[i] = src.mem + gfns[i] * PG;
	}
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	for (int mode = 0; mode < 2; mode++) {
		size_t len;
		uint8_t *payload;

		assert_int_equal(page_codec_encode(&e, gfns, pages, 6, (enum page_codec_compress)mode,
						   false), 0);
		payload = flatten(&e, &len);
		for (size_t n = 0; n < len; n += (n < 200 ? 1 : 61)) {
			uint8_t *copy = malloc(n ? n : 1);

			memcpy(copy, payload, n);
			assert_true(page_codec_decode(&d, copy, n, 10, guest_page_ptr, &dst) < 0);
			free(copy);
		}
		for (size_t bit = 0; bit < len * 8; bit += (bit < 8 * 64 ? 1 : 97)) {
			payload[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			(void)page_codec_decode(&d, payload, len, 10, guest_page_ptr, &dst);
			payload[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		assert_int_equal(page_codec_decode(&d, payload, len, 10, guest_page_ptr, &dst), 0);
		free(payload);
	}
	page_codec_enc_fini(&e);
	page_codec_dec_fini(&d);
	guest_fini(&src);
	guest_fini(&dst);
}

/* Receives every record of the stream in p into dst; returns the first error. */
static int recv_all(struct mem_pipe *p, struct guest *dst, struct page_codec_dec *d, char *err,
		    int *records)
{
	struct wire_conn c;
	struct wire_rx rx;
	int rc;

	p->rpos = 0;
	*records = 0;
	wire_conn_init(&c, &mem_ops, p);
	while ((rc = wire_recv_hdr(&c, &rx)) == 0) {
		assert_int_equal(rx.hdr.type, WIRE_PAGES);
		rc = page_codec_recv(d, &c, &rx, dst->npages, guest_page_ptr, dst);
		if (rc)
			break;
		(*records)++;
	}
	strcpy(err, c.err);
	return rc;
}

static void test_stream_recv_into_ram(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	struct mem_pipe p = { 0 };
	struct wire_conn c;
	uint64_t gfns[PAGE_CODEC_MAX_PAGES];
	const uint8_t *pages[PAGE_CODEC_MAX_PAGES];
	char err[256];
	int records;

	guest_init(&src, 1024);
	guest_init(&dst, 1024);
	memset(dst.mem, 0x33, 1024 * PG);
	for (unsigned i = 0; i < 1024; i++)
		fill_page(src.mem + i * PG, (int)(i % 3), i);
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	wire_conn_init(&c, &mem_ops, &p);
	/* Four batches of 256 pages: raw live, raw stable, zlib, zlib with a reversed order. */
	for (unsigned b = 0; b < 4; b++) {
		for (unsigned i = 0; i < PAGE_CODEC_MAX_PAGES; i++) {
			gfns[i] = b == 3 ? 1023 - i : b * 256 + i;
			pages[i] = src.mem + gfns[i] * PG;
		}
		assert_int_equal(page_codec_send(&e, &c, gfns, pages, PAGE_CODEC_MAX_PAGES,
						 b >= 2 ? PAGE_CODEC_COMPRESS_ZLIB
							: PAGE_CODEC_COMPRESS_NONE, b == 1), 0);
	}
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_EOF);
	assert_int_equal(records, 4);
	assert_memory_equal(dst.mem, src.mem, 1024 * PG);
	assert_int_equal(d.stats.batches, 4);
	assert_int_equal(d.stats.zero_pages + d.stats.raw_pages + d.stats.zlib_pages, 1024);
	assert_true(d.stats.zlib_pages > 0);
	assert_int_equal(d.stats.wire_bytes, e.stats.wire_bytes);

	page_codec_enc_fini(&e);
	page_codec_dec_fini(&d);
	free(p.buf);
	guest_fini(&src);
	guest_fini(&dst);
}

/* Sends one batch of `n` pages starting at gfn `first` into a fresh pipe. */
static void send_batch(struct mem_pipe *p, struct guest *src, uint64_t first, unsigned n,
		       enum page_codec_compress z, bool stable)
{
	struct page_codec_enc e;
	struct wire_conn c;
	uint64_t gfns[PAGE_CODEC_MAX_PAGES];
	const uint8_t *pages[PAGE_CODEC_MAX_PAGES];

	free(p->buf);
	memset(p, 0, sizeof(*p));
	for (unsigned i = 0; i < n; i++) {
		gfns[i] = first + i;
		pages[i] = src->mem + (first + i) * PG;
	}
	page_codec_enc_init(&e);
	wire_conn_init(&c, &mem_ops, p);
	assert_int_equal(page_codec_send(&e, &c, gfns, pages, n, z, stable), 0);
	page_codec_enc_fini(&e);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void test_stream_corruption(void **unused)
{
	struct guest src, dst, small;
	struct page_codec_dec d;
	struct mem_pipe p = { 0 };
	char err[256];
	int records;

	guest_init(&src, 8);
	guest_init(&dst, 8);
	guest_init(&small, 4);
	for (unsigned i = 0; i < 8; i++)
		fill_page(src.mem + i * PG, 1, i);
	page_codec_dec_init(&d);

	/* A flipped page-number bit in a live raw batch: the descriptor CRC catches it before
	 * any page is written. */
	send_batch(&p, &src, 0, 8, PAGE_CODEC_COMPRESS_NONE, false);
	memset(dst.mem, 0x44, 8 * PG);
	p.buf[WIRE_HDR_SIZE + 8 + 8 * 3] ^= 1;
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_CRC);
	assert_non_null(strstr(err, "bad CRC in PAGES record #0 at byte 0"));
	assert_true(all_bytes(dst.mem, 8 * PG, 0x44));

	/* A flipped data bit in a live raw batch is not under the CRC (the guest may change a page
	 * while it is sent), but its hash marks the page suspect until a good copy arrives... */
	uint64_t suspect[1] = { 0 };
	d.suspect = suspect;
	send_batch(&p, &src, 0, 8, PAGE_CODEC_COMPRESS_NONE, false);
	p.buf[WIRE_HDR_SIZE + 8 + 64 + 100] ^= 4;
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_EOF);
	assert_int_equal(dst.mem[100] ^ src.mem[100], 4);
	assert_int_equal(d.suspect_pages, 1);
	assert_int_equal(suspect[0], 1);
	send_batch(&p, &src, 0, 1, PAGE_CODEC_COMPRESS_NONE, false);
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_EOF);
	assert_int_equal(d.suspect_pages, 0);
	assert_int_equal(suspect[0], 0);
	d.suspect = NULL;
	/* ...but it is in a stable batch. */
	send_batch(&p, &src, 0, 8, PAGE_CODEC_COMPRESS_NONE, true);
	p.buf[WIRE_HDR_SIZE + 8 + 64 + 100] ^= 4;
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_CRC);

	/* Pages beyond a smaller destination: refused, nothing written. */
	send_batch(&p, &src, 0, 8, PAGE_CODEC_COMPRESS_NONE, false);
	memset(small.mem, 0x55, 4 * PG);
	assert_int_equal(recv_all(&p, &small, &d, err, &records), WIRE_E_RANGE);
	assert_non_null(strstr(err, "stream corrupt: PAGES record #0 at byte 0: page 0x4"));
	assert_true(all_bytes(small.mem, 4 * PG, 0x55));

	/* Checksum coverage that is neither the descriptor nor everything; a zlib batch with a
	 * descriptor-only checksum. */
	{
		struct wire_conn c;
		uint8_t payload[16 + PG];
		struct iovec v = { payload, sizeof(payload) };

		memset(payload, 0, sizeof(payload));
		wire_put_u16(payload, 1);
		wire_put_u32(payload + 4, PG);
		wire_put_u64(payload + 8, 1);
		free(p.buf);
		memset(&p, 0, sizeof(p));
		wire_conn_init(&c, &mem_ops, &p);
		assert_int_equal(wire_send_iov(&c, WIRE_PAGES, &v, 1, 20), 0);
		assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "checksum covers 20"));

		size_t zl = zpages(payload + 16, PG, 1, 'z');

		payload[2] = PAGE_CODEC_ENC_ZLIB;
		wire_put_u32(payload + 4, (uint32_t)zl);
		v.iov_len = 16 + zl;
		free(p.buf);
		memset(&p, 0, sizeof(p));
		wire_conn_init(&c, &mem_ops, &p);
		assert_int_equal(wire_send_iov(&c, WIRE_PAGES, &v, 1, 16), 0);
		assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_PAYLOAD);
		free(p.buf);
		memset(&p, 0, sizeof(p));
		wire_conn_init(&c, &mem_ops, &p);
		assert_int_equal(wire_send_iov(&c, WIRE_PAGES, &v, 1, WIRE_CRC_ALL), 0);
		assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_EOF);
		assert_int_equal(dst.mem[PG + 4095], 'z');
	}

	/* page_codec_recv on another record type is a caller error. */
	{
		struct wire_conn c;
		struct wire_rx rx;

		free(p.buf);
		memset(&p, 0, sizeof(p));
		wire_conn_init(&c, &mem_ops, &p);
		assert_int_equal(wire_send(&c, WIRE_ACK, NULL, 0), 0);
		wire_conn_init(&c, &mem_ops, &p);
		assert_int_equal(wire_recv_hdr(&c, &rx), 0);
		assert_int_equal(page_codec_recv(&d, &c, &rx, 8, guest_page_ptr, &dst), WIRE_E_ARG);
	}

	/* Every truncation of a raw and of a zlib record. */
	for (int z = 0; z < 2; z++) {
		struct mem_pipe q;

		for (unsigned i = 0; i < 8; i++)
			fill_page(src.mem + i * PG, z ? 2 : 1, i);
		send_batch(&p, &src, 0, 8, (enum page_codec_compress)z, false);
		for (size_t cut = 0; cut < p.len; cut += (cut < 300 ? 1 : 211)) {
			q = (struct mem_pipe){ .buf = p.buf, .len = cut };
			int rc = recv_all(&q, &dst, &d, err, &records);

			assert_int_equal(records, 0);
			assert_int_equal(rc, cut == 0 ? WIRE_E_EOF : WIRE_E_TRUNC);
		}
	}

	free(p.buf);
	page_codec_dec_fini(&d);
	guest_fini(&src);
	guest_fini(&dst);
	guest_fini(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_zero),
		cmocka_unit_test(test_raw_roundtrip_zero_copy),
		cmocka_unit_test(test_zlib_and_fallback),
		cmocka_unit_test(test_zero_pages_not_written),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_truncations_and_flips),
		cmocka_unit_test(test_stream_recv_into_ram),
		cmocka_unit_test(test_stream_corruption),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
