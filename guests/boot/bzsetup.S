/* hv-guest as a Linux bzImage: boot sector + setup header + a small real-mode setup,
 * followed by the same flat image that the PVH ELF loads at KBASE (PAYLOAD, .incbin).
 *
 * Loaders that use the 64-bit boot protocol (hv) load the payload at code32_start and
 * enter at KBASE + 0x200 in long mode with RSI = boot_params. Loaders that run the
 * real-mode setup (QEMU -M pc via SeaBIOS) enter setup_code below, which builds a
 * boot_params (setup header copy + BIOS E820 map) at setup + BP_OFF, switches to
 * protected mode and jumps to code32_start with ESI = boot_params.
 *
 * Build-time defines: PAYLOAD (file name) and INIT_END (the image's _end). */
#include "layout.h"

#define SETUP_SECTS 4
#define BP_OFF 0x8000       /* boot_params, inside the 64 KiB setup segment */
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define SMAP 0x534d4150

#define OFF(x) ((x) - _start)

	.text
	.code16
	.globl _start
_start:
	.org 0x1f1
	.byte SETUP_SECTS                       /* setup_sects */
	.word 0                                 /* root_flags */
	.long (payload_end - payload_start + 15) / 16 /* syssize */
	.word 0                                 /* ram_size */
	.word 0xffff                            /* vid_mode: normal */
	.word 0                                 /* root_dev */
	.word 0xaa55                            /* boot_flag */
	/* 0x200 */
	.byte 0xeb, setup_code - 1f             /* jump over the header */
1:	.ascii "HdrS"
	.word 0x020c                            /* boot protocol 2.12 */
	.long 0                                 /* realmode_swtch */
	.word 0x1000                            /* start_sys_seg */
	.word OFF(kernel_version) - 0x200
	.byte 0                                 /* type_of_loader */
	.byte 0x01                              /* loadflags: LOADED_HIGH */
	.word 0x8000                            /* setup_move_size */
code32_start:
	.long KBASE                             /* code32_start */
	.long 0                                 /* ramdisk_image */
	.long 0                                 /* ramdisk_size */
	.long 0                                 /* bootsect_kludge */
	.word 0                                 /* heap_end_ptr */
	.byte 0                                 /* ext_loader_ver */
	.byte 0                                 /* ext_loader_type */
	.long 0                                 /* cmd_line_ptr */
	.long 0x7fffffff                        /* initrd_addr_max */
	.long 0x200000                          /* kernel_alignment */
	.byte 0                                 /* relocatable_kernel: no */
	.byte 12                                /* min_alignment */
	.word 0x0001                            /* xloadflags: XLF_KERNEL_64 */
	.long 4095                              /* cmdline_size */
	.long 0                                 /* hardware_subarch */
	.quad 0                                 /* hardware_subarch_data */
	.long 0                                 /* payload_offset */
	.long 0                                 /* payload_length */
	.quad 0                                 /* setup_data */
	.quad KBASE                             /* pref_address */
	.long (INIT_END - KBASE + 4095) & ~4095 /* init_size */
	.long 0                                 /* handover_offset */
hdr_end:

setup_code:
	cli
	cld
	/* Where are we? Loaders jump to (seg + 0x20):0; compute the linear base anyway. */
	call 2f
2:	popw %bx
	movw %cs, %ax
	movzwl %ax, %eax
	shll $4, %eax
	movzwl %bx, %ebx
	addl %ebx, %eax
	subl $OFF(2b), %eax
	movl %eax, %ebp                 /* ebp = linear address of _start */
	shrl $4, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $BP_OFF, %sp
	pushw %ax
	pushw $OFF(3f)
	lretw                           /* CS = DS: offsets below are from _start */
3:	movl %ebp, OFF(setup_base)

	/* boot_params: zeroed, a copy of the setup header, then the E820 map. */
	movw $BP_OFF, %di
	xorw %ax, %ax
	movw $2048, %cx
	rep stosw
	movw $0x1f1, %si
	movw $(BP_OFF + 0x1f1), %di
	movw $(OFF(hdr_end) - 0x1f1), %cx
	rep movsb
	xorl %ebx, %ebx
	movw $(BP_OFF + BP_E820_TABLE), %di
4:	movl $0xe820, %eax
	movl $20, %ecx
	movl $SMAP, %edx
	int $0x15
	jc 5f
	cmpl $SMAP, %eax
	jne 5f
	incb (BP_OFF + BP_E820_ENTRIES)
	addw $20, %di
	testl %ebx, %ebx
	jz 5f
	cmpb $128, (BP_OFF + BP_E820_ENTRIES)
	jb 4b
5:	cli

	/* Protected mode, flat segments, ESI = boot_params, jump to code32_start. */
	movl OFF(setup_base), %ebp
	movl %ebp, %eax
	addl $OFF(gdt16), %eax
	movl %eax, OFF(gdt16_ptr) + 2
	lgdtl OFF(gdt16_ptr)
	movl OFF(code32_start), %eax
	movl %eax, OFF(far_ptr)
	movw $0x10, OFF(far_ptr) + 4
	movl %ebp, %esi
	addl $BP_OFF, %esi
	movl %ebp, %ebx
	addl $OFF(far_ptr), %ebx
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	movw $0x18, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	ljmpl *(%ebx)

	.balign 8
gdt16:
	.quad 0
	.quad 0
	.quad 0x00cf9b000000ffff /* 0x10: flat 32-bit code */
	.quad 0x00cf93000000ffff /* 0x18: flat data */
gdt16_ptr:
	.word 4 * 8 - 1
	.long 0
far_ptr:
	.long 0
	.word 0
setup_base:
	.long 0
kernel_version:
	.asciz "hv-guest"

	.org (SETUP_SECTS + 1) * 512
payload_start:
	.incbin PAYLOAD
payload_end:
