/* The source side of live migration: handshake, pre-copy rounds driven by the dirty log,
 * and the switchover. Until the destination may start the guest (END_OF_STATE is out to a
 * destination that starts on state, COMMIT to one that waits for it), any failure leaves the
 * guest running here; after that it resumes here only on the destination's ABORT. */
#include <errno.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/cpuid.h"
#include "hv/layout.h"
#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/throttle.h"
#include "hv/vm.h"
#include "migrate/auto_compress.h"
#include "migrate/channel.h"
#include "migrate/compress_pool.h"
#include "migrate/convergence.h"
#include "migrate/cpu_state.h"
#include "migrate/device_state.h"
#include "migrate/disk_copy.h"
#include "migrate/dirty.h"
#include "migrate/migrate.h"
#include "migrate/page_codec.h"
#include "migrate/postcopy_src.h"
#include "migrate/snapshot.h"
#include "migrate/wire.h"

/* Loading the state takes milliseconds; while we wait the guest stands still. */
#define ACK_TIMEOUT_MS 5000
/* Past this without STARTED or ABORT the outcome is unknown: the guest stays paused here. */
#define STARTED_TIMEOUT_MS 15000
#define SYNC_TIMEOUT_MS 15000 /* a slow destination may have a full receive buffer to place */
#define HELLO_TIMEOUT_MS 30000
#define SEND_TIMEOUT_MS 30000 /* a destination that stops reading this long is gone */
#define DRAIN_TIMEOUT_MS 5000
#define DRAIN_LEFT_BYTES (64 * 1024)
#define PEER_ABORT_WAIT_MS 300 /* after a failed send: how long to look for the peer's ABORT */
/* Progress within a long round: checked every so many pages, reported at most this often. */
#define REPORT_CHECK_PAGES 256
#define REPORT_INTERVAL_NS (150 * 1000000ULL)

struct source {
	struct machine *m;
	struct vm *vm;
	const struct migrate_params *p;
	atomic_bool *cancel;
	migrate_progress_fn progress;
	void *opaque;
	struct migrate_stats *st;

	int fd;
	bool to_file;             /* hvctl save: the stream goes into a snapshot file, one way */
	struct snapshot_out snap;
	struct tls_context *tls_ctx;
	struct tls_session *tls; /* NULL: plain TCP */
	struct wire_conn conn;
	struct page_codec_enc enc;
	struct dirty_tracker dirty;
	bool dirty_on;
	struct disk_copy_src disks; /* --storage copy */

	uint64_t gfns[WIRE_PAGES_MAX];
	const uint8_t *ptrs[WIRE_PAGES_MAX];
	unsigned n;
	bool skip_zero; /* round 0: the destination's fresh memory is already zero */
	bool stable;    /* vCPUs stopped: page bytes cannot change under the CRC */
	uint64_t skipped_zero; /* round 0's zero pages: not sent at all */
	struct auto_compress ac;
	struct compress_pool pool; /* --compress-threads, --compress hybrid */
	bool pool_on;
	bool hybrid; /* no worker free: the batch goes raw, not waiting */

	uint64_t t0, bw_t0, bw_bytes;
	uint64_t round_t0, round_bytes0, last_report_ns;
	uint64_t populated_pages; /* what round 0 will scan, as announced in HELLO */
	uint64_t disk_counted;    /* disk bytes read so far, as counted in round_done_pages */
	uint64_t round_disk_pages; /* of this round's round_done_pages, those that were disk */
	bool paused_by_us, devices_paused;
	bool peer_gone; /* do not try to send ABORT */
	bool peer_sync; /* the destination answers ROUND_END with SYNC (WIRE_CAP_SYNC) */
	bool start_on_state; /* the destination starts on END_OF_STATE (WIRE_CAP_START_ON_STATE) */
	bool postcopy;       /* decided: the switchover starts the guest there before its memory */
	bool committed, outcome_unknown;
	bool postcopy_lost; /* failed after STARTED in post-copy: neither copy can run */
	double path_rtt_ms; /* the HELLO exchange less the destination's part: proxies included */
	uint32_t limit_ms;  /* the downtime pre-copy aims for (check_limit) */
};

/* The first failure is the one reported (hv/log.h). */
#define failf(s, ...) hv_fail((s)->st->error, sizeof((s)->st->error), __VA_ARGS__)

/* A destination that gives up says why in an ABORT and closes; our next send then fails
 * (reset by peer) before we would have read it. What it sent before the reset stays
 * readable: look for the ABORT, briefly, so that the user learns the real reason. */
static bool peer_abort_reason(struct source *s, char *reason, size_t len)
{
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	bool found = false;

	channel_set_recv_timeout(s->fd, PEER_ABORT_WAIT_MS);
	for (int i = 0; i < 8 && wire_recv(&s->conn, &buf, &rec) == 0; i++) {
		struct wire_abort a;
		if (rec.hdr.type != WIRE_ABORT)
			continue; /* an ACK we had not read yet */
		if (wire_parse_abort(rec.payload, rec.len, &a, NULL, 0) == 0) {
			snprintf(reason, len, "%s", a.reason);
			found = true;
		}
		break;
	}
	wire_buf_free(&buf);
	return found;
}

static int fail_wire(struct source *s, int r, const char *what)
{
	char reason[WIRE_ERROR_MAX + 1], err[sizeof(s->conn.err)];
	int last_errno = s->conn.last_errno;

	/* EPROTO: TLS failed, and nothing more can be read from the session. */
	memcpy(err, s->conn.err, sizeof(err));
	if (r == WIRE_E_IO && !s->peer_gone && last_errno != EPROTO &&
	    peer_abort_reason(s, reason, sizeof(reason))) {
		s->peer_gone = true;
		return failf(s, "the destination gave up (%s): %s", what, reason);
	}
	memcpy(s->conn.err, err, sizeof(err)); /* the look for an ABORT must not hide the cause */
	s->conn.last_errno = last_errno;
	if (r == WIRE_E_IO || r == WIRE_E_EOF)
		s->peer_gone = true;
	if (r == WIRE_E_IO && (s->conn.last_errno == EAGAIN || s->conn.last_errno == EWOULDBLOCK))
		return failf(s, "%s: timed out: the destination stopped answering", what);
	return failf(s, "%s: %s", what, s->conn.err[0] ? s->conn.err : wire_strerror(r));
}

static void fill_stats(struct source *s)
{
	uint64_t now = clock_now_ns();

	s->st->elapsed_ms = (double)(now - s->t0) / 1e6;
	s->st->wire_bytes = s->conn.tx_bytes;
	s->st->round_bytes = s->conn.tx_bytes - s->round_bytes0;
	s->st->round_elapsed_ms = (double)(now - s->round_t0) / 1e6;
	/* Memory the guest populated after HELLO makes round 0 longer than announced. */
	if (s->st->round_done_pages > s->st->round_pages)
		s->st->round_pages = s->st->round_done_pages;
	s->st->zero_pages = s->enc.stats.zero_pages + s->skipped_zero;
	s->st->raw_pages = s->enc.stats.raw_pages;
	s->st->zlib_pages = s->enc.stats.zlib_pages;
	s->st->zstd_pages = s->enc.stats.zstd_pages;
	s->st->deflate_pages = s->enc.stats.compress_in_bytes / PAGE_SIZE;
	s->st->compressing = s->ac.codec != PAGE_CODEC_COMPRESS_NONE;
	s->st->disk_blocks_sent = s->disks.blocks_sent;
	s->st->disk_bytes = s->disks.data_bytes;
}

