/* The page codec: turns a batch of guest pages into the payload of one PAGES record and back.
 *
 * Payload of a PAGES record (little-endian; docs/migration-protocol.md):
 *   0 u16 count (1..WIRE_PAGES_MAX)   2 u8 encoding (0 raw, 1 zlib, 2 zstd)   3 u8 flags
 *   4 u32 data_len
 *   8 count x u64 entry: bits 0..55 page number (gfn), bits 56..63 kind (0 data, 1 zero)
 *   8 + 8*count: data_len bytes: the data pages in entry order, raw (4096 bytes each), or as
 *   one zlib stream (RFC 1950, level 1) or one zstd frame (RFC 8878) that decompresses to
 *   exactly 4096 * (data pages) bytes.
 * Zero pages carry no data. A compressed batch is only sent when it is smaller than raw.
 * zstd goes only to a peer that offered WIRE_CAP_ZSTD (the caller's business).
 *
 * Encoding is zero-copy for raw batches: the iovecs point at the guest pages. The record's CRC
 * always covers the descriptor (bytes 0 .. 8+8*count); it covers the page bytes too for
 * compressed batches and when the caller says the pages are stable (vCPUs stopped). Raw
 * pages sent while the guest runs may change under the checksum; the dirty log resends them.
 *
 * Decoding validates the whole descriptor (counts, kinds, every page number against the
 * caller's limit and page_ptr) before it writes a single page. Page numbers are whatever the
 * engine says they are (hv uses the RAM page index, memfd offset / 4096). */
#ifndef MIGRATE_PAGE_CODEC_H
#define MIGRATE_PAGE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <zlib.h>
#include <zstd.h>

#include "migrate/wire.h"

#define PAGE_CODEC_PAGE_SIZE WIRE_PAGE_SIZE
#define PAGE_CODEC_MAX_PAGES WIRE_PAGES_MAX
#define PAGE_CODEC_DESC_SIZE(count) (8u + 8u * (count))

enum page_codec_encoding { PAGE_CODEC_ENC_RAW = 0, PAGE_CODEC_ENC_ZLIB = 1, PAGE_CODEC_ENC_ZSTD = 2 };
/* Flags (byte 3). HASHED: a raw batch from a running guest, whose page bytes the record CRC
 * cannot cover; the data is followed by one XXH3-64 hash per data page instead. */
#define PAGE_CODEC_F_HASHED 0x01u
#define PAGE_CODEC_HASH_SIZE 8u
enum page_codec_kind { PAGE_CODEC_KIND_DATA = 0, PAGE_CODEC_KIND_ZERO = 1 };

/* What the caller asks for; a compressor falls back to raw when it does not make the batch
 * smaller. */
enum page_codec_compress { PAGE_CODEC_COMPRESS_NONE = 0, PAGE_CODEC_COMPRESS_ZLIB = 1,
			   PAGE_CODEC_COMPRESS_ZSTD = 2 };

struct page_codec_stats {
	uint64_t batches;
	uint64_t zero_pages, raw_pages, zlib_pages, zstd_pages;
	uint64_t raw_bytes;        /* page bytes sent raw */
	uint64_t zlib_in_bytes;    /* page bytes that went into zlib batches */
	uint64_t zlib_out_bytes;   /* their compressed size */
	uint64_t zstd_in_bytes;    /* the same for zstd batches */
	uint64_t zstd_out_bytes;
	/* Batches where the compressor did not pay and raw went instead. */
	uint64_t zlib_fallbacks, zstd_fallbacks;
	/* Every compression attempt (zlib or zstd), used or not: what the CPU spent and what it
	 * achieved. A fallback counts its output as the raw size (both compressors stop once
	 * they cannot win). This is what --compress auto must judge: an attempt that failed
	 * still cost the time. */
	uint64_t compress_in_bytes;
	uint64_t compress_out_bytes;
	uint64_t zero_writes;      /* decode: zero pages that had to be cleared */
	uint64_t hash_mismatches;  /* decode: pages of HASHED batches that did not match */
	uint64_t wire_bytes;       /* payload bytes (descriptor + data) */
};

