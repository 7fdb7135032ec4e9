/* hv-guest: prog=hello. Prints a greeting and what the guest found, exits 0. */
#include "bootinfo.h"
#include "lapic.h"
#include "layout.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "smp.h"

int prog_hello(void)
{
	kprintf("hello from hv-guest\n");
	kprintf("hello: cpus=%d ram=%luMiB boot=%s apic_id=%u\n", smp_ncpus,
		mem_ram_bytes() / MiB, boot_mode_name(boot.mode), lapic_id());
	kprintf("READY\n");
	return EXIT_OK;
}
