/* hv-guest: prog=blkbench. Throughput of the first virtio-blk disk from the guest:
 * sequential write and read of a span, then random 4 KiB reads inside it.
 *
 * Parameters: span=SIZE (default 64M, at most the disk), bs=SIZE (sequential request
 * size, 4K-1M, default 256K), qd=N (requests in flight, 1-64, default 16), secs=N
 * (seconds of random reads, default 2), write=0|1 (default 1; 0 on a read-only disk:
 * the sequential write is skipped), disk=N.
 * Output: blkbench: seq_write_mbs=<MB/s> seq_read_mbs=<MB/s> rand_read_iops=<IOPS>
 * (MB = 10^6 bytes; times from the TSC). */
#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"
#include "virtio_blk.h"

static const char *me = "blkbench";
static struct vblk blk;

static void io_failed(const char *op, uint8_t st)
{
	kprintf("%s: I/O error op=%s status=%s\n", me, op, vblk_status_name(st));
	guest_exit(EXIT_DEVICE);
}

/* Waits for one completion and takes every other one that is ready as well; returns the
 * mask of the slots (cookies) that completed and adds their number to *n. */
static uint64_t reap(const char *op, uint64_t *n)
{
	uint64_t cookie, mask = 0;
	uint8_t st = vblk_wait(&blk, &cookie, 10);

	do {
		if (st != VBLK_S_OK)
			io_failed(op, st);
		mask |= 1ULL << cookie;
		(*n)++;
	} while (vblk_poll(&blk, &cookie, &st) > 0);
	return mask;
}

/* Sequential pass over [0, span) in bs requests, qd in flight; TSC cycles taken. */
static uint64_t sequential(uint32_t type, uint8_t *buf, uint64_t span, uint64_t bs, uint64_t qd)
{
	const char *op = type == VBLK_T_OUT ? "write" : "read";
	uint64_t off = 0, t0 = rdtsc();
	uint64_t free_mask = qd >= 64 ? ~0ULL : (1ULL << qd) - 1;

	while (off < span || blk.inflight) {
		int sub = 0;
		while (off < span && free_mask) {
			int slot = __builtin_ctzll(free_mask);
			uint64_t n = span - off < bs ? span - off : bs;
			if (vblk_submit(&blk, type, off / VBLK_SECTOR, buf + (uint64_t)slot * bs,
					(uint32_t)n, (uint64_t)slot) < 0)
				break;
			free_mask &= ~(1ULL << slot);
			off += n;
			sub = 1;
		}
		if (sub)
			vblk_kick(&blk);
		uint64_t n_done = 0;
		free_mask |= reap(op, &n_done);
	}
	if (type == VBLK_T_OUT && blk.flush) {
		uint8_t st = vblk_io(&blk, VBLK_T_FLUSH, 0, NULL, 0);
		if (st != VBLK_S_OK)
			io_failed("flush", st);
	}
	return rdtsc() - t0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int prog_blkbench(void)
{
	uint64_t disk = param_uint(me, "disk", 0);
	uint64_t span = param_size(me, "span", 64 * MiB);
	uint64_t bs = param_size(me, "bs", 256 * 1024);
	uint64_t qd = param_uint(me, "qd", 16);
	uint64_t secs = param_uint(me, "secs", 2);
	uint64_t do_write = param_uint(me, "write", 1);

	if (bs < 4096 || bs > VBLK_MAX_IO || bs % 4096) {
		kprintf("%s: bad parameter bs=%lu: a multiple of 4K from 4K to 1M\n", me, bs);
		return EXIT_BADPARAM;
	}
	if (qd < 1 || qd > VBLK_MAX_INFLIGHT) {
		kprintf("%s: bad parameter qd=%lu: 1 to %d\n", me, qd, VBLK_MAX_INFLIGHT);
		return EXIT_BADPARAM;
	}
	int rc = vblk_init(&blk, (int)disk);
	if (rc == -1) {
		kprintf("%s: no virtio-blk disk %lu (attach one with hvctl run --disk IMAGE)\n", me, disk);
		return EXIT_BADPARAM;
	}
	if (rc < 0)
		return EXIT_DEVICE;
	uint64_t disk_bytes = blk.capacity * VBLK_SECTOR;
	if (span > disk_bytes)
		span = disk_bytes;
	span = ALIGN_DOWN(span, 4096);
	if (span < 4096) {
		kprintf("%s: the disk is smaller than 4 KiB\n", me);
		return EXIT_BADPARAM;
	}
	if (blk.ro)
		do_write = 0;
	uint8_t *buf = (uint8_t *)(uintptr_t)mem_alloc(qd * bs, PAGE_SIZE);
	if (!buf) {
		kprintf("%s: out of memory for %lu KiB of buffers\n", me, qd * bs / 1024);
		return EXIT_BADPARAM;
	}
	for (uint64_t i = 0; i < qd * bs / 8; i++)
		((uint64_t *)buf)[i] = i * 0x9e3779b97f4a7c15ULL;
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	kprintf("%s: disk=00:%02x.0 span=%lu bs=%lu qd=%lu secs=%lu write=%lu tsc_khz=%lu\n", me,
		blk.dev.pci.slot, span, bs, qd, secs, do_write, tsc_per_ms);
	kprintf("READY\n");

	uint64_t wmbs = 0, rmbs = 0;
	if (do_write) {
		uint64_t us = tsc_to_us(sequential(VBLK_T_OUT, buf, span, bs, qd));
		wmbs = us ? span / us : 0;
		kprintf("%s: seq_write bytes=%lu us=%lu\n", me, span, us);
	}
	uint64_t us = tsc_to_us(sequential(VBLK_T_IN, buf, span, bs, qd));
	rmbs = us ? span / us : 0;
	kprintf("%s: seq_read bytes=%lu us=%lu\n", me, span, us);

	/* Random 4 KiB reads, qd in flight, for secs seconds. */
	uint64_t blocks = span / 4096, seed = 0x2545f4914f6cdd1dULL, ios = 0;
	uint64_t t0 = rdtsc(), end = ticks + secs * timer_hz;
	uint64_t free_mask = qd >= 64 ? ~0ULL : (1ULL << qd) - 1;
	uint64_t kicks0 = blk.dev.vq[0].kicks, supp0 = blk.dev.vq[0].kicks_suppressed;
	while (secs && (ticks < end || blk.inflight)) {
		int sub = 0;
		while (ticks < end && free_mask) {
			int slot = __builtin_ctzll(free_mask);
			uint64_t b = xorshift(&seed) % blocks;
			if (vblk_submit(&blk, VBLK_T_IN, b * 8, buf + (uint64_t)slot * bs, 4096,
					(uint64_t)slot) < 0)
				break;
			free_mask &= ~(1ULL << slot);
			sub = 1;
		}
		if (sub)
			vblk_kick(&blk);
		if (!blk.inflight)
			break;
		free_mask |= reap("read", &ios);
	}
	us = tsc_to_us(rdtsc() - t0);
	uint64_t iops = us ? ios * 1000000 / us : 0;
	kprintf("%s: rand_read ios=%lu us=%lu kicks=%lu suppressed=%lu\n", me, ios, us,
		blk.dev.vq[0].kicks - kicks0, blk.dev.vq[0].kicks_suppressed - supp0);
	kprintf("%s: seq_write_mbs=%lu seq_read_mbs=%lu rand_read_iops=%lu\n", me, wmbs, rmbs, iops);
	return EXIT_OK;
}
