/* hv-guest: local APIC access from CPL3. The xAPIC page is identity-mapped and
 * user-accessible, so CPL3 can use MMIO directly (each access is a VM exit handled by
 * KVM's in-kernel LAPIC); lapic=syscall on the command line routes accesses through
 * the int3 system call to CPL0 instead. */
#include "lapic.h"

#include "arch.h"
#include "layout.h"

int lapic_use_syscall;

uint32_t lapic_read(uint32_t reg)
{
	if (lapic_use_syscall)
		return (uint32_t)syscall3(SYS_LAPIC_RD, reg, 0, 0);
	return *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
	if (lapic_use_syscall)
		syscall3(SYS_LAPIC_WR, reg, v, 0);
	else
		*(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v;
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

void lapic_ipi(uint32_t apic_id, uint32_t lo)
{
	/* Delivery status (bit 12) is always clear on KVM; bounded wait elsewhere. */
	for (int i = 0; i < 1000 && (lapic_read(LAPIC_ICR_LO) & (1 << 12)); i++)
		cpu_relax();
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, lo);
}
