/* wiregen: sends crafted, broken or hostile migration streams to 'hvctl receive', to check
 * that every one is refused with one clear error and leaves nothing behind.
 *
 * usage: wiregen MODE HOST:PORT [--seed N] [--wait-ms MS] [--hello FILE] [--trickle-ms MS]
 *                               [--trickle-after-hello]
 *        wiregen MODE -          (writes the stream to stdout, for a hex dump)
 *        wiregen --list
 *
 * It connects, sends the stream of MODE, half-closes (except where the mode says otherwise)
 * and then prints what the receiver answered, one line per record ("wiregen: received
 * HELLO_REPLY {...}", "wiregen: received ABORT code=5: ..."), until the receiver closes or
 * --wait-ms (default 5000) passes. --trickle-ms sends one byte every MS milliseconds (a peer
 * that holds the connection open without ever finishing; at most 60 s), from the first byte
 * or, with --trickle-after-hello, once the first record (the HELLO) went out whole.
 * Records are framed with migrate/wire.c, so headers and CRCs are exactly what hv produces
 * unless the mode breaks them on purpose. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "migrate/wire.h"

/* ---- a growable output buffer behind a wire_conn ---- */

struct out {
	uint8_t *data;
	size_t len, cap;
};

static void out_put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		o->data = realloc(o->data, cap);
		if (!o->data) {
			fprintf(stderr, "wiregen: out of memory\n");
			exit(1);
		}
		o->cap = cap;
	}
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

static ssize_t out_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct out *o = opaque;
	ssize_t n = 0;

	for (int i = 0; i < iovcnt; i++) {
		out_put(o, iov[i].iov_base, iov[i].iov_len);
		n += (ssize_t)iov[i].iov_len;
	}
	return n;
}

static ssize_t out_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	return 0;
}

static const struct wire_conn_ops out_ops = { .readv = out_readv, .writev = out_writev };

struct gen {
	struct out o;
	struct wire_conn c;   /* frames records into o, with running seq numbers */
	unsigned seed;
	bool no_half_close;   /* close without reading: the "empty" connection */
	const char *hello_file; /* --hello: the HELLO payload of mode hello-file */
};

static void check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "wiregen: %s: %s\n", what, wire_strerror(r));
		exit(1);
	}
}

/* A header for a record, with a correct header CRC unless the caller changes bytes after. */
static void put_hdr(struct gen *g, uint16_t version, uint16_t type, uint32_t flags, uint32_t seq,
		    uint32_t length, uint32_t crc_len, uint32_t payload_crc)
{
	struct wire_hdr h = { .magic = WIRE_MAGIC, .version = version, .type = type, .flags = flags,
			      .seq = seq, .length = length, .crc_len = crc_len,
			      .payload_crc = payload_crc };
	uint8_t b[WIRE_HDR_SIZE];

	wire_hdr_pack(&h, b);
	out_put(&g->o, b, sizeof(b));
}

static void fill_hello(struct wire_hello *h, uint64_t mem, uint32_t vcpus)
{
	memset(h, 0, sizeof(*h));
	h->protocol = WIRE_VERSION;
	snprintf(h->name, sizeof(h->name), "wiregen");
	snprintf(h->uuid, sizeof(h->uuid), "6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f");
	snprintf(h->host, sizeof(h->host), "wiregen");
	h->mem_size = mem;
	h->vcpus = vcpus;
	h->caps = WIRE_CAP_ZLIB;
	h->ncpuid = 0; /* asks for no CPU features: compatible with any destination */
	snprintf(h->devices_json, sizeof(h->devices_json), "[{\"type\":\"serial\",\"name\":\"com1\"}]");
}

/* A valid HELLO for a 16 MiB, 1-vCPU guest, framed as the next record. */
static void valid_hello(struct gen *g)
{
	struct wire_hello *h = malloc(sizeof(*h));

	if (!h)
		exit(1);
	fill_hello(h, 16u << 20, 1);
	check(wire_send_hello(&g->c, h), "HELLO");
	free(h);
}

/* A HELLO payload in JSON, framed by hand (for broken variants). */
static const char hello_json[] =
	"{\"protocol\":2,\"name\":\"wiregen\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
	"\"mem_size\":16777216,\"vcpus\":1,\"caps\":[\"zlib\"],\"cpuid\":[],"
	"\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"}]}";

static void hello_with(struct gen *g, const char *json)
{
	check(wire_send(&g->c, WIRE_HELLO, json, strlen(json)), "HELLO");
}

