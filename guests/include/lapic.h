/* hv-guest: local APIC access from CPL3 (xAPIC MMIO or the int3 system call). */
#ifndef HVG_LAPIC_H
#define HVG_LAPIC_H

#include <stdint.h>

extern int lapic_use_syscall; /* 0: MMIO directly at CPL3; 1: through SYS_LAPIC_RD/WR */

uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
uint32_t lapic_id(void);
/* Sends an IPI (ICR low value `lo`) to `apic_id`, after the previous one is delivered. */
void lapic_ipi(uint32_t apic_id, uint32_t lo);

#endif