static void report(struct source *s)
{
	fill_stats(s);
	s->last_report_ns = clock_now_ns();
	if (s->progress)
		s->progress(s->opaque, s->st);
	/* The destination shows it too ('hvctl status' there). A failure here shows up at the
	 * next page sent, with its cause. */
	if (s->st->phase == MIGRATE_PHASE_PRECOPY) {
		struct wire_progress pr = { .round = s->st->round, .phase = WIRE_PHASE_MEMORY,
					    .total_pages = s->st->ram_pages, .sent_pages = s->st->pages_sent,
					    .remaining_pages = s->st->round_pages - s->st->round_done_pages,
					    .bytes = s->conn.tx_bytes,
					    .elapsed_ms = (uint64_t)s->st->elapsed_ms };
		wire_send_progress(&s->conn, &pr);
	}
}

/* A long round reports as it goes, so that a progress bar moves; cheaply: the clock is read
 * once per REPORT_CHECK_PAGES pages. */
static void report_if_due(struct source *s)
{
	if (s->st->round_done_pages % REPORT_CHECK_PAGES == 0 &&
	    clock_now_ns() - s->last_report_ns >= REPORT_INTERVAL_NS)
		report(s);
}

static void start_round(struct source *s, uint64_t pages)
{
	s->st->round_pages = pages;
	s->st->round_done_pages = 0;
	s->round_disk_pages = 0;
	s->round_t0 = clock_now_ns();
	s->round_bytes0 = s->conn.tx_bytes;
}

/* Sleeps as needed to keep the stream under --bandwidth. */
static void throttle(struct source *s, uint64_t bytes)
{
	if (!s->p->bandwidth)
		return;
	s->bw_bytes += bytes;
	uint64_t due = (uint64_t)((double)s->bw_bytes * 1e9 / (double)s->p->bandwidth);
	uint64_t elapsed = clock_now_ns() - s->bw_t0;
	if (due > elapsed) {
		uint64_t d = due - elapsed;
		struct timespec ts = { .tv_sec = (time_t)(d / 1000000000ULL), .tv_nsec = (long)(d % 1000000000ULL) };
		nanosleep(&ts, NULL);
	}
}

/* Compressor threads when asked for (--compress-threads), and always for hybrid. */
static int start_pool(struct source *s)
{
	int n = (int)s->p->compress_threads;

	if (s->p->compress == MIGRATE_COMPRESS_NONE)
		return 0;
	if (!n && s->p->compress == MIGRATE_COMPRESS_HYBRID)
		n = compress_pool_default_threads();
	if (!n)
		return 0;
	hv_clear_error();
	if (compress_pool_start(&s->pool, n) < 0)
		return failf(s, "%s", hv_last_error());
	s->pool_on = true;
	s->hybrid = s->p->compress == MIGRATE_COMPRESS_HYBRID || s->p->compress == MIGRATE_COMPRESS_AUTO;
	return 0;
}

/* Sends one encoded batch, then the bookkeeping: --bandwidth, auto's measurements, counts. */
static int send_batch(struct source *s, struct page_codec_enc *e, unsigned n, uint64_t comp_in,
		      uint64_t comp_out, uint64_t encode_ns)
{
	uint64_t before = s->conn.tx_bytes, t = clock_now_ns();
	int r = wire_send_iov(&s->conn, WIRE_PAGES, e->iov, e->iovcnt, e->crc_len);

	if (r < 0)
		return fail_wire(s, r, "sending pages");
	/* --bandwidth is the link as far as compression is concerned: its wait counts as sending. */
	throttle(s, s->conn.tx_bytes - before);
	auto_compress_account(&s->ac, s->conn.tx_bytes - before, clock_now_ns() - t, comp_in, comp_out, encode_ns);
	auto_compress_decide(&s->ac);
	s->st->pages_sent += n;
	return 0;
}

/* A batch a compressor thread finished. Its time counts divided among the threads: that is
 * the rate they compress at together. */
static int send_job(struct source *s, struct compress_job *j)
{
	int r = j->result < 0 ? fail_wire(s, j->result, "compressing pages")
			      : send_batch(s, &j->enc, j->n, j->enc.stats.compress_in_bytes,
					   j->enc.stats.compress_out_bytes, j->encode_ns / (uint64_t)s->pool.n);
	page_codec_stats_add(&s->enc.stats, &j->enc.stats);
	compress_pool_release(&s->pool, j);
	return r;
}

/* Sends what the compressor threads have finished; wait: everything in flight (before a
 * ROUND_END, the state or the end: every batch of a round goes before them). */
static int drain_pool(struct source *s, bool wait)
{
	struct compress_job *j;

	while (s->pool_on && (j = compress_pool_done(&s->pool, wait)))
		if (send_job(s, j) < 0)
			return -1;
	return 0;
}

/* Whether the link would take a raw batch now without waiting: under --bandwidth, the stream
 * is behind the cap by a whole raw batch (the time waiting for threads was lost to the
 * link); else the socket has room (a full one means the link is busy). */
static bool link_idle(struct source *s)
{
	if (s->p->bandwidth) {
		double raw = (double)s->n * PAGE_SIZE;
		return ((double)s->bw_bytes + raw) * 1e9 / (double)s->p->bandwidth <= (double)(clock_now_ns() - s->bw_t0);
	}
	struct pollfd pf = { .fd = s->fd, .events = POLLOUT };
	return poll(&pf, 1, 0) > 0 && (pf.revents & POLLOUT);
}

/* With compressor threads: the batch goes to a free one. None free: hybrid sends it raw
 * when the link would otherwise idle, and otherwise, as a fixed compressor does, waits for a
 * thread. true when a thread took it. */
static bool hand_to_pool(struct source *s, int *rc)
{
	*rc = drain_pool(s, false);
	if (*rc < 0)
		return false;
	if (compress_pool_submit(&s->pool, s->gfns, s->ptrs, s->n, s->ac.codec, s->stable))
		return true;
	if (s->hybrid && link_idle(s))
		return false;
	struct compress_job *j = compress_pool_done(&s->pool, true);
	if (j && (*rc = send_job(s, j)) < 0)
		return false;
	return compress_pool_submit(&s->pool, s->gfns, s->ptrs, s->n, s->ac.codec, s->stable);
}

static int flush_batch(struct source *s)
{
	if (!s->n)
		return 0;
	/* Once the guest runs there on pages still to come, a cancel would lose it. */
	if (atomic_load(s->cancel) && s->st->phase != MIGRATE_PHASE_POSTCOPY)
		return failf(s, "migration cancelled");
	enum page_codec_compress codec = s->ac.codec;
	if (s->pool_on && codec != PAGE_CODEC_COMPRESS_NONE && s->st->phase != MIGRATE_PHASE_POSTCOPY) {
		int rc;
		if (hand_to_pool(s, &rc)) {
			s->n = 0;
			return 0;
		}
		if (rc < 0)
			return -1;
		codec = PAGE_CODEC_COMPRESS_NONE; /* hybrid, every thread busy */
	}
	uint64_t zin = s->enc.stats.compress_in_bytes, zout = s->enc.stats.compress_out_bytes;
	uint64_t t = clock_now_ns();
	int r = page_codec_encode(&s->enc, s->gfns, s->ptrs, s->n, codec, s->stable);
	if (r < 0)
		return fail_wire(s, r, "sending pages");
	r = send_batch(s, &s->enc, s->n, s->enc.stats.compress_in_bytes - zin,
		       s->enc.stats.compress_out_bytes - zout, clock_now_ns() - t);
	s->n = 0;
	return r;
}

