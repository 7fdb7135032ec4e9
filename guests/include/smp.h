/* hv-guest: CPU discovery (MP table, ACPI MADT) and AP startup (INIT-SIPI-SIPI). */
#ifndef HVG_SMP_H
#define HVG_SMP_H

#include <stdint.h>

#include "bootinfo.h"
#include "layout.h"

extern int smp_ncpus;                   /* CPUs found (1 if no table) */
extern const char *smp_source;          /* "mptable", "acpi" or "none" */
extern int smp_found_mptable, smp_found_madt; /* CPUs listed by each source */
extern uint8_t smp_apic_id[MAX_CPUS];   /* index 0 is the BSP */

void smp_init(void);
/* Starts every AP; each runs fn(cpu) at CPL3 on its own stack. Returns the number of
 * CPUs running (BSP included); prints a line for each AP that did not start. */
int smp_start(void (*fn)(int cpu));

#endif
