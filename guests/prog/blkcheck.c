/* hv-guest: prog=blkcheck. A self-verifying disk workload on the first virtio-blk disk.
 *
 * Each pass p writes generation g = p into every 4 KiB block [0, blocks), flushes, then
 * reads every block back and verifies it. Block b at generation g (64-bit little-endian
 * words; the memtouch page format with fill=full and the block number as page index):
 *   word 0 = b, word 1 = g,
 *   word w (2..511) = mix64(mix64(b * 0x9e3779b97f4a7c15 + mix64(g)) + w * 0xd1b54a32d192ed03)
 * After `blkcheck: done gen=<g>` every block [0, blocks) of the disk holds generation g,
 * which a host-side checker (tests/tools/blkverify.c) recomputes.
 *
 * Parameters: blocks=N (default: the whole disk), passes=N (default 2; 0 = until secs),
 * secs=N (start no new pass after N seconds; 0 = no limit), chunk=N (blocks per request,
 * 1-256, default 64), qd=N (requests in flight, 1-64, default 8), verify=G (only read and
 * verify generation G, write nothing), disk=N (which virtio-blk disk, default 0),
 * ws=SIZE (also keep a self-verifying memory working set of SIZE dirty, memtouch's page
 * format, one page between polls of the disk; default 0 = none).
 * Heartbeat once a second:
 *   blkcheck: pass=<p> blocks=<n> written=<w> verified=<v> maxlat_us=<us>[ mem_gen=<g> mem_pages=<n>]
 * maxlat_us is the longest wait for a completion since the last heartbeat (the I/O stall the
 * guest saw); the done line ends with worstlat_us, the longest of the whole run. */
#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"
#include "touch.h"
#include "virtio_blk.h"

#define BLOCK 4096
#define WORDS (BLOCK / 8)
#define SECTORS_PER_BLOCK (BLOCK / VBLK_SECTOR)
#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xd1b54a32d192ed03ULL

static const char *me = "blkcheck";
static struct vblk blk;
static struct touch mt; /* the memory working set (ws=), npages 0 when off */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static void fill_block(uint64_t *p, uint64_t b, uint64_t g)
{
	uint64_t seed = mix64(b * K1 + mix64(g));

	p[0] = b;
	p[1] = g;
	for (unsigned w = 2; w < WORDS; w++)
		p[w] = mix64(seed + w * K2);
}

static void check_block(const uint64_t *p, uint64_t b, uint64_t g)
{
	uint64_t seed = mix64(b * K1 + mix64(g));

	for (unsigned w = 0; w < WORDS; w++) {
		uint64_t exp = w == 0 ? b : w == 1 ? g : mix64(seed + w * K2);
		if (p[w] != exp) {
			kprintf("CORRUPT block=%lu gen=%lu word=%u found=0x%016lx expected=0x%016lx\n",
				b, g, w, p[w], exp);
			guest_exit(EXIT_CORRUPT);
		}
	}
}

static void io_failed(const char *op, uint64_t block, uint8_t st)
{
	kprintf("%s: I/O error op=%s block=%lu status=%s\n", me, op, block, vblk_status_name(st));
	guest_exit(EXIT_DEVICE);
}

struct run {
	uint64_t blocks, chunk, qd;
	uint8_t *buf;        /* qd buffers of chunk blocks */
	uint64_t written, verified;
	uint64_t pass;
	uint64_t next_beat;
	uint64_t busy_tsc[2]; /* time spent in write / read phases */
	uint64_t maxlat, worstlat; /* longest wait for a completion (TSC): window, whole run */
};

static void heartbeat(struct run *r, int force)
{
	if (!force && ticks < r->next_beat)
		return;
	char memline[64] = "";

	if (mt.npages)
		ksnprintf(memline, sizeof(memline), " mem_gen=%lu mem_pages=%lu", mt.gen, mt.pages);
	kprintf("%s: pass=%lu blocks=%lu written=%lu verified=%lu maxlat_us=%lu%s\n", me, r->pass,
		r->blocks, r->written, r->verified, tsc_to_us(r->maxlat), memline);
	r->maxlat = 0;
	r->next_beat = ticks + timer_hz;
}

/* Waits for one completion, dirtying a page of the memory working set between polls when
 * there is one; the wait counts toward maxlat. */
