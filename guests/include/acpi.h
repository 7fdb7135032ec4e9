/* hv-guest: CPU discovery from the ACPI MADT (QEMU's SeaBIOS MP table lists only the
 * first CPU of each package, so on QEMU the MADT is the complete list). */
#ifndef HVG_ACPI_H
#define HVG_ACPI_H

#include <stdint.h>

/* Fills apic_ids with the enabled processors of the MADT, in table order. `rsdp` is the
 * loader's hint (0: search the EBDA and 0xE0000-0xFFFFF). Returns the count, 0 if none. */
int acpi_cpus(uint64_t rsdp, uint8_t *apic_ids, int max);

#endif
