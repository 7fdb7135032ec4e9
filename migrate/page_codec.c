/* The page codec: zero / raw / zlib / zstd batches of guest pages (page_codec.h). */
#include "migrate/page_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd_errors.h>

#include "hv/log.h"

#define PAGE_CODEC_ZBUF_SIZE ((size_t)PAGE_CODEC_MAX_PAGES * PAGE_CODEC_PAGE_SIZE)
#define PAGE_CODEC_GFN_BITS 56
/* zstd level 1, chosen by measuring batches of 256 pages (tests/bench/compress.c, the table in
 * docs/migration.md): 3-5x zlib-1's speed for as few bytes or fewer on every mix (code pages
 * the same, text and heap 10-13% fewer). The negative levels are faster but send more (-1:
 * 13% more bytes of code, -4: a third more), and compression is on precisely when bytes are
 * what the link lacks; levels 2-3 take 20-90% more CPU for 1-10% fewer bytes. Over a 10 MiB/s
 * link level 1 is within 5% of the best level on every mix. */
#define PAGE_CODEC_ZSTD_LEVEL 1

static const char *const page_codec_encoding_names[] = { "raw", "zlib", "zstd" };

bool page_codec_is_zero(const uint8_t *page)
{
	/* 64 bytes per step, OR-ed together: the compiler turns this into vector loads, and a
	 * page with data usually fails on the first step. */
	for (size_t off = 0; off < PAGE_CODEC_PAGE_SIZE; off += 64) {
		uint64_t w[8];

		memcpy(w, page + off, sizeof(w));
		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return false;
	}
	return true;
}

/* ---- Encoding ---- */

int page_codec_enc_init(struct page_codec_enc *e)
{
	memset(e, 0, sizeof(*e));
	return 0;
}

void page_codec_enc_fini(struct page_codec_enc *e)
{
	if (e->zs_ready)
		deflateEnd(&e->zs);
	ZSTD_freeCCtx(e->zc);
	free(e->zbuf);
	free(e->zpages);
	memset(e, 0, sizeof(*e));
}

/* *buf, allocated (one batch of pages) on first use. */
static bool page_codec_buffer(uint8_t **buf)
{
	if (!*buf)
		*buf = malloc(PAGE_CODEC_ZBUF_SIZE);
	return *buf != NULL;
}

/* Compresses the data pages into e->zbuf as one zlib stream. Returns the compressed size, 0 if
 * it would not be smaller than raw (zlib gives up as soon as the output buffer is full), or
 * WIRE_E_NOMEM. */
static long page_codec_deflate(struct page_codec_enc *e, const uint8_t *const *data,
			       unsigned ndata)
{
	size_t raw = (size_t)ndata * PAGE_CODEC_PAGE_SIZE;

	if (!page_codec_buffer(&e->zbuf))
		return WIRE_E_NOMEM;
	if (!e->zs_ready) {
		if (deflateInit(&e->zs, 1) != Z_OK)
			return WIRE_E_NOMEM;
		e->zs_ready = true;
	} else {
		deflateReset(&e->zs);
	}
	e->zs.next_out = e->zbuf;
	e->zs.avail_out = (uInt)(raw - 1);
	for (unsigned k = 0; k < ndata; k++) {
		int last = k + 1 == ndata;
		int rc;

		e->zs.next_in = (Bytef *)data[k];
		e->zs.avail_in = PAGE_CODEC_PAGE_SIZE;
		rc = deflate(&e->zs, last ? Z_FINISH : Z_NO_FLUSH);
		if (last ? rc != Z_STREAM_END : (rc != Z_OK || e->zs.avail_in != 0))
			return 0;
	}
	return (long)e->zs.total_out;
}

/* Compresses the data pages into e->zbuf as one zstd frame (content size in its header; no
 * checksum, the record's CRC covers it). Returns the compressed size, 0 if it would not be
 * smaller than raw (zstd fails once the output buffer is full), or WIRE_E_NOMEM. */
