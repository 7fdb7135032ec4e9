/* The migration wire protocol: versioned, framed, checksummed records.
 *
 * Every record is a 32-byte header followed by `length` payload bytes (docs/migration-protocol.md
 * has the byte layouts and the phases). All integers are little-endian.
 *
 *   0 u32 magic "hvmg"   4 u16 version   6 u16 type   8 u32 flags (0)   12 u32 seq
 *  16 u32 length        20 u32 crc_len  24 u32 payload_crc   28 u32 header_crc
 *
 * header_crc is the CRC-32 (zlib) of bytes 0..27, checked before any other field is trusted.
 * payload_crc is the CRC-32 of the first crc_len payload bytes; crc_len == length except for a
 * PAGES record whose raw page bytes were sent straight from a running guest's RAM (they may
 * change between checksum and transmission: the dirty log sends them again). seq counts records
 * per connection from 0, so a lost, repeated or reordered record is detected.
 *
 * The incoming stream is untrusted: every decoder here checks magic, version, type, flags, seq,
 * per-type length limits and CRCs, and reports one message that names the record and the byte
 * offset ("stream corrupt: bad CRC in PAGES record #57 at byte 123456").
 *
 * Layers: struct wire_conn moves bytes (fd, or any readv/writev pair: TLS, a test buffer);
 * wire_send_iov()/wire_recv_*() frame records over it; wire_decode() frames records from a
 * memory buffer (fuzzing, tests, files); wire_send_NAME and wire_parse_NAME encode the small payloads. */
#ifndef MIGRATE_WIRE_H
#define MIGRATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define WIRE_MAGIC 0x676d7668u /* bytes "hvmg" */
#define WIRE_VERSION 2
#define WIRE_HDR_SIZE 32
#define WIRE_MAX_RECORD (64u << 20) /* hard cap on any payload */
#define WIRE_MAX_IOV 1000            /* payload iovecs per wire_send_iov call */

/* Pages on the wire. A PAGES record carries at most WIRE_PAGES_MAX pages. */
#define WIRE_PAGE_SIZE 4096u
#define WIRE_PAGES_MAX 256u
#define WIRE_GFN_MAX ((1ull << 52) - 1) /* page numbers must be <= this */

enum wire_type {
	WIRE_HELLO = 1,        /* src -> dst: version, VM config, CPUID, devices (JSON) */
	WIRE_HELLO_REPLY = 2,  /* dst -> src: ok, or the reason it cannot accept (JSON) */
	WIRE_PAGES = 3,        /* src -> dst: a batch of pages (see page_codec.h) */
	WIRE_ROUND_END = 4,    /* src -> dst: end of a pre-copy round, with its statistics */
	WIRE_CPU_STATE = 5,    /* src -> dst: one vCPU (cpu_state_encode_vcpu blob) */
	WIRE_VM_STATE = 6,     /* src -> dst: irqchips, PIT, clock (cpu_state_encode_vm blob) */
	WIRE_DEVICE_STATE = 7, /* src -> dst: one named device blob */
	WIRE_END_OF_STATE = 8, /* src -> dst: everything is sent; counts to cross-check */
	WIRE_ACK = 9,          /* dst -> src: all state loaded, ready to run */
	WIRE_COMMIT = 10,      /* src -> dst: run the guest now (the source has stopped for good) */
	WIRE_ABORT = 11,       /* either way, any time: give up, with a reason */
	WIRE_PROGRESS = 12,    /* either way, optional: progress numbers */
	WIRE_DISK_DATA = 13,   /* src -> dst: a run of disk blocks (--storage copy) */
	WIRE_STARTED = 14,     /* dst -> src: the guest runs here now (WIRE_CAP_START_ON_STATE) */
	WIRE_DISCARD = 15,     /* src -> dst: post-copy: pages the destination must fetch, not keep */
	WIRE_PAGE_REQUEST = 16, /* dst -> src: post-copy: the guest needs these pages now */
	WIRE_POSTCOPY_DONE = 17, /* src -> dst: post-copy: every page is sent */
};
#define WIRE_TYPE_MIN WIRE_HELLO
#define WIRE_TYPE_MAX WIRE_POSTCOPY_DONE