/* A PAGES record of one raw data page numbered gfn, fully checksummed. */
static void one_page(struct gen *g, uint64_t gfn)
{
	uint8_t desc[16], *page = calloc(1, WIRE_PAGE_SIZE);

	if (!page)
		exit(1);
	memset(page, 0x5a, WIRE_PAGE_SIZE);
	wire_put_u16(desc, 1);
	desc[2] = 0; /* raw */
	desc[3] = 0;
	wire_put_u32(desc + 4, WIRE_PAGE_SIZE);
	wire_put_u64(desc + 8, gfn); /* kind 0: data */
	struct iovec v[2] = { { desc, sizeof(desc) }, { page, WIRE_PAGE_SIZE } };
	check(wire_send_iov(&g->c, WIRE_PAGES, v, 2, WIRE_CRC_ALL), "PAGES");
	free(page);
}

static void random_bytes(struct gen *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)(rand_r(&g->seed) >> 7);
		out_put(&g->o, &b, 1);
	}
}

struct mode {
	const char *name, *what;
	void (*fn)(struct gen *g);
};

static void m_random(struct gen *g) { random_bytes(g, 4096); }
static void m_empty(struct gen *g) { g->no_half_close = true; }

static void m_bad_magic(struct gen *g)
{
	put_hdr(g, WIRE_VERSION, WIRE_HELLO, 0, 0, 64, 64, 0);
	memcpy(g->o.data, "hvMG", 4);
	random_bytes(g, 64);
}

static void put_hello_of_version(struct gen *g, uint16_t version)
{
	put_hdr(g, version, WIRE_HELLO, 0, 0, (uint32_t)strlen(hello_json), (uint32_t)strlen(hello_json),
		(uint32_t)crc32(0, (const uint8_t *)hello_json, (uInt)strlen(hello_json)));
	out_put(&g->o, hello_json, strlen(hello_json));
}

static void m_version99(struct gen *g)
{
	put_hello_of_version(g, 99);
}

/* What an hv from before state v2 sends. */
static void m_version1(struct gen *g)
{
	put_hello_of_version(g, 1);
}

static void m_huge_length(struct gen *g)
{
	put_hdr(g, WIRE_VERSION, WIRE_HELLO, 0, 0, 0xffffffffu, 0xffffffffu, 0);
	random_bytes(g, 4096);
}

static void m_bad_header_crc(struct gen *g)
{
	hello_with(g, hello_json);
	g->o.data[28] ^= 0x01;
}

static void m_unknown_type(struct gen *g)
{
	put_hdr(g, WIRE_VERSION, 77, 0, 0, 8, 8, (uint32_t)crc32(0, (const uint8_t *)"12345678", 8));
	out_put(&g->o, "12345678", 8);
}

static void m_flags(struct gen *g)
{
	uint32_t n = (uint32_t)strlen(hello_json);

	put_hdr(g, WIRE_VERSION, WIRE_HELLO, 4, 0, n, n, (uint32_t)crc32(0, (const uint8_t *)hello_json, n));
	out_put(&g->o, hello_json, n);
}

static void m_bad_seq(struct gen *g)
{
	g->c.tx_seq = 5;
	hello_with(g, hello_json);
}

static void m_cut_header(struct gen *g)
{
	hello_with(g, hello_json);
	g->o.len = 20;
}

static void m_cut_hello(struct gen *g)
{
	hello_with(g, hello_json);
	g->o.len = WIRE_HDR_SIZE + strlen(hello_json) / 2;
}

static void m_bad_payload_crc(struct gen *g)
{
	hello_with(g, hello_json);
	g->o.data[WIRE_HDR_SIZE + 10] ^= 0x20;
}

static void m_bad_json(struct gen *g) { hello_with(g, "{\"protocol\":2,\"name\":\"wiregen\",\"uuid\":"); }

static void m_wrong_protocol(struct gen *g)
{
	hello_with(g, "{\"protocol\":3,\"name\":\"wiregen\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
		      "\"mem_size\":16777216,\"vcpus\":1,\"cpuid\":[],"
		      "\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"}]}");
}

static void m_huge_mem(struct gen *g)
{
	struct wire_hello *h = malloc(sizeof(*h));

	if (!h)
		exit(1);
	fill_hello(h, WIRE_MAX_MEM, 1);
	check(wire_send_hello(&g->c, h), "HELLO");
	free(h);
}

static void m_many_vcpus(struct gen *g)
{
	struct wire_hello *h = malloc(sizeof(*h));

	if (!h)
		exit(1);
	fill_hello(h, 16u << 20, WIRE_MAX_VCPUS);
	check(wire_send_hello(&g->c, h), "HELLO");
	free(h);
}

static void m_unknown_device(struct gen *g)
{
	hello_with(g, "{\"protocol\":2,\"name\":\"wiregen\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
		      "\"mem_size\":16777216,\"vcpus\":1,\"cpuid\":[],"
		      "\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"},{\"type\":\"frobnicator\"}]}");
}

/* The guest saw AVX and XSAVE (CPUID.1:ECX bits 28 and 26), which hv never offers here. */
static void m_cpu_features(struct gen *g)
{
	hello_with(g, "{\"protocol\":2,\"name\":\"wiregen\",\"uuid\":\"6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f\","
		      "\"mem_size\":16777216,\"vcpus\":1,\"cpuid\":[[1,0,0,0,335544320,0]],"
		      "\"devices\":[{\"type\":\"serial\",\"name\":\"com1\"}]}");
}

/* A test's own HELLO (say, naming a disk or TAP the destination never allowed). */
static void m_hello_file(struct gen *g)
{
	static char json[WIRE_DEVICES_JSON_MAX + 8192];
	FILE *f = g->hello_file ? fopen(g->hello_file, "r") : NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "wiregen: hello-file needs --hello FILE (a readable file)\n");
		exit(1);
	}
	n = fread(json, 1, sizeof(json) - 1, f);
	fclose(f);
	while (n && (json[n - 1] == '\n' || json[n - 1] == ' '))
		n--;
	json[n] = '\0';
	hello_with(g, json);
}

static void m_pages_first(struct gen *g) { one_page(g, 1); }
static void m_hello_eof(struct gen *g) { valid_hello(g); }

static void m_page_out_of_range(struct gen *g)
{
	valid_hello(g);
	one_page(g, 0x100000); /* the guest has 0x1000 pages */
}

/* What a TLS client sends first, as far as a receiver can tell: a handshake record header
 * (type 0x16, TLS 1.0 framing, 200 bytes), then random bytes. */
static void m_tls_start(struct gen *g)
{
	static const uint8_t hdr[5] = { 0x16, 0x03, 0x01, 0x00, 0xc8 };

	out_put(&g->o, hdr, sizeof(hdr));
	random_bytes(g, 200);
}

static void m_hello_page(struct gen *g)
{
	valid_hello(g);
	one_page(g, 3);
}

static void m_page_bad_crc(struct gen *g)
{
	valid_hello(g);
	size_t at = g->o.len;
	one_page(g, 3);
	g->o.data[at + WIRE_HDR_SIZE + 9] ^= 0x01; /* inside the page number */
}

/* A zlib batch that claims one data page but inflates to two. */
static void m_zlib_bomb(struct gen *g)
{
	uint8_t *plain = calloc(1, 2 * WIRE_PAGE_SIZE), z[1024], desc[16];
	uLongf zlen = sizeof(z);

	if (!plain || compress2(z, &zlen, plain, 2 * WIRE_PAGE_SIZE, 1) != Z_OK)
		exit(1);
	free(plain);
	valid_hello(g);
	wire_put_u16(desc, 1);
	desc[2] = 1; /* zlib */
	desc[3] = 0;
	wire_put_u32(desc + 4, (uint32_t)zlen);
	wire_put_u64(desc + 8, 7);
	struct iovec v[2] = { { desc, sizeof(desc) }, { z, zlen } };
	check(wire_send_iov(&g->c, WIRE_PAGES, v, 2, WIRE_CRC_ALL), "PAGES");
}

static void m_garbage_after_hello(struct gen *g)
{
	valid_hello(g);
	random_bytes(g, 4096);
}

static void m_abort_escape(struct gen *g)
{
	valid_hello(g);
	check(wire_send_abort(&g->c, WIRE_ABORT_GENERIC, "evil\033[2J\033]0;pwned\007 reason"), "ABORT");
}

static void m_commit_early(struct gen *g)
{
	valid_hello(g);
	check(wire_send(&g->c, WIRE_COMMIT, NULL, 0), "COMMIT");
}

static void m_eos_no_state(struct gen *g)
{
	struct wire_round_end re = { .round = 0 };
	struct wire_end_of_state eos = { .vcpus = 1, .devices = 1 };

	valid_hello(g);
	check(wire_send_round_end(&g->c, &re), "ROUND_END");
	check(wire_send_end_of_state(&g->c, &eos), "END_OF_STATE");
}