static long page_codec_zstd(struct page_codec_enc *e, const uint8_t *const *data, unsigned ndata)
{
	size_t raw = (size_t)ndata * PAGE_CODEC_PAGE_SIZE;

	if (!page_codec_buffer(&e->zbuf) || !page_codec_buffer(&e->zpages) ||
	    (!e->zc && !(e->zc = ZSTD_createCCtx())))
		return WIRE_E_NOMEM;
	/* One frame needs its input in one piece; and zstd reads its input more than once (to
	 * find and extend matches), so a page that a running guest changes meanwhile must not be
	 * under it: it works on a copy, as zlib does on the copy in its window. */
	for (unsigned k = 0; k < ndata; k++)
		memcpy(e->zpages + (size_t)k * PAGE_CODEC_PAGE_SIZE, data[k], PAGE_CODEC_PAGE_SIZE);
	size_t n = ZSTD_compressCCtx(e->zc, e->zbuf, raw - 1, e->zpages, raw, PAGE_CODEC_ZSTD_LEVEL);
	return ZSTD_isError(n) ? 0 : (long)n;
}

/* A batch's pages in the statistics: the encoder's as it sends them, the decoder's as they
 * arrive. */
static void page_codec_count(struct page_codec_stats *st, unsigned encoding, unsigned count,
			     unsigned ndata, uint64_t data_len, size_t payload_len)
{
	uint64_t bytes = (uint64_t)ndata * PAGE_CODEC_PAGE_SIZE;

	st->batches++;
	st->zero_pages += count - ndata;
	if (encoding == PAGE_CODEC_ENC_ZLIB) {
		st->zlib_pages += ndata;
		st->zlib_in_bytes += bytes;
		st->zlib_out_bytes += data_len;
	} else if (encoding == PAGE_CODEC_ENC_ZSTD) {
		st->zstd_pages += ndata;
		st->zstd_in_bytes += bytes;
		st->zstd_out_bytes += data_len;
	} else {
		st->raw_pages += ndata;
		st->raw_bytes += bytes;
	}
	st->wire_bytes += payload_len;
}

int page_codec_encode(struct page_codec_enc *e, const uint64_t *gfns, const uint8_t *const *pages,
		      unsigned n, enum page_codec_compress compress, bool stable)
{
	const uint8_t *data[PAGE_CODEC_MAX_PAGES];
	unsigned ndata = 0;
	size_t desc_len = PAGE_CODEC_DESC_SIZE(n), data_len;
	uint8_t encoding = PAGE_CODEC_ENC_RAW;
	long zlen = 0;

	e->iovcnt = 0;
	if (n == 0 || n > PAGE_CODEC_MAX_PAGES || compress > PAGE_CODEC_COMPRESS_ZSTD)
		return WIRE_E_ARG;
	for (unsigned i = 0; i < n; i++) {
		bool zero;

		if (gfns[i] > WIRE_GFN_MAX || !pages[i])
			return WIRE_E_ARG;
		zero = page_codec_is_zero(pages[i]);
		wire_put_u64(e->desc + 8 + 8 * i,
			     gfns[i] | ((uint64_t)(zero ? PAGE_CODEC_KIND_ZERO : PAGE_CODEC_KIND_DATA)
					<< PAGE_CODEC_GFN_BITS));
		if (!zero)
			data[ndata++] = pages[i];
	}
	data_len = (size_t)ndata * PAGE_CODEC_PAGE_SIZE;

	if (compress != PAGE_CODEC_COMPRESS_NONE && ndata > 0) {
		bool zstd = compress == PAGE_CODEC_COMPRESS_ZSTD;

		zlen = zstd ? page_codec_zstd(e, data, ndata) : page_codec_deflate(e, data, ndata);
		if (zlen < 0)
			return (int)zlen;
		e->stats.compress_in_bytes += data_len;
		e->stats.compress_out_bytes += zlen > 0 ? (uint64_t)zlen : data_len;
		if (zlen > 0) {
			encoding = zstd ? PAGE_CODEC_ENC_ZSTD : PAGE_CODEC_ENC_ZLIB;
			data_len = (size_t)zlen;
		} else if (zstd) {
			e->stats.zstd_fallbacks++;
		} else {
			e->stats.zlib_fallbacks++;
		}
	}

	wire_put_u16(e->desc, (uint16_t)n);
	e->desc[2] = encoding;
	e->desc[3] = 0;
	wire_put_u32(e->desc + 4, (uint32_t)data_len);
	e->iov[0] = (struct iovec){ .iov_base = e->desc, .iov_len = desc_len };
	e->iovcnt = 1;
	if (encoding != PAGE_CODEC_ENC_RAW) {
		e->iov[e->iovcnt++] = (struct iovec){ .iov_base = e->zbuf, .iov_len = data_len };
		e->crc_len = desc_len + data_len;
	} else {
		bool hashed = !stable && ndata > 0;
		for (unsigned k = 0; k < ndata; k++) {
			struct iovec *last = &e->iov[e->iovcnt - 1];

			/* Pages adjacent in host memory go out as one iovec. */
			if (e->iovcnt > 1 && (const uint8_t *)last->iov_base + last->iov_len == data[k])
				last->iov_len += PAGE_CODEC_PAGE_SIZE;
			else
				e->iov[e->iovcnt++] = (struct iovec){ .iov_base = (void *)data[k],
								      .iov_len = PAGE_CODEC_PAGE_SIZE };
		}
		if (hashed) {
			/* The guest may change a page between here and the socket's copy: then the
			 * destination sees a mismatch, and the dirty log sends the page again. */
			for (unsigned k = 0; k < ndata; k++)
				wire_put_u64(e->hashes + PAGE_CODEC_HASH_SIZE * k,
					     XXH3_64bits(data[k], PAGE_CODEC_PAGE_SIZE));
			e->iov[e->iovcnt++] = (struct iovec){ .iov_base = e->hashes,
							      .iov_len = PAGE_CODEC_HASH_SIZE * ndata };
			data_len += PAGE_CODEC_HASH_SIZE * ndata;
			e->desc[3] = PAGE_CODEC_F_HASHED;
			wire_put_u32(e->desc + 4, (uint32_t)data_len);
		}
		e->crc_len = hashed ? desc_len : desc_len + data_len;
	}
	e->payload_len = desc_len + data_len;
	page_codec_count(&e->stats, encoding, n, ndata, data_len, e->payload_len);
	return 0;
}

