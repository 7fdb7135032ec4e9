/* hv-guest boot entries (CPL0, emulated on PVM: every instruction here is expensive).
 *
 *   KBASE + 0x000  bzImage 32-bit entry: protected mode, paging off, ESI = boot_params
 *   KBASE + 0x200  bzImage 64-bit entry: long mode, identity paging, RSI = boot_params
 *   pvh_entry      PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): protected mode, paging off,
 *                  EBX = hvm_start_info
 *   ap_entry32     APs arrive here from the real-mode trampoline (CS = SEL_KCODE32)
 *
 * All paths load the prebuilt page tables (tables.S), enable long mode, load the GDT, the
 * CPU's TSS and the IDT, and iretq to CPL3. The BSP also masks the 8259s and starts the
 * LAPIC timer. No loops: the tables are static data. No stack is used before 64-bit mode
 * (the PVH and 32-bit Linux protocols do not provide one). */
#include "layout.h"

/* Enter long mode from 32-bit protected mode (paging off) and far-jump to \target. */
.macro ENTER_LONG target
	movl $pml4, %eax
	movl %eax, %cr3
	movl $CR4_BOOT, %eax
	movl %eax, %cr4
	movl $MSR_EFER, %ecx
	movl $EFER_LME, %eax
	xorl %edx, %edx
	wrmsr
	movl $CR0_BOOT, %eax
	movl %eax, %cr0
	lgdt gdt_ptr
	ljmp $SEL_KCODE, $\target
.endm

.macro LOAD_DATA_SEGMENTS
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
.endm

	.section .head, "awx"
	.code32
	.globl head_start
head_start:
	/* bzImage 32-bit boot protocol entry. */
	movl $BOOT_LINUX, boot_mode
	movl %esi, boot_info
	jmp enter_long_bsp

	.globl pvh_entry
pvh_entry:
	movl $BOOT_PVH, boot_mode
	movl %ebx, boot_info
enter_long_bsp:
	ENTER_LONG long_bsp

	.globl ap_entry32
ap_entry32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	ENTER_LONG long_ap

	.org ENTRY64_OFFSET, 0xcc
	.code64
	.globl entry64
entry64:
	/* bzImage 64-bit boot protocol entry: already in long mode on the loader's tables. */
	movl $BOOT_LINUX, boot_mode(%rip)
	movq %rsi, boot_info(%rip)
	movl $pml4, %eax
	movq %rax, %cr3
	movl $CR4_BOOT, %eax
	movq %rax, %cr4
	movl $CR0_BOOT, %eax
	movq %rax, %cr0
	lgdt gdt_ptr(%rip)
	movl $(kstacks + KSTACK_SIZE), %esp
	pushq $SEL_KCODE
	pushq $long_bsp
	lretq

long_bsp:
	LOAD_DATA_SEGMENTS
	movl $(kstacks + KSTACK_SIZE), %esp
	movl $SEL_TSS0, %eax
	ltr %ax
	lidt idt_ptr(%rip)
	/* Mask both 8259s: an unprogrammed PIC would deliver IRQ0 as vector 8. */
	movb $0xff, %al
	outb %al, $0x21
	outb %al, $0xa1
	/* LAPIC: software-enable, then a periodic 100 Hz timer (see layout.h). */
	movl $LAPIC_BASE, %eax
	movl $(LAPIC_SVR_ENABLE | VEC_SPURIOUS), LAPIC_SVR(%rax)
	movl $LAPIC_DIV_BY_1, LAPIC_TIMER_DIV(%rax)
	movl $(LAPIC_TIMER_PERIODIC | VEC_TIMER), LAPIC_LVT_TIMER(%rax)
	movl $LAPIC_TIMER_COUNT_BOOT, LAPIC_TIMER_INIT(%rax)
	/* To CPL3 with interrupts enabled. */
	pushq $SEL_UDATA
	pushq $(bsp_ustack + USTACK_SIZE)
	pushq $0x202
	pushq $SEL_UCODE
	pushq $user_start
	iretq

long_ap:
	LOAD_DATA_SEGMENTS
	movl ap_boot_cpu(%rip), %ecx   /* index of this CPU, set by the BSP before SIPI */
	movl %ecx, %eax
	incl %eax
	shll $12, %eax                 /* (cpu + 1) * KSTACK_SIZE */
	leaq kstacks(%rax), %rsp
	movl %ecx, %eax
	shll $4, %eax
	addl $SEL_TSS0, %eax
	ltr %ax
	lidt idt_ptr(%rip)
	movl $LAPIC_BASE, %eax
	movl $(LAPIC_SVR_ENABLE | VEC_SPURIOUS), LAPIC_SVR(%rax)
	movl %ecx, %edi                /* argument to ap_user_start */
	pushq $SEL_UDATA
	pushq ap_ustack_top(, %rcx, 8)
	pushq $0x202
	pushq $SEL_UCODE
	pushq $ap_user_start
	iretq

	/* Boot information saved by the entry paths (written before paging is on). */
	.section .data
	.balign 8
	.globl boot_mode, boot_info
boot_mode:
	.long 0
	.long 0
boot_info:
	.quad 0

	/* PVH: XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", 64-bit descriptor like Linux. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 8
	.long 18
	.asciz "Xen"
	.quad pvh_entry
