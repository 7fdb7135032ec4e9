/* libFuzzer target: the incoming migration stream, as a destination sees it.
 *
 * Input: one mode byte, then stream bytes. With FUZZ_MODE_FIX_CRC the target first rewrites the
 * CRCs (and with FUZZ_MODE_FIX_SEQ the sequence numbers) of every record it can frame, so the
 * mutations reach the payload decoders instead of dying at the checksum; without it the
 * checksum and framing paths themselves are fuzzed.
 *
 * Every record goes through both decoders: the in-memory one (wire_decode + payload parsers +
 * page_codec_decode) and the streaming one (wire_recv_hdr + page_codec_recv straight into a
 * fake guest RAM, wire_recv_payload for the others), plus the record-order checker. A
 * DEVICE_STATE blob is walked section by section (hv/state_enc.h) as every device's load
 * starts. With FUZZ_MODE_SNAPSHOT the input is a snapshot file: the header `hvctl restore`
 * and `hvctl inspect` read first (migrate/snapshot.h), then the stream. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "hv/state_enc.h"
#include "migrate/cpu_state.h"
#include "migrate/disk_copy.h"
#include "migrate/page_codec.h"
#include "migrate/snapshot.h"
#include "migrate/wire.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fuzz_guest[FUZZ_GUEST_PAGES * WIRE_PAGE_SIZE];

static uint8_t *fuzz_page_ptr(void *opaque, uint64_t gfn)
{
	if (gfn >= FUZZ_GUEST_PAGES || gfn == FUZZ_GUEST_HOLE)
		return NULL;
	return fuzz_guest + gfn * WIRE_PAGE_SIZE;
}

static void fuzz_fix_stream(uint8_t *b, size_t n, bool fix_seq)
{
	size_t off = 0;
	uint32_t seq = 0;

	while (n - off >= WIRE_HDR_SIZE) {
		uint8_t *h = b + off;
		uint32_t length = wire_get_u32(h + 16), crc_len = wire_get_u32(h + 20);
		size_t avail = n - off - WIRE_HDR_SIZE;
		size_t cover = crc_len <= avail ? crc_len : avail;

		if (fix_seq)
			wire_put_u32(h + 12, seq++);
		wire_put_u32(h + 24, (uint32_t)crc32_z(0, h + WIRE_HDR_SIZE, cover));
		wire_put_u32(h + 28, (uint32_t)crc32(0, h, 28));
		if (length > avail)
			break;
		off += WIRE_HDR_SIZE + length;
	}
}

/* A device's blob as every device's load starts reading it: section by section
 * (hv/state_enc.h), each body to its end. */
static void walk_sections(const uint8_t *p, size_t len)
{
	struct state_in in;
	struct state_sec s;
	char err[256];

	state_in_init(&in, p, len);
	while (state_in_next(&in, &s, err, sizeof(err)) > 0) {
		while (s.off < s.len)
			(void)state_sec_u8(&s);
		if (state_sec_end(&s, "section", err, sizeof(err)) < 0)
			abort(); /* read to its end: must be accepted */
	}
	(void)state_in_missing(&in, 1ull << 1);
}

/* The payload parsers a destination applies to each record type. */
static void fuzz_parse(struct page_codec_dec *pd, uint32_t type, const uint8_t *p, size_t len)
{
	static struct wire_hello hello;
	static struct vcpu_state vcpu;
	struct wire_hello_reply reply;
	struct wire_round_end re;
	struct wire_progress pr;
	struct wire_end_of_state eos;
	struct wire_device_state dev;
	struct wire_abort ab;
	struct vm_kvm_state vm;
	char err[256];

	switch (type) {
	case WIRE_HELLO:
		wire_parse_hello(p, len, &hello, err, sizeof(err));
		break;
	case WIRE_HELLO_REPLY:
		wire_parse_hello_reply(p, len, &reply, err, sizeof(err));
		break;
	case WIRE_PAGES:
		page_codec_decode(pd, p, len, FUZZ_GUEST_PAGES, fuzz_page_ptr, NULL);
		break;
	case WIRE_ROUND_END:
		wire_parse_round_end(p, len, &re, err, sizeof(err));
		break;
	case WIRE_PROGRESS:
		wire_parse_progress(p, len, &pr, err, sizeof(err));
		break;
	case WIRE_CPU_STATE:
		cpu_state_decode_vcpu(p, len, &vcpu, err, sizeof(err));
		break;
	case WIRE_VM_STATE:
		cpu_state_decode_vm(p, len, &vm, err, sizeof(err));
		break;
	case WIRE_DEVICE_STATE:
		if (wire_parse_device_state(p, len, &dev, err, sizeof(err)) == 0)
			walk_sections(dev.data, dev.len);
		break;
	case WIRE_END_OF_STATE:
		wire_parse_end_of_state(p, len, &eos, err, sizeof(err));
		break;
	case WIRE_ABORT:
		wire_parse_abort(p, len, &ab, err, sizeof(err));
		break;
	case WIRE_STARTED: {
		struct wire_started st;
		wire_parse_started(p, len, &st, err, sizeof(err));
		break;
	}
	case WIRE_DISCARD:
	case WIRE_PAGE_REQUEST: {
		const uint8_t *entries;
		uint32_t n;
		uint64_t sum = 0;
		int r = type == WIRE_DISCARD ? wire_parse_discard(p, len, &n, &entries, err, sizeof(err))
					     : wire_parse_page_request(p, len, &n, &entries, err, sizeof(err));
		/* Every entry the parser vouched for is read. */
		for (uint32_t i = 0; r == 0 && i < n * (type == WIRE_DISCARD ? 2u : 1u); i++)
			sum += wire_get_u64(entries + 8 * i);
		(void)sum;
		break;
	}
	case WIRE_DISK_DATA: {
		/* Into two small images, through the destination's checks and writer. */
		static struct disk_copy_dst disks = { .n = 0 };
		if (!disks.n) {
			for (int i = 0; i < 2; i++) {
				disks.fd[i] = memfd_create("fuzz-disk", MFD_CLOEXEC);
				disks.size[i] = (uint64_t)(i + 1) << 20;
				if (disks.fd[i] < 0 || ftruncate(disks.fd[i], (off_t)disks.size[i]) < 0)
					abort();
			}
			disks.n = 2;
		}
		disk_copy_apply(&disks, p, len, err, sizeof(err));
		break;
	}
	default:
		break;
	}
}