/* ---- Decoding ---- */

int page_codec_dec_init(struct page_codec_dec *d)
{
	memset(d, 0, sizeof(*d));
	return 0;
}

void page_codec_dec_fini(struct page_codec_dec *d)
{
	if (d->zs_ready)
		inflateEnd(&d->zs);
	ZSTD_freeDCtx(d->zd);
	free(d->zbuf);
	free(d->zpages);
	memset(d, 0, sizeof(*d));
}

struct page_codec_batch {
	bool hashed;
	unsigned count;
	unsigned encoding;
	uint32_t data_len;
	size_t desc_len;
	unsigned ndata;
};

/* Checks the first 8 descriptor bytes against the payload length. */
static int page_codec_parse_head(struct page_codec_dec *d, const uint8_t *head, size_t payload_len,
				 struct page_codec_batch *b)
{
	b->count = wire_get_u16(head);
	b->encoding = head[2];
	b->data_len = wire_get_u32(head + 4);
	if (b->count == 0 || b->count > PAGE_CODEC_MAX_PAGES) {
		hv_errf(d->err, sizeof(d->err), "batch of %u pages (allowed 1..%u)",
				   b->count, PAGE_CODEC_MAX_PAGES);
		return WIRE_E_PAYLOAD;
	}
	if (b->encoding > PAGE_CODEC_ENC_ZSTD) {
		hv_errf(d->err, sizeof(d->err), "unknown page encoding %u", b->encoding);
		return WIRE_E_PAYLOAD;
	}
	b->hashed = head[3] == PAGE_CODEC_F_HASHED;
	if ((head[3] & ~PAGE_CODEC_F_HASHED) || (b->hashed && b->encoding != PAGE_CODEC_ENC_RAW)) {
		hv_errf(d->err, sizeof(d->err), "flags byte is 0x%02x", head[3]);
		return WIRE_E_PAYLOAD;
	}
	b->desc_len = PAGE_CODEC_DESC_SIZE(b->count);
	if ((uint64_t)payload_len != (uint64_t)b->desc_len + b->data_len) {
		hv_errf(d->err, sizeof(d->err),
				   "payload is %zu bytes but the descriptor says %zu + %u", payload_len,
				   b->desc_len, b->data_len);
		return WIRE_E_PAYLOAD;
	}
	return 0;
}

