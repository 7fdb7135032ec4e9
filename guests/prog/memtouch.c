/* hv-guest: prog=memtouch. One self-verifying working set on the BSP (see touch.h).
 * Parameters: ws=SIZE (64M), rate=MiB/s (0 = unlimited), secs=N (0 = forever),
 * fill=full|stamp, inject=PAGE (test hook: flip a bit in PAGE after the first sweep),
 * sweeps=N (stop writing after N sweeps and idle in hlt: a filled, quiet guest).
 * Heartbeat every 10 ticks (100 ms):
 *   memtouch: tick=<t> gen=<g> pages=<n> rate=<MiB/s> maxgap_us=<us> */
#include "cmdline.h"
#include "layout.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"
#include "touch.h"

#define HEARTBEAT_TICKS (timer_hz / 10) /* 10 heartbeats a second */

static struct touch mt;

/* Allocates `bytes` (2 MiB-aligned if it fits, else page-aligned); 0 if it does not fit. */
static uint64_t alloc_ws(uint64_t bytes)
{
	uint64_t p = mem_alloc(bytes, 2 * MiB);

	return p ? p : mem_alloc(bytes, PAGE_SIZE);
}

int prog_memtouch(void)
{
	const char *me = "memtouch";
	uint64_t ws = param_size(me, "ws", 64 * MiB);
	uint64_t rate = param_uint(me, "rate", 0);
	uint64_t secs = param_uint(me, "secs", 0);
	int full = touch_param_fill(me);
	uint64_t inject = param_uint(me, "inject", UINT64_MAX);
	uint64_t sweeps = param_uint(me, "sweeps", 0);
	uint64_t npages = ws / PAGE_SIZE;

	if (!npages) {
		kprintf("%s: bad parameter ws=%lu: less than one page\n", me, ws);
		return EXIT_BADPARAM;
	}
	uint64_t base = alloc_ws(npages * PAGE_SIZE);
	if (!base) {
		kprintf("%s: bad parameter ws=%luMiB: only %luMiB of RAM is free\n", me, ws / MiB,
			mem_free_bytes() / MiB);
		return EXIT_BADPARAM;
	}
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	touch_init(&mt, base, npages, 0, full, -1, rate);
	serial_gap = &mt.gap;
	kprintf("%s: ws=%lu pages=%lu fill=%s rate=%lu secs=%lu base=0x%lx tsc_khz=%lu\n", me,
		npages * PAGE_SIZE, npages, full ? "full" : "stamp", rate, secs, base, tsc_per_ms);
	kprintf("READY\n");

	uint64_t start = ticks, next = start + HEARTBEAT_TICKS;
	uint64_t last_tick = start, last_pages = 0;
	mt.rate_t0 = start;
	gap_start(&mt.gap);
	for (;;) {
		uint64_t now = ticks;
		if (now >= next) {
			uint64_t pages = mt.pages, dt = now - last_tick;
			uint64_t mibps = (pages - last_pages) * timer_hz / (256 * dt);
			kprintf("%s: tick=%lu gen=%lu pages=%lu rate=%lu maxgap_us=%lu\n", me, now,
				mt.gen, pages, mibps, tsc_to_us(gap_take(&mt.gap)));
			last_tick = now;
			last_pages = pages;
			next = now - next >= HEARTBEAT_TICKS ? now + HEARTBEAT_TICKS
							    : next + HEARTBEAT_TICKS;
		}
		if (secs && now - start >= secs * timer_hz)
			break;
		if (inject != UINT64_MAX && mt.gen >= 2) {
			kprintf("%s: injecting a bit flip into page %lu\n", me, inject);
			touch_inject(&mt, inject);
			inject = UINT64_MAX;
		}
		if (sweeps && mt.gen > sweeps) {
			/* Idle: progress is waking up for each tick, so a gap is time not running. */
			sys_wait();
			gap_mark(&mt.gap);
			continue;
		}
		touch_step(&mt);
	}
	gap_take(&mt.gap);
	kprintf("%s: done tick=%lu gen=%lu pages=%lu worstgap_us=%lu\n", me, ticks, mt.gen,
		mt.pages, tsc_to_us(mt.gap.max_all));
	return EXIT_OK;
}
