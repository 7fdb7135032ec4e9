/* page_codec: zero/raw/zlib/zstd batches, zero-copy encoding, strict decoding in memory and
 * straight from a stream into "guest RAM". */
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
#include <zstd.h>

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

/* xorshift64: bytes with no repeat a compressor could find (a 32-bit LCG's low bits repeat
 * every 64 KiB, which zstd's window sees). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
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

/* Decodes what the encoder just encoded into g (it must succeed). */
static void decode_encoded(const struct page_codec_enc *e, struct page_codec_dec *d, struct guest *g)
{
	size_t len;
	uint8_t *payload = flatten(e, &len);

	assert_int_equal(page_codec_decode(d, payload, len, g->npages, guest_page_ptr, g), 0);
	free(payload);
}

/* zstd: a batch of text, random and zero pages in one frame and back; the same encoder on
 * pages it cannot shrink falls back to raw; every compression attempt is counted. */
static void test_zstd_and_fallback(void **unused)
{
	struct guest src, dst;
	struct page_codec_enc e;
	struct page_codec_dec d;
	uint64_t gfns[PAGE_CODEC_MAX_PAGES];
	const uint8_t *pages[PAGE_CODEC_MAX_PAGES];
	unsigned n = PAGE_CODEC_MAX_PAGES, ndata = 0;

	guest_init(&src, 2 * n);
	guest_init(&dst, 2 * n);
	memset(dst.mem, 0x5a, 2 * n * PG);
	for (unsigned i = 0; i < n; i++) {
		/* Scattered and out of order: the frame holds the data pages in entry order. */
		gfns[i] = (i * 37) % (2 * n);
		fill_page(src.mem + gfns[i] * PG, i % 4 == 0 ? 0 : i % 4 == 1 ? 1 : 2, i);
		ndata += i % 4 != 0;
		pages[i] = src.mem + gfns[i] * PG;
	}
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	assert_int_equal(page_codec_encode(&e, gfns, pages, n, PAGE_CODEC_COMPRESS_ZSTD, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_ZSTD);
	assert_int_equal(e.desc[3], 0); /* no hashes: the whole record is under the CRC */
	assert_int_equal(e.crc_len, e.payload_len);
	assert_true(e.payload_len < PAGE_CODEC_DESC_SIZE(n) + ndata * PG * 3 / 4);
	assert_int_equal(wire_get_u32(e.iov[1].iov_base), ZSTD_MAGICNUMBER);
	assert_int_equal(ZSTD_getFrameContentSize(e.iov[1].iov_base, e.iov[1].iov_len), (uint64_t)ndata * PG);
	assert_int_equal(e.stats.zstd_pages, ndata);
	assert_int_equal(e.stats.zero_pages, n - ndata);
	assert_int_equal(e.stats.zstd_in_bytes, (uint64_t)ndata * PG);
	assert_int_equal(e.stats.zstd_out_bytes, e.payload_len - PAGE_CODEC_DESC_SIZE(n));
	assert_int_equal(e.stats.compress_in_bytes, (uint64_t)ndata * PG);
	assert_int_equal(e.stats.compress_out_bytes, e.stats.zstd_out_bytes);
	assert_int_equal(e.stats.zlib_pages + e.stats.raw_pages, 0);
	decode_encoded(&e, &d, &dst);
	for (unsigned i = 0; i < n; i++)
		assert_memory_equal(dst.mem + gfns[i] * PG, src.mem + gfns[i] * PG, PG);
	assert_int_equal(d.stats.zstd_pages, ndata);
	assert_int_equal(d.stats.zstd_out_bytes, e.stats.zstd_out_bytes);
	assert_int_equal(d.stats.zero_writes, n - ndata);

	/* Random pages only: zstd cannot shrink them, the batch goes raw (hashed, live). */
	for (unsigned i = 0; i < n; i++)
		fill_page(src.mem + gfns[i] * PG, 1, i);
	assert_int_equal(page_codec_encode(&e, gfns, pages, n, PAGE_CODEC_COMPRESS_ZSTD, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_RAW);
	assert_int_equal(e.desc[3], PAGE_CODEC_F_HASHED);
	assert_int_equal(e.stats.zstd_fallbacks, 1);
	assert_int_equal(e.stats.zlib_fallbacks, 0);
	assert_int_equal(e.stats.raw_pages, n);
	/* The attempt counts, its output as the raw size. */
	assert_int_equal(e.stats.compress_in_bytes, ((uint64_t)ndata + n) * PG);
	assert_int_equal(e.stats.compress_out_bytes, e.stats.zstd_out_bytes + (uint64_t)n * PG);
	decode_encoded(&e, &d, &dst);
	for (unsigned i = 0; i < n; i++)
		assert_memory_equal(dst.mem + gfns[i] * PG, src.mem + gfns[i] * PG, PG);

	/* zlib next, through the same encoder: the attempt counters cover both compressors. */
	fill_page(src.mem + gfns[0] * PG, 2, 0);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 1, PAGE_CODEC_COMPRESS_ZLIB, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_ZLIB);
	assert_int_equal(e.stats.compress_in_bytes, ((uint64_t)ndata + n + 1) * PG);
	/* A single page, and a request for a compressor that does not exist. */
	assert_int_equal(page_codec_encode(&e, gfns, pages, 1, PAGE_CODEC_COMPRESS_ZSTD, false), 0);
	assert_int_equal(e.desc[2], PAGE_CODEC_ENC_ZSTD);
	decode_encoded(&e, &d, &dst);
	assert_memory_equal(dst.mem + gfns[0] * PG, src.mem + gfns[0] * PG, PG);
	assert_int_equal(page_codec_encode(&e, gfns, pages, 1, (enum page_codec_compress)3, false),
			 WIRE_E_ARG);

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
	craft_begin(c, 1, 3, 0, 0);
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "encoding 3"));
	craft_begin(c, 1, 0, 2, 0); /* an unknown flag */
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 1, PAGE_CODEC_F_HASHED, 0); /* hashes only go with raw batches */
	craft_entry(c, 0, 1);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	craft_begin(c, 1, 2, PAGE_CODEC_F_HASHED, 0);
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
	for (int mode = PAGE_CODEC_COMPRESS_NONE; mode <= PAGE_CODEC_COMPRESS_ZSTD; mode++) {
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

	/* Six batches of 256 pages: raw live and raw stable, then zlib and zstd, each in page
	 * order and reversed. */
	static const struct {
		enum page_codec_compress z;
		bool stable, reversed;
	} plan[] = {
		{ PAGE_CODEC_COMPRESS_NONE, false, false }, { PAGE_CODEC_COMPRESS_NONE, true, false },
		{ PAGE_CODEC_COMPRESS_ZLIB, false, false }, { PAGE_CODEC_COMPRESS_ZLIB, false, true },
		{ PAGE_CODEC_COMPRESS_ZSTD, false, false }, { PAGE_CODEC_COMPRESS_ZSTD, false, true },
	};
	const unsigned nb = sizeof(plan) / sizeof(plan[0]), npages = nb * PAGE_CODEC_MAX_PAGES;

	guest_init(&src, npages);
	guest_init(&dst, npages);
	memset(dst.mem, 0x33, npages * PG);
	for (unsigned i = 0; i < npages; i++)
		fill_page(src.mem + i * PG, (int)(i % 3), i);
	page_codec_enc_init(&e);
	page_codec_dec_init(&d);
	wire_conn_init(&c, &mem_ops, &p);
	for (unsigned b = 0; b < nb; b++) {
		for (unsigned i = 0; i < PAGE_CODEC_MAX_PAGES; i++) {
			gfns[i] = b * 256 + (plan[b].reversed ? 255 - i : i);
			pages[i] = src.mem + gfns[i] * PG;
		}
		assert_int_equal(page_codec_send(&e, &c, gfns, pages, PAGE_CODEC_MAX_PAGES, plan[b].z,
						 plan[b].stable), 0);
	}
	assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_EOF);
	assert_int_equal(records, nb);
	assert_memory_equal(dst.mem, src.mem, npages * PG);
	assert_int_equal(d.stats.batches, nb);
	assert_int_equal(d.stats.zero_pages + d.stats.raw_pages + d.stats.zlib_pages + d.stats.zstd_pages,
			 npages);
	assert_true(d.stats.zlib_pages > 0);
	assert_true(d.stats.zstd_pages > 0);
	assert_int_equal(d.stats.zstd_pages, e.stats.zstd_pages);
	assert_int_equal(d.stats.zstd_out_bytes, e.stats.zstd_out_bytes);
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

	/* Every truncation of a raw, a zlib and a zstd record. */
	for (int z = PAGE_CODEC_COMPRESS_NONE; z <= PAGE_CODEC_COMPRESS_ZSTD; z++) {
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

/* zstd-compresses n copies of a page of byte v; with the content size in the frame header or
 * without it (as a streaming compressor would write it), and with a checksum if asked. */
static size_t zstd_copies(uint8_t *out, size_t cap, unsigned n, uint8_t v, bool size, bool checksum)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *in = malloc((size_t)n * PG + 1);
	size_t len;

	memset(in, v, (size_t)n * PG);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, size)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, checksum)));
	len = ZSTD_compress2(cc, out, cap, in, (size_t)n * PG);
	assert_false(ZSTD_isError(len));
	assert_true(ZSTD_getFrameContentSize(out, len) == (size ? (unsigned long long)n * PG
								 : ZSTD_CONTENTSIZE_UNKNOWN));
	free(in);
	ZSTD_freeCCtx(cc);
	return len;
}