static uint8_t wait_one(struct run *r, uint64_t *cookie)
{
	uint64_t t0 = rdtsc();
	uint8_t st;

	if (mt.npages) {
		uint64_t tick0 = ticks;
		int got;
		/* vblk_wait's checks, now and then: the device's status and a 10 s limit. */
		for (uint64_t n = 1; (got = vblk_poll(&blk, cookie, &st)) == 0; n++) {
			touch_step(&mt);
			if (n & 0x3ff)
				continue;
			if (virtio_status(&blk.dev) & VIRTIO_S_NEEDS_RESET) {
				got = -1;
				break;
			}
			if (ticks - tick0 > 10 * timer_hz) {
				st = VBLK_S_TIMEOUT;
				break;
			}
		}
		if (got < 0)
			st = VBLK_S_BROKEN;
	} else {
		st = vblk_wait(&blk, cookie, 10);
	}
	uint64_t dt = rdtsc() - t0;
	if (dt > r->maxlat)
		r->maxlat = dt;
	if (dt > r->worstlat)
		r->worstlat = dt;
	return st;
}

/* One phase over all blocks: write generation g, or read and verify it. Keeps up to qd
 * requests of up to chunk blocks in flight. */
static void phase(struct run *r, uint64_t g, int write)
{
	uint64_t next = 0, done = 0;
	uint64_t free_mask = r->qd >= 64 ? ~0ULL : (1ULL << r->qd) - 1;
	uint64_t t0 = rdtsc();

	while (done < r->blocks) {
		int submitted = 0;
		while (next < r->blocks && free_mask) {
			int slot = __builtin_ctzll(free_mask);
			uint64_t n = r->blocks - next < r->chunk ? r->blocks - next : r->chunk;
			uint8_t *buf = r->buf + (uint64_t)slot * r->chunk * BLOCK;
			if (write)
				for (uint64_t k = 0; k < n; k++)
					fill_block((uint64_t *)(buf + k * BLOCK), next + k, g);
			if (vblk_submit(&blk, write ? VBLK_T_OUT : VBLK_T_IN, next * SECTORS_PER_BLOCK,
					buf, (uint32_t)(n * BLOCK), next << 8 | (uint64_t)slot) < 0)
				break;
			free_mask &= ~(1ULL << slot);
			next += n;
			submitted = 1;
		}
		if (submitted)
			vblk_kick(&blk);
		/* Wait for one completion, then take every other one that is ready too. */
		uint64_t cookie;
		uint8_t st = wait_one(r, &cookie);
		do {
			uint64_t start = cookie >> 8;
			int slot = (int)(cookie & 0xff);
			if (st != VBLK_S_OK)
				io_failed(write ? "write" : "read", start, st);
			uint64_t n = r->blocks - start < r->chunk ? r->blocks - start : r->chunk;
			if (!write) {
				uint8_t *buf = r->buf + (uint64_t)slot * r->chunk * BLOCK;
				for (uint64_t k = 0; k < n; k++)
					check_block((const uint64_t *)(buf + k * BLOCK), start + k, g);
				r->verified += n;
			} else {
				r->written += n;
			}
			done += n;
			free_mask |= 1ULL << slot;
		} while (vblk_poll(&blk, &cookie, &st) > 0);
		heartbeat(r, 0);
	}
	r->busy_tsc[write ? 0 : 1] += rdtsc() - t0;
}

/* Read-only disk: the device must refuse a write and leave the block as it was. */
static int probe_read_only(uint8_t *buf)
{
	uint8_t *before = buf, *after = buf + BLOCK, *stamp = buf + 2 * BLOCK;

	kprintf("%s: disk is read-only (VIRTIO_BLK_F_RO); probing a write to block 0\n", me);
	uint8_t st = vblk_io(&blk, VBLK_T_IN, 0, before, BLOCK);
	if (st != VBLK_S_OK)
		io_failed("read", 0, st);
	fill_block((uint64_t *)stamp, 0, 1);
	st = vblk_io(&blk, VBLK_T_OUT, 0, stamp, BLOCK);
	if (st == VBLK_S_OK) {
		kprintf("%s: a write to the read-only disk succeeded\n", me);
		return EXIT_CORRUPT;
	}
	kprintf("%s: write refused status=%s\n", me, vblk_status_name(st));
	if (st != VBLK_S_IOERR)
		return EXIT_DEVICE;
	st = vblk_io(&blk, VBLK_T_IN, 0, after, BLOCK);
	if (st != VBLK_S_OK)
		io_failed("read", 0, st);
	if (memcmp(before, after, BLOCK)) {
		kprintf("%s: block 0 changed although the write was refused\n", me);
		return EXIT_CORRUPT;
	}
	kprintf("%s: block 0 unchanged\n", me);
	return EXIT_DEVICE;
}

static uint64_t mbs(uint64_t bytes, uint64_t cycles)
{
	uint64_t us = tsc_to_us(cycles);
	return us ? bytes / us : 0; /* bytes per us = MB/s */
}

