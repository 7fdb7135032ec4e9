/* wire: framing, CRCs, limits, transports, payload parsers, record order. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "migrate/wire.h"

/* ---- A transport over a memory buffer, with a cap on bytes per call ---- */

struct mem_pipe {
	uint8_t *buf;
	size_t len, cap, rpos;
	size_t chunk; /* max bytes per readv/writev call (0: unlimited) */
	int fail_errno; /* nonzero: every call fails with it */
};

static ssize_t mem_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct mem_pipe *p = opaque;
	size_t n = 0;

	if (p->fail_errno)
		return -p->fail_errno;
	for (int i = 0; i < iovcnt; i++) {
		size_t take = iov[i].iov_len;

		if (p->chunk && n + take > p->chunk)
			take = p->chunk - n;
		if (p->len + take > p->cap) {
			p->cap = (p->len + take) * 2 + 4096;
			p->buf = realloc(p->buf, p->cap);
			assert_non_null(p->buf);
		}
		memcpy(p->buf + p->len, iov[i].iov_base, take);
		p->len += take;
		n += take;
		if (p->chunk && n == p->chunk)
			break;
	}
	return (ssize_t)n;
}

static ssize_t mem_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct mem_pipe *p = opaque;
	size_t n = 0;

	if (p->fail_errno)
		return -p->fail_errno;
	for (int i = 0; i < iovcnt && p->rpos < p->len; i++) {
		size_t take = iov[i].iov_len;

		if (take > p->len - p->rpos)
			take = p->len - p->rpos;
		if (p->chunk && n + take > p->chunk)
			take = p->chunk - n;
		memcpy(iov[i].iov_base, p->buf + p->rpos, take);
		p->rpos += take;
		n += take;
		if (p->chunk && n == p->chunk)
			break;
	}
	return (ssize_t)n;
}

static const struct wire_conn_ops mem_ops = { .readv = mem_readv, .writev = mem_writev };

static const char test_uuid[] = "6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f";

static void make_hello(struct wire_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->protocol = WIRE_VERSION;
	strcpy(h->name, "vm-test_1");
	strcpy(h->uuid, test_uuid);
	strcpy(h->host, "lab1");
	h->mem_size = 256ull << 20;
	h->vcpus = 2;
	h->caps = WIRE_CAP_ZLIB | WIRE_CAP_ZSTD;
	h->paused = true;
	h->ncpuid = 3;
	h->cpuid[0] = (struct wire_cpuid_word){ 0, 0, 0xd, 0x68747541, 0x444d4163, 0x69746e65 };
	h->cpuid[1] = (struct wire_cpuid_word){ 1, 0, 0x830f10, 0x800, 0xfef83203, 0x178bfbff };
	h->cpuid[2] = (struct wire_cpuid_word){ 7, 0, 0, 0x219c91a9, 0xffffffffu, 0 };
	strcpy(h->devices_json, "[{\"type\":\"serial\",\"name\":\"com1\"},"
				"{\"type\":\"virtio-blk\",\"name\":\"disk0\",\"path\":\"/srv/a.img\"}]");
	h->storage_copy = true;
	h->ncopy_to = 2;
	strcpy(h->copy_to[0], "/srv/in/a.img");
}

/* Writes one of every record type; returns the number of records. */
static int write_all_types(struct wire_conn *c)
{
	struct wire_hello h;
	struct wire_hello_reply r = { .ok = true, .caps = WIRE_CAP_ZLIB | WIRE_CAP_ZSTD | WIRE_CAP_SYNC | WIRE_CAP_START_ON_STATE };
	struct wire_round_end re = { 2, WIRE_ROUND_END_SYNC, 100, 10, 80, 10, 409600, 17, 123456 };
	struct wire_progress pr = { 3, WIRE_PHASE_MEMORY, 65536, 1000, 64536, 4096000, 1500 };
	struct wire_end_of_state eos = { 2, 3 };
	uint8_t pages[8 + 8 + 4096];
	uint8_t blob[300];
	struct iovec v[2];

	make_hello(&h);
	memset(pages, 0, sizeof(pages));
	wire_put_u16(pages, 1);
	wire_put_u32(pages + 4, 4096);
	wire_put_u64(pages + 8, 42);
	memset(pages + 16, 0xab, 4096);
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)i;
	v[0] = (struct iovec){ pages, 16 };
	v[1] = (struct iovec){ pages + 16, 4096 };

	assert_int_equal(wire_send_hello(c, &h), 0);
	assert_int_equal(wire_send_hello_reply(c, &r), 0);
	assert_int_equal(wire_send_iov(c, WIRE_PAGES, v, 2, 16), 0); /* descriptor-only CRC */
	assert_int_equal(wire_send_iov(c, WIRE_PAGES, v, 2, WIRE_CRC_ALL), 0);
	assert_int_equal(wire_send_round_end(c, &re), 0);
	assert_int_equal(wire_send_progress(c, &pr), 0);
	assert_int_equal(wire_send(c, WIRE_CPU_STATE, blob, sizeof(blob)), 0);
	assert_int_equal(wire_send(c, WIRE_VM_STATE, blob, 100), 0);
	assert_int_equal(wire_send_device_state(c, "serial.com1", 3, blob, 50), 0);
	assert_int_equal(wire_send_end_of_state(c, &eos), 0);
	assert_int_equal(wire_send(c, WIRE_ACK, NULL, 0), 0);
	assert_int_equal(wire_send(c, WIRE_COMMIT, NULL, 0), 0);
	assert_int_equal(wire_send_abort(c, WIRE_ABORT_CANCELLED, "cancelled by the user"), 0);
	static uint8_t sector[512];
	for (size_t i = 0; i < sizeof(sector); i++)
		sector[i] = (uint8_t)i;
	assert_int_equal(wire_send_disk_data(c, 1, 0, 65536, sector, 512), 0);
	assert_int_equal(wire_send_disk_data(c, 0, WIRE_DISK_ZERO, 1 << 20, NULL, 65536), 0);
	return 15;
}

static const uint16_t all_types_order[] = {
	WIRE_HELLO, WIRE_HELLO_REPLY, WIRE_PAGES, WIRE_PAGES, WIRE_ROUND_END, WIRE_PROGRESS,
	WIRE_CPU_STATE, WIRE_VM_STATE, WIRE_DEVICE_STATE, WIRE_END_OF_STATE, WIRE_ACK,
	WIRE_COMMIT, WIRE_ABORT, WIRE_DISK_DATA, WIRE_DISK_DATA,
};

/* Checks the payload of record k of write_all_types. */
static void check_record(int k, const struct wire_record *rec)
{
	char err[256];

	assert_int_equal(rec->hdr.type, all_types_order[k]);
	assert_int_equal(rec->hdr.seq, k);
	switch (k) {
	case 0: {
		struct wire_hello *h = malloc(sizeof(*h)), *want = malloc(sizeof(*want));

		make_hello(want);
		assert_int_equal(wire_parse_hello(rec->payload, rec->len, h, err, sizeof(err)), 0);
		assert_int_equal(h->protocol, WIRE_VERSION);
		assert_string_equal(h->name, want->name);
		assert_string_equal(h->uuid, want->uuid);
		assert_string_equal(h->host, "lab1");
		assert_int_equal(h->mem_size, want->mem_size);
		assert_int_equal(h->vcpus, 2);
		assert_int_equal(h->caps, WIRE_CAP_ZLIB | WIRE_CAP_ZSTD);
		assert_true(h->paused);
		assert_int_equal(h->ncpuid, 3);
		assert_memory_equal(h->cpuid, want->cpuid, 3 * sizeof(h->cpuid[0]));
		assert_non_null(strstr(h->devices_json, "\"path\":\"/srv/a.img\""));
		assert_non_null(strstr(h->devices_json, "\"type\":\"virtio-blk\""));
		assert_true(h->storage_copy);
		assert_int_equal(h->ncopy_to, 2);
		assert_string_equal(h->copy_to[0], "/srv/in/a.img");
		assert_string_equal(h->copy_to[1], "");
		free(h);
		free(want);
		break;
	}
	case 1: {
		struct wire_hello_reply r;

		assert_int_equal(wire_parse_hello_reply(rec->payload, rec->len, &r, err, sizeof(err)),
				 0);
		assert_true(r.ok);
		assert_int_equal(r.caps, WIRE_CAP_ZLIB | WIRE_CAP_ZSTD | WIRE_CAP_SYNC | WIRE_CAP_START_ON_STATE);
		break;
	}
	case 2:
	case 3:
		assert_int_equal(rec->len, 16 + 4096);
		assert_int_equal(rec->hdr.crc_len, k == 2 ? 16 : 16 + 4096);
		assert_int_equal(wire_get_u64(rec->payload + 8), 42);
		assert_int_equal(rec->payload[16 + 4095], 0xab);
		break;
	case 4: {
		struct wire_round_end re;

		assert_int_equal(wire_parse_round_end(rec->payload, rec->len, &re, err, sizeof(err)),
				 0);
		assert_int_equal(re.round, 2);
		assert_int_equal(re.flags, WIRE_ROUND_END_SYNC);
		assert_int_equal(re.pages, 100);
		assert_int_equal(re.zero_pages, 10);
		assert_int_equal(re.raw_pages, 80);
		assert_int_equal(re.compressed_pages, 10);
		assert_int_equal(re.bytes, 409600);
		assert_int_equal(re.dirty_pages, 17);
		assert_int_equal(re.duration_us, 123456);
		break;
	}
	case 5: {
		struct wire_progress pr;

		assert_int_equal(wire_parse_progress(rec->payload, rec->len, &pr, err, sizeof(err)), 0);
		assert_int_equal(pr.round, 3);
		assert_int_equal(pr.phase, WIRE_PHASE_MEMORY);
		assert_int_equal(pr.total_pages, 65536);
		assert_int_equal(pr.sent_pages, 1000);
		assert_int_equal(pr.remaining_pages, 64536);
		assert_int_equal(pr.bytes, 4096000);
		assert_int_equal(pr.elapsed_ms, 1500);
		break;
	}
	case 6:
		assert_int_equal(rec->len, 300);
		assert_int_equal(rec->payload[299], (uint8_t)299);
		break;
	case 7:
		assert_int_equal(rec->len, 100);
		break;
	case 8: {
		struct wire_device_state d;

		assert_int_equal(wire_parse_device_state(rec->payload, rec->len, &d, err, sizeof(err)),
				 0);
		assert_string_equal(d.name, "serial.com1");
		assert_int_equal(d.version, 3);
		assert_int_equal(d.len, 50);
		assert_int_equal(d.data[49], 49);
		break;
	}
	case 9: {
		struct wire_end_of_state e;

		assert_int_equal(wire_parse_end_of_state(rec->payload, rec->len, &e, err, sizeof(err)),
				 0);
		assert_int_equal(e.vcpus, 2);
		assert_int_equal(e.devices, 3);
		break;
	}
	case 10:
	case 11:
		assert_int_equal(rec->len, 0);
		break;
	case 12: {
		struct wire_abort a;

		assert_int_equal(wire_parse_abort(rec->payload, rec->len, &a, err, sizeof(err)), 0);
		assert_int_equal(a.code, WIRE_ABORT_CANCELLED);
		assert_string_equal(a.reason, "cancelled by the user");
		break;
	}
	case 13:
	case 14: {
		struct wire_disk_data d;

		assert_int_equal(wire_parse_disk_data(rec->payload, rec->len, &d, err, sizeof(err)), 0);
		assert_int_equal(d.disk, k == 13 ? 1 : 0);
		assert_int_equal(d.offset, k == 13 ? 65536 : 1 << 20);
		assert_int_equal(d.len, k == 13 ? 512 : 65536);
		if (k == 13)
			assert_int_equal(d.data[255], 255);
		else
			assert_null(d.data);
		break;
	}
	default:
		fail();
	}
}