/* A zstd frame written by hand: one segment, an 8-byte content size (any value), then one raw
 * block of the n bytes at data. */
static size_t zstd_raw_frame(uint8_t *out, uint64_t content_size, const uint8_t *data, uint32_t n)
{
	uint32_t block = 1u | (n << 3); /* last block, type raw, size n */

	wire_put_u32(out, ZSTD_MAGICNUMBER);
	out[4] = 0xe0; /* frame header descriptor: 8-byte content size, single segment */
	wire_put_u64(out + 5, content_size);
	out[13] = (uint8_t)block;
	out[14] = (uint8_t)(block >> 8);
	out[15] = (uint8_t)(block >> 16);
	memcpy(out + 16, data, n);
	return 16 + n;
}

/* A zstd batch of `count` data pages (gfns 1..count) with the given data. */
static int decode_zstd(struct craft *c, struct guest *g, unsigned count, const uint8_t *data,
		       size_t len, char *err)
{
	craft_begin(c, count, PAGE_CODEC_ENC_ZSTD, 0, (uint32_t)len);
	for (unsigned i = 0; i < count; i++)
		craft_entry(c, 1 + i, 0);
	craft_data(c, data, len);
	return decode_craft(c, g, err);
}

/* Hostile zstd payloads: each refused with a message that says what is wrong, before a byte of
 * guest memory is written (the frame is decoded into the decoder's own buffer, bounded by the
 * declared pages; under ASan any write or read past a buffer fails the test). */