/* Checks every entry and resolves its page; then checks data_len against the data pages. */
static int page_codec_parse_entries(struct page_codec_dec *d, const uint8_t *entries,
				    struct page_codec_batch *b, uint64_t page_limit,
				    page_codec_page_ptr_fn page_ptr, void *opaque)
{
	b->ndata = 0;
	for (unsigned i = 0; i < b->count; i++) {
		uint64_t e = wire_get_u64(entries + 8 * i);
		uint64_t gfn = e & ((1ull << PAGE_CODEC_GFN_BITS) - 1);
		unsigned kind = (unsigned)(e >> PAGE_CODEC_GFN_BITS);

		if (kind != PAGE_CODEC_KIND_DATA && kind != PAGE_CODEC_KIND_ZERO) {
			hv_errf(d->err, sizeof(d->err), "entry %u has unknown kind %u", i,
					   kind);
			return WIRE_E_PAYLOAD;
		}
		if (gfn >= page_limit || gfn > WIRE_GFN_MAX ||
		    !(d->ptrs[i] = page_ptr(opaque, gfn))) {
			hv_errf(d->err, sizeof(d->err),
					   "page 0x%llx (entry %u) is outside guest RAM (%llu pages)",
					   (unsigned long long)gfn, i, (unsigned long long)page_limit);
			return WIRE_E_RANGE;
		}
		if (kind == PAGE_CODEC_KIND_DATA)
			b->ndata++;
	}
	if (b->encoding == PAGE_CODEC_ENC_RAW &&
	    b->data_len != (uint64_t)b->ndata * (PAGE_CODEC_PAGE_SIZE + (b->hashed ? PAGE_CODEC_HASH_SIZE : 0))) {
		hv_errf(d->err, sizeof(d->err),
				   "raw batch has %u data pages but %u data bytes", b->ndata,
				   b->data_len);
		return WIRE_E_PAYLOAD;
	}
	if (b->encoding != PAGE_CODEC_ENC_RAW &&
	    (b->ndata == 0 || b->data_len == 0 ||
	     b->data_len >= (uint64_t)b->ndata * PAGE_CODEC_PAGE_SIZE)) {
		hv_errf(d->err, sizeof(d->err),
				   "%s batch of %u data pages has %u compressed bytes",
				   page_codec_encoding_names[b->encoding], b->ndata, b->data_len);
		return WIRE_E_PAYLOAD;
	}
	return 0;
}

static uint64_t page_codec_entry_kind(const uint8_t *entries, unsigned i)
{
	return wire_get_u64(entries + 8 * i) >> PAGE_CODEC_GFN_BITS;
}

/* Inflates src into the data pages in entry order; the stream must produce exactly
 * ndata * 4096 bytes and end exactly at the end of src. */
static int page_codec_inflate(struct page_codec_dec *d, const uint8_t *src, size_t srclen,
			      const uint8_t *entries, const struct page_codec_batch *b)
{
	unsigned filled = 0;
	int rc = Z_OK;

	if (!d->zs_ready) {
		if (inflateInit(&d->zs) != Z_OK) {
			hv_errf(d->err, sizeof(d->err), "out of memory for zlib");
			return WIRE_E_NOMEM;
		}
		d->zs_ready = true;
	} else {
		inflateReset(&d->zs);
	}
	d->zs.next_in = (Bytef *)src;
	d->zs.avail_in = (uInt)srclen;
	for (unsigned i = 0; i < b->count; i++) {
		if (page_codec_entry_kind(entries, i) != PAGE_CODEC_KIND_DATA)
			continue;
		if (rc == Z_STREAM_END)
			goto short_data;
		d->zs.next_out = d->ptrs[i];
		d->zs.avail_out = PAGE_CODEC_PAGE_SIZE;
		while (d->zs.avail_out > 0) {
			rc = inflate(&d->zs, Z_NO_FLUSH);
			if (rc == Z_STREAM_END)
				break;
			if (rc != Z_OK)
				goto bad;
		}
		if (d->zs.avail_out > 0)
			goto short_data;
		filled++;
	}
	if (rc != Z_STREAM_END) {
		/* The output is full: the stream must end here without producing anything. */
		uint8_t extra;

		d->zs.next_out = &extra;
		d->zs.avail_out = 1;
		do
			rc = inflate(&d->zs, Z_NO_FLUSH);
		while (rc == Z_OK && d->zs.avail_out == 1);
		if (d->zs.avail_out == 0) {
			hv_errf(d->err, sizeof(d->err),
					   "zlib data inflates to more than the declared %u pages",
					   b->ndata);
			return WIRE_E_PAYLOAD;
		}
		if (rc != Z_STREAM_END)
			goto bad;
	}
	if (d->zs.avail_in != 0) {
		hv_errf(d->err, sizeof(d->err), "%u bytes after the end of the zlib data",
				   d->zs.avail_in);
		return WIRE_E_PAYLOAD;
	}
	return 0;

short_data:
	hv_errf(d->err, sizeof(d->err),
			   "zlib data inflates to fewer than the declared %u pages (%u filled)",
			   b->ndata, filled);
	return WIRE_E_PAYLOAD;
bad:
	hv_errf(d->err, sizeof(d->err), "corrupt zlib data (%s, zlib code %d)",
			   d->zs.msg ? d->zs.msg : "truncated", rc);
	return WIRE_E_PAYLOAD;
}