static void m_bad_cpu_state(struct gen *g)
{
	uint8_t blob[64];

	memset(blob, 0xee, sizeof(blob));
	valid_hello(g);
	check(wire_send(&g->c, WIRE_CPU_STATE, blob, sizeof(blob)), "CPU_STATE");
}

static const struct mode modes[] = {
	{ "random", "4096 random bytes", m_random },
	{ "empty", "connect and close at once", m_empty },
	{ "bad-magic", "a HELLO-shaped header with magic \"hvMG\"", m_bad_magic },
	{ "version99", "a valid HELLO whose header says protocol version 99", m_version99 },
	{ "version1", "a HELLO from an hv that speaks protocol version 1", m_version1 },
	{ "huge-length", "a HELLO header claiming 4 GiB - 1 bytes of payload", m_huge_length },
	{ "bad-header-crc", "a HELLO with one header CRC bit flipped", m_bad_header_crc },
	{ "unknown-type", "a record of type 77", m_unknown_type },
	{ "flags", "a HELLO with reserved flag bit 2 set", m_flags },
	{ "bad-seq", "a HELLO numbered 5 instead of 0", m_bad_seq },
	{ "cut-header", "the first 20 bytes of a HELLO header", m_cut_header },
	{ "cut-hello", "a HELLO cut in the middle of its payload", m_cut_hello },
	{ "bad-payload-crc", "a HELLO with one payload bit flipped", m_bad_payload_crc },
	{ "bad-json", "a HELLO whose JSON ends early", m_bad_json },
	{ "wrong-protocol", "a HELLO saying \"protocol\": 3", m_wrong_protocol },
	{ "huge-mem", "a HELLO asking for 64 TiB of guest memory", m_huge_mem },
	{ "many-vcpus", "a HELLO asking for 1024 vCPUs", m_many_vcpus },
	{ "unknown-device", "a HELLO with a device type the destination lacks", m_unknown_device },
	{ "cpu-features", "a HELLO from a guest that saw AVX and XSAVE", m_cpu_features },
	{ "hello-file", "the HELLO payload in --hello FILE, nothing after it", m_hello_file },
	{ "pages-first", "a PAGES record before any HELLO", m_pages_first },
	{ "hello-eof", "a valid HELLO, then the connection ends", m_hello_eof },
	{ "page-out-of-range", "a valid HELLO, then page 0x100000 of a 16 MiB guest", m_page_out_of_range },
	{ "tls-start", "the start of a TLS handshake record, then random bytes", m_tls_start },
	{ "hello-page", "a valid HELLO, one valid page, then the connection ends", m_hello_page },
	{ "page-bad-crc", "a valid HELLO, then a PAGES record with a flipped descriptor bit", m_page_bad_crc },
	{ "zlib-bomb", "a valid HELLO, then a zlib batch inflating past its one page", m_zlib_bomb },
	{ "garbage-after-hello", "a valid HELLO, then 4096 random bytes", m_garbage_after_hello },
	{ "abort-escape", "a valid HELLO, then ABORT with terminal escapes in the reason", m_abort_escape },
	{ "commit-early", "a valid HELLO, then COMMIT", m_commit_early },
	{ "eos-no-state", "a valid HELLO, ROUND_END, then END_OF_STATE with no vCPU state", m_eos_no_state },
	{ "bad-cpu-state", "a valid HELLO, then a CPU_STATE blob of garbage", m_bad_cpu_state },
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

static int connect_to(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
		fprintf(stderr, "wiregen: '%s' is not HOST:PORT\n", hostport);
		exit(1);
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		fprintf(stderr, "wiregen: cannot resolve '%s'\n", hostport);
		exit(1);
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "wiregen: cannot connect to %s: %s\n", hostport, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Prints the records the receiver sends back, until it closes or wait_ms passes. */
static void show_replies(int fd, int wait_ms)
{
	uint8_t *buf = malloc(1 << 20);
	size_t len = 0;
	struct wire_decoder d;
	struct timespec t0, t;

	if (!buf)
		exit(1);
	wire_decoder_init(&d);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = wait_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			printf("wiregen: no end of stream from the receiver within %d ms\n", wait_ms);
			break;
		}
		ssize_t r = recv(fd, buf + len, (1 << 20) - len, 0);
		if (r < 0) {
			printf("wiregen: receiver connection: %s\n", strerror(errno));
			break;
		}
		if (r == 0) {
			printf("wiregen: receiver closed the connection%s\n",
			       len ? " (inside a record)" : "");
			break;
		}
		len += (size_t)r;
		for (;;) {
			struct wire_record rec;
			size_t used;
			int rc = wire_decode(&d, buf, len, &rec, &used);
			if (rc == WIRE_E_TRUNC)
				break;
			if (rc < 0) {
				printf("wiregen: undecodable reply: %s\n", d.err);
				len = 0;
				break;
			}
			if (rec.hdr.type == WIRE_ABORT) {
				struct wire_abort a;
				if (wire_parse_abort(rec.payload, rec.len, &a, NULL, 0) == 0)
					printf("wiregen: received ABORT code=%u: %s\n", a.code, a.reason);
				else
					printf("wiregen: received a malformed ABORT\n");
			} else {
				printf("wiregen: received %s %.*s\n", wire_type_name(rec.hdr.type),
				       rec.hdr.type == WIRE_HELLO_REPLY ? (int)rec.len : 0,
				       (const char *)rec.payload);
			}
			memmove(buf, buf + used, len - used);
			len -= used;
		}
		if (len == (1 << 20))
			len = 0;
	}
	free(buf);
}

/* Where the first record of the stream ends (0 if it does not decode). */
static size_t first_record_end(const struct out *o)
{
	struct wire_decoder d;
	struct wire_record rec;
	size_t used = 0;

	wire_decoder_init(&d);
	return wire_decode(&d, o->data, o->len, &rec, &used) == 0 ? used : 0;
}

/* Sends data[off..len) one byte per interval_ms, for at most 60 s; the new offset. */
static size_t trickle(int fd, const uint8_t *data, size_t off, size_t len, int interval_ms)
{
	struct timespec gap = { .tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000L };
	time_t t0 = time(NULL);

	while (off < len && time(NULL) - t0 < 60) {
		if (send(fd, data + off, 1, MSG_NOSIGNAL) != 1) {
			printf("wiregen: trickle stopped at byte %zu: %s\n", off, strerror(errno));
			break;
		}
		off++;
		nanosleep(&gap, NULL);
	}
	return off;
}

int main(int argc, char **argv)
{
	struct gen g = { .seed = 1 };
	const struct mode *m = NULL;
	int wait_ms = 5000, trickle_ms = 0, trickle_after_hello = 0;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < NMODES; i++)
			printf("%-20s %s\n", modes[i].name, modes[i].what);
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: wiregen MODE HOST:PORT|- [--seed N] [--wait-ms MS] [--hello FILE]; wiregen --list\n");
		return 1;
	}
	for (size_t i = 0; i < NMODES; i++)
		if (!strcmp(argv[1], modes[i].name))
			m = &modes[i];
	if (!m) {
		fprintf(stderr, "wiregen: unknown mode '%s'; see wiregen --list\n", argv[1]);
		return 1;
	}
	for (int i = 3; i < argc; i += 2) {
		if (!strcmp(argv[i], "--trickle-after-hello")) {
			trickle_after_hello = 1;
			i--;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "wiregen: option '%s' needs a value\n", argv[i]);
			return 1;
		}
		if (!strcmp(argv[i], "--seed"))
			g.seed = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--wait-ms"))
			wait_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hello"))
			g.hello_file = argv[i + 1];
		else if (!strcmp(argv[i], "--trickle-ms"))
			trickle_ms = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "wiregen: unknown option '%s'\n", argv[i]);
			return 1;
		}
	}
	wire_conn_init(&g.c, &out_ops, &g.o);
	m->fn(&g);

	if (!strcmp(argv[2], "-")) {
		if (g.o.len && fwrite(g.o.data, 1, g.o.len, stdout) != g.o.len)
			return 1;
		return 0;
	}
	int fd = connect_to(argv[2]);
	size_t off = 0, fast = g.o.len;
	if (trickle_ms > 0)
		fast = trickle_after_hello ? first_record_end(&g.o) : 0;
	while (off < fast) {
		ssize_t r = send(fd, g.o.data + off, fast - off, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* The receiver may refuse early and reset: that is an answer, not our error. */
			printf("wiregen: send stopped at byte %zu of %zu: %s\n", off, g.o.len, strerror(errno));
			break;
		}
		off += (size_t)r;
	}
	if (trickle_ms > 0 && off == fast)
		off = trickle(fd, g.o.data, off, g.o.len, trickle_ms);
	printf("wiregen: %s: sent %zu bytes\n", m->name, off);
	if (g.no_half_close) {
		close(fd);
		return 0;
	}
	shutdown(fd, SHUT_WR);
	show_replies(fd, wait_ms);
	close(fd);
	free(g.o.data);
	return 0;
}
