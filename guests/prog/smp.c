/* hv-guest: prog=smp. One memtouch worker per CPU on separate regions of one working
 * set (CPU c owns pages [c*n, (c+1)*n)). Parameters: ws=SIZE per CPU (16M), rate=MiB/s
 * per CPU, secs=N, fill=full|stamp, inject=PAGE (test hook, as memtouch; PAGE indexes the
 * whole working set). The BSP prints every 10 ticks:
 *   smp: tick=<t> cpus=<n> pages=<c0>,<c1>,... maxgap_us=<us> */
#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "smp.h"
#include "sys.h"
#include "time.h"
#include "touch.h"

#define HEARTBEAT_TICKS (timer_hz / 10) /* 10 heartbeats a second */

static struct touch workers[MAX_CPUS];
static volatile int go;
static char line[64 + MAX_CPUS * 22];

static void worker(int cpu)
{
	while (!go)
		cpu_relax();
	gap_start(&workers[cpu].gap);
	for (;;)
		touch_step(&workers[cpu]);
}

static void heartbeat(int n, uint64_t now)
{
	int len = ksnprintf(line, sizeof(line), "smp: tick=%lu cpus=%d pages=", now, n);
	uint64_t gap = 0;

	for (int c = 0; c < n && len < (int)sizeof(line); c++)
		len += ksnprintf(line + len, sizeof(line) - (size_t)len, c ? ",%lu" : "%lu",
				 workers[c].pages);
	for (int c = 0; c < n; c++) {
		uint64_t g = gap_take(&workers[c].gap);
		if (g > gap)
			gap = g;
	}
	kprintf("%s maxgap_us=%lu\n", line, tsc_to_us(gap));
}

int prog_smp(void)
{
	const char *me = "smp";
	uint64_t ws = param_size(me, "ws", 16 * MiB);
	uint64_t rate = param_uint(me, "rate", 0);
	uint64_t secs = param_uint(me, "secs", 0);
	int full = touch_param_fill(me);
	uint64_t inject = param_uint(me, "inject", UINT64_MAX);
	uint64_t npages = ws / PAGE_SIZE;
	int ncpus = smp_ncpus;

	if (!npages) {
		kprintf("%s: bad parameter ws=%lu: less than one page\n", me, ws);
		return EXIT_BADPARAM;
	}
	uint64_t need = (uint64_t)ncpus * (npages * PAGE_SIZE + USTACK_SIZE) + 2 * MiB;
	if (need > mem_free_bytes()) {
		kprintf("%s: bad parameter ws=%luMiB: %d CPUs need %luMiB, only %luMiB is free\n",
			me, ws / MiB, ncpus, need / MiB, mem_free_bytes() / MiB);
		return EXIT_BADPARAM;
	}
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	int n = smp_start(worker);
	if (n != ncpus) {
		kprintf("%s: only %d of %d CPUs started\n", me, n, ncpus);
		return EXIT_PLATFORM;
	}
	uint64_t base = mem_alloc((uint64_t)n * npages * PAGE_SIZE, 2 * MiB);
	if (!base)
		base = mem_alloc((uint64_t)n * npages * PAGE_SIZE, PAGE_SIZE);
	if (!base) {
		kprintf("%s: out of memory for %d x %luMiB\n", me, n, ws / MiB);
		return EXIT_BADPARAM;
	}
	for (int c = 0; c < n; c++)
		touch_init(&workers[c], base + (uint64_t)c * npages * PAGE_SIZE, npages,
			   (uint64_t)c * npages, full, c, rate);
	serial_gap = &workers[0].gap;
	kprintf("%s: ws=%lu pages=%lu per cpu fill=%s rate=%lu secs=%lu base=0x%lx tsc_khz=%lu\n",
		me, npages * PAGE_SIZE, npages, full ? "full" : "stamp", rate, secs, base,
		tsc_per_ms);

	uint64_t start = ticks, next = start + HEARTBEAT_TICKS;
	for (int c = 0; c < n; c++)
		workers[c].rate_t0 = start;
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	kprintf("READY cpus=%d\n", n);
	gap_start(&workers[0].gap);
	for (;;) {
		uint64_t now = ticks;
		if (now >= next) {
			heartbeat(n, now);
			next = now - next >= HEARTBEAT_TICKS ? now + HEARTBEAT_TICKS
							    : next + HEARTBEAT_TICKS;
		}
		if (secs && now - start >= secs * timer_hz)
			break;
		if (inject != UINT64_MAX && workers[0].gen >= 2) {
			int c = (int)(inject / npages);
			if (c < n) {
				kprintf("%s: injecting a bit flip into page %lu (cpu %d)\n", me, inject, c);
				touch_inject(&workers[c], inject);
			}
			inject = UINT64_MAX;
		}
		touch_step(&workers[0]);
	}
	uint64_t worst = 0;
	for (int c = 0; c < n; c++) {
		gap_take(&workers[c].gap);
		if (workers[c].gap.max_all > worst)
			worst = workers[c].gap.max_all;
	}
	kprintf("%s: done tick=%lu cpus=%d worstgap_us=%lu\n", me, ticks, n, tsc_to_us(worst));
	return EXIT_OK;
}