/* Error codes: every function here returns 0 (or a count) or one of these. */
enum wire_error {
	WIRE_E_IO = -1,      /* read/write failed; errno in conn->last_errno */
	WIRE_E_EOF = -2,     /* peer closed the stream cleanly between two records */
	WIRE_E_TRUNC = -3,   /* stream ends inside a record (wire_decode: more bytes needed) */
	WIRE_E_MAGIC = -4,   /* not a record header: not an hv stream, or out of sync */
	WIRE_E_VERSION = -5, /* protocol version this side does not speak */
	WIRE_E_TYPE = -6,    /* unknown record type */
	WIRE_E_FLAGS = -7,   /* unknown flag bits */
	WIRE_E_LENGTH = -8,  /* length or crc_len outside the limits of the type */
	WIRE_E_HDR_CRC = -9, /* header checksum mismatch */
	WIRE_E_CRC = -10,    /* payload checksum mismatch */
	WIRE_E_SEQ = -11,    /* record lost, repeated or reordered */
	WIRE_E_PAYLOAD = -12, /* payload malformed */
	WIRE_E_RANGE = -13,  /* page number outside guest RAM */
	WIRE_E_ORDER = -14,  /* record not allowed in this phase */
	WIRE_E_NOMEM = -15,
	WIRE_E_ARG = -16,    /* caller error: bad argument to a send function */
};
const char *wire_strerror(int code);
const char *wire_type_name(uint32_t type); /* "PAGES", or "type 77" style for unknown */

struct wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t seq;
	uint32_t length;
	uint32_t crc_len;
	uint32_t payload_crc;
	uint32_t header_crc;
};

/* Writes the 32 header bytes, computing header_crc (also stored back into h). */
void wire_hdr_pack(struct wire_hdr *h, uint8_t out[WIRE_HDR_SIZE]);
/* Parses and checks magic, version, header_crc, type, flags, length and crc_len limits.
 * Does not check seq (the caller knows the expected one). 0 or WIRE_E_*. */
int wire_hdr_unpack(const uint8_t in[WIRE_HDR_SIZE], struct wire_hdr *h);
/* Largest payload allowed for a type (exact size for fixed-size payloads). */
uint32_t wire_max_length(uint32_t type);

/* ---- Byte transport ---- */

/* Like readv(2)/writev(2): bytes moved (> 0; partial is fine), 0 for EOF on read, -errno. */
struct wire_conn_ops {
	ssize_t (*readv)(void *opaque, const struct iovec *iov, int iovcnt);
	ssize_t (*writev)(void *opaque, const struct iovec *iov, int iovcnt);
	/* Optional: what the last failure (-errno from readv/writev) was, when the transport
	 * knows better than strerror (TLS: "the stream was altered in transit"); NULL: strerror. */
	const char *(*strerror)(void *opaque, int err);
	/* Optional: bytes already read from the fd and buffered (TLS), which poll(2) on the fd
	 * cannot see; NULL: none ever are. */
	size_t (*pending)(void *opaque);
};

struct wire_conn {
	const struct wire_conn_ops *ops;
	void *opaque;
	int fd;              /* for wire_conn_init_fd */
	bool fd_not_socket;  /* fd ops: fall back from sendmsg to writev */
	uint32_t tx_seq, rx_seq;
	uint64_t tx_bytes, rx_bytes; /* stream offsets */
	uint64_t tx_records, rx_records;
	int last_errno;
	char err[256];       /* message for the last failure */
};

/* True when a record can be read without waiting: buffered bytes, or the fd readable within
 * timeout_ms (0: now). */
bool wire_conn_readable(struct wire_conn *c, int timeout_ms);

/* Blocking fd (socket, pipe or file). Socket writes use MSG_NOSIGNAL (no SIGPIPE). */
void wire_conn_init_fd(struct wire_conn *c, int fd);
void wire_conn_init(struct wire_conn *c, const struct wire_conn_ops *ops, void *opaque);