static int queue_page(struct source *s, uint64_t gfn)
{
	const uint8_t *page = s->vm->mem.host + gfn * PAGE_SIZE;

	s->st->round_done_pages++;
	report_if_due(s);
	if (s->skip_zero && page_codec_is_zero(page)) {
		s->skipped_zero++;
		return 0;
	}
	s->gfns[s->n] = gfn;
	s->ptrs[s->n] = page;
	if (++s->n == WIRE_PAGES_MAX)
		return flush_batch(s);
	return 0;
}

/* Round 0: only pages that are populated; the others were never touched by anyone. */
static int send_allocated_pages(struct source *s)
{
	uint64_t start, end = 0;

	s->skip_zero = true;
	while (guest_mem_next_populated(&s->vm->mem, end, &start, &end))
		for (uint64_t g = start; g < end; g++)
			if (queue_page(s, g) < 0)
				return -1;
	s->skip_zero = false;
	return flush_batch(s) < 0 ? -1 : drain_pool(s, true);
}

static int send_dirty_pages(struct source *s, const uint64_t *bitmap, uint64_t words)
{
	for (uint64_t w = 0; w < words; w++) {
		/* --dirty-log clear: a chunk is re-armed right before its pages are read (a paused
		 * guest writes nothing: no need). */
		if (w % (DIRTY_CHUNK_PAGES / 64) == 0 && !s->stable &&
		    dirty_rearm(&s->dirty, w * 64, DIRTY_CHUNK_PAGES) < 0)
			return failf(s, "cannot re-arm the dirty log");
		uint64_t bits = bitmap[w];
		while (bits) {
			int b = __builtin_ctzll(bits);
			bits &= bits - 1;
			if (queue_page(s, w * 64 + (uint64_t)b) < 0)
				return -1;
		}
	}
	return flush_batch(s) < 0 ? -1 : drain_pool(s, true);
}

#define DISK_CANCELLED (-300)

/* Disk bytes read (sent or skipped as zeros) count in the round's progress as the pages
 * they would be: a large disk moves the bar as memory does. */
static void count_disk_progress(struct source *s)
{
	uint64_t pages = (s->disks.scanned_bytes - s->disk_counted) / PAGE_SIZE;

	s->st->round_done_pages += pages;
	s->round_disk_pages += pages;
	s->disk_counted += pages * PAGE_SIZE;
}

/* Round 0 goes through the populated pages and, with --storage copy, the disks' data. */
static uint64_t round0_pages(struct source *s)
{
	return s->populated_pages + (s->disks.n ? disk_copy_extent_bytes(&s->disks) / PAGE_SIZE : 0);
}

/* One disk block as a DISK_DATA record; then the --bandwidth cap, progress, and a cancel. */
static int disk_sink(void *opaque, int disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct source *s = opaque;
	uint64_t before = s->conn.tx_bytes;
	int r = wire_send_disk_data(&s->conn, (uint8_t)disk, data ? 0 : WIRE_DISK_ZERO, offset, data, len);

	if (r < 0)
		return r;
	throttle(s, s->conn.tx_bytes - before);
	count_disk_progress(s);
	if (clock_now_ns() - s->last_report_ns >= REPORT_INTERVAL_NS)
		report(s);
	return atomic_load(s->cancel) ? DISK_CANCELLED : 0;
}

/* --storage copy: round 0 sends every disk's data, the later rounds what the guest wrote. */
static int send_disks(struct source *s, bool all)
{
	if (!s->disks.n)
		return 0;
	int r = all ? disk_copy_send_all(&s->disks) : disk_copy_send_dirty(&s->disks);
	count_disk_progress(s);
	if (r == DISK_COPY_E_READ)
		return failf(s, "%s", s->disks.err);
	if (r == DISK_CANCELLED)
		return failf(s, "migration cancelled");
	return r < 0 ? fail_wire(s, r, "sending disk blocks") : 0;
}

static int send_round_end(struct source *s, uint64_t pages, uint64_t bytes, uint64_t dur_ns,
			  uint64_t dirty, uint32_t flags)
{
	struct wire_round_end re = {
		.round = s->st->round, .flags = flags, .pages = pages, .zero_pages = s->enc.stats.zero_pages,
		.raw_pages = s->enc.stats.raw_pages,
		.compressed_pages = s->enc.stats.zlib_pages + s->enc.stats.zstd_pages,
		.bytes = bytes, .dirty_pages = dirty, .duration_us = dur_ns / 1000,
	};
	int r = wire_send_round_end(&s->conn, &re);
	return r < 0 ? fail_wire(s, r, "sending round end") : 0;
}

/* The populated ranges, as a hint for the destination to allocate ahead of the stream.
 * Past the table's size, neighbours merge (the hint only grows). */
static void ram_ranges(const struct guest_mem *m, struct wire_hello *h)
{
	uint64_t gfn, last = 0;

	h->nram = 0;
	while (guest_mem_next_populated(m, last, &gfn, &last)) {
		if (h->nram == WIRE_RAM_RANGES_MAX) {
			struct wire_ram_range *r = &h->ram[h->nram - 1];
			r->npages = last - r->gfn;
		} else {
			h->ram[h->nram++] = (struct wire_ram_range){ gfn, last - gfn };
		}
	}
}

