/* The guest-physical address map that hv gives every VM.
 * RAM fills [0, min(size, MMIO_HOLE_START)); whatever does not fit continues at 4 GiB. */
#ifndef HV_LAYOUT_H
#define HV_LAYOUT_H

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define PAGE_SIZE 4096ULL

#define MMIO_HOLE_START 0xC0000000ULL /* 3 GiB: 32-bit MMIO (PCI BARs, IOAPIC, LAPIC) */
#define MMIO_HOLE_END 0x100000000ULL  /* 4 GiB: RAM resumes here */
#define HIGH_RAM_START MMIO_HOLE_END

/* Boot-time structures the VMM writes into low guest RAM. */
#define BOOT_GDT_ADDR 0x0500ULL       /* GDT for the entry state hv sets up */
#define BOOT_PML4_ADDR 0x1000ULL      /* identity page tables for 64-bit entry */
#define BOOT_PDPT_ADDR 0x2000ULL
#define BOOT_PD_ADDR 0x3000ULL        /* 4 page directories: 0-4 GiB in 2 MiB pages */
#define BOOT_INFO_ADDR 0x7000ULL      /* hvm_start_info or Linux boot_params (zero page) */
#define BOOT_MEMMAP_ADDR 0x9000ULL    /* PVH memory map entries */
#define BOOT_CMDLINE_ADDR 0x20000ULL  /* kernel command line */
#define BOOT_CMDLINE_MAX 0x10000ULL
#define BOOT_STACK_TOP 0x8ff0ULL      /* initial stack for a 64-bit Linux entry */

#define EBDA_START 0x9FC00ULL         /* reserved from here to 1 MiB in the e820 map */
#define BIOS_END 0x100000ULL
#define MPTABLE_ADDR 0xF0000ULL       /* MP floating pointer + config table, in the BIOS area */

#define IOAPIC_ADDR 0xFEC00000ULL
#define LAPIC_ADDR 0xFEE00000ULL
#define KVM_TSS_ADDR 0xFFFBD000ULL    /* 3 pages KVM needs on VMX hosts */
#define KVM_IDENTITY_MAP_ADDR 0xFFFBC000ULL

#define KERNEL_LOAD_ADDR 0x100000ULL  /* bzImage protected-mode code */

#endif