/* dst += src, field by field (a compressor thread's batch into the sender's totals). */
void page_codec_stats_add(struct page_codec_stats *dst, const struct page_codec_stats *src);

/* Returns the host address of page `gfn`, or NULL if the page is not guest RAM. */
typedef uint8_t *(*page_codec_page_ptr_fn)(void *opaque, uint64_t gfn);

/* One encoder per sending thread (it owns a zlib stream, a zstd context and buffers, each
 * made on first use and kept). */
struct page_codec_enc {
	/* Output of the last page_codec_encode: the PAGES payload, ready for
	 * wire_send_iov(c, WIRE_PAGES, iov, iovcnt, crc_len). */
	struct iovec iov[2 + PAGE_CODEC_MAX_PAGES];
	int iovcnt;
	size_t payload_len;
	size_t crc_len;
	struct page_codec_stats stats;

	/* private */
	uint8_t desc[PAGE_CODEC_DESC_SIZE(PAGE_CODEC_MAX_PAGES)];
	uint8_t hashes[PAGE_CODEC_HASH_SIZE * PAGE_CODEC_MAX_PAGES];
	uint8_t *zbuf;   /* compressed output */
	uint8_t *zpages; /* zstd input: the data pages copied side by side */
	z_stream zs;
	bool zs_ready;
	ZSTD_CCtx *zc;
};

int page_codec_enc_init(struct page_codec_enc *e);
void page_codec_enc_fini(struct page_codec_enc *e);

/* Encodes n (1..PAGE_CODEC_MAX_PAGES) pages: gfns[i] is the page number of pages[i].
 * stable: the pages cannot change until sent, so the CRC may cover them (raw batches).
 * 0, or WIRE_E_ARG (bad n or page number), WIRE_E_NOMEM. */
int page_codec_encode(struct page_codec_enc *e, const uint64_t *gfns, const uint8_t *const *pages,
		      unsigned n, enum page_codec_compress compress, bool stable);

/* One decoder per receiving thread (contexts and buffers as the encoder's). */
struct page_codec_dec {
	struct page_codec_stats stats;
	char err[256];
	/* Optional, one bit per page (caller-allocated): pages of HASHED batches whose bytes did
	 * not match their hash (changed while being sent, or damaged on the way). A later good
	 * copy clears the bit; any bit still set at the end means a damaged page. */
	uint64_t *suspect;
	uint64_t suspect_pages;

	/* private */
	uint8_t *ptrs[PAGE_CODEC_MAX_PAGES];
	uint8_t desc[PAGE_CODEC_DESC_SIZE(PAGE_CODEC_MAX_PAGES)];
	uint8_t hashes[PAGE_CODEC_HASH_SIZE * PAGE_CODEC_MAX_PAGES];
	uint8_t *zbuf;   /* compressed input */
	uint8_t *zpages; /* zstd output, before it goes to the pages */
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zd;
};

int page_codec_dec_init(struct page_codec_dec *d);
void page_codec_dec_fini(struct page_codec_dec *d);

/* Places the pages of a PAGES payload held in memory (e.g. from wire_decode or wire_recv).
 * Every page number must be < page_limit and have a page_ptr. 0 or WIRE_E_PAYLOAD /
 * WIRE_E_RANGE with d->err. On error some pages of the batch may have been written. */
int page_codec_decode(struct page_codec_dec *d, const uint8_t *payload, size_t len,
		      uint64_t page_limit, page_codec_page_ptr_fn page_ptr, void *opaque);

/* Receives the payload of a PAGES record whose header wire_recv_hdr has just returned in rx,
 * reading raw page data straight into guest RAM (one readv per batch). Ends the record
 * (wire_recv_end). Errors as page_codec_decode, plus the wire_recv_* errors (message in
 * c->err for those, d->err for payload errors; page_codec_recv copies it into c->err too). */
int page_codec_recv(struct page_codec_dec *d, struct wire_conn *c, struct wire_rx *rx,
		    uint64_t page_limit, page_codec_page_ptr_fn page_ptr, void *opaque);

/* True if the 4096-byte page is all zero. */
bool page_codec_is_zero(const uint8_t *page);

#endif