static void build_stream(struct mem_pipe *p, int *nrec)
{
	struct wire_conn c;

	memset(p, 0, sizeof(*p));
	wire_conn_init(&c, &mem_ops, p);
	*nrec = write_all_types(&c);
	assert_int_equal(c.tx_bytes, p->len);
	assert_int_equal(c.tx_records, *nrec);
}

/* ---- Tests ---- */

static void test_hdr_pack_unpack(void **unused)
{
	struct wire_hdr h = { WIRE_MAGIC, WIRE_VERSION, WIRE_PAGES, 0, 77, 4200, 1000, 0xdeadbeef, 0 };
	struct wire_hdr g;
	uint8_t b[WIRE_HDR_SIZE];

	wire_hdr_pack(&h, b);
	assert_memory_equal(b, "hvmg", 4);
	assert_int_equal(wire_hdr_unpack(b, &g), 0);
	assert_memory_equal(&g, &h, sizeof(h));
	assert_int_equal(wire_max_length(WIRE_ACK), 0);
	assert_int_equal(wire_max_length(99), 0);
	assert_string_equal(wire_type_name(WIRE_DEVICE_STATE), "DEVICE_STATE");
	assert_string_equal(wire_type_name(0), "unknown");
	for (int e = 0; e >= WIRE_E_ARG - 1; e--)
		assert_non_null(wire_strerror(e));
}

static void test_roundtrip_conn_partial_io(void **unused)
{
	/* 1, 7 and unlimited bytes per call: partial reads and writes everywhere. */
	const size_t chunks[] = { 1, 7, 0 };

	for (size_t ci = 0; ci < 3; ci++) {
		struct mem_pipe p = { .chunk = chunks[ci] };
		struct wire_conn tx, rx;
		struct wire_buf buf = { 0 };
		struct wire_record rec;
		int n;

		wire_conn_init(&tx, &mem_ops, &p);
		n = write_all_types(&tx);
		wire_conn_init(&rx, &mem_ops, &p);
		for (int k = 0; k < n; k++) {
			assert_int_equal(wire_recv(&rx, &buf, &rec), 0);
			check_record(k, &rec);
		}
		assert_int_equal(wire_recv(&rx, &buf, &rec), WIRE_E_EOF);
		assert_non_null(strstr(rx.err, "closed by the peer"));
		assert_int_equal(rx.rx_bytes, p.len);
		wire_buf_free(&buf);
		free(p.buf);
	}
}

static void test_roundtrip_decode(void **unused)
{
	struct mem_pipe p;
	struct wire_decoder d;
	struct wire_record rec;
	size_t off = 0, used;
	int n;

	build_stream(&p, &n);
	wire_decoder_init(&d);
	for (int k = 0; k < n; k++) {
		assert_int_equal(wire_decode(&d, p.buf + off, p.len - off, &rec, &used), 0);
		assert_int_equal(rec.offset, off);
		check_record(k, &rec);
		off += used;
	}
	assert_int_equal(off, p.len);
	assert_int_equal(wire_decode(&d, p.buf + off, 0, &rec, &used), WIRE_E_TRUNC);
	free(p.buf);
}

/* Every prefix of a valid stream: the complete records decode, then "truncated" (in memory),
 * or end-of-stream exactly at a record boundary / "truncated" inside one (from a conn). */
static void test_every_truncation(void **unused)
{
	struct mem_pipe p;
	size_t ends[16];
	int n;

	build_stream(&p, &n);
	{
		struct wire_decoder d;
		struct wire_record rec;
		size_t off = 0, used;

		wire_decoder_init(&d);
		for (int k = 0; k < n; k++) {
			assert_int_equal(wire_decode(&d, p.buf + off, p.len - off, &rec, &used), 0);
			off += used;
			ends[k] = off;
		}
	}
	for (size_t cut = 0; cut < p.len; cut++) {
		int complete = 0;

		while (complete < n && ends[complete] <= cut)
			complete++;

		/* In memory, from an exact-size copy (ASan catches any over-read). */
		uint8_t *copy = malloc(cut ? cut : 1);
		struct wire_decoder d;
		struct wire_record rec;
		size_t off = 0, used;
		int k = 0, rc;

		memcpy(copy, p.buf, cut);
		wire_decoder_init(&d);
		while ((rc = wire_decode(&d, copy + off, cut - off, &rec, &used)) == 0) {
			off += used;
			k++;
		}
		assert_int_equal(rc, WIRE_E_TRUNC);
		assert_int_equal(k, complete);
		free(copy);

		/* From a conn. */
		struct mem_pipe q = { .buf = p.buf, .len = cut, .chunk = 0 };
		struct wire_conn c;
		struct wire_buf buf = { 0 };

		wire_conn_init(&c, &mem_ops, &q);
		k = 0;
		while ((rc = wire_recv(&c, &buf, &rec)) == 0)
			k++;
		assert_int_equal(k, complete);
		if (complete > 0 && ends[complete - 1] == cut)
			assert_int_equal(rc, WIRE_E_EOF);
		else if (cut == 0)
			assert_int_equal(rc, WIRE_E_EOF);
		else
			assert_int_equal(rc, WIRE_E_TRUNC);
		wire_buf_free(&buf);
	}
	free(p.buf);
}

/* Every single-bit flip in a fully checksummed stream is caught, by the decoder and the conn. */
static void test_every_bit_flip(void **unused)
{
	struct mem_pipe p;
	struct wire_conn c;
	struct wire_hello_reply r = { .ok = false };
	uint8_t blob[64];

	memset(&p, 0, sizeof(p));
	wire_conn_init(&c, &mem_ops, &p);
	strcpy(r.error, "no");
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 3);
	assert_int_equal(wire_send_hello_reply(&c, &r), 0);
	assert_int_equal(wire_send(&c, WIRE_CPU_STATE, blob, sizeof(blob)), 0);
	assert_int_equal(wire_send(&c, WIRE_ACK, NULL, 0), 0);
	assert_int_equal(wire_send_abort(&c, 1, "x"), 0);

	for (size_t bit = 0; bit < p.len * 8; bit++) {
		struct wire_decoder d;
		struct wire_record rec;
		size_t off = 0, used;
		int rc;

		p.buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		wire_decoder_init(&d);
		while ((rc = wire_decode(&d, p.buf + off, p.len - off, &rec, &used)) == 0)
			off += used;
		assert_true(rc != WIRE_E_TRUNC || off < p.len);
		assert_true(rc == WIRE_E_MAGIC || rc == WIRE_E_VERSION || rc == WIRE_E_HDR_CRC ||
			    rc == WIRE_E_CRC);
		assert_true(off < p.len);

		struct mem_pipe q = { .buf = p.buf, .len = p.len };
		struct wire_conn rc_conn;
		struct wire_buf buf = { 0 };

		wire_conn_init(&rc_conn, &mem_ops, &q);
		while ((rc = wire_recv(&rc_conn, &buf, &rec)) == 0)
			;
		assert_true(rc == WIRE_E_MAGIC || rc == WIRE_E_VERSION || rc == WIRE_E_HDR_CRC ||
			    rc == WIRE_E_CRC);
		wire_buf_free(&buf);
		p.buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	free(p.buf);
}

/* A header with a valid header CRC but the given fields. */
static void craft(uint8_t *b, uint32_t magic, uint16_t version, uint16_t type, uint32_t flags,
		  uint32_t seq, uint32_t length, uint32_t crc_len)
{
	struct wire_hdr h = { magic, version, type, flags, seq, length, crc_len, 0, 0 };

	wire_hdr_pack(&h, b);
}

static int decode_one(const uint8_t *b, size_t len, char *err)
{
	struct wire_decoder d;
	struct wire_record rec;
	size_t used;
	int rc;

	wire_decoder_init(&d);
	rc = wire_decode(&d, b, len, &rec, &used);
	strcpy(err, d.err);
	return rc;
}

static void test_header_errors(void **unused)
{
	uint8_t b[WIRE_HDR_SIZE + 64] = { 0 };
	char err[256];

	craft(b, WIRE_MAGIC ^ 1, WIRE_VERSION, WIRE_ACK, 0, 0, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_MAGIC);
	assert_non_null(strstr(err, "not an hv migration stream"));
	/* An hv from before state v2: both versions named. */
	craft(b, WIRE_MAGIC, 1, WIRE_ACK, 0, 0, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_VERSION);
	assert_non_null(strstr(err, "protocol version 1 at byte 0, this hv speaks version 2"));
	craft(b, WIRE_MAGIC, WIRE_VERSION, 0, 0, 0, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_TYPE);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_TYPE_MAX + 1, 0, 0, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_TYPE);
	assert_non_null(strstr(err, "unknown record type 18"));
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ACK, 1, 0, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_FLAGS);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ACK, 0, 0, 1, 1);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	assert_non_null(strstr(err, "ACK record #0 at byte 0 has length 1"));
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ROUND_END, 0, 0, 63, 63);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_HELLO, 0, 0, (1u << 20) + 1, (1u << 20) + 1);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_PAGES, 0, 0, 0xffffffffu, 16);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_DEVICE_STATE, 0, 0, 64u << 20, 64u << 20);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	/* crc_len beyond length; partial coverage on a type other than PAGES. */
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_PAGES, 0, 0, 20, 21);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_CPU_STATE, 0, 0, 20, 10);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_LENGTH);
	/* Sequence: the first record must be #0. */
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ACK, 0, 1, 0, 0);
	assert_int_equal(decode_one(b, 32, err), WIRE_E_SEQ);
	assert_non_null(strstr(err, "sequence number 1, expected 0"));
	/* A header CRC mismatch. */
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ACK, 0, 0, 0, 0);
	b[28] ^= 0x80;
	assert_int_equal(decode_one(b, 32, err), WIRE_E_HDR_CRC);
	/* Payload CRC. */
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_ABORT, 0, 0, 8, 8);
	assert_int_equal(decode_one(b, 40, err), WIRE_E_CRC);
	assert_non_null(strstr(err, "bad CRC in ABORT record #0 at byte 0"));
	/* A header claiming 1 MiB with 10 bytes behind it: truncated, nothing allocated. */
	craft(b, WIRE_MAGIC, WIRE_VERSION, WIRE_HELLO, 0, 0, 1u << 20, 1u << 20);
	assert_int_equal(decode_one(b, 42, err), WIRE_E_TRUNC);
	/* A short header. */
	assert_int_equal(decode_one(b, 31, err), WIRE_E_TRUNC);
}

static void test_seq_replay_and_offsets(void **unused)
{
	struct mem_pipe p;
	struct wire_conn c, rx;
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	size_t first;

	memset(&p, 0, sizeof(p));
	wire_conn_init(&c, &mem_ops, &p);
	assert_int_equal(wire_send(&c, WIRE_ACK, NULL, 0), 0);
	first = p.len;
	assert_int_equal(wire_send(&c, WIRE_COMMIT, NULL, 0), 0);
	/* Replay record #0 after #1. */
	memcpy(p.buf + p.len, p.buf, first);
	p.len += first;

	wire_conn_init(&rx, &mem_ops, &p);
	assert_int_equal(wire_recv(&rx, &buf, &rec), 0);
	assert_int_equal(wire_recv(&rx, &buf, &rec), 0);
	assert_int_equal(rec.offset, first);
	assert_int_equal(wire_recv(&rx, &buf, &rec), WIRE_E_SEQ);
	assert_non_null(strstr(rx.err, "ACK record at byte 64 has sequence number 0, expected 2"));
	wire_buf_free(&buf);
	free(p.buf);
}

