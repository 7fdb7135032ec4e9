/* Prebuilt descriptor tables and page tables: static data, so the emulated CPL0 boot path
 * only loads them (no loops that fill tables). */
#include "layout.h"

/* ---- Page tables: identity map of 0-4 GiB with 2 MiB pages, Present|RW|User|PS.
 * 3-4 GiB (LAPIC, IOAPIC, PCI MMIO) is also cache-disabled (PCD|PWT). */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.if i < 1536
	.quad (i << 21) | 0x87
	.else
	.quad (i << 21) | 0x9f
	.endif
	.set i, i + 1
	.endr

/* ---- GDT: null, kernel code64/data/code32, user data/code64, then one 16-byte TSS
 * descriptor per CPU. Each TSS limit covers the shared I/O bitmap and its terminator. */
	.section .data
	.balign 16
	.globl gdt, gdt_end, gdt_ptr
gdt:
	.quad 0
	.quad 0x00af9b000000ffff /* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff /* 0x10 kernel data */
	.quad 0x00cf9b000000ffff /* 0x18 kernel code, 32-bit */
	.quad 0x00cff3000000ffff /* 0x20 user data */
	.quad 0x00affb000000ffff /* 0x28 user code, 64-bit */
	.set i, 0
	.rept MAX_CPUS
	.set tb, TSS_ADDR + i * TSS_STRIDE
	.set tl, IOBITMAP_ADDR - tb + IOBITMAP_BYTES
	.quad (tl & 0xffff) | ((tb & 0xffffff) << 16) | (0x89 << 40) | (((tl >> 16) & 0xf) << 48) | (((tb >> 24) & 0xff) << 56)
	.quad 0
	.set i, i + 1
	.endr
gdt_end:
	.if gdt_end - gdt != GDT_SIZE
	.error "GDT_SIZE does not match the GDT"
	.endif

	.balign 8
	.word 0, 0, 0
gdt_ptr:	/* 6 bytes in 32-bit mode, 10 bytes in 64-bit mode */
	.word gdt_end - gdt - 1
	.quad gdt

/* ---- IDT: exceptions 0-31 (int3 callable from CPL3), timer, spurious. Other vectors are
 * not present: a stray one raises #NP whose error code names it. */
.macro GATE addr, dpl, ist=0
	.word (\addr) & 0xffff
	.word SEL_KCODE
	.byte \ist
	.byte 0x8e | (\dpl << 5)
	.word ((\addr) >> 16) & 0xffff
	.long 0
	.long 0
.endm

	.balign 16
	.globl idt
idt:
	.set i, 0
	.rept 32
	.set ga, VECTORS_ADDR + i * VEC_STUB_SIZE
	.if i == VEC_SYSCALL
	GATE ga, 3
	.elseif i == 8
	GATE ga, 0, 1 /* #DF on IST1: a fault with a broken stack is still reported */
	.else
	GATE ga, 0
	.endif
	.set i, i + 1
	.endr
	.set ga, TIMER_STUB_ADDR
	GATE ga, 0 /* VEC_TIMER == 32 */
	.fill (VEC_SPURIOUS - VEC_TIMER - 1) * 16, 1, 0
	.set ga, SPURIOUS_STUB_ADDR
	GATE ga, 0
idt_end:

	.balign 8
	.word 0, 0, 0
	.globl idt_ptr
idt_ptr:
	.word idt_end - idt - 1
	.quad idt

/* ---- Per-CPU TSSs (RSP0 = top of that CPU's kernel stack) and the shared I/O bitmap.
 * Placed at TSS_ADDR by the linker script. */
	.section .tss, "aw"
tss_start:
	.set i, 0
	.rept MAX_CPUS
	.long 0                                  /* reserved */
	.quad kstacks + (i + 1) * KSTACK_SIZE    /* RSP0 */
	.quad 0, 0                               /* RSP1, RSP2 */
	.quad 0                                  /* reserved */
	.quad dfstack + 4096                     /* IST1: #DF (shared; fatal anyway) */
	.quad 0, 0, 0, 0, 0, 0                   /* IST2-7 */
	.quad 0                                  /* reserved */
	.word 0                                  /* reserved */
	.word IOBITMAP_ADDR - (TSS_ADDR + i * TSS_STRIDE) /* I/O map base */
	.fill TSS_STRIDE - 104, 1, 0
	.set i, i + 1
	.endr

/* I/O permission bitmap: a clear bit lets CPL3 use that port. Allowed: PIC 0x20-0x21,
 * PIT 0x40-0x43, i8042 0x60/0x64, PIC 0xa0-0xa1, debug exit 0xf4-0xf7,
 * COM1 0x3f8-0x3ff, PCI config 0xcf8-0xcff. */
iobitmap:
	.org iobitmap - tss_start + 0x20 / 8, 0xff
	.byte 0xfc
	.org iobitmap - tss_start + 0x40 / 8, 0xff
	.byte 0xf0
	.org iobitmap - tss_start + 0x60 / 8, 0xff
	.byte 0xee
	.org iobitmap - tss_start + 0xa0 / 8, 0xff
	.byte 0xfc
	.org iobitmap - tss_start + 0xf0 / 8, 0xff
	.byte 0x0f
	.org iobitmap - tss_start + 0x3f8 / 8, 0xff
	.byte 0x00
	.org iobitmap - tss_start + 0xcf8 / 8, 0xff
	.byte 0x00
	.org iobitmap - tss_start + IOBITMAP_BYTES, 0xff
	.byte 0xff /* terminator */