/* ---- Sending ---- */

#define WIRE_CRC_ALL ((size_t)-1)

/* Sends one record whose payload is the concatenation of iov[0..iovcnt), with no copy (raw
 * pages go from guest RAM to the socket). The payload CRC covers the first crc_len bytes
 * (WIRE_CRC_ALL: all). Loops over partial writes. 0 or WIRE_E_* with c->err set. */
int wire_send_iov(struct wire_conn *c, enum wire_type type, const struct iovec *iov, int iovcnt,
		  size_t crc_len);
int wire_send(struct wire_conn *c, enum wire_type type, const void *payload, size_t len);

/* ---- Receiving from a conn ---- */

/* One record being received: the header, then the payload in as many parts as the caller
 * likes (straight into guest RAM, for PAGES). The payload CRC is checked as soon as the
 * covered bytes have been read, so a descriptor is verified before it is acted on. */
struct wire_rx {
	struct wire_hdr hdr;
	uint64_t offset;  /* stream offset of the header's first byte */
	uint32_t done;    /* payload bytes read so far */
	uint32_t crc;     /* running CRC of the covered bytes read so far */
	bool crc_checked;
};

/* Reads and checks the next header. WIRE_E_EOF on a clean end of stream. */
int wire_recv_hdr(struct wire_conn *c, struct wire_rx *rx);
/* Reads exactly the sum of iov lengths of payload (must not exceed what is left). */
int wire_recv_payloadv(struct wire_conn *c, struct wire_rx *rx, const struct iovec *iov,
		       int iovcnt);
int wire_recv_payload(struct wire_conn *c, struct wire_rx *rx, void *dst, size_t len);
/* Checks that the whole payload was read and the CRC matched. */
int wire_recv_end(struct wire_conn *c, struct wire_rx *rx);

/* A growable receive buffer for wire_recv. Never grows past the record limits. */
struct wire_buf {
	uint8_t *data;
	size_t cap;
};
void wire_buf_free(struct wire_buf *b);

/* A whole record. payload points into a wire_buf or into a wire_decode input buffer. */
struct wire_record {
	struct wire_hdr hdr;
	const uint8_t *payload;
	uint32_t len;
	uint64_t offset; /* stream offset of the header */
};

/* Reads one whole record into buf (header + payload, CRC checked). */
int wire_recv(struct wire_conn *c, struct wire_buf *buf, struct wire_record *rec);

/* ---- Decoding from memory ---- */

struct wire_decoder {
	uint32_t seq;    /* expected seq of the next record */
	uint64_t offset; /* stream offset of buf[0] */
	char err[256];
};
void wire_decoder_init(struct wire_decoder *d);
/* Decodes the record at the start of buf[0..len). 0: *rec filled (payload points into buf),
 * *used = its size; the decoder advances. WIRE_E_TRUNC: not a whole record yet (nothing
 * consumed). Other WIRE_E_*: corrupt, with d->err. */
int wire_decode(struct wire_decoder *d, const uint8_t *buf, size_t len, struct wire_record *rec,
		size_t *used);

/* ---- Record order (what a destination accepts from a source) ----
 * HELLO, then PAGES / ROUND_END / PROGRESS, then CPU_STATE / VM_STATE / DEVICE_STATE, then
 * END_OF_STATE, then (after our ACK) COMMIT. ABORT any time; nothing after COMMIT or ABORT.
 * With WIRE_CAP_START_ON_STATE the destination reads nothing after END_OF_STATE. */
enum wire_phase {
	WIRE_PHASE_HELLO,
	WIRE_PHASE_MEMORY,
	WIRE_PHASE_STATE,
	WIRE_PHASE_WAIT_COMMIT,
	WIRE_PHASE_POSTCOPY, /* after END_OF_STATE of a post-copy migration (set by the receiver) */
	WIRE_PHASE_DONE,
	WIRE_PHASE_ABORTED,
};
struct wire_order {
	enum wire_phase phase;
};
void wire_order_init(struct wire_order *o);
/* 0 and advances, or WIRE_E_ORDER. */
int wire_order_check(struct wire_order *o, uint32_t type);