static void test_send_errors(void **unused)
{
	struct mem_pipe p = { 0 };
	struct wire_conn c;
	struct iovec v[WIRE_MAX_IOV + 1];
	static uint8_t big[2u << 20];

	wire_conn_init(&c, &mem_ops, &p);
	for (int i = 0; i <= WIRE_MAX_IOV; i++)
		v[i] = (struct iovec){ big, 1 };
	assert_int_equal(wire_send_iov(&c, WIRE_CPU_STATE, v, WIRE_MAX_IOV + 1, WIRE_CRC_ALL),
			 WIRE_E_ARG);
	assert_int_equal(wire_send_iov(&c, WIRE_CPU_STATE, v, -1, WIRE_CRC_ALL), WIRE_E_ARG);
	assert_int_equal(wire_send(&c, WIRE_HELLO, big, sizeof(big)), WIRE_E_ARG);
	assert_non_null(strstr(c.err, "HELLO record of"));
	assert_int_equal(wire_send(&c, (enum wire_type)0, NULL, 0), WIRE_E_ARG);
	assert_int_equal(wire_send(&c, WIRE_ACK, big, 1), WIRE_E_ARG);
	assert_int_equal(wire_send(&c, WIRE_ROUND_END, big, 10), WIRE_E_ARG);
	assert_int_equal(wire_send_iov(&c, WIRE_CPU_STATE, v, 20, 10), WIRE_E_ARG);
	assert_int_equal(wire_send_iov(&c, WIRE_PAGES, v, 20, 21), WIRE_E_ARG);
	v[0].iov_len = SIZE_MAX;
	assert_int_equal(wire_send_iov(&c, WIRE_PAGES, v, 2, WIRE_CRC_ALL), WIRE_E_ARG);
	assert_int_equal(wire_send_device_state(&c, "bad name", 1, big, 1), WIRE_E_ARG);
	assert_int_equal(wire_send_device_state(&c, "", 1, big, 1), WIRE_E_ARG);
	assert_int_equal(wire_send_device_state(&c, "x", 1, big, WIRE_DEVICE_STATE_MAX + 1),
			 WIRE_E_ARG);
	/* Nothing was written, and the sequence did not move. */
	assert_int_equal(p.len, 0);
	assert_int_equal(c.tx_seq, 0);

	/* A transport error. */
	p.fail_errno = ECONNRESET;
	assert_int_equal(wire_send(&c, WIRE_ACK, NULL, 0), WIRE_E_IO);
	assert_int_equal(c.last_errno, ECONNRESET);
	assert_non_null(strstr(c.err, "send failed at byte 0"));
	struct wire_buf buf = { 0 };
	struct wire_record rec;

	assert_int_equal(wire_recv(&c, &buf, &rec), WIRE_E_IO);
	free(p.buf);
}

/* ---- Over a real socket ---- */

struct sender_arg {
	int fd;
	int records;
	uint8_t *data;
};

static void *sender_main(void *opaque)
{
	struct sender_arg *a = opaque;
	struct wire_conn c;
	uint8_t desc[16] = { 0 };

	wire_conn_init_fd(&c, a->fd);
	for (int i = 0; i < a->records; i++) {
		struct iovec v[2] = { { desc, sizeof(desc) },
				      { a->data + (size_t)i * 4096, 256 * 4096 } };

		wire_put_u32(desc, (uint32_t)i);
		if (wire_send_iov(&c, WIRE_PAGES, v, 2, i % 2 ? WIRE_CRC_ALL : sizeof(desc)))
			return (void *)1;
	}
	return NULL;
}

static void test_socket_stream(void **unused)
{
	int sv[2];
	pthread_t th;
	struct sender_arg a = { .records = 64 };
	struct wire_conn c;
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	void *ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	a.fd = sv[0];
	a.data = malloc((size_t)(a.records + 256) * 4096);
	for (size_t i = 0; i < (size_t)(a.records + 256) * 4096; i++)
		a.data[i] = (uint8_t)(i * 2654435761u >> 13);
	assert_int_equal(pthread_create(&th, NULL, sender_main, &a), 0);
	wire_conn_init_fd(&c, sv[1]);
	for (int i = 0; i < a.records; i++) {
		assert_int_equal(wire_recv(&c, &buf, &rec), 0);
		assert_int_equal(rec.len, 16 + 256 * 4096);
		assert_int_equal(wire_get_u32(rec.payload), i);
		assert_memory_equal(rec.payload + 16, a.data + (size_t)i * 4096, 256 * 4096);
	}
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	close(sv[0]);
	assert_int_equal(wire_recv(&c, &buf, &rec), WIRE_E_EOF);
	assert_true(buf.cap <= (2u << 20));

	/* Peer gone: the sender gets an error, not SIGPIPE. */
	struct wire_conn w;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	wire_conn_init_fd(&w, sv[0]);
	assert_int_equal(wire_send(&w, WIRE_ACK, NULL, 0), WIRE_E_IO);
	assert_int_equal(w.last_errno, EPIPE);
	close(sv[0]);
	close(c.fd);

	/* A plain file works as a transport too (snapshots): writev fallback. */
	int fd = memfd_create("wire", 0);

	assert_true(fd >= 0);
	wire_conn_init_fd(&w, fd);
	assert_int_equal(wire_send_abort(&w, 0, "file"), 0);
	assert_true(w.fd_not_socket);
	lseek(fd, 0, SEEK_SET);
	wire_conn_init_fd(&c, fd);
	assert_int_equal(wire_recv(&c, &buf, &rec), 0);
	assert_int_equal(rec.hdr.type, WIRE_ABORT);
	close(fd);
	wire_buf_free(&buf);
	free(a.data);
}

/* ---- Payload parsers ---- */

static int parse_hello_str(const char *json, char *err)
{
	struct wire_hello *h = malloc(sizeof(*h));
	int rc = wire_parse_hello((const uint8_t *)json, strlen(json), h, err, 256);

	free(h);
	return rc;
}

#define HELLO_HEAD "{\"protocol\":1,\"name\":\"a\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","

