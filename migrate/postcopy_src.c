/* Post-copy on the source (postcopy_src.h). */
#include "migrate/postcopy_src.h"

#include <linux/sockios.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "hv/clock.h"
#include "hv/log.h"
#include "migrate/channel.h"
#include "migrate/wire.h"

/* The first needed page at or after `from`, wrapping around; there must be one. */
static uint64_t next_needed(const struct postcopy_src *p, uint64_t from)
{
	uint64_t words = (p->npages + 63) / 64;

	for (uint64_t n = 0; n <= words; n++) {
		uint64_t w = (from / 64 + n) % words;
		uint64_t bits = p->needed[w];
		if (n == 0)
			bits &= ~0ull << (from % 64);
		if (bits)
			return w * 64 + (uint64_t)__builtin_ctzll(bits);
	}
	return 0; /* not reached while p->left */
}

static bool needed(const struct postcopy_src *p, uint64_t gfn)
{
	return gfn < p->npages && (p->needed[gfn / 64] >> (gfn % 64) & 1);
}

static int take(struct postcopy_src *p, uint64_t gfn)
{
	p->needed[gfn / 64] &= ~(1ull << (gfn % 64));
	p->left--;
	return p->queue(p->opaque, gfn);
}

/* One record from the destination: PAGE_REQUEST (its pages and their runs go now, and the
 * push continues after the last), or ABORT. */
static int serve_request(struct postcopy_src *p, uint64_t *cursor)
{
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	const uint8_t *entries;
	uint32_t n;
	char e[200];
	int r = wire_recv(p->conn, &buf, &rec);

	if (r < 0) {
		hv_errf(p->err, sizeof(p->err), "the connection to the destination failed: %s",
			p->conn->err[0] ? p->conn->err : wire_strerror(r));
		goto fail;
	}
	if (rec.hdr.type == WIRE_ABORT) {
		struct wire_abort a;
		if (wire_parse_abort(rec.payload, rec.len, &a, NULL, 0) == 0)
			hv_errf(p->err, sizeof(p->err), "the destination gave up: %s", a.reason);
		else
			hv_errf(p->err, sizeof(p->err), "the destination gave up");
		goto fail;
	}
	if (rec.hdr.type != WIRE_PAGE_REQUEST || wire_parse_page_request(rec.payload, rec.len, &n, &entries, e, sizeof(e)) < 0) {
		hv_errf(p->err, sizeof(p->err), "the destination sent %s during post-copy", wire_type_name(rec.hdr.type));
		goto fail;
	}
	p->requests++;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gfn = wire_get_u64(entries + 8 * i);
		/* Already sent (the push got there first), or not a page of ours: nothing to do. */
		for (uint64_t g = gfn; g < gfn + POSTCOPY_REQUEST_RUN && needed(p, g); g++) {
			if (take(p, g) < 0)
				goto fail;
			p->requested_pages++;
			*cursor = g + 1;
		}
	}
	wire_buf_free(&buf);
	return p->flush(p->opaque);
fail:
	wire_buf_free(&buf);
	return -1;
}

static int await_ack(struct postcopy_src *p, int timeout_ms)
{
	struct wire_buf buf = { 0 };
	struct wire_record rec;
	int r;

	channel_set_recv_timeout(p->conn->fd, timeout_ms);
	/* Requests sent before the last pages arrived there may still come: they are answered. */
	while ((r = wire_recv(p->conn, &buf, &rec)) == 0 && rec.hdr.type == WIRE_PAGE_REQUEST)
		;
	wire_buf_free(&buf);
	if (r < 0)
		return hv_errf(p->err, sizeof(p->err), "waiting for the destination's confirmation: %s",
			       p->conn->err[0] ? p->conn->err : wire_strerror(r));
	if (rec.hdr.type != WIRE_ACK)
		return hv_errf(p->err, sizeof(p->err), "the destination sent %s instead of its confirmation",
			       wire_type_name(rec.hdr.type));
	return 0;
}

/* Whether the socket holds so much not yet sent that more push would delay the next
 * requested page. Bytes in flight (sent, not acknowledged) do not count: they arrive anyway,
 * and counting them would cap the push at the queue over the round trip on a long link. */
static bool queue_full(const struct postcopy_src *p)
{
	int unsent;

	return ioctl(p->conn->fd, SIOCOUTQNSD, &unsent) == 0 && unsent > POSTCOPY_QUEUE_MAX;
}

int postcopy_src_run(struct postcopy_src *p, int ack_timeout_ms)
{
	uint64_t cursor = 0, sent = p->left, pushed_at = clock_now_ns();

	while (p->left) {
		while (p->left && wire_conn_readable(p->conn, 0))
			if (serve_request(p, &cursor) < 0)
				return -1;
		if (queue_full(p)) {
			/* Let the link drain a little, answering a request at once if one comes; a
			 * destination that reads nothing for as long as a send may block is gone. */
			if (clock_now_ns() - pushed_at > (uint64_t)POSTCOPY_STALL_MS * 1000000)
				return hv_errf(p->err, sizeof(p->err), "the destination stopped reading for %d s",
					       POSTCOPY_STALL_MS / 1000);
			if (wire_conn_readable(p->conn, 1) && serve_request(p, &cursor) < 0)
				return -1;
			continue;
		}
		pushed_at = clock_now_ns();
		for (unsigned n = 0; n < WIRE_PAGES_MAX && p->left; n++) {
			uint64_t gfn = next_needed(p, cursor % p->npages);
			cursor = gfn + 1;
			if (take(p, gfn) < 0)
				return -1;
		}
		if (p->flush(p->opaque) < 0)
			return -1;
	}
	uint8_t done[WIRE_POSTCOPY_DONE_SIZE];
	wire_put_u64(done, sent);
	if (wire_send(p->conn, WIRE_POSTCOPY_DONE, done, sizeof(done)) < 0)
		return hv_errf(p->err, sizeof(p->err), "sending the end of post-copy: %s", p->conn->err);
	return await_ack(p, ack_timeout_ms);
}
