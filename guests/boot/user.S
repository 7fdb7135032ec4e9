/* First CPL3 code on each CPU (runs natively on PVM). */
#include "layout.h"

	.text
	.code64
	/* BSP: zero .bss (CPL0 state lives in .data and the NOLOAD stack sections, so this
	 * is safe with the timer already running), then kmain(). */
	.globl user_start
user_start:
	cld
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	xorl %ebp, %ebp
	call kmain
	ud2

	/* AP: EDI = CPU index, RSP = its user stack (both set by long_ap). */
	.globl ap_user_start
ap_user_start:
	cld
	xorl %ebp, %ebp
	call ap_main
	ud2

	/* Stacks: not part of .bss (never zeroed, never in the file). */
	.section .stacks, "aw", @nobits
	.balign 4096
	.globl kstacks, bsp_ustack, dfstack
kstacks:
	.skip MAX_CPUS * KSTACK_SIZE
dfstack:
	.skip 4096
bsp_ustack:
	.skip USTACK_SIZE
