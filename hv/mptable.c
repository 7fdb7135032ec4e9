/* Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its CPUs,
 * its IOAPIC and the routing of ISA interrupts.
 *
 * MPTABLE_ADDR:       MP floating pointer structure ("_MP_", 16 bytes)
 * MPTABLE_ADDR + 16:  MP configuration table ("PCMP" header, then the entries)
 *
 * Linux scans 0xF0000-0xFFFFF for "_MP_"; the e820 map keeps that range reserved. */
#include "hv/x86_tables.h"

#include <stdlib.h>
#include <string.h>

#include "hv/layout.h"
#include "hv/log.h"

#define MPF_SIZE 16
#define MPC_HDR_SIZE 44
#define MPC_CPU_SIZE 20
#define MPC_SHORT_SIZE 8 /* bus, IOAPIC, I/O and local interrupt entries */

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02
#define MP_APIC_VERSION 0x14   /* integrated local APIC */
#define MP_IOAPIC_VERSION 0x11 /* what KVM's in-kernel IOAPIC reports */
#define MP_IOAPIC_ENABLED 0x01
/* Family 6, model 15, stepping 1; FPU (bit 0) and APIC (bit 9) in the feature flags.
 * Linux only looks at the APIC ids and flags; the rest just has to be plausible. */
#define MP_CPU_SIGNATURE 0x6f1
#define MP_CPU_FEATURES ((1u << 0) | (1u << 9))
#define ISA_IRQS 16
#define MP_MAX_CPUS 254 /* APIC ids are 8 bits, 0xff is broadcast, the IOAPIC takes one */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0x100 - sum);
}

static size_t mptable_size(int ncpus)
{
	return MPF_SIZE + MPC_HDR_SIZE + (size_t)ncpus * MPC_CPU_SIZE +
	       (1 /* bus */ + 1 /* IOAPIC */ + (ISA_IRQS - 1) + 2 /* LINT0, LINT1 */) *
		       MPC_SHORT_SIZE;
}

static uint8_t *add_short(uint8_t *p, uint8_t type, uint8_t a, uint16_t flags, uint8_t bus,
			  uint8_t irq, uint8_t dst_id, uint8_t dst_pin)
{
	p[0] = type;
	p[1] = a;
	put16(p + 2, flags);
	p[4] = bus;
	p[5] = irq;
	p[6] = dst_id;
	p[7] = dst_pin;
	return p + MPC_SHORT_SIZE;
}

int mptable_write(struct guest_mem *m, int ncpus)
{
	const uint8_t ioapic_id = (uint8_t)ncpus;
	const uint8_t isa_bus = 0;
	uint8_t *buf, *mpf, *mpc, *p;
	size_t size;
	uint16_t count = 0;
	int ret;

	if (ncpus < 1 || ncpus > MP_MAX_CPUS) {
		hv_error("MP table: %d vCPUs requested; hv supports 1 to %d", ncpus, MP_MAX_CPUS);
		return -1;
	}
	size = mptable_size(ncpus);
	if (MPTABLE_ADDR + size > BIOS_END) {
		hv_error("MP table for %d vCPUs (%zu bytes) does not fit below 1 MiB; use fewer "
			 "vCPUs", ncpus, size);
		return -1;
	}
	buf = calloc(1, size);
	if (!buf) {
		hv_error("MP table: out of memory");
		return -1;
	}
	mpf = buf;
	mpc = buf + MPF_SIZE;
	p = mpc + MPC_HDR_SIZE;

	for (int i = 0; i < ncpus; i++, count++) {
		p[0] = MP_PROCESSOR;
		p[1] = (uint8_t)i; /* local APIC id */
		p[2] = MP_APIC_VERSION;
		p[3] = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0);
		put32(p + 4, MP_CPU_SIGNATURE);
		put32(p + 8, MP_CPU_FEATURES);
		p += MPC_CPU_SIZE;
	}

	p[0] = MP_BUS;
	p[1] = isa_bus;
	memcpy(p + 2, "ISA   ", 6);
	p += MPC_SHORT_SIZE;
	count++;

	p[0] = MP_IOAPIC;
	p[1] = ioapic_id;
	p[2] = MP_IOAPIC_VERSION;
	p[3] = MP_IOAPIC_ENABLED;
	put32(p + 4, (uint32_t)IOAPIC_ADDR);
	p += MPC_SHORT_SIZE;
	count++;

	/* ISA IRQ n -> IOAPIC pin n, except the PIT's IRQ 0 on pin 2 (as on PC chipsets and
	 * KVM's in-kernel routing); IRQ 2 is the cascade and has no entry.
	 * Flags 0: polarity and trigger conform to the bus (ISA: active high, edge). */
	for (uint8_t irq = 0; irq < ISA_IRQS; irq++) {
		if (irq == 2)
			continue;
		p = add_short(p, MP_INTSRC, MP_INT, 0, isa_bus, irq, ioapic_id,
			      irq == 0 ? 2 : irq);
		count++;
	}

	/* The 8259 reaches every local APIC's LINT0 as ExtINT, NMI arrives on LINT1. */
	p = add_short(p, MP_LINTSRC, MP_EXTINT, 0, isa_bus, 0, 0xff, 0);
	p = add_short(p, MP_LINTSRC, MP_NMI, 0, isa_bus, 0, 0xff, 1);
	count += 2;

	memcpy(mpc, "PCMP", 4);
	put16(mpc + 4, (uint16_t)(p - mpc)); /* base table length */
	mpc[6] = 4;                           /* spec revision 1.4 */
	memcpy(mpc + 8, "HV      ", 8);
	memcpy(mpc + 16, "HV-VM       ", 12);
	put16(mpc + 34, count);
	put32(mpc + 36, (uint32_t)LAPIC_ADDR);
	mpc[7] = checksum(mpc, (size_t)(p - mpc));

	memcpy(mpf, "_MP_", 4);
	put32(mpf + 4, (uint32_t)(MPTABLE_ADDR + MPF_SIZE));
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = 4; /* spec revision 1.4 */
	mpf[10] = checksum(mpf, MPF_SIZE);

	ret = guest_mem_write(m, MPTABLE_ADDR, buf, size);
	free(buf);
	if (ret < 0) {
		hv_error("MP table: guest RAM does not cover 0x%llx-0x%llx; give the VM at least "
			 "2 MiB", (unsigned long long)MPTABLE_ADDR,
			 (unsigned long long)(MPTABLE_ADDR + size));
		return -1;
	}
	return 0;
}