/* ---- Payloads ---- */

#define WIRE_NAME_MAX 64      /* VM name, device name: bytes, not counting the NUL */
#define WIRE_CPUID_MAX 256
#define WIRE_CPU_MODEL_MAX 32
#define WIRE_DEVICES_JSON_MAX 16384
#define WIRE_ERROR_MAX 1024   /* reason texts */
#define WIRE_MAX_VCPUS 1024
#define WIRE_MAX_MEM (1ull << 46) /* 64 TiB */
#define WIRE_DISKS_MAX 4
#define WIRE_PATH_MAX 1024

/* Capability bits, named on the wire ("zlib", ...); unknown names are ignored. */
#define WIRE_CAP_ZLIB (1u << 0)
/* The destination answers a ROUND_END with WIRE_ROUND_END_SYNC by an ACK once it has placed
 * every page before it. */
#define WIRE_CAP_SYNC (1u << 1)
/* The destination takes a copy of the disks (HELLO "storage":"copy", DISK_DATA records). */
#define WIRE_CAP_DISK_COPY (1u << 2)
/* The peer decodes zstd PAGES batches (encoding 2): the source sends them only to a
 * destination that offered it in HELLO_REPLY. */
#define WIRE_CAP_ZSTD (1u << 3)
/* Half a round trip of switchover instead of one and a half: the destination starts the
 * guest as soon as END_OF_STATE is loaded and says so with STARTED (no ACK, no COMMIT); the
 * source resumes only on an ABORT. Used when both sides offer it. */
#define WIRE_CAP_START_ON_STATE (1u << 4)
/* The destination can take a post-copy migration (userfaultfd, a backing it can fill page by
 * page); a source that asks for one (HELLO "postcopy") is refused without it. */
#define WIRE_CAP_POSTCOPY (1u << 5)

struct wire_cpuid_word {
	uint32_t function, index, eax, ebx, ecx, edx;
};

/* HELLO: JSON object, e.g. {"protocol":1,"name":"vm1","uuid":"...","mem_size":268435456,
 * "vcpus":2,"caps":["zlib"],"host":"lab1","cpuid":[[1,0,eax,ebx,ecx,edx],...],
 * "cpu_model":"x86-64-v2" (optional, see below),
 * "devices":[{"type":"serial","name":"com1"},...]} */
/* A run of guest RAM pages the source has ever allocated (memfd data, not holes): the
 * destination may allocate them ahead of the page stream. */
#define WIRE_RAM_RANGES_MAX 1024
struct wire_ram_range {
	uint64_t gfn, npages;
};

struct wire_hello {
	uint32_t protocol;
	char name[WIRE_NAME_MAX + 1];
	char uuid[37];
	char host[WIRE_NAME_MAX + 1];
	uint64_t mem_size;
	uint32_t vcpus;
	uint32_t caps;
	uint32_t ncpuid;
	struct wire_cpuid_word cpuid[WIRE_CPUID_MAX];
	/* A JSON array of objects, each with at least a string "type". Device modules define the
	 * rest; parse re-serialises it, so it is always well-formed JSON. "" means []. */
	char devices_json[WIRE_DEVICES_JSON_MAX];
	/* Optional "ram": [[gfn, npages], ...], ascending, inside mem_size. */
	uint32_t nram;
	struct wire_ram_range ram[WIRE_RAM_RANGES_MAX];
	/* Optional "cpu_model": the CPU model that built the guest's CPUID ("x86-64-v2");
	 * printable, unvalidated here; "" (absent: an older source) means host. */
	char cpu_model[WIRE_CPU_MODEL_MAX + 1];
	/* Optional "paused": the guest was paused when the migration began; it arrives paused. */
	bool paused;
	/* Optional "postcopy": the guest may start on the destination before all of its memory
	 * is there (DISCARD, then PAGES on request after STARTED). */
	bool postcopy;
	/* Optional "storage":"copy": the disks travel (DISK_DATA records), into images the
	 * destination creates; "copy_to": per disk, the path the source asks for ("": the
	 * destination's choice). Printable, unvalidated here: the destination's policy decides. */
	bool storage_copy;
	uint32_t ncopy_to;
	char copy_to[WIRE_DISKS_MAX][WIRE_PATH_MAX];
};

