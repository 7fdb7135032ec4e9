/* Interrupt and exception entry stubs (CPL0). Placed at VECTORS_ADDR by the linker script;
 * the IDT in tables.S points at the fixed offsets checked by the .org directives below.
 *
 *   VECTORS_ADDR + 16*i   exception i (0-31); int3 (3) is also the CPL3 system call
 *   TIMER_STUB_ADDR       LAPIC timer: ticks++, EOI (kept to a handful of instructions)
 *   SPURIOUS_STUB_ADDR    LAPIC spurious vector: no EOI
 *   TRAP_COMMON_ADDR      saves the registers and calls trap() (kernel/trap.c) */
#include "layout.h"

	.section .vectors, "ax"
	.code64
vectors_start:

/* Exceptions that push an error code: 8, 10-14, 17, 21, 29, 30. */
.macro STUB vec
	.org vectors_start + \vec * VEC_STUB_SIZE, 0xcc
	.if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	.else
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
.endm

	.altmacro
	.set v, 0
	.rept 32
	STUB %v
	.set v, v + 1
	.endr
	.noaltmacro

	.org TIMER_STUB_ADDR - VECTORS_ADDR, 0xcc
	.globl timer_stub
timer_stub:
	pushq %rax
	incq ticks(%rip)
	movl $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	popq %rax
	iretq

	.org SPURIOUS_STUB_ADDR - VECTORS_ADDR, 0xcc
spurious_stub:
	iretq

	.org TRAP_COMMON_ADDR - VECTORS_ADDR, 0xcc
trap_common:
	/* Frame (struct trap_frame): r15 ... rax, vector, error, rip, cs, rflags, rsp, ss */
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call trap
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

	/* The tick counter lives in .data: CPL3 zeroes .bss after the timer is already on. */
	.section .data
	.balign 64
	.globl ticks
ticks:
	.quad 0
