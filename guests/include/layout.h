/* hv-guest: fixed addresses, selectors, vectors and limits shared by the assembly, the
 * linker script and the C code. Everything here is a plain #define so that .S, .ld.S and .c
 * files can all include it. */
#ifndef HVG_LAYOUT_H
#define HVG_LAYOUT_H

/* The image is linked and loaded at 1 MiB (PVH ELF p_paddr, bzImage code32_start). */
#define KBASE 0x100000
/* bzImage protocol: 64-bit entry at load address + 0x200. */
#define ENTRY64_OFFSET 0x200

/* Sections placed at fixed addresses by the linker script so that the descriptor tables,
 * whose entries split addresses into bit fields, can be prebuilt as static data. */
#define VECTORS_ADDR 0x101000 /* exception stubs: vector i at VECTORS_ADDR + 16*i */
#define VEC_STUB_SIZE 16
#define TIMER_STUB_ADDR (VECTORS_ADDR + 0x200)
#define SPURIOUS_STUB_ADDR (VECTORS_ADDR + 0x240)
#define TRAP_COMMON_ADDR (VECTORS_ADDR + 0x260)

#define MAX_CPUS 64
#define TSS_ADDR 0x102000 /* MAX_CPUS TSSs, TSS_STRIDE bytes apart, then the I/O bitmap */
#define TSS_STRIDE 128
#define IOBITMAP_ADDR (TSS_ADDR + MAX_CPUS * TSS_STRIDE)
#define IOBITMAP_BYTES 8192 /* followed by one 0xff terminator byte */

#define KSTACK_SIZE 4096  /* per-CPU CPL0 stack (TSS.RSP0) */
#define USTACK_SIZE 16384 /* per-CPU CPL3 stack */

/* GDT selectors. */
#define SEL_KCODE 0x08   /* 64-bit ring 0 code */
#define SEL_KDATA 0x10   /* ring 0 data, also used in 32-bit mode */
#define SEL_KCODE32 0x18 /* 32-bit ring 0 code (AP trampoline) */
#define SEL_UDATA 0x23   /* ring 3 data (0x20 | RPL 3) */
#define SEL_UCODE 0x2b   /* 64-bit ring 3 code (0x28 | RPL 3) */
#define SEL_TSS0 0x30    /* CPU i uses SEL_TSS0 + 16*i */
#define GDT_SIZE (SEL_TSS0 + 16 * MAX_CPUS)

/* Interrupt vectors (besides exceptions 0-31). */
#define VEC_TIMER 0x20
#define VEC_SPURIOUS 0xff
#define VEC_SYSCALL 3 /* int3 through a DPL3 gate is the system call on PVM */

/* Local APIC (xAPIC MMIO). */
#define LAPIC_BASE 0xFEE00000
#define LAPIC_ID 0x020
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3E0
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_TIMER_PERIODIC (1 << 17)
/* KVM's in-kernel LAPIC timer runs at 1 GHz (APIC bus cycle 1 ns); with divide-by-1
 * (divide configuration 0xB) an initial count of 10,000,000 is 10 ms: the 100 Hz tick the
 * boot path starts. hz= on the command line changes it (time.h: timer_hz). */
#define LAPIC_DIV_BY_1 0xB
#define TIMER_HZ_BOOT 100
#define LAPIC_TIMER_COUNT_BOOT 10000000
#define TIMER_HZ_MAX 5000 /* KVM caps a periodic LAPIC timer at 5000/s on our hosts */

/* Control registers and MSRs used on the boot path. */
#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_PG 0x80000000
#define CR0_BOOT (CR0_PG | CR0_NE | CR0_ET | CR0_MP | CR0_PE)
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define CR4_BOOT (CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT)
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

/* How the guest was entered (boot_mode). */
#define BOOT_PVH 1   /* EBX = struct hvm_start_info */
#define BOOT_LINUX 2 /* ESI/RSI = struct boot_params (bzImage 32- or 64-bit entry) */

/* System calls: int3 from CPL3 with RAX = number, RDI/RSI/RDX = arguments, result in RAX. */
#define SYS_WAIT 0      /* sti; hlt: sleep until the next interrupt */
#define SYS_STOP 1      /* cli; hlt forever (after the exit port write) */
#define SYS_LAPIC_RD 2  /* (reg) -> value */
#define SYS_LAPIC_WR 3  /* (reg, value) */
#define SYS_CPUID 4     /* (leaf, subleaf) -> eax, ebx, ecx, edx: CPUID at CPL0 */
#define SYS_NR 5

/* Exit statuses written to the debug-exit port. */
#define EXIT_OK 0
#define EXIT_CORRUPT 3
#define EXIT_EXCEPTION 4
#define EXIT_BADPARAM 5
#define EXIT_PLATFORM 6 /* timer not ticking, an AP did not start, ... */

#define DEBUG_EXIT_PORT 0xf4
#define COM1 0x3f8

#endif