/* HELLO_REPLY: {"ok":true,"caps":["zlib"]} or {"ok":false,"error":"..."} */
struct wire_hello_reply {
	bool ok;
	uint32_t caps;
	char error[WIRE_ERROR_MAX + 1];
	/* How long the destination took to check the HELLO and set up ("took_us", optional; 0:
	 * not said, as from an older hv): the source subtracts it from the time the exchange
	 * took, which leaves the round trip of the path, proxies and all. */
	uint32_t took_us;
};
#define WIRE_HELLO_TOOK_MAX_US 600000000u /* 10 min: more is not a measurement */

/* ROUND_END: 64 bytes. */
#define WIRE_ROUND_END_SIZE 64
#define WIRE_ROUND_END_SYNC (1u << 0) /* answer with ACK (only to a peer with WIRE_CAP_SYNC) */
struct wire_round_end {
	uint32_t round;
	uint32_t flags; /* WIRE_ROUND_END_*; other bits must be zero */
	uint64_t pages, zero_pages, raw_pages;
	/* Pages sent compressed, by zlib or zstd (the field of a size every hv checks exactly,
	 * so a zstd count has no field of its own; to a peer without WIRE_CAP_ZSTD, the pages
	 * sent with zlib, as before). */
	uint64_t compressed_pages;
	uint64_t bytes;       /* wire bytes of the round */
	uint64_t dirty_pages; /* pages dirty when the round ended (what the next round sends) */
	uint64_t duration_us;
};

/* PROGRESS: 48 bytes. */
#define WIRE_PROGRESS_SIZE 48
struct wire_progress {
	uint32_t round;
	uint32_t phase; /* enum wire_phase of the sender */
	uint64_t total_pages, sent_pages, remaining_pages, bytes, elapsed_ms;
};

/* END_OF_STATE: 8 bytes, what the source sent, for the destination to cross-check. */
#define WIRE_END_OF_STATE_SIZE 8
struct wire_end_of_state {
	uint32_t vcpus;
	uint32_t devices;
};

/* STARTED: 8 bytes: u32 load_us (END_OF_STATE received to guest started, as the
 * destination measured it; at most WIRE_STARTED_LOAD_MAX_US), u32 flags (0). */
#define WIRE_STARTED_SIZE 8
#define WIRE_STARTED_LOAD_MAX_US 600000000u
struct wire_started {
	uint32_t load_us;
};

/* DISCARD: u32 count (1..WIRE_DISCARD_MAX), u32 flags (0), count x (u64 gfn, u64 npages):
 * ascending, disjoint, non-empty ranges inside RAM (checked by the receiver). */
#define WIRE_DISCARD_MAX 65536u
struct wire_range {
	uint64_t gfn, npages;
};
/* PAGE_REQUEST: u32 count (1..WIRE_REQUEST_MAX), u32 flags (0), count x u64 gfn. */
#define WIRE_REQUEST_MAX 64u
/* POSTCOPY_DONE: u64 pages sent after STARTED (for the destination to cross-check). */
#define WIRE_POSTCOPY_DONE_SIZE 8

/* DEVICE_STATE: u16 name_len, u16 version, name, blob. Names: [A-Za-z0-9_.:-]. */
#define WIRE_DEVICE_STATE_MAX (16u << 20)
struct wire_device_state {
	char name[WIRE_NAME_MAX + 1];
	uint16_t version;
	const uint8_t *data; /* points into the payload */
	size_t len;
};

/* DISK_DATA: u8 disk (its index among the source's disks), u8 flags, u16 zero, u32 length,
 * u64 offset (bytes), then the data: `length` bytes, or none with WIRE_DISK_ZERO (the range
 * reads as zeros: the destination deallocates it). Offset and length are whole 512-byte
 * sectors; length is 1..WIRE_DISK_DATA_MAX. The range is checked against the disk's size
 * by the receiver. */