/* Decompresses src, one zstd frame, into the data pages in entry order. The frame must fill
 * src exactly and produce exactly ndata * 4096 bytes (and say so, if it gives its size). It is
 * decoded into a private buffer of that size first: the pages see nothing of a bad frame, and
 * zstd cannot write past the buffer whatever the frame claims. */
static int page_codec_unzstd(struct page_codec_dec *d, const uint8_t *src, size_t srclen,
			     const uint8_t *entries, const struct page_codec_batch *b)
{
	size_t want = (size_t)b->ndata * PAGE_CODEC_PAGE_SIZE, frame, n;
	unsigned long long declared;

	/* Only a zstd frame: no skippable frame, and none of the legacy formats libzstd may
	 * still decode. */
	if (srclen < 4 || wire_get_u32(src) != ZSTD_MAGICNUMBER) {
		hv_errf(d->err, sizeof(d->err), "zstd data does not start with a zstd frame");
		return WIRE_E_PAYLOAD;
	}
	frame = ZSTD_findFrameCompressedSize(src, srclen);
	if (ZSTD_isError(frame)) {
		hv_errf(d->err, sizeof(d->err), "corrupt zstd data (%s)", ZSTD_getErrorName(frame));
		return WIRE_E_PAYLOAD;
	}
	if (frame != srclen) {
		hv_errf(d->err, sizeof(d->err), "%zu bytes after the end of the zstd frame",
			srclen - frame);
		return WIRE_E_PAYLOAD;
	}
	declared = ZSTD_getFrameContentSize(src, srclen);
	if (declared == ZSTD_CONTENTSIZE_ERROR) {
		hv_errf(d->err, sizeof(d->err), "corrupt zstd frame header");
		return WIRE_E_PAYLOAD;
	}
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != want) {
		hv_errf(d->err, sizeof(d->err), "zstd frame declares %llu bytes for %u data pages",
			declared, b->ndata);
		return WIRE_E_PAYLOAD;
	}
	if (!page_codec_buffer(&d->zpages) || (!d->zd && !(d->zd = ZSTD_createDCtx()))) {
		hv_errf(d->err, sizeof(d->err), "out of memory for zstd");
		return WIRE_E_NOMEM;
	}
	n = ZSTD_decompressDCtx(d->zd, d->zpages, want, src, srclen);
	if (ZSTD_isError(n) && ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) {
		hv_errf(d->err, sizeof(d->err),
			"zstd data decompresses to more than the declared %u pages", b->ndata);
		return WIRE_E_PAYLOAD;
	}
	if (ZSTD_isError(n)) {
		hv_errf(d->err, sizeof(d->err), "corrupt zstd data (%s)", ZSTD_getErrorName(n));
		return WIRE_E_PAYLOAD;
	}
	if (n != want) {
		hv_errf(d->err, sizeof(d->err),
			"zstd data decompresses to fewer than the declared %u pages (%zu bytes)",
			b->ndata, n);
		return WIRE_E_PAYLOAD;
	}
	for (unsigned i = 0, k = 0; i < b->count; i++)
		if (page_codec_entry_kind(entries, i) == PAGE_CODEC_KIND_DATA)
			memcpy(d->ptrs[i], d->zpages + (size_t)k++ * PAGE_CODEC_PAGE_SIZE,
			       PAGE_CODEC_PAGE_SIZE);
	return 0;
}