struct fuzz_src {
	const uint8_t *buf;
	size_t len, pos;
};

static ssize_t fuzz_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct fuzz_src *s = opaque;
	size_t n = 0;

	for (int i = 0; i < iovcnt && s->pos < s->len; i++) {
		size_t take = iov[i].iov_len < s->len - s->pos ? iov[i].iov_len : s->len - s->pos;

		memcpy(iov[i].iov_base, s->buf + s->pos, take);
		s->pos += take;
		n += take;
	}
	return (ssize_t)n;
}

static ssize_t fuzz_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	return -1;
}

static const struct wire_conn_ops fuzz_ops = { .readv = fuzz_readv, .writev = fuzz_writev };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct page_codec_dec pd;
	static bool ready;
	static struct wire_buf rbuf;
	struct wire_decoder dec;
	struct wire_order order;
	struct wire_record rec;
	struct wire_conn c;
	struct wire_rx rx;
	struct fuzz_src src;
	uint8_t *buf;
	size_t off = 0, used;
	uint8_t mode;

	if (size < 1)
		return 0;
	if (!ready) {
		page_codec_dec_init(&pd);
		ready = true;
	}
	mode = data[0];
	data++;
	size--;
	if (mode & FUZZ_MODE_SNAPSHOT) {
		uint8_t h[SNAPSHOT_HEADER_SIZE];
		struct snapshot_header sh;
		char err[256];

		if (size < sizeof(h))
			return 0;
		memcpy(h, data, sizeof(h));
		if (mode & FUZZ_MODE_FIX_CRC)
			wire_put_u32(h + 124, (uint32_t)crc32(0, h, 124));
		snapshot_header_decode(h, &sh, "fuzz", err, sizeof(err));
		data += sizeof(h);
		size -= sizeof(h);
	}
	buf = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (mode & FUZZ_MODE_FIX_CRC)
		fuzz_fix_stream(buf, size, mode & FUZZ_MODE_FIX_SEQ);

	/* In memory. */
	wire_decoder_init(&dec);
	wire_order_init(&order);
	while (wire_decode(&dec, buf + off, size - off, &rec, &used) == 0) {
		wire_order_check(&order, rec.hdr.type);
		fuzz_parse(&pd, rec.hdr.type, rec.payload, rec.len);
		off += used;
	}

	/* From a stream, pages straight into guest RAM. */
	src = (struct fuzz_src){ .buf = buf, .len = size };
	wire_conn_init(&c, &fuzz_ops, &src);
	while (wire_recv_hdr(&c, &rx) == 0) {
		int rc;

		if (rx.hdr.type == WIRE_PAGES) {
			rc = page_codec_recv(&pd, &c, &rx, FUZZ_GUEST_PAGES, fuzz_page_ptr, NULL);
		} else {
			if (rx.hdr.length > rbuf.cap) {
				uint8_t *p = realloc(rbuf.data, rx.hdr.length);

				if (!p)
					break;
				rbuf.data = p;
				rbuf.cap = rx.hdr.length;
			}
			rc = wire_recv_payload(&c, &rx, rbuf.data, rx.hdr.length);
			if (rc == 0)
				rc = wire_recv_end(&c, &rx);
			if (rc == 0)
				fuzz_parse(&pd, rx.hdr.type, rbuf.data, rx.hdr.length);
		}
		if (rc)
			break;
	}
	free(buf);
	return 0;
}