#define WIRE_DISK_DATA_HDR 16
#define WIRE_DISK_DATA_MAX (1u << 20)
#define WIRE_DISK_ZERO (1u << 0)
struct wire_disk_data {
	uint8_t disk, flags;
	uint32_t len;
	uint64_t offset;
	const uint8_t *data; /* points into the payload; NULL with WIRE_DISK_ZERO */
};

/* ABORT: u32 code, reason text. */
enum wire_abort_code {
	WIRE_ABORT_GENERIC = 0,
	WIRE_ABORT_INCOMPATIBLE = 1,
	WIRE_ABORT_CANCELLED = 2,
	WIRE_ABORT_IO = 3,
	WIRE_ABORT_CORRUPT = 4,
	WIRE_ABORT_LOAD_FAILED = 5,
	WIRE_ABORT_TIMEOUT = 6,
};
struct wire_abort {
	uint32_t code;
	char reason[WIRE_ERROR_MAX + 1]; /* control characters replaced by '?' */
};

/* Parsers take the payload of a record already framed and CRC-checked, check everything
 * else, and return 0 or WIRE_E_PAYLOAD with a message in err (may be NULL). */
int wire_send_hello(struct wire_conn *c, const struct wire_hello *h);
int wire_parse_hello(const uint8_t *p, size_t len, struct wire_hello *h, char *err, size_t errlen);
int wire_send_hello_reply(struct wire_conn *c, const struct wire_hello_reply *r);
int wire_parse_hello_reply(const uint8_t *p, size_t len, struct wire_hello_reply *r, char *err,
			   size_t errlen);
int wire_send_round_end(struct wire_conn *c, const struct wire_round_end *r);
int wire_parse_round_end(const uint8_t *p, size_t len, struct wire_round_end *r, char *err,
			 size_t errlen);
int wire_send_progress(struct wire_conn *c, const struct wire_progress *pr);
int wire_parse_progress(const uint8_t *p, size_t len, struct wire_progress *pr, char *err,
			size_t errlen);
int wire_send_end_of_state(struct wire_conn *c, const struct wire_end_of_state *e);
int wire_parse_end_of_state(const uint8_t *p, size_t len, struct wire_end_of_state *e, char *err,
			    size_t errlen);
int wire_send_started(struct wire_conn *c, const struct wire_started *st);
/* DISCARD and PAGE_REQUEST: the entries point into the payload (read them with
 * wire_get_u64); parse checks sizes and flags, the caller the numbers against its RAM. */
int wire_send_discard(struct wire_conn *c, const struct wire_range *r, uint32_t n);
int wire_parse_discard(const uint8_t *p, size_t len, uint32_t *n, const uint8_t **entries, char *err,
		       size_t errlen);
int wire_send_page_request(struct wire_conn *c, const uint64_t *gfns, uint32_t n);
int wire_parse_page_request(const uint8_t *p, size_t len, uint32_t *n, const uint8_t **entries,
			    char *err, size_t errlen);
int wire_parse_started(const uint8_t *p, size_t len, struct wire_started *st, char *err,
		       size_t errlen);
int wire_send_device_state(struct wire_conn *c, const char *name, uint16_t version,
			   const void *data, size_t len);
int wire_parse_device_state(const uint8_t *p, size_t len, struct wire_device_state *d, char *err,
			    size_t errlen);
/* data NULL with WIRE_DISK_ZERO in flags. */
int wire_send_disk_data(struct wire_conn *c, uint8_t disk, uint8_t flags, uint64_t offset,
			const void *data, uint32_t len);
int wire_parse_disk_data(const uint8_t *p, size_t len, struct wire_disk_data *d, char *err,
			 size_t errlen);
int wire_send_abort(struct wire_conn *c, uint32_t code, const char *reason);
int wire_parse_abort(const uint8_t *p, size_t len, struct wire_abort *a, char *err,
		     size_t errlen);

/* ---- Little-endian helpers (shared by the migrate/ encoders) ---- */

static inline void wire_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void wire_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wire_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t wire_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t wire_get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t wire_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
