/* AP real-mode trampoline. The BSP copies [tramp_start, tramp_end) to a free page below
 * 1 MiB and sends SIPI with that page's number; the AP starts here with CS = page >> 4,
 * IP = 0. Position-independent within its page: the GDT pointer holds the absolute
 * address of the image's GDT, and the far jump goes to ap_entry32 in the image. */
#include "layout.h"

	.section .rodata.trampoline, "a"
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	lgdtl %cs:(tramp_gdtp - tramp_start)
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
	.balign 8
tramp_gdtp:
	.word GDT_SIZE - 1
	.long gdt
tramp_end:
