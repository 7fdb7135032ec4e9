/* Post-copy on the destination (postcopy_dst.h). */
#include "migrate/postcopy_dst.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/guest_mem.h"
#include "hv/log.h"
#include "migrate/page_codec.h"
#include "migrate/wire.h"

#define PAGE PAGE_CODEC_PAGE_SIZE
#define IDLE_TIMEOUT_MS 60000 /* the source pushes all the time: silence this long, it is gone */

static bool test_bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void set_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static void clear_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~(1ull << (i % 64));
}

int postcopy_dst_open(struct postcopy_dst *p, struct guest_mem *mem, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->uffd = -1;
	p->mem = mem;
	p->npages = guest_mem_pages(mem);
	if (mem->backend == GUEST_MEM_HUGETLB)
		return hv_errf(err, errlen, "this host cannot take a post-copy migration: its RAM for the guest is on "
				       "huge pages (--mem-backend hugetlb), which cannot be filled 4 KiB at a time; "
				       "receive with anon or memfd, or migrate without --postcopy");
	p->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API };
	if (p->uffd < 0 || ioctl(p->uffd, UFFDIO_API, &api) < 0) {
		int e = errno;
		postcopy_dst_close(p);
		return hv_errf(err, errlen, "this host cannot take a post-copy migration: no userfaultfd (%s); it "
				       "needs root or vm.unprivileged_userfaultfd=1; migrate without --postcopy",
			       strerror(e));
	}
	size_t words = (p->npages + 63) / 64;
	p->needed = calloc(words, sizeof(uint64_t));
	p->requested = calloc(words, sizeof(uint64_t));
	p->scratch = aligned_alloc(PAGE, (size_t)PAGE_CODEC_MAX_PAGES * PAGE);
	if (!p->needed || !p->requested || !p->scratch) {
		postcopy_dst_close(p);
		return hv_errf(err, errlen, "out of memory for post-copy");
	}
	return 0;
}

int postcopy_dst_discard(struct postcopy_dst *p, const uint8_t *entries, uint32_t n, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gfn = wire_get_u64(entries + 16 * i), np = wire_get_u64(entries + 16 * i + 8);
		/* Ascending and disjoint, across records too: a page announced twice is a damaged
		 * stream, and the count must match what arrives. */
		uint64_t from = p->discard_end;
		if (np == 0 || gfn >= p->npages || np > p->npages - gfn || gfn < from)
			return hv_errf(err, errlen, "stream corrupt: DISCARD range %u (page 0x%llx, %llu pages) is not inside RAM "
					       "(%llu pages) after the last one",
				       i, (unsigned long long)gfn, (unsigned long long)np, (unsigned long long)p->npages);
		for (uint64_t g = gfn; g < gfn + np; g++)
			set_bit(p->needed, g);
		p->discarded += np;
		p->discard_end = gfn + np;
	}
	return 0;
}

int postcopy_dst_arm(struct postcopy_dst *p, char *err, size_t errlen)
{
	struct guest_mem *mem = p->mem;
	/* A shared memfd keeps a page in its file until it is removed; private anon memory drops
	 * it with the mapping. Either way the next touch is a missing-page fault. */
	int advice = mem->backend == GUEST_MEM_MEMFD ? MADV_REMOVE : MADV_DONTNEED;

	for (uint64_t g = 0; g < p->npages;) {
		if (!test_bit(p->needed, g)) {
			g++;
			continue;
		}
		uint64_t end = g;
		while (end < p->npages && test_bit(p->needed, end))
			end++;
		if (madvise(mem->host + g * PAGE, (end - g) * PAGE, advice) < 0)
			return hv_errf(err, errlen, "cannot drop the stale pages for post-copy: %s", strerror(errno));
		g = end;
	}
	struct uffdio_register reg = { .range = { .start = (uintptr_t)mem->host, .len = mem->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)
		return hv_errf(err, errlen, "cannot register guest RAM with userfaultfd: %s", strerror(errno));
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY)))
		return hv_errf(err, errlen, "userfaultfd cannot fill this guest RAM (no UFFDIO_COPY)");
	p->armed = true;
	return 0;
}

/* Fills page gfn from data and wakes whoever waits for it. A page already present (a race
 * with a fault we just answered) is left as it is. */
static int place(struct postcopy_dst *p, uint64_t gfn, const uint8_t *data)
{
	struct uffdio_copy cp = { .dst = (uintptr_t)(p->mem->host + gfn * PAGE), .src = (uintptr_t)data, .len = PAGE };

	while (ioctl(p->uffd, UFFDIO_COPY, &cp) < 0) {
		if (errno == EEXIST)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		cp.copy = 0;
	}
	return 0;
}

static uint8_t *scratch_ptr(void *opaque, uint64_t gfn)
{
	struct postcopy_dst *p = opaque;

	if (p->nscratch >= PAGE_CODEC_MAX_PAGES)
		return NULL;
	p->scratch_gfn[p->nscratch] = gfn;
	return p->scratch + (size_t)p->nscratch++ * PAGE;
}

/* Every fault waiting: a page still to come is asked for (once); any other page was never
 * written by anyone and is zero. */
static int serve_faults(struct postcopy_dst *p, struct wire_conn *c, char *err, size_t errlen)
{
	static const uint8_t zero[PAGE] __attribute__((aligned(PAGE)));
	uint64_t ask[WIRE_REQUEST_MAX];
	uint32_t nask = 0;
	struct uffd_msg msg[16];
	ssize_t r;

	while ((r = read(p->uffd, msg, sizeof(msg))) > 0) {
		for (size_t i = 0; i < (size_t)r / sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msg[i].arg.pagefault.address & ~(uint64_t)(PAGE - 1);
			if (addr < (uintptr_t)p->mem->host || addr - (uintptr_t)p->mem->host >= p->mem->size)
				continue;
			uint64_t gfn = (addr - (uintptr_t)p->mem->host) / PAGE;
			p->faults++;
			if (!test_bit(p->needed, gfn)) {
				p->zero_faults++;
				if (place(p, gfn, zero) < 0)
					return hv_errf(err, errlen, "cannot place a zero page: %s", strerror(errno));
				continue;
			}
			if (test_bit(p->requested, gfn))
				continue;
			set_bit(p->requested, gfn);
			ask[nask++] = gfn;
			if (nask == WIRE_REQUEST_MAX) {
				if (wire_send_page_request(c, ask, nask) < 0)
					return hv_errf(err, errlen, "asking the source for pages: %s", c->err);
				p->requests++;
				nask = 0;
			}
		}
	}
	if (r < 0 && errno != EAGAIN)
		return hv_errf(err, errlen, "reading guest page faults: %s", strerror(errno));
	if (nask) {
		if (wire_send_page_request(c, ask, nask) < 0)
			return hv_errf(err, errlen, "asking the source for pages: %s", c->err);
		p->requests++;
	}
	return 0;
}

/* One record of the post-copy phase. 1 when it was POSTCOPY_DONE, 0 for another, -1. */
static int receive_record(struct postcopy_dst *p, struct wire_conn *c, struct page_codec_dec *dec,
			  struct wire_order *order, char *err, size_t errlen)
{
	struct wire_rx rx;
	uint8_t small[WIRE_PROGRESS_SIZE + WIRE_ERROR_MAX + 8];
	int r = wire_recv_hdr(c, &rx);

