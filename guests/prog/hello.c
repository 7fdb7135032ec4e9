/* hv-guest: prog=hello. Prints a greeting and what the guest found, exits 0.
 * secs=N keeps the guest alive and idle (sleeping in hlt) for N seconds first, with a line
 * `hello: tick=<t>` every second: an idle guest for migration tests. */
#include "bootinfo.h"
#include "cmdline.h"
#include "lapic.h"
#include "layout.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "smp.h"
#include "sys.h"
#include "time.h"

int prog_hello(void)
{
	uint64_t secs = param_uint("hello", "secs", 0);

	kprintf("hello from hv-guest\n");
	kprintf("hello: cpus=%d ram=%luMiB boot=%s apic_id=%u\n", smp_ncpus,
		mem_ram_bytes() / MiB, boot_mode_name(boot.mode), lapic_id());
	kprintf("READY\n");
	uint64_t start = ticks, next = start + timer_hz;
	while (secs && ticks - start < secs * timer_hz) {
		sys_wait();
		if (ticks >= next) {
			kprintf("hello: tick=%lu\n", ticks);
			next += timer_hz;
		}
	}
	return EXIT_OK;
}
