/* hv-guest: CPL3 main on the BSP. Boot information, command line, memory, CPUs, then the
 * program selected by prog= (default hello). */
#include "bootinfo.h"
#include "cmdline.h"
#include "lapic.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "serial.h"
#include "smp.h"
#include "sys.h"
#include "time.h"

void kmain(void);

static const struct {
	const char *name;
	int (*run)(void);
} progs[] = {
	{ "hello", prog_hello },
	{ "memtouch", prog_memtouch },
	{ "smp", prog_smp },
	{ "fault", prog_fault },
	{ "memread", prog_memread },
	{ "cpuid", prog_cpuid },
	{ "blkcheck", prog_blkcheck },
	{ "blkbench", prog_blkbench },
	{ "netecho", prog_netecho },
	{ "netbench", prog_netbench },
	{ "virtq_hostile", prog_virtq_hostile },
};

void kmain(void)
{
	char name[32], val[16];

	serial_init();
	bootinfo_parse(&boot);
	cmdline_init(boot.cmdline);
	kprintf("hv-guest: boot=%s cmdline=\"%s\"\n", boot_mode_name(boot.mode), boot.cmdline);

	if (cmdline_get("lapic", val, sizeof(val)))
		lapic_use_syscall = strcmp(val, "syscall") == 0;
	uint64_t hz = param_uint("hv-guest", "hz", TIMER_HZ_BOOT);
	if (hz < 1 || hz > TIMER_HZ_MAX) {
		kprintf("hv-guest: bad parameter hz=%lu (1 to %d ticks per second)\n", hz, TIMER_HZ_MAX);
		guest_exit(EXIT_BADPARAM);
	}
	if (hz != TIMER_HZ_BOOT)
		timer_set_hz(hz);
	mem_init(&boot);
	smp_init();
	kprintf("hv-guest: cpus=%d (%s; mptable %d, madt %d) ram=%luMiB free=%luMiB heap=0x%lx\n",
		smp_ncpus, smp_source, smp_found_mptable, smp_found_madt, mem_ram_bytes() / MiB,
		mem_free_bytes() / MiB, mem_heap_start());

	if (!cmdline_get("prog", name, sizeof(name)) || !name[0])
		memcpy(name, "hello", 6);
	for (unsigned i = 0; i < ARRAY_SIZE(progs); i++)
		if (strcmp(name, progs[i].name) == 0)
			guest_exit(progs[i].run());
	kprintf("hv-guest: bad parameter prog=%s (hello, memtouch, smp, fault, memread, blkcheck, blkbench, netecho, netbench, virtq_hostile)\n", name);
	guest_exit(EXIT_BADPARAM);
}
