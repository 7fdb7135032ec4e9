/* hv-guest: Intel MultiProcessor Specification table (CPU discovery). */
#ifndef HVG_MPTABLE_H
#define HVG_MPTABLE_H

#include <stdint.h>

/* Fills apic_ids with the enabled processors, BSP first. Returns the count, or 0 if
 * there is no (valid) MP table. */
int mptable_cpus(uint8_t *apic_ids, int max);

#endif