static void test_zstd_hostile(void **unused)
{
	static const struct {
		unsigned pages;  /* data pages the batch declares */
		unsigned copies; /* pages of content in the frame */
		bool size, checksum;
		const char *msg;
	} wrong_size[] = {
		{ 1, 8, true, false, "zstd frame declares 32768 bytes for 1 data pages" },
		{ 1, 8, false, false, "zstd data decompresses to more than the declared 1 pages" },
		{ 3, 1, true, false, "zstd frame declares 4096 bytes for 3 data pages" },
		{ 3, 1, false, false, "zstd data decompresses to fewer than the declared 3 pages" },
		{ 2, 3, false, true, "more than the declared 2 pages" },
	};
	struct guest g;
	struct craft *c = malloc(sizeof(*c));
	uint8_t *z = malloc(64 * 1024), *page = malloc(2 * PG);
	char err[256];
	size_t zl, zl2;

	guest_init(&g, 16);
	memset(g.mem, 0x77, 16 * PG);
	memset(page, 'q', 2 * PG);
#define UNTOUCHED()                                                                   \
	do {                                                                          \
		for (size_t i_ = 0; i_ < 16 * PG; i_++)                               \
			if (g.mem[i_] != 0x77)                                        \
				fail_msg("byte %zu written by a rejected batch (%s)", i_, err); \
	} while (0)

	/* The descriptor's bounds, as for zlib: data pages needed, fewer bytes than raw. */
	craft_begin(c, 1, PAGE_CODEC_ENC_ZSTD, 0, 4);
	craft_entry(c, 1, 1);
	craft_data(c, "abcd", 4);
	assert_int_equal(decode_craft(c, &g, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "zstd batch of 0 data pages has 4 compressed bytes"));
	assert_int_equal(decode_zstd(c, &g, 1, page, PG, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "zstd batch of 1 data pages has 4096 compressed bytes"));

	/* Not a zstd frame: garbage, too short for a magic number, a skippable frame. */
	assert_int_equal(decode_zstd(c, &g, 1, (const uint8_t *)"not zstd at all!", 16, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "does not start with a zstd frame"));
	zl = zstd_copies(z, 64 * 1024, 1, 'A', true, false);
	assert_int_equal(decode_zstd(c, &g, 1, z, 3, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "does not start with a zstd frame"));
	{
		uint8_t skip[12];

		wire_put_u32(skip, 0x184D2A50);
		wire_put_u32(skip + 4, 4);
		memcpy(skip + 8, "hvhv", 4);
		assert_int_equal(decode_zstd(c, &g, 1, skip, sizeof(skip), err), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "does not start with a zstd frame"));
	}
	/* The zstd magic, then garbage; a frame cut short at several points. */
	memcpy(z + 4, "garbage garbage!", 16);
	assert_int_equal(decode_zstd(c, &g, 1, z, 20, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "corrupt zstd"));
	zl = zstd_copies(z, 64 * 1024, 2, 'T', true, false);
	for (size_t cut = 4; cut < zl; cut++) {
		assert_int_equal(decode_zstd(c, &g, 2, z, cut, err), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "corrupt zstd"));
	}
	UNTOUCHED();

	/* Decompressing to another size than the batch declares, said in the frame or not. */
	for (size_t i = 0; i < sizeof(wrong_size) / sizeof(wrong_size[0]); i++) {
		zl = zstd_copies(z, 64 * 1024, wrong_size[i].copies, 'B', wrong_size[i].size,
				 wrong_size[i].checksum);
		assert_int_equal(decode_zstd(c, &g, wrong_size[i].pages, z, zl, err), WIRE_E_PAYLOAD);
		if (!strstr(err, wrong_size[i].msg))
			fail_msg("case %zu: '%s' does not say '%s'", i, err, wrong_size[i].msg);
	}
	/* A header that declares a huge content size (1 TiB, and the most there is); one that
	 * declares the right size over a block of other sizes. */
	zl = zstd_raw_frame(z, 1ULL << 40, page, 16);
	assert_int_equal(decode_zstd(c, &g, 1, z, zl, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "zstd frame declares 1099511627776 bytes for 1 data pages"));
	zl = zstd_raw_frame(z, UINT64_MAX - 2, page, 16);
	assert_int_equal(decode_zstd(c, &g, 1, z, zl, err), WIRE_E_PAYLOAD);
	zl = zstd_raw_frame(z, PG, page, 16);
	assert_int_equal(decode_zstd(c, &g, 1, z, zl, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "corrupt zstd data"));
	zl = zstd_raw_frame(z, PG, page, PG + 16);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl, err), WIRE_E_PAYLOAD);
	UNTOUCHED();

	/* Bytes after the frame; a second frame after the first (each alone would be valid). */
	zl = zstd_copies(z, 64 * 1024, 2, 'E', true, false);
	memcpy(z + zl, "xyz", 3);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl + 3, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "3 bytes after the end of the zstd frame"));
	zl = zstd_copies(z, 64 * 1024, 1, 'F', false, false);
	zl2 = zstd_copies(z + zl, 64 * 1024 - zl, 1, 'F', false, false);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl + zl2, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "bytes after the end of the zstd frame"));
	/* A checksum that does not match. */
	zl = zstd_copies(z, 64 * 1024, 2, 'G', true, true);
	z[zl - 1] ^= 1;
	assert_int_equal(decode_zstd(c, &g, 2, z, zl, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "corrupt zstd data"));
	UNTOUCHED();

	/* And the good ones decode: with the content size, without it, with a checksum. */
	zl = zstd_copies(z, 64 * 1024, 2, 'H', true, false);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl, err), 0);
	assert_int_equal(g.mem[2 * PG + 4095], 'H');
	zl = zstd_copies(z, 64 * 1024, 2, 'I', false, false);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl, err), 0);
	assert_int_equal(g.mem[PG], 'I');
	zl = zstd_copies(z, 64 * 1024, 2, 'J', true, true);
	assert_int_equal(decode_zstd(c, &g, 2, z, zl, err), 0);
	assert_int_equal(g.mem[2 * PG], 'J');
	assert_int_equal(g.mem[3 * PG], 0x77); /* and nothing past the batch */
	assert_int_equal(g.mem[PG - 1], 0x77);
