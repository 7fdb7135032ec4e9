/* hv-guest: prog=memread. Reads all free RAM (every 64-bit word), a given number of times,
 * and prints how long each read took: the guest-side cost of memory it has never touched
 * (at boot) or that a migration left untouched (after a delay that spans the migration).
 * Parameters: delay=SECS (wait before the first read, 0), reads=N (1), gap=SECS (between
 * reads, 1). One line per read:
 *   memread: read=<k> bytes=<n> us=<t> rate=<MiB/s> sum=<hex>
 * then exit 0. */
#include "cmdline.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"

/* Waits `secs` seconds of guest ticks, idle. */
static void wait_secs(uint64_t secs)
{
	uint64_t until = ticks + secs * timer_hz;

	while (ticks < until)
		sys_wait();
}

/* The sum keeps the compiler from dropping the loads, and shows whether RAM read as zero. */
static uint64_t read_all(const volatile uint64_t *p, uint64_t words)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < words; i++)
		sum += p[i];
	return sum;
}

int prog_memread(void)
{
	const char *me = "memread";
	uint64_t delay = param_uint(me, "delay", 0);
	uint64_t reads = param_uint(me, "reads", 1);
	uint64_t gap = param_uint(me, "gap", 1);
	uint64_t bytes = mem_free_bytes() & ~(2 * MiB - 1);
	uint64_t base = bytes ? mem_alloc(bytes, 2 * MiB) : 0;

	/* Aligning the start to 2 MiB may cost up to 2 MiB of the region. */
	if (!base && bytes > 2 * MiB) {
		bytes -= 2 * MiB;
		base = mem_alloc(bytes, 2 * MiB);
	}

	if (!base) {
		kprintf("%s: less than 2 MiB of RAM is free\n", me);
		return EXIT_BADPARAM;
	}
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	kprintf("%s: bytes=%lu base=0x%lx delay=%lu reads=%lu\n", me, bytes, base, delay, reads);
	kprintf("READY\n");
	wait_secs(delay);
	for (uint64_t k = 1; k <= reads; k++) {
		uint64_t t0 = rdtsc();
		uint64_t sum = read_all((const volatile uint64_t *)base, bytes / 8);
		uint64_t us = tsc_to_us(rdtsc() - t0);
		kprintf("%s: read=%lu bytes=%lu us=%lu rate=%lu sum=0x%lx\n", me, k, bytes, us,
			us ? bytes / MiB * 1000000 / us : 0, sum);
		if (k < reads)
			wait_secs(gap);
	}
	return EXIT_OK;
}
