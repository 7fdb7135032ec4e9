/* hv-guest: prog=fault. Raises an exception at CPL3 on purpose, so that tests can check
 * the FATAL report and exit status 4. kind=pf (default: write to an unmapped address),
 * ud (ud2), gp (cli at CPL3), de (divide by zero). */
#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "print.h"
#include "progs.h"

int prog_fault(void)
{
	char kind[8] = "pf";

	cmdline_get("kind", kind, sizeof(kind));
	kprintf("fault: raising %s at CPL3\n", kind);
	if (strcmp(kind, "pf") == 0) {
		*(volatile uint64_t *)(uintptr_t)0x100000000000ULL = 1; /* above the 4 GiB map */
	} else if (strcmp(kind, "ud") == 0) {
		__asm__ volatile("ud2");
	} else if (strcmp(kind, "gp") == 0) {
		__asm__ volatile("cli");
	} else if (strcmp(kind, "de") == 0) {
		unsigned q, r;
		__asm__ volatile("divl %2" : "=a"(q), "=d"(r) : "r"(0), "a"(1), "d"(0));
		kprintf("fault: 1 / 0 = %u rem %u\n", q, r);
	} else {
		kprintf("fault: bad parameter kind=%s (pf, ud, gp, de)\n", kind);
		return EXIT_BADPARAM;
	}
	kprintf("fault: no exception was raised\n");
	return EXIT_OK;
}