#undef UNTOUCHED

	/* From a stream, the record is named. */
	{
		struct mem_pipe p = { 0 };
		struct wire_conn wc;
		struct page_codec_dec d;
		struct guest dst;
		int records;

		guest_init(&dst, 16);
		zl = zstd_copies(z, 64 * 1024, 8, 'K', false, false);
		craft_begin(c, 1, PAGE_CODEC_ENC_ZSTD, 0, (uint32_t)zl);
		craft_entry(c, 1, 0);
		craft_data(c, z, zl);
		wire_conn_init(&wc, &mem_ops, &p);
		assert_int_equal(wire_send(&wc, WIRE_PAGES, c->b, c->len), 0);
		page_codec_dec_init(&d);
		assert_int_equal(recv_all(&p, &dst, &d, err, &records), WIRE_E_PAYLOAD);
		assert_non_null(strstr(err, "stream corrupt: PAGES record #0 at byte 0: zstd data decompresses to more"));
		assert_true(all_bytes(dst.mem, 16 * PG, 0));
		page_codec_dec_fini(&d);
		free(p.buf);
		guest_fini(&dst);
	}

	free(z);
	free(page);
	free(c);
	guest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_zero),
		cmocka_unit_test(test_raw_roundtrip_zero_copy),
		cmocka_unit_test(test_zlib_and_fallback),
		cmocka_unit_test(test_zstd_and_fallback),
		cmocka_unit_test(test_zero_pages_not_written),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_truncations_and_flips),
		cmocka_unit_test(test_stream_recv_into_ram),
		cmocka_unit_test(test_stream_corruption),
		cmocka_unit_test(test_zstd_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