/* The data pages of a compressed batch from its data_len bytes at src. */
static int page_codec_expand(struct page_codec_dec *d, const uint8_t *src, const uint8_t *entries,
			     const struct page_codec_batch *b)
{
	if (b->encoding == PAGE_CODEC_ENC_ZSTD)
		return page_codec_unzstd(d, src, b->data_len, entries, b);
	return page_codec_inflate(d, src, b->data_len, entries, b);
}

static void suspect_set(struct page_codec_dec *d, uint64_t gfn, bool bad)
{
	if (!d->suspect)
		return;
	uint64_t bit = 1ULL << (gfn % 64), *w = &d->suspect[gfn / 64];
	if (bad && !(*w & bit)) {
		*w |= bit;
		d->suspect_pages++;
	} else if (!bad && (*w & bit)) {
		*w &= ~bit;
		d->suspect_pages--;
	}
}

/* After the pages of a batch landed: which of them match their hash (HASHED batches), and
 * every page that arrived in good shape stops being suspect. */
static void page_codec_check_pages(struct page_codec_dec *d, const uint8_t *entries,
				   const struct page_codec_batch *b, const uint8_t *hashes)
{
	unsigned k = 0;

	for (unsigned i = 0; i < b->count; i++) {
		uint64_t e = wire_get_u64(entries + 8 * i);
		uint64_t gfn = e & ((1ull << PAGE_CODEC_GFN_BITS) - 1);
		bool bad = false;
		if ((e >> PAGE_CODEC_GFN_BITS) == PAGE_CODEC_KIND_DATA && b->hashed) {
			bad = XXH3_64bits(d->ptrs[i], PAGE_CODEC_PAGE_SIZE) !=
			      wire_get_u64(hashes + PAGE_CODEC_HASH_SIZE * k);
			k++;
			if (bad)
				d->stats.hash_mismatches++;
		}
		suspect_set(d, gfn, bad);
	}
}

/* Clears the zero pages, touching only those that are not zero already (a fresh memfd page
 * is left unallocated). */
static void page_codec_apply_zero(struct page_codec_dec *d, const uint8_t *entries,
				  const struct page_codec_batch *b)
{
	for (unsigned i = 0; i < b->count; i++) {
		if (page_codec_entry_kind(entries, i) != PAGE_CODEC_KIND_ZERO)
			continue;
		if (!page_codec_is_zero(d->ptrs[i])) {
			memset(d->ptrs[i], 0, PAGE_CODEC_PAGE_SIZE);
			d->stats.zero_writes++;
		}
	}
}

/* The pages of a batch have landed: zero pages, hashes, statistics. */
static void page_codec_placed(struct page_codec_dec *d, const uint8_t *entries,
			      const struct page_codec_batch *b, const uint8_t *hashes)
{
	page_codec_apply_zero(d, entries, b);
	page_codec_check_pages(d, entries, b, hashes);
	page_codec_count(&d->stats, b->encoding, b->count, b->ndata, b->data_len,
			 b->desc_len + b->data_len);
}

int page_codec_decode(struct page_codec_dec *d, const uint8_t *payload, size_t len,
		      uint64_t page_limit, page_codec_page_ptr_fn page_ptr, void *opaque)
{
	struct page_codec_batch b;
	const uint8_t *entries, *data;
	int rc;

	if (len < 8) {
		hv_errf(d->err, sizeof(d->err), "PAGES payload of %zu bytes", len);
		return WIRE_E_PAYLOAD;
	}
	rc = page_codec_parse_head(d, payload, len, &b);
	if (rc)
		return rc;
	entries = payload + 8;
	rc = page_codec_parse_entries(d, entries, &b, page_limit, page_ptr, opaque);
	if (rc)
		return rc;
	data = payload + b.desc_len;
	if (b.encoding != PAGE_CODEC_ENC_RAW) {
		rc = page_codec_expand(d, data, entries, &b);
		if (rc)
			return rc;
	} else {
		for (unsigned i = 0; i < b.count; i++) {
			if (page_codec_entry_kind(entries, i) != PAGE_CODEC_KIND_DATA)
				continue;
			memcpy(d->ptrs[i], data, PAGE_CODEC_PAGE_SIZE);
			data += PAGE_CODEC_PAGE_SIZE;
		}
	}
	page_codec_placed(d, entries, &b, data);
	return 0;
}