int prog_blkcheck(void)
{
	uint64_t disk = param_uint(me, "disk", 0);
	uint64_t secs = param_uint(me, "secs", 0);
	uint64_t passes = param_uint(me, "passes", secs ? 0 : 2);
	uint64_t chunk = param_uint(me, "chunk", 64);
	uint64_t qd = param_uint(me, "qd", 8);
	uint64_t verify = param_uint(me, "verify", 0);
	uint64_t ws = param_size(me, "ws", 0);
	int verify_only = verify != 0;

	if (chunk < 1 || chunk > VBLK_MAX_IO / BLOCK) {
		kprintf("%s: bad parameter chunk=%lu: 1 to %u blocks\n", me, chunk, VBLK_MAX_IO / BLOCK);
		return EXIT_BADPARAM;
	}
	if (qd < 1 || qd > VBLK_MAX_INFLIGHT) {
		kprintf("%s: bad parameter qd=%lu: 1 to %d\n", me, qd, VBLK_MAX_INFLIGHT);
		return EXIT_BADPARAM;
	}
	int rc = vblk_init(&blk, (int)disk);
	if (rc == -1) {
		kprintf("%s: no virtio-blk disk %lu (attach one with hvctl run --disk IMAGE)\n", me, disk);
		pci_print();
		return EXIT_BADPARAM;
	}
	if (rc < 0)
		return EXIT_DEVICE;
	uint64_t max_blocks = blk.capacity / SECTORS_PER_BLOCK;
	uint64_t blocks = param_uint(me, "blocks", max_blocks);
	if (!blocks || blocks > max_blocks) {
		kprintf("%s: bad parameter blocks=%lu: the disk has %lu blocks of 4 KiB\n", me, blocks,
			max_blocks);
		return EXIT_BADPARAM;
	}
	uint64_t bufbytes = qd * chunk * BLOCK;
	uint8_t *buf = (uint8_t *)(uintptr_t)mem_alloc(bufbytes < 3 * BLOCK ? 3 * BLOCK : bufbytes,
						      PAGE_SIZE);
	if (!buf) {
		kprintf("%s: out of memory for %lu KiB of buffers\n", me, bufbytes / 1024);
		return EXIT_BADPARAM;
	}
	uint64_t wsbase = 0;
	if (ws) {
		if (ws >= PAGE_SIZE && !(wsbase = mem_alloc(ws / PAGE_SIZE * PAGE_SIZE, 2 * MiB)))
			wsbase = mem_alloc(ws / PAGE_SIZE * PAGE_SIZE, PAGE_SIZE);
		if (!wsbase) {
			kprintf("%s: bad parameter ws=%lu: 4 KiB to the %lu MiB of RAM that is free\n",
				me, ws, mem_free_bytes() / MiB);
			return EXIT_BADPARAM;
		}
	}
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	if (ws)
		touch_init(&mt, wsbase, ws / PAGE_SIZE, 0, 1, -1, 0);
	kprintf("%s: disk=00:%02x.0 bar=0x%lx capacity=%lu blocks=%lu passes=%lu secs=%lu chunk=%lu qd=%lu ro=%d flush=%d ws=%lu%s\n",
		me, blk.dev.pci.slot, (uint64_t)(uintptr_t)blk.dev.common, blk.capacity, blocks, passes, secs, chunk, qd, blk.ro, blk.flush,
		ws / PAGE_SIZE * PAGE_SIZE, verify_only ? " verify-only" : "");
	kprintf("READY\n");
	if (blk.ro && !verify_only)
		return probe_read_only(buf);

	struct run r = { .blocks = blocks, .chunk = chunk, .qd = qd, .buf = buf,
			 .next_beat = ticks + timer_hz };
	if (verify_only) {
		r.pass = 1;
		phase(&r, verify, 0);
		heartbeat(&r, 1);
		kprintf("%s: done gen=%lu blocks=%lu read_mbs=%lu worstlat_us=%lu\n", me, verify,
			blocks, mbs(r.verified * BLOCK, r.busy_tsc[1]), tsc_to_us(r.worstlat));
		return EXIT_OK;
	}
	uint64_t start = ticks, g = 0;
	for (uint64_t p = 1; !passes || p <= passes; p++) {
		if (secs && ticks - start >= secs * timer_hz)
			break;
		r.pass = p;
		g = p;
		phase(&r, g, 1);
		if (blk.flush) {
			uint8_t st = vblk_io(&blk, VBLK_T_FLUSH, 0, NULL, 0);
			if (st != VBLK_S_OK)
				io_failed("flush", 0, st);
		}
		phase(&r, g, 0);
		heartbeat(&r, 1);
	}
	kprintf("%s: done gen=%lu blocks=%lu write_mbs=%lu read_mbs=%lu worstlat_us=%lu\n", me, g,
		blocks, mbs(r.written * BLOCK, r.busy_tsc[0]), mbs(r.verified * BLOCK, r.busy_tsc[1]),
		tsc_to_us(r.worstlat));
	return EXIT_OK;
}
