/* Firmware-style tables hv writes for the guest: the e820 map and the Intel MP table. */
#ifndef HV_X86_TABLES_H
#define HV_X86_TABLES_H

#include <stdint.h>

#include "hv/guest_mem.h"

#define E820_RAM 1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX 8

/* Fills `out` (at least E820_MAX entries) with the map for `m`; returns the count. */
int e820_build(const struct guest_mem *m, struct e820_entry *out);

/* Writes an MP floating pointer and configuration table (CPUs with APIC IDs 0..ncpus-1,
 * ISA bus, IOAPIC, ISA IRQ routing) at MPTABLE_ADDR. 0 or -1. */
int mptable_write(struct guest_mem *m, int ncpus);

#endif