/* A payload error in a received record: the message names the record. */
static int page_codec_recv_fail(struct page_codec_dec *d, struct wire_conn *c,
				const struct wire_rx *rx, int rc)
{
	snprintf(c->err, sizeof(c->err), "stream corrupt: PAGES record #%u at byte %llu: %.170s",
		 rx->hdr.seq, (unsigned long long)rx->offset, d->err);
	return rc;
}

int page_codec_recv(struct page_codec_dec *d, struct wire_conn *c, struct wire_rx *rx,
		    uint64_t page_limit, page_codec_page_ptr_fn page_ptr, void *opaque)
{
	struct iovec iov[PAGE_CODEC_MAX_PAGES + 1];
	struct page_codec_batch b;
	const uint8_t *entries = d->desc + 8;
	int rc, n = 0;

	if (rx->hdr.type != WIRE_PAGES || rx->done != 0) {
		snprintf(c->err, sizeof(c->err), "internal error: page_codec_recv on a %s record",
			 wire_type_name(rx->hdr.type));
		return WIRE_E_ARG;
	}
	rc = wire_recv_payload(c, rx, d->desc, 8);
	if (rc)
		return rc;
	rc = page_codec_parse_head(d, d->desc, rx->hdr.length, &b);
	if (rc)
		return page_codec_recv_fail(d, c, rx, rc);
	/* The descriptor is always checksummed; the page bytes are, unless raw from a live guest,
	 * and then they carry hashes. */
	if (rx->hdr.crc_len != rx->hdr.length &&
	    (rx->hdr.crc_len != b.desc_len || !b.hashed)) {
		hv_errf(d->err, sizeof(d->err),
				   "checksum covers %u of %u bytes (descriptor is %zu)",
				   rx->hdr.crc_len, rx->hdr.length, b.desc_len);
		return page_codec_recv_fail(d, c, rx, WIRE_E_PAYLOAD);
	}
	rc = wire_recv_payload(c, rx, d->desc + 8, b.desc_len - 8);
	if (rc)
		return rc;
	rc = page_codec_parse_entries(d, entries, &b, page_limit, page_ptr, opaque);
	if (rc)
		return page_codec_recv_fail(d, c, rx, rc);

	if (b.encoding != PAGE_CODEC_ENC_RAW) {
		if (!page_codec_buffer(&d->zbuf)) {
			snprintf(c->err, sizeof(c->err), "out of memory for a %s batch",
				 page_codec_encoding_names[b.encoding]);
			return WIRE_E_NOMEM;
		}
		/* data_len < ndata * 4096 <= the buffer size (checked in parse_entries). */
		rc = wire_recv_payload(c, rx, d->zbuf, b.data_len);
		if (rc)
			return rc;
		rc = page_codec_expand(d, d->zbuf, entries, &b);
		if (rc)
			return page_codec_recv_fail(d, c, rx, rc);
	} else if (b.ndata > 0) {
		/* Straight into guest RAM, one readv for the batch. */
		for (unsigned i = 0; i < b.count; i++) {
			if (page_codec_entry_kind(entries, i) != PAGE_CODEC_KIND_DATA)
				continue;
			if (n > 0 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == d->ptrs[i])
				iov[n - 1].iov_len += PAGE_CODEC_PAGE_SIZE;
			else
				iov[n++] = (struct iovec){ .iov_base = d->ptrs[i],
							   .iov_len = PAGE_CODEC_PAGE_SIZE };
		}
		if (b.hashed)
			iov[n++] = (struct iovec){ .iov_base = d->hashes,
						   .iov_len = PAGE_CODEC_HASH_SIZE * b.ndata };
		rc = wire_recv_payloadv(c, rx, iov, n);
		if (rc)
			return rc;
	}
	rc = wire_recv_end(c, rx);
	if (rc)
		return rc;
	page_codec_placed(d, entries, &b, d->hashes);
	return 0;
}

void page_codec_stats_add(struct page_codec_stats *dst, const struct page_codec_stats *src)
{
	/* Every field is a uint64_t counter. */
	_Static_assert(sizeof(*dst) % sizeof(uint64_t) == 0, "page_codec_stats holds only counters");
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		d[i] += s[i];
}