static void test_hello_parse_errors(void **unused)
{
	char err[256];
	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"nul",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[]}{}",
		"{\"name\":\"a\"}",
		HELLO_HEAD "\"mem_size\":4097,\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":0,\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":-4096,\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":4096.0,\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":\"4096\",\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":99999999999999999999,\"vcpus\":1,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":0,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1025,\"cpuid\":[]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":{}}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[[1,2,3,4,5]]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[[1,2,3,4,5,4294967296]]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[[1,2,3,4,5,-1]]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[[1,2,3,4,5,\"6\"]]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"devices\":{}}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"devices\":[1]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"devices\":[{\"name\":\"x\"}]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"caps\":[1]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"paused\":1}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"caps\":\"zlib\"}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"storage\":\"nfs\"}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"storage\":1}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"copy_to\":\"/a\"}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"copy_to\":[1]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"copy_to\":[\"/a\\u001b[2J\"]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"copy_to\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"protocol\":0}",
		"{\"protocol\":1,\"name\":\"a\",\"uuid\":\"not-a-uuid\",\"mem_size\":4096,\"vcpus\":1,"
		"\"cpuid\":[]}",
		"{\"protocol\":1,\"name\":\"a\\u001b[2J\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
		"\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[]}",
		"{\"protocol\":1,\"name\":\"\xff\xfe\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
		"\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[]}",
		"{\"protocol\":1,\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		"\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\",\"mem_size\":4096,\"vcpus\":1,"
		"\"cpuid\":[]}",
	};
	static const char good[] = HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],"
					      "\"caps\":[\"zlib\",\"future-thing\"],\"extra\":{\"x\":[1]}}";
	struct wire_hello *h = malloc(sizeof(*h));

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse_hello_str(bad[i], err) != WIRE_E_PAYLOAD)
			fail_msg("accepted bad HELLO %zu: %s", i, bad[i]);
		assert_non_null(strstr(err, "HELLO"));
	}
	/* Unknown keys and capability names are ignored; a missing device list is []. */
	assert_int_equal(wire_parse_hello((const uint8_t *)good, strlen(good), h, err, 256), 0);
	assert_int_equal(h->caps, WIRE_CAP_ZLIB);
	assert_string_equal(h->devices_json, "[]");
	assert_string_equal(h->host, "");
	assert_false(h->paused); /* absent: an older source, or a running guest */

	/* An embedded NUL. */
	assert_int_equal(wire_parse_hello((const uint8_t *)good, sizeof(good), h, err, 256),
			 WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "NUL"));

	/* Deep nesting is refused by the bounded tokenizer. */
	char deep[4096];
	size_t n = 0;

	n += (size_t)sprintf(deep, HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"x\":");
	for (int i = 0; i < 1000; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	assert_int_equal(parse_hello_str(deep, err), WIRE_E_PAYLOAD);

	/* Too many CPUID entries. */
	size_t cap = 64 * 1024;
	char *many = malloc(cap);

	n = (size_t)sprintf(many, HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[");
	for (int i = 0; i <= WIRE_CPUID_MAX; i++)
		n += (size_t)sprintf(many + n, "%s[1,2,3,4,5,6]", i ? "," : "");
	strcpy(many + n, "]}");
	assert_int_equal(parse_hello_str(many, err), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "cpuid"));
	free(many);
	free(h);
}

/* A "ram" or "cpuid" entry that is not an array once aborted the receiver (json-c asserts
 * in json_object_array_get_idx); it is a refusal like any other malformed HELLO. */
static void test_hello_ram_entry_not_an_array(void **unused)
{
	static const char ram5[] = HELLO_HEAD "\"host\":\"lab1\",\"mem_size\":268435456,\"vcpus\":1,"
					      "\"caps\":[\"zlib\"],\"cpuid\":[],\"devices\":[],\"ram\":[5]}";
	static const char *const bad[] = {
		ram5,
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"ram\":[[0,1],{}]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"ram\":[\"x\"]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"ram\":[null]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[],\"ram\":[[0,[1]]]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[5]}",
		HELLO_HEAD "\"mem_size\":4096,\"vcpus\":1,\"cpuid\":[[1,2,3,4,5,[6]]]}",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse_hello_str(bad[i], err) != WIRE_E_PAYLOAD)
			fail_msg("accepted bad HELLO %zu: %s", i, bad[i]);
		assert_non_null(strstr(err, "HELLO"));
	}
}

static void test_hello_send_checks(void **unused)
{
	struct mem_pipe p = { 0 };
	struct wire_conn c;
	struct wire_hello *h = malloc(sizeof(*h));

	wire_conn_init(&c, &mem_ops, &p);
	make_hello(h);
	strcpy(h->devices_json, "{\"type\":\"x\"}");
	assert_int_equal(wire_send_hello(&c, h), WIRE_E_ARG);
	strcpy(h->devices_json, "[{\"type\":\"x\"}");
	assert_int_equal(wire_send_hello(&c, h), WIRE_E_ARG);
	h->devices_json[0] = '\0';
	h->ncpuid = WIRE_CPUID_MAX + 1;
	assert_int_equal(wire_send_hello(&c, h), WIRE_E_ARG);
	assert_int_equal(p.len, 0);
	h->ncpuid = 0;
	assert_int_equal(wire_send_hello(&c, h), 0);
	free(h);
	free(p.buf);
}