static void fill_hello(struct source *s, struct wire_hello *h)
{
	struct vm *vm = s->vm;

	memset(h, 0, sizeof(*h));
	h->protocol = WIRE_VERSION;
	snprintf(h->name, sizeof(h->name), "%s", vm->name);
	snprintf(h->uuid, sizeof(h->uuid), "%s", vm->uuid);
	gethostname(h->host, sizeof(h->host) - 1);
	h->mem_size = vm->mem.size;
	h->vcpus = (uint32_t)vm->ncpus;
	h->caps = WIRE_CAP_ZLIB | WIRE_CAP_ZSTD | WIRE_CAP_SYNC;
	if (!s->to_file) /* a file ends with COMMIT: nobody reads it until it is whole */
		h->caps |= WIRE_CAP_START_ON_STATE;
	h->postcopy = s->p->postcopy_after > 0;
	uint32_t n = vm->cpuid->hdr.nent;
	if (n > WIRE_CPUID_MAX)
		n = WIRE_CPUID_MAX;
	for (uint32_t i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *e = &vm->cpuid->entries[i];
		h->cpuid[i] = (struct wire_cpuid_word){ e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
	}
	h->ncpuid = n;
	if (vm->cpu_model != CPU_MODEL_HOST) /* host: the HELLO an older hv sends */
		snprintf(h->cpu_model, sizeof(h->cpu_model), "%s", cpu_model_name(vm->cpu_model));
	/* A paused guest stays paused: it arrives so, for its owner to resume there. */
	h->paused = s->st->paused = vm_get_state(vm) == VM_PAUSED;
	h->storage_copy = s->p->storage_copy;
	for (int i = 0; h->storage_copy && i < MIGRATE_DISKS_MAX; i++)
		snprintf(h->copy_to[i], sizeof(h->copy_to[i]), "%s", s->p->dest_disk[i]);
	h->ncopy_to = h->storage_copy ? (uint32_t)s->disks.n : 0;
	ram_ranges(&vm->mem, h);
	s->populated_pages = 0;
	for (uint32_t i = 0; i < h->nram; i++)
		s->populated_pages += h->ram[i].npages;
	device_state_describe(s->m, h->devices_json, sizeof(h->devices_json));
}

static int handshake(struct source *s)
{
	struct wire_hello *h = calloc(1, sizeof(*h));
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	struct wire_hello_reply reply;
	char perr[256];
	int r;

	if (!h)
		return failf(s, "out of memory");
	fill_hello(s, h);
	uint64_t t_hello = clock_now_ns();
	r = wire_send_hello(&s->conn, h);
	free(h);
	if (s->to_file) /* nobody answers: whoever restores the file checks the HELLO then */
		return r < 0 ? fail_wire(s, r, "writing the snapshot") : 0;
	if (r >= 0) {
		channel_set_recv_timeout(s->fd, HELLO_TIMEOUT_MS);
		r = wire_recv(&s->conn, &buf, &rec);
	}
	if (r < 0) {
		wire_buf_free(&buf);
		/* TLS 1.3 checks our certificate after our side of the handshake is done: a
		 * refusal shows up as the first read failing. */
		if (s->tls && !s->p->tls.psk_file[0] && s->conn.rx_bytes == 0 && (r == WIRE_E_IO || r == WIRE_E_EOF)) {
			s->peer_gone = true;
			return failf(s, "the destination refused this host's certificate (%s); check that its "
				     "--tls-ca signed --tls-cert here and that the certificate is still valid",
				     s->conn.err[0] ? s->conn.err : wire_strerror(r));
		}
		return fail_wire(s, r, "waiting for the destination's compatibility check");
	}
	if (rec.hdr.type == WIRE_ABORT) {
		struct wire_abort a;
		if (wire_parse_abort(rec.payload, rec.len, &a, NULL, 0) == 0)
			failf(s, "destination refused: %s", a.reason);
		wire_buf_free(&buf);
		s->peer_gone = true;
		return failf(s, "destination refused the migration");
	}
	if (rec.hdr.type != WIRE_HELLO_REPLY ||
	    wire_parse_hello_reply(rec.payload, rec.len, &reply, perr, sizeof(perr)) < 0) {
		wire_buf_free(&buf);
		return failf(s, "destination answered the handshake with %s", wire_type_name(rec.hdr.type));
	}
	wire_buf_free(&buf);
	if (!reply.ok) {
		s->peer_gone = true;
		return failf(s, "destination refused: %s", reply.error);
	}
	if (reply.took_us) {
		double rtt = (double)(clock_now_ns() - t_hello) / 1e6 - reply.took_us / 1000.0;
		s->path_rtt_ms = rtt > 0 ? rtt : 0;
	}
	if (s->p->storage_copy && !(reply.caps & WIRE_CAP_DISK_COPY))
		return failf(s, "the destination's hv cannot take a copy of the disks; update it, or use "
			     "storage both hosts share (without --storage copy)");
	const char *no_codec = auto_compress_peer(&s->ac, reply.caps & WIRE_CAP_ZLIB, reply.caps & WIRE_CAP_ZSTD);
	if (no_codec)
		return failf(s, "%s", no_codec);
	s->peer_sync = reply.caps & WIRE_CAP_SYNC;
	s->start_on_state = reply.caps & WIRE_CAP_START_ON_STATE;
	if (s->p->postcopy_after && !(s->start_on_state && (reply.caps & WIRE_CAP_POSTCOPY)))
		return failf(s, "the destination's hv cannot take a post-copy migration; update it there, or "
			     "migrate without --postcopy");
	return 0;
}

/* Waits (bounded) until the socket has sent what we queued: bytes still in the send queue
 * would otherwise be paid for during the downtime. */
static void drain_socket(struct source *s)
{
	struct deadline deadline = deadline_in_ms(DRAIN_TIMEOUT_MS);
	int queued;

	while (ioctl(s->fd, SIOCOUTQ, &queued) == 0 && queued > DRAIN_LEFT_BYTES && !deadline_passed(deadline)) {
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* The kernel's smoothed round-trip time of the connection, in ms. */
static double kernel_rtt_ms(struct source *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ? 0 : ti.tcpi_rtt / 1000.0;
}

/* The round trip a switch-over pays, in ms: the kernel's, or what the HELLO exchange
 * measured when more (a relay or proxy on the way delays the data but answers TCP itself,
 * so the kernel sees only the first hop). */
static double rtt_ms(struct source *s)
{
	double k = kernel_rtt_ms(s);

	return k > s->path_rtt_ms ? k : s->path_rtt_ms;
}

/* The round trips a switch-over waits for, in ms of this path. */
static double switch_rtts(struct source *s)
{
	return s->start_on_state ? CONVERGENCE_RTTS_START_ON_STATE : CONVERGENCE_RTTS_COMMIT;
}

/* Says up front when the path alone makes --downtime impossible, and pre-copy aims for what
 * the path costs plus the limit (a warning in the progress events). With --on-timeout cancel
 * the migration ends at once, nothing sent, but only on the kernel's round trip: the HELLO
 * exchange is one sample, which a busy host's scheduling can stretch by tens of ms, and a
 * refusal must not rest on that (the rounds then decide, with the honest estimate). */
static int check_limit(struct source *s)
{
	uint32_t limit = s->p->downtime_ms;

	if (s->p->on_timeout == MIGRATE_ON_TIMEOUT_CANCEL) {
		double k = kernel_rtt_ms(s), floor = convergence_floor_ms(k, switch_rtts(s));
		if (floor <= limit)
			return 0;
		return failf(s, "at %.0f ms round trip the switchover alone takes about %.0f ms: --downtime %u cannot "
			     "be met (--on-timeout cancel); nothing was moved; use --downtime %u or more",
			     k, floor, limit, convergence_effective_limit_ms(floor, limit));
	}
	double rtt = rtt_ms(s), floor = convergence_floor_ms(rtt, switch_rtts(s));
	s->limit_ms = convergence_effective_limit_ms(floor, limit);
	if (s->limit_ms == limit)
		return 0;
	snprintf(s->st->warning, sizeof(s->st->warning),
		 "at %.0f ms round trip the switchover alone takes about %.0f ms, more than --downtime %u: "
		 "aiming for %u ms instead",
		 rtt, floor, limit, s->limit_ms);
	report(s);
	return 0;
}

static int wait_ack(struct source *s, const char *what, int timeout_ms);

/* --auto-converge: a guest that dirties memory as fast as the link carries it is held back,
 * more each round it stays ahead (convergence_throttle), until the rounds shrink. */
static int throttle_next(struct source *s, struct convergence *conv, uint64_t dirty)
{
	struct migrate_stats *st = s->st;
	uint32_t pct = convergence_throttle(conv, st->throttle_pct, dirty, st->round_done_pages,
					    s->p->max_throttle_pct);

	if (pct == st->throttle_pct)
		return 0;
	if (vm_throttle_set(s->vm, pct) < 0)
		return failf(s, "cannot throttle the guest's vCPUs (--auto-converge): %s", hv_last_error());
	st->throttle_pct = pct;
	if (pct > st->max_throttle_pct)
		st->max_throttle_pct = pct;
	return 0;
}

/* Pre-copy until the remaining dirty set fits the downtime budget (or rounds run out).
 * Leaves the last collected dirty set in s->dirty.bitmap, unsent. */
static int precopy(struct source *s)
{
	struct migrate_stats *st = s->st;
	uint64_t t = clock_now_ns(), bytes0 = s->conn.tx_bytes, pages0 = st->pages_sent;
	struct convergence conv = { 0 };

	st->phase = MIGRATE_PHASE_PRECOPY;
	st->round = 0;
	start_round(s, round0_pages(s));
	if (send_disks(s, true) < 0 || send_allocated_pages(s) < 0)
		return -1;
	for (;;) {
		drain_socket(s);
		st->round_pages = st->round_done_pages; /* the round is over: it did all it had */
		uint64_t dur = clock_now_ns() - t;
		uint64_t bytes = s->conn.tx_bytes - bytes0;
		int64_t dirty = dirty_collect(&s->dirty);
		if (dirty < 0)
			return failf(s, "cannot read the dirty log");
		/* Disk blocks written again count as the pages they would take on the wire. */
		st->disk_dirty_blocks = s->disks.n ? disk_copy_collect(&s->disks) : 0;
		dirty += (int64_t)(st->disk_dirty_blocks * (DEV_TRACK_BLOCK / PAGE_SIZE));
		double secs = dur > 0 ? (double)dur / 1e9 : 1e-9;
		/* Link rate as measured; a round too small to measure keeps the previous figure. */
		if (bytes > (1u << 20) || st->rate_mbs == 0)
			st->rate_mbs = (double)bytes / secs / (1 << 20);
		st->dirty_rate_mbs = (double)dirty * PAGE_SIZE / secs / (1 << 20);
		st->remaining_pages = (uint64_t)dirty;
		double rtt = rtt_ms(s);
		st->expected_downtime_ms = convergence_expected_downtime_ms(
			(uint64_t)dirty, st->rate_mbs, auto_compress_wire_ratio(&s->ac), rtt, switch_rtts(s));
		enum convergence_verdict v = convergence_decide(
			&conv, st->round, (uint64_t)dirty, st->expected_downtime_ms, convergence_floor_ms(rtt, switch_rtts(s)),
			s->limit_ms, s->p->max_rounds, s->p->on_timeout);
		/* Post-copy once its round has come, unless pre-copy converged first (or even then,
		 * when asked for that round); instead of giving up, and instead of forcing a
		 * switchover that does not fit the limit. */
		bool converged = v == CONVERGENCE_SWITCH_OVER && st->expected_downtime_ms <= s->limit_ms;
		if (s->p->postcopy_after && st->round + 1 >= s->p->postcopy_after &&
		    (s->p->postcopy_forced || !converged)) {
			s->postcopy = true;
			v = CONVERGENCE_SWITCH_OVER;
		}
		if (v == CONVERGENCE_NEXT_ROUND && s->p->auto_converge && throttle_next(s, &conv, (uint64_t)dirty) < 0)
			return -1;
		st->round_end = true;
		st->round_next = v == CONVERGENCE_NEXT_ROUND ? "round"
				 : v == CONVERGENCE_GIVE_UP	 ? "give-up"
				 : s->postcopy			 ? "postcopy"
								 : "switchover";
		report(s);
		st->round_end = false;
		if (v == CONVERGENCE_GIVE_UP)
			return failf(s, "did not converge in %u rounds: %.0f MiB were dirtied again during the last round of %.0f ms, while the link moves %.0f MiB/s (switching now would stop the guest for about %.0f ms); raise --downtime or --max-rounds, or use --on-timeout force",
				     st->round + 1, (double)dirty * PAGE_SIZE / (1 << 20), secs * 1000,
				     st->rate_mbs, st->expected_downtime_ms);
		bool done = v == CONVERGENCE_SWITCH_OVER;
		/* Before the guest stops, the destination catches up with what is already on its
		 * way (a receive buffer can hold tens of MiB): that time is not downtime. Pages
		 * dirtied meanwhile join the last set. */
		bool sync = done && s->peer_sync;
		if (send_round_end(s, st->pages_sent - pages0, bytes, dur, (uint64_t)dirty,
				   sync ? WIRE_ROUND_END_SYNC : 0) < 0)
			return -1;
		if (done)
			return sync ? wait_ack(s, "waiting for the destination to catch up", SYNC_TIMEOUT_MS) : 0;
		st->round++;
		start_round(s, (uint64_t)dirty);
		t = clock_now_ns();
		bytes0 = s->conn.tx_bytes;
		pages0 = st->pages_sent;
		if (send_disks(s, false) < 0 || send_dirty_pages(s, s->dirty.bitmap, s->dirty.words) < 0)
			return -1;
	}
}

static int send_state(struct source *s)
{
	struct vm *vm = s->vm;
	struct vcpu_state *vs = malloc(sizeof(*vs));
	uint8_t *blob = malloc(CPU_STATE_VCPU_BLOB_MAX);
	char err[256];
	size_t len;
	int r = -1;

	if (!vs || !blob) {
		failf(s, "out of memory saving vCPU state");
		goto out;
	}
	for (int i = 0; i < vm->ncpus; i++) {
		if (cpu_state_save_vcpu(vm->vcpus[i].fd, vm->kvm_fd, vs, err, sizeof(err)) < 0) {
			failf(s, "saving vCPU %d: %s", i, err);
			goto out;
		}
		vs->vcpu_index = (uint32_t)i;
		if (cpu_state_encode_vcpu(vs, blob, CPU_STATE_VCPU_BLOB_MAX, &len) < 0) {
			failf(s, "encoding vCPU %d state", i);
			goto out;
		}
		int w = wire_send(&s->conn, WIRE_CPU_STATE, blob, len);
		if (w < 0) {
			fail_wire(s, w, "sending vCPU state");
			goto out;
		}
	}
	struct vm_kvm_state vms;
	if (cpu_state_save_vm(vm->vm_fd, &vms, err, sizeof(err)) < 0) {
		failf(s, "saving VM state: %s", err);
		goto out;
	}
	if (cpu_state_encode_vm(&vms, blob, CPU_STATE_VM_BLOB_MAX, &len) < 0) {
		failf(s, "encoding VM state");
		goto out;
	}
	int w = wire_send(&s->conn, WIRE_VM_STATE, blob, len);
	if (w < 0) {
		fail_wire(s, w, "sending VM state");
		goto out;
	}
	int ndev = device_state_send(&s->conn, s->m, err, sizeof(err));
	if (ndev == DEVICE_STATE_E_SAVE) {
		failf(s, "%s", err);
		goto out;
	}
	if (ndev < 0) {
		fail_wire(s, ndev, "sending device state");
		goto out;
	}
	struct wire_end_of_state eos = { .vcpus = (uint32_t)vm->ncpus, .devices = (uint32_t)ndev };
	w = wire_send_end_of_state(&s->conn, &eos);
	if (w < 0) {
		fail_wire(s, w, "sending end of state");
		goto out;
	}
	r = 0;
out:
	free(vs);
	free(blob);
	return r;
}

/* The destination's ABORT, received while waiting for `what`: its reason becomes ours. */
static int fail_aborted(struct source *s, struct wire_buf *buf, const struct wire_record *rec, const char *what)
{
	struct wire_abort a;

	s->peer_gone = true;
	if (wire_parse_abort(rec->payload, rec->len, &a, NULL, 0) == 0)
		failf(s, "the destination gave up (%s): %s", what, a.reason);
	wire_buf_free(buf);
	return failf(s, "destination aborted");
}

static int wait_ack(struct source *s, const char *what, int timeout_ms)
{
	struct wire_buf buf = { 0 };
	struct wire_record rec;

	if (s->to_file)
		return 0;
	channel_set_recv_timeout(s->fd, timeout_ms);
	int r = wire_recv(&s->conn, &buf, &rec);
	if (r < 0) {
		wire_buf_free(&buf);
		return fail_wire(s, r, what);
	}
	if (rec.hdr.type == WIRE_ABORT)
		return fail_aborted(s, &buf, &rec, what);
	wire_buf_free(&buf);
	if (rec.hdr.type != WIRE_ACK)
		return failf(s, "destination sent %s instead of ACK", wire_type_name(rec.hdr.type));
	return 0;
}

static int offline_pages(struct source *s, uint64_t t_pause);
static int commit(struct source *s, uint64_t t_pause, uint64_t t_paused);
static int postcopy_switchover(struct source *s, uint64_t t_pause, uint64_t t_paused, uint64_t pages);

static int switchover(struct source *s)
{
	struct vm *vm = s->vm;
	char err[320];

	s->st->phase = MIGRATE_PHASE_SWITCHOVER;
	/* Disks flushed twice: while the guest still runs (most of the data, outside the
	 * downtime), and once paused, before their state is saved, so that a destination on the
	 * same storage reads everything the guest wrote. */
	if (dev_registry_flush(&s->m->devs, err, sizeof(err)) < 0)
		return failf(s, "%s; the guest keeps running here", err);
	uint64_t t_pause = clock_now_ns();
	if (vm_get_state(vm) == VM_RUNNING) {
		if (vm_pause(vm) < 0)
			return failf(s, "the VM stopped during migration");
		s->paused_by_us = true;
	}
	/* Device threads finish what they do and then stay off guest memory and the image. */
	dev_registry_pause(&s->m->devs);
	s->devices_paused = true;
	if (dev_registry_flush(&s->m->devs, err, sizeof(err)) < 0)
		return failf(s, "%s; the guest keeps running here", err);
	if (s->p->offline || (s->to_file && !s->p->live))
		return offline_pages(s, t_pause);
	/* What the last pre-copy round left, plus what was dirtied since: all of it, now stable. */
	uint64_t *left = malloc(s->dirty.words * sizeof(uint64_t));
	if (!left)
		return failf(s, "out of memory");
	memcpy(left, s->dirty.bitmap, s->dirty.words * sizeof(uint64_t));
	if (dirty_collect(&s->dirty) < 0) {
		free(left);
		return failf(s, "cannot read the dirty log");
	}
	uint64_t last_pages = 0;
	for (uint64_t w = 0; w < s->dirty.words; w++) {
		s->dirty.bitmap[w] |= left[w];
		last_pages += (uint64_t)__builtin_popcountll(s->dirty.bitmap[w]);
	}
	free(left);
	s->stable = true;
	auto_compress_settle(&s->ac);
	s->st->round++;
	uint64_t t_paused = clock_now_ns();
	if (s->postcopy)
		return postcopy_switchover(s, t_pause, t_paused, last_pages);
	/* The disks' last blocks: with the devices paused and flushed, nothing changes them. */
	if (s->disks.n)
		s->st->disk_dirty_blocks = disk_copy_collect(&s->disks);
	start_round(s, last_pages + s->st->disk_dirty_blocks * (DEV_TRACK_BLOCK / PAGE_SIZE));
	if (send_disks(s, false) < 0 || send_dirty_pages(s, s->dirty.bitmap, s->dirty.words) < 0)
		return -1;
	return commit(s, t_pause, t_paused);
}

/* --offline: the guest was paused before the migration began and the devices are now, so
 * memory cannot change: every populated page, once, with no dirty log and no rounds. */
static int offline_pages(struct source *s, uint64_t t_pause)
{
	s->stable = true;
	auto_compress_settle(&s->ac);
	start_round(s, round0_pages(s));
	uint64_t t_paused = clock_now_ns();
	if (send_disks(s, true) < 0 || send_allocated_pages(s) < 0)
		return -1;
	return commit(s, t_pause, t_paused);
}

/* The link failed, or the destination said something unexpected, once it may have started
 * the guest: nobody here can know whether it runs there, so it must not run here too. */
static int unknown_outcome(struct source *s, const char *after)
{
	s->outcome_unknown = true;
	s->st->error[0] = 0;
	return failf(s, "the connection failed after %s was sent, so the guest may be running on %s; it stays paused here: check 'hvctl list' there, then 'hvctl resume %s' here only if it does not run there",
		     after, s->p->uri, s->vm->name);
}

/* With WIRE_CAP_START_ON_STATE: END_OF_STATE is out, and the destination starts the guest
 * as soon as it has loaded it, then says STARTED: half a round trip of downtime, not one
 * and a half. Only its ABORT (it did not start the guest) lets the guest resume here. */
static int await_started(struct source *s, uint64_t t_pause, uint64_t t_paused, uint64_t t_pages,
			 uint64_t t_state)
{
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	struct wire_started started;
	char perr[256];

	s->committed = true;
	channel_set_recv_timeout(s->fd, STARTED_TIMEOUT_MS);
	int r = wire_recv(&s->conn, &buf, &rec);
	if (r == 0 && rec.hdr.type == WIRE_ABORT) {
		s->committed = false;
		return fail_aborted(s, &buf, &rec, "loading the state");
	}
	if (r < 0 || rec.hdr.type != WIRE_STARTED ||
	    wire_parse_started(rec.payload, rec.len, &started, perr, sizeof(perr)) < 0) {
		wire_buf_free(&buf);
		s->peer_gone = true;
		return unknown_outcome(s, "the state");
	}
	wire_buf_free(&buf);
	/* The guest started there when STARTED left, half the answer's round trip before it
	 * arrived: the wait less the destination's own time is that round trip. */
	double wait_ms = (double)(clock_now_ns() - t_state) / 1e6, load_ms = started.load_us / 1000.0;
	double half_rtt_ms = wait_ms > load_ms ? (wait_ms - load_ms) / 2 : 0;
	struct migrate_switchover *sw = &s->st->switchover;
	*sw = (struct migrate_switchover){
		.valid = true,
		.pause_ms = (double)(t_paused - t_pause) / 1e6,
		.last_pages_ms = (double)(t_pages - t_paused) / 1e6,
		.state_ms = (double)(t_state - t_pages) / 1e6,
		.load_ms = half_rtt_ms + load_ms,
		.confirm_ms = half_rtt_ms,
		.last_pages = s->st->round_done_pages - s->round_disk_pages,
	};
	s->st->downtime_ms = sw->pause_ms + sw->last_pages_ms + sw->state_ms + sw->load_ms;
	return 0;
}

/* The state after the last pages, then either STARTED (await_started) or the destination's
 * ACK and COMMIT. */
static int commit(struct source *s, uint64_t t_pause, uint64_t t_paused)
{
	uint64_t t_pages = clock_now_ns();
	/* The last moment a cancel is honoured when END_OF_STATE lets the destination start. */
	if (s->start_on_state && atomic_load(s->cancel))
		return failf(s, "migration cancelled");
	if (send_state(s) < 0)
		return -1;
	uint64_t t_state = clock_now_ns();
	if (s->start_on_state)
		return await_started(s, t_pause, t_paused, t_pages, t_state);
	if (wait_ack(s, "waiting for the destination to load the state", ACK_TIMEOUT_MS) < 0)
		return -1;
	uint64_t t_ack = clock_now_ns();
	struct migrate_switchover *sw = &s->st->switchover;
	*sw = (struct migrate_switchover){
		.valid = true,
		.pause_ms = (double)(t_paused - t_pause) / 1e6,
		.last_pages_ms = (double)(t_pages - t_paused) / 1e6,
		.state_ms = (double)(t_state - t_pages) / 1e6,
		.load_ms = (double)(t_ack - t_state) / 1e6,
		.last_pages = s->st->round_done_pages - s->round_disk_pages,
	};
	if (atomic_load(s->cancel))
		return failf(s, "migration cancelled");
	int r = wire_send(&s->conn, WIRE_COMMIT, NULL, 0);
	if (r < 0)
		return fail_wire(s, r, "sending commit");
	uint64_t t_commit = clock_now_ns();
	s->st->downtime_ms = (double)(t_commit - t_pause) / 1e6;
	s->committed = true;
	/* The destination confirms COMMIT before it runs the guest. Without that confirmation
	 * nobody here can know whether the guest runs there: it must not run here too. */
	if (wait_ack(s, "waiting for the destination to confirm the commit", ACK_TIMEOUT_MS) < 0)
		return unknown_outcome(s, "COMMIT");
	sw->confirm_ms = (double)(clock_now_ns() - t_commit) / 1e6;
	return 0;
}

/* Post-copy: the dirty set goes as DISCARD ranges instead of pages, then the state; the
 * guest starts there (STARTED) and its pages follow, those it touches first. A failure after
 * STARTED loses the guest: its memory is split between the hosts. */
static int discard_ranges(struct source *s)
{
	struct wire_range *r = malloc(WIRE_DISCARD_MAX * sizeof(*r));
	uint32_t n = 0;
	int rc = 0;

	if (!r)
		return failf(s, "out of memory");
	for (uint64_t g = 0; g < s->st->ram_pages && rc == 0;) {
		if (!(s->dirty.bitmap[g / 64] >> (g % 64) & 1)) {
			g++;
			continue;
		}
		uint64_t end = g;
		while (end < s->st->ram_pages && (s->dirty.bitmap[end / 64] >> (end % 64) & 1))
			end++;
		r[n++] = (struct wire_range){ g, end - g };
		if (n == WIRE_DISCARD_MAX) {
			rc = wire_send_discard(&s->conn, r, n);
			n = 0;
		}
		g = end;
	}
	if (rc == 0 && n)
		rc = wire_send_discard(&s->conn, r, n);
	free(r);
	return rc < 0 ? fail_wire(s, rc, "sending the post-copy page list") : 0;
}

static int pc_queue(void *opaque, uint64_t gfn)
{
	return queue_page(opaque, gfn);
}

static int pc_flush(void *opaque)
{
	return flush_batch(opaque);
}

static int postcopy_switchover(struct source *s, uint64_t t_pause, uint64_t t_paused, uint64_t pages)
{
	struct migrate_stats *st = s->st;

	if (discard_ranges(s) < 0)
		return -1;
	uint64_t t_pages = clock_now_ns();
	if (atomic_load(s->cancel))
		return failf(s, "migration cancelled");
	if (send_state(s) < 0)
		return -1;
	if (await_started(s, t_pause, t_paused, t_pages, clock_now_ns()) < 0)
		return -1;
	st->switchover.last_pages = 0;
	st->phase = MIGRATE_PHASE_POSTCOPY;
	st->postcopy_pages = pages;
	start_round(s, pages);
	report(s);
	uint64_t t0 = clock_now_ns();
	struct postcopy_src pc = { .conn = &s->conn, .needed = s->dirty.bitmap, .npages = st->ram_pages,
				   .left = pages, .queue = pc_queue, .flush = pc_flush, .opaque = s };
	channel_set_recv_timeout(s->fd, SEND_TIMEOUT_MS);
	int r = postcopy_src_run(&pc, ACK_TIMEOUT_MS);
	st->postcopy_requests = pc.requests;
	st->postcopy_requested_pages = pc.requested_pages;
	st->postcopy_ms = (double)(clock_now_ns() - t0) / 1e6;
	if (r < 0 && !pc.left) {
		/* Every page went out; only the confirmation is missing: it most likely runs there. */
		char cause[sizeof(st->error)];
		snprintf(cause, sizeof(cause), "%s", pc.err[0] ? pc.err : st->error);
		st->error[0] = 0;
		s->outcome_unknown = true;
		s->peer_gone = true;
		return failf(s, "post-copy sent every page to %s but its confirmation did not come (%s): the guest "
			     "most likely runs there; this copy is stale and stays paused: check 'hvctl list' there",
			     s->p->uri, cause);
	}
	if (r < 0) {
		/* Neither copy can run: the one there lacks pages, this one is stale. */
		s->postcopy_lost = true;
		s->peer_gone = true;
		char cause[sizeof(st->error)];
		snprintf(cause, sizeof(cause), "%s", pc.err[0] ? pc.err : st->error);
		st->error[0] = 0;
		return failf(s, "post-copy failed after the guest started on %s (%s) with %llu of its pages still here; "
			     "it cannot continue on either host: the destination stops it, and this copy is stale "
			     "(it stays paused: do not resume it)",
			     s->p->uri, cause, (unsigned long long)pc.left);
	}
	return 0;
}

void migrate_params_default(struct migrate_params *p)
{
	memset(p, 0, sizeof(*p));
	p->downtime_ms = MIGRATE_DEFAULT_DOWNTIME_MS;
	p->max_rounds = MIGRATE_DEFAULT_MAX_ROUNDS;
	p->compress = MIGRATE_COMPRESS_AUTO;
	p->on_timeout = MIGRATE_ON_TIMEOUT_FORCE;
	p->max_throttle_pct = MIGRATE_DEFAULT_MAX_THROTTLE;
}

const char *migrate_phase_name(enum migrate_phase p)
{
	switch (p) {
	case MIGRATE_PHASE_CONNECT: return "connect";
	case MIGRATE_PHASE_PRECOPY: return "precopy";
	case MIGRATE_PHASE_SWITCHOVER: return "switchover";
	case MIGRATE_PHASE_POSTCOPY: return "postcopy";
	case MIGRATE_PHASE_DONE: return "done";
	case MIGRATE_PHASE_FAILED: return "failed";
	}
	return "?";
}

/* TLS on the connection when the caller asked for it: the destination is authenticated
 * before a byte of the VM leaves. Plain TCP otherwise. */
static int secure_channel(struct source *s)
{
	const struct tls_options *o = &s->p->tls;
	char host[256], port[16], err[300];

	snprintf(s->st->security, sizeof(s->st->security), "none");
	if (!tls_options_any(o)) {
		wire_conn_init_fd(&s->conn, s->fd);
		return 0;
	}
	s->peer_gone = true; /* until the handshake is done, nothing can be told to the peer */
	if (channel_parse_hostport(s->p->uri, host, sizeof(host), port, sizeof(port), err, sizeof(err)) < 0)
		return failf(s, "%s", err);
	s->tls_ctx = tls_context_new(o, TLS_CLIENT, err, sizeof(err));
	if (!s->tls_ctx)
		return failf(s, "%s", err);
	s->tls = tls_handshake(s->tls_ctx, s->fd, o->server_name[0] ? o->server_name : host,
			       deadline_in_ms(TLS_SOURCE_WAIT_MS), err, sizeof(err));
	if (!s->tls)
		return failf(s, "%s", err);
	s->peer_gone = false;
	tls_session_conn(s->tls, &s->conn);
	tls_session_describe(s->tls, s->st->security, sizeof(s->st->security));
	return 0;
}

/* hvctl save: the offline path (the guest paused, memory once, then the state) into a
 * snapshot file; the file gets its name only once all of it is on disk. */
static int save_to_file(struct source *s)
{
	struct vm *vm = s->vm;
	struct snapshot_header h = { .created = (uint64_t)time(NULL), .mem_size = vm->mem.size,
				     .vcpus = (uint32_t)vm->ncpus };

	s->peer_gone = true; /* nobody to send an ABORT to */
	snprintf(h.name, sizeof(h.name), "%s", vm->name);
	if (snapshot_create(&s->snap, s->p->uri + strlen(SNAPSHOT_URI_PREFIX), &h, s->st->error,
			    sizeof(s->st->error)) < 0)
		return -1;
	s->fd = s->snap.fd;
	wire_conn_init_fd(&s->conn, s->fd);
	snprintf(s->st->security, sizeof(s->st->security), "none");
	report(s);
	if (handshake(s) < 0)
		return -1;
	if (s->p->live) {
		/* As a live migration: rounds while the guest runs, paused only for the last. */
		if (dirty_start(&s->dirty, vm, s->p->dirty_clear) < 0)
			return failf(s, "cannot start dirty logging: %s", hv_last_error());
		s->dirty_on = true;
		if (precopy(s) < 0)
			return -1;
	}
	if (switchover(s) < 0)
		return -1;
	/* Everything is in the page cache: the guest need not wait for the disk. */
	if (!s->p->stop) {
		dev_registry_resume(&s->m->devs);
		s->devices_paused = false;
		if (s->paused_by_us)
			vm_resume(vm);
		s->paused_by_us = false;
	}
	s->snap.fd = s->fd;
	return snapshot_commit(&s->snap, s->st->error, sizeof(s->st->error));
}

int migrate_source(struct machine *m, const struct migrate_params *p, atomic_bool *cancel,
		   migrate_progress_fn progress, void *opaque, struct migrate_stats *st)
{
	struct vm *vm = &m->vm;
	struct source s = { .m = m, .vm = vm, .p = p, .cancel = cancel, .progress = progress,
			    .opaque = opaque, .st = st, .fd = -1, .limit_ms = p->downtime_ms };
	int r = -1;

	memset(st, 0, sizeof(*st));
	st->phase = MIGRATE_PHASE_CONNECT;
	st->ram_pages = guest_mem_pages(&vm->mem);
	s.t0 = s.bw_t0 = s.round_t0 = clock_now_ns();
	auto_compress_init(&s.ac, p->compress);
	if (page_codec_enc_init(&s.enc) < 0) {
		failf(&s, "out of memory for the page encoder");
		goto out;
	}
	if (vm_get_state(vm) != VM_RUNNING && vm_get_state(vm) != VM_PAUSED) {
		failf(&s, "VM '%s' is %s, not running or paused", vm->name, vm_state_name(vm_get_state(vm)));
		goto out;
	}
	s.to_file = !strncmp(p->uri, SNAPSHOT_URI_PREFIX, strlen(SNAPSHOT_URI_PREFIX));
	if (p->postcopy_after && (s.to_file || p->offline || p->storage_copy)) {
		failf(&s, "--postcopy moves a running guest's memory to another host: not with %s",
		      s.to_file ? "a snapshot file" : p->offline ? "--offline" : "--storage copy");
		goto out;
	}
	if (s.to_file && p->storage_copy) {
		failf(&s, "a snapshot does not carry the disks: copy the images beside it instead");
		goto out;
	}
	if (s.to_file) {
		r = save_to_file(&s);
		goto out;
	}
	if (p->offline && vm_get_state(vm) != VM_PAUSED) {
		failf(&s, "--offline moves a paused VM and '%s' is running: 'hvctl pause %s' first, or migrate it live (without --offline)",
		      vm->name, vm->name);
		goto out;
	}
	if (p->storage_copy) {
		/* Tracking first: every write from here on is seen. */
		s.disks.sink = disk_sink;
		s.disks.sink_opaque = &s;
		hv_clear_error();
		if (disk_copy_src_start(&s.disks, &m->devs, NULL) < 0) {
			failf(&s, "%s", hv_last_error());
			goto out;
		}
		if (!s.disks.n) {
			failf(&s, "--storage copy: VM '%s' has no disk", vm->name);
			goto out;
		}
	}
	s.fd = channel_connect(p->uri, 10000, st->error, sizeof(st->error));
	if (s.fd < 0) {
		s.peer_gone = true;
		goto out;
	}
	channel_set_send_timeout(s.fd, SEND_TIMEOUT_MS);
	if (secure_channel(&s) < 0)
		goto out;
	report(&s);
	if (handshake(&s) < 0)
		goto out;
	if (!p->offline && check_limit(&s) < 0)
		goto out;
	if (start_pool(&s) < 0)
		goto out;
	if (p->offline) {
		if (switchover(&s) < 0)
			goto out;
	} else {
		if (dirty_start(&s.dirty, vm, p->dirty_clear) < 0) {
			failf(&s, "cannot start dirty logging: %s", hv_last_error());
			goto out;
		}
		s.dirty_on = true;
		if (precopy(&s) < 0 || switchover(&s) < 0)
			goto out;
	}
	r = 0;
out:
	/* Whatever happened, the guest gets its full speed back (here, if it runs here). */
	if (st->throttle_pct) {
		vm_throttle_set(vm, 0);
		st->throttle_pct = 0;
	}
	if (s.to_file) {
		if (r < 0)
			snapshot_discard(&s.snap);
		if (s.dirty_on)
			dirty_stop(&s.dirty);
		/* Saved or not, the VM goes on as it was, unless asked to stop once saved. */
		if (s.devices_paused && (r < 0 || !p->stop))
			dev_registry_resume(&m->devs);
		if (s.paused_by_us && (r < 0 || !p->stop))
			vm_resume(vm);
		s.fd = -1; /* closed by snapshot_commit or snapshot_discard */
		st->phase = r < 0 ? MIGRATE_PHASE_FAILED : MIGRATE_PHASE_DONE;
	} else if (r < 0 && s.postcopy_lost) {
		/* Stale here, partial there: it stays paused, devices too, for an operator. */
		dirty_stop(&s.dirty);
		st->phase = MIGRATE_PHASE_FAILED;
		st->postcopy_lost = true;
	} else if (r < 0 && s.outcome_unknown) {
		dirty_stop(&s.dirty);
		/* The vCPUs stay paused; the devices may serve what the paused guest queued, so
		 * that a later 'hvctl resume' finds them working. */
		dev_registry_resume(&m->devs);
		st->phase = MIGRATE_PHASE_FAILED;
		st->outcome_unknown = true;
	} else if (r < 0) {
		if (s.fd >= 0 && !s.peer_gone)
			wire_send_abort(&s.conn, atomic_load(cancel) ? WIRE_ABORT_CANCELLED : WIRE_ABORT_GENERIC,
					st->error);
		if (s.dirty_on)
			dirty_stop(&s.dirty);
		if (s.devices_paused)
			dev_registry_resume(&m->devs);
		if (s.paused_by_us)
			vm_resume(vm);
		st->phase = MIGRATE_PHASE_FAILED;
	} else {
		dirty_stop(&s.dirty);
		st->phase = MIGRATE_PHASE_DONE;
	}
	if (s.pool_on)
		compress_pool_stop(&s.pool); /* before the guest's RAM can go away */
	fill_stats(&s); /* the final numbers; the caller reports the outcome */
	disk_copy_src_stop(&s.disks);
	tls_session_free(s.tls);
	tls_context_free(s.tls_ctx);
	if (s.fd >= 0)
		close(s.fd);
	page_codec_enc_fini(&s.enc);
	return r;
}