	if (r < 0)
		return hv_errf(err, errlen, "the connection to the source failed: %s",
			       c->err[0] ? c->err : wire_strerror(r));
	if (wire_order_check(order, rx.hdr.type) < 0)
		return hv_errf(err, errlen, "stream corrupt: %s record out of order at byte %llu",
			       wire_type_name(rx.hdr.type), (unsigned long long)rx.offset);
	if (rx.hdr.type == WIRE_PAGES) {
		p->nscratch = 0;
		r = page_codec_recv(dec, c, &rx, p->npages, scratch_ptr, p);
		if (r < 0)
			return hv_errf(err, errlen, "receiving pages: %s", c->err);
		for (unsigned i = 0; i < p->nscratch; i++) {
			uint64_t gfn = p->scratch_gfn[i];
			if (!test_bit(p->needed, gfn))
				return hv_errf(err, errlen, "stream corrupt: page 0x%llx arrived twice or unannounced",
					       (unsigned long long)gfn);
			if ((r = place(p, gfn, p->scratch + (size_t)i * PAGE)) < 0)
				return hv_errf(err, errlen, "cannot place page 0x%llx: %s", (unsigned long long)gfn,
					       strerror(-r));
			clear_bit(p->needed, gfn);
			clear_bit(p->requested, gfn);
			p->placed++;
		}
		return 0;
	}
	if (rx.hdr.length > sizeof(small))
		return hv_errf(err, errlen, "stream corrupt: %s record of %u bytes", wire_type_name(rx.hdr.type),
			       rx.hdr.length);
	r = wire_recv_payload(c, &rx, small, rx.hdr.length);
	if (r >= 0)
		r = wire_recv_end(c, &rx);
	if (r < 0)
		return hv_errf(err, errlen, "the connection to the source failed: %s", c->err);
	if (rx.hdr.type == WIRE_ABORT) {
		struct wire_abort a;
		if (wire_parse_abort(small, rx.hdr.length, &a, NULL, 0) == 0)
			return hv_errf(err, errlen, "the source gave up: %s", a.reason);
		return hv_errf(err, errlen, "the source gave up");
	}
	if (rx.hdr.type != WIRE_POSTCOPY_DONE)
		return 0; /* PROGRESS: the source's numbers, not needed here */
	if (p->placed != p->discarded)
		return hv_errf(err, errlen, "the source says it sent everything, but %llu of %llu pages never arrived",
			       (unsigned long long)(p->discarded - p->placed), (unsigned long long)p->discarded);
	if (wire_send(c, WIRE_ACK, NULL, 0) < 0)
		hv_warn("could not confirm the end of post-copy to the source (%s); the guest has all its memory",
			c->err);
	return 1;
}

int postcopy_dst_run(struct postcopy_dst *p, struct wire_conn *c, struct page_codec_dec *dec, char *err,
		     size_t errlen)
{
	struct wire_order order = { .phase = WIRE_PHASE_POSTCOPY };
	uint64_t last = clock_now_ns();

	for (;;) {
		struct pollfd pf[2] = { { .fd = p->uffd, .events = POLLIN }, { .fd = c->fd, .events = POLLIN } };
		bool buffered = c->ops->pending && c->ops->pending(c->opaque) > 0;
		int n = buffered ? 0 : poll(pf, 2, 1000);
		if (n < 0 && errno != EINTR)
			return hv_errf(err, errlen, "poll: %s", strerror(errno));
		if (pf[0].revents & POLLIN && serve_faults(p, c, err, errlen) < 0)
			return -1;
		if (buffered || pf[1].revents) {
			int r = receive_record(p, c, dec, &order, err, errlen);
			if (r < 0 && p->placed == p->discarded && p->discarded) {
				/* Every page is here; only the end of the stream was lost. */
				hv_warn("post-copy: %s after every page had arrived; the guest has all its memory", err);
				return 0;
			}
			if (r < 0)
				return -1;
			if (r == 1)
				return 0;
			last = clock_now_ns();
		} else if (clock_now_ns() - last > (uint64_t)IDLE_TIMEOUT_MS * 1000000) {
			return hv_errf(err, errlen, "the source sent nothing for %d s", IDLE_TIMEOUT_MS / 1000);
		}
	}
}

void postcopy_dst_close(struct postcopy_dst *p)
{
	if (p->armed) {
		struct uffdio_range range = { .start = (uintptr_t)p->mem->host, .len = p->mem->size };
		ioctl(p->uffd, UFFDIO_UNREGISTER, &range);
		p->armed = false;
	}
	if (p->uffd >= 0)
		close(p->uffd);
	p->uffd = -1;
	free(p->needed);
	free(p->requested);
	free(p->scratch);
	p->needed = p->requested = NULL;
	p->scratch = NULL;
}