static void test_small_payload_parsers(void **unused)
{
	char err[256];
	uint8_t b[WIRE_ERROR_MAX + 16];
	struct wire_hello_reply r;
	struct wire_abort a;
	struct wire_device_state d;
	struct wire_round_end re;
	struct wire_end_of_state e;
	struct wire_progress pr;

	/* HELLO_REPLY: refusal with a reason; control characters neutralised; defaults. */
	static const char refuse[] = "{\"ok\":false,\"error\":\"CPU lacks avx2\\u001b[31m\"}";

	assert_int_equal(wire_parse_hello_reply((const uint8_t *)refuse, strlen(refuse), &r, err,
						sizeof(err)), 0);
	assert_false(r.ok);
	assert_string_equal(r.error, "CPU lacks avx2?[31m");
	assert_int_equal(wire_parse_hello_reply((const uint8_t *)"{\"ok\":false}", 12, &r, err,
						sizeof(err)), 0);
	assert_non_null(strstr(r.error, "without giving a reason"));
	assert_int_equal(wire_parse_hello_reply((const uint8_t *)"{\"ok\":1}", 8, &r, err,
						sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_hello_reply((const uint8_t *)"{\"ok\":true,\"error\":5}", 21, &r,
						err, sizeof(err)), WIRE_E_PAYLOAD);
	/* took_us: optional (0 when absent), a number of microseconds within bounds. */
	static const char *const took_bad[] = { "{\"ok\":true,\"took_us\":-1}", "{\"ok\":true,\"took_us\":\"5\"}",
						"{\"ok\":true,\"took_us\":600000001}", "{\"ok\":true,\"took_us\":1.5}" };
	for (size_t i = 0; i < sizeof(took_bad) / sizeof(took_bad[0]); i++)
		assert_int_equal(wire_parse_hello_reply((const uint8_t *)took_bad[i], strlen(took_bad[i]), &r, err,
							sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_hello_reply((const uint8_t *)"{\"ok\":true,\"took_us\":1234}", 26, &r, err,
						sizeof(err)), 0);
	assert_int_equal(r.took_us, 1234);
	assert_int_equal(wire_parse_hello_reply((const uint8_t *)"{\"ok\":true}", 11, &r, err, sizeof(err)), 0);
	assert_int_equal(r.took_us, 0);

	/* STARTED: exact size, the load time within bounds, no flags; a round trip. */
	struct wire_started st;
	wire_put_u32(b, 1500);
	wire_put_u32(b + 4, 0);
	assert_int_equal(wire_parse_started(b, WIRE_STARTED_SIZE, &st, err, sizeof(err)), 0);
	assert_int_equal(st.load_us, 1500);
	assert_int_equal(wire_parse_started(b, WIRE_STARTED_SIZE - 1, &st, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u32(b + 4, 1);
	assert_int_equal(wire_parse_started(b, WIRE_STARTED_SIZE, &st, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u32(b, WIRE_STARTED_LOAD_MAX_US + 1);
	wire_put_u32(b + 4, 0);
	assert_int_equal(wire_parse_started(b, WIRE_STARTED_SIZE, &st, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "STARTED"));

	/* ABORT: short, long, control characters. */
	assert_int_equal(wire_parse_abort(b, 3, &a, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_abort(b, 4 + WIRE_ERROR_MAX + 1, &a, err, sizeof(err)),
			 WIRE_E_PAYLOAD);
	wire_put_u32(b, 4);
	memcpy(b + 4, "bad\n\0\x9b" "x", 7);
	assert_int_equal(wire_parse_abort(b, 11, &a, err, sizeof(err)), 0);
	assert_int_equal(a.code, 4);
	assert_string_equal(a.reason, "bad???x");
	assert_int_equal(wire_parse_abort(b, 4, &a, err, sizeof(err)), 0);
	assert_string_equal(a.reason, "no reason given");

	/* DEVICE_STATE: name length past the end, bad characters, empty name. */
	wire_put_u16(b, 10);
	wire_put_u16(b + 2, 1);
	memcpy(b + 4, "serial", 6);
	assert_int_equal(wire_parse_device_state(b, 10, &d, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u16(b, 6);
	assert_int_equal(wire_parse_device_state(b, 10, &d, err, sizeof(err)), 0);
	assert_string_equal(d.name, "serial");
	assert_int_equal(d.len, 0);
	b[5] = '/';
	assert_int_equal(wire_parse_device_state(b, 10, &d, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u16(b, 0);
	assert_int_equal(wire_parse_device_state(b, 10, &d, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_device_state(b, 3, &d, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u16(b, 65);
	memset(b + 4, 'a', 65);
	assert_int_equal(wire_parse_device_state(b, 69, &d, err, sizeof(err)), WIRE_E_PAYLOAD);

	/* Fixed sizes. */
	memset(b, 0, sizeof(b));
	assert_int_equal(wire_parse_round_end(b, 63, &re, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_round_end(b, 64, &re, err, sizeof(err)), 0);
	b[4] = 1; /* SYNC */
	assert_int_equal(wire_parse_round_end(b, 64, &re, err, sizeof(err)), 0);
	assert_int_equal(re.flags, WIRE_ROUND_END_SYNC);
	b[4] = 2; /* no such flag */
	assert_int_equal(wire_parse_round_end(b, 64, &re, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_non_null(strstr(err, "unknown flags 0x2"));
	assert_int_equal(wire_parse_progress(b, 47, &pr, err, sizeof(err)), WIRE_E_PAYLOAD);
	assert_int_equal(wire_parse_end_of_state(b, 9, &e, err, sizeof(err)), WIRE_E_PAYLOAD);
	memset(b, 0, 8);
	assert_int_equal(wire_parse_end_of_state(b, 8, &e, err, sizeof(err)), WIRE_E_PAYLOAD);
	wire_put_u32(b, 1);
	assert_int_equal(wire_parse_end_of_state(b, 8, &e, err, sizeof(err)), 0);

	/* ABORT sending truncates a long reason to the limit. */
	struct mem_pipe p = { 0 };
	struct wire_conn c;
	char longr[WIRE_ERROR_MAX + 100];

	memset(longr, 'r', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	wire_conn_init(&c, &mem_ops, &p);
	assert_int_equal(wire_send_abort(&c, 0, longr), 0);
	assert_int_equal(p.len, WIRE_HDR_SIZE + 4 + WIRE_ERROR_MAX);
	assert_int_equal(wire_send_abort(&c, 0, NULL), 0);
	free(p.buf);
}

/* Capabilities by name: what an older destination answers (no zstd), what this one answers,
 * and names this hv does not know, ignored. */
static void test_caps_negotiation(void **unused)
{
	static const struct {
		const char *json;
		uint32_t caps;
	} replies[] = {
		{ "{\"ok\":true,\"caps\":[\"zlib\",\"sync\",\"disk-copy\"]}",
		  WIRE_CAP_ZLIB | WIRE_CAP_SYNC | WIRE_CAP_DISK_COPY },
		{ "{\"ok\":true,\"caps\":[\"zlib\",\"sync\",\"disk-copy\",\"zstd\"]}",
		  WIRE_CAP_ZLIB | WIRE_CAP_SYNC | WIRE_CAP_DISK_COPY | WIRE_CAP_ZSTD },
		{ "{\"ok\":true,\"caps\":[\"zstd-2\",\"lz4\",\"ZSTD\",\"zstd\"]}", WIRE_CAP_ZSTD },
		{ "{\"ok\":true}", 0 },
	};
	struct wire_hello_reply r = { .ok = true, .caps = WIRE_CAP_ZSTD | WIRE_CAP_SYNC };
	struct wire_hello *h = malloc(sizeof(*h));
	struct mem_pipe p = { 0 };
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	struct wire_conn c;
	char err[256];

	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		struct wire_hello_reply got;

		assert_int_equal(wire_parse_hello_reply((const uint8_t *)replies[i].json,
							strlen(replies[i].json), &got, err, sizeof(err)), 0);
		assert_int_equal(got.caps, replies[i].caps);
	}
	/* On the wire the bit is the name "zstd", in HELLO and in HELLO_REPLY. */
	wire_conn_init(&c, &mem_ops, &p);
	assert_int_equal(wire_send_hello_reply(&c, &r), 0);
	make_hello(h);
	h->caps = WIRE_CAP_ZSTD;
	assert_int_equal(wire_send_hello(&c, h), 0);
	wire_conn_init(&c, &mem_ops, &p);
	assert_int_equal(wire_recv(&c, &buf, &rec), 0);
	assert_non_null(memmem(rec.payload, rec.len, "\"caps\":[\"sync\",\"zstd\"]", 22));
	assert_int_equal(wire_parse_hello_reply(rec.payload, rec.len, &r, err, sizeof(err)), 0);
	assert_int_equal(r.caps, WIRE_CAP_ZSTD | WIRE_CAP_SYNC);
	assert_int_equal(wire_recv(&c, &buf, &rec), 0);
	assert_non_null(memmem(rec.payload, rec.len, "\"zstd\"", 6));
	assert_int_equal(wire_parse_hello(rec.payload, rec.len, h, err, sizeof(err)), 0);
	assert_int_equal(h->caps, WIRE_CAP_ZSTD);
	wire_buf_free(&buf);
	free(p.buf);
	free(h);
}

static void test_order(void **unused)
{
	struct wire_order o;
	static const uint16_t good[] = {
		WIRE_HELLO, WIRE_DISK_DATA, WIRE_PAGES, WIRE_PAGES, WIRE_ROUND_END, WIRE_PROGRESS,
		WIRE_DISK_DATA, WIRE_PAGES, WIRE_ROUND_END, WIRE_CPU_STATE, WIRE_CPU_STATE, WIRE_VM_STATE, WIRE_DEVICE_STATE,
		WIRE_PROGRESS, WIRE_END_OF_STATE, WIRE_COMMIT,
	};

	wire_order_init(&o);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(wire_order_check(&o, good[i]), 0);
	assert_int_equal(o.phase, WIRE_PHASE_DONE);
	assert_int_equal(wire_order_check(&o, WIRE_ABORT), WIRE_E_ORDER);

	/* Illegal: (prefix that is legal, then the bad one). */
	static const uint16_t bad[][4] = {
		{ WIRE_PAGES },
		{ WIRE_HELLO_REPLY },
		{ WIRE_HELLO, WIRE_HELLO },
		{ WIRE_HELLO, WIRE_ACK },
		{ WIRE_HELLO, WIRE_COMMIT },
		{ WIRE_HELLO, WIRE_CPU_STATE, WIRE_PAGES },
		{ WIRE_HELLO, WIRE_CPU_STATE, WIRE_ROUND_END },
		{ WIRE_DISK_DATA },
		{ WIRE_HELLO, WIRE_VM_STATE, WIRE_DISK_DATA },
		{ WIRE_HELLO, WIRE_END_OF_STATE, WIRE_CPU_STATE },
		{ WIRE_HELLO, WIRE_END_OF_STATE, WIRE_END_OF_STATE },
		{ WIRE_ABORT, WIRE_HELLO },
		{ WIRE_HELLO, WIRE_ABORT, WIRE_ABORT },
		{ 0 },
		{ 99 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 1;
		int rc = 0;

		while (n < 4 && bad[i][n])
			n++;
		wire_order_init(&o);
		for (size_t k = 0; k < n && rc == 0; k++) {
			rc = wire_order_check(&o, bad[i][k]);
			if (k + 1 < n)
				assert_int_equal(rc, 0);
		}
		assert_int_equal(rc, WIRE_E_ORDER);
	}
	/* ABORT is legal in every phase before the end. */
	for (int phase = WIRE_PHASE_HELLO; phase <= WIRE_PHASE_WAIT_COMMIT; phase++) {
		o.phase = (enum wire_phase)phase;
		assert_int_equal(wire_order_check(&o, WIRE_ABORT), 0);
		assert_int_equal(o.phase, WIRE_PHASE_ABORTED);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_pack_unpack),
		cmocka_unit_test(test_roundtrip_conn_partial_io),
		cmocka_unit_test(test_roundtrip_decode),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_every_bit_flip),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_seq_replay_and_offsets),
		cmocka_unit_test(test_send_errors),
		cmocka_unit_test(test_socket_stream),
		cmocka_unit_test(test_hello_parse_errors),
		cmocka_unit_test(test_hello_ram_entry_not_an_array),
		cmocka_unit_test(test_hello_send_checks),
		cmocka_unit_test(test_small_payload_parsers),
		cmocka_unit_test(test_caps_negotiation),
		cmocka_unit_test(test_order),
	};

	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: MSG_NOSIGNAL must prevent it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
