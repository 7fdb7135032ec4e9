/* hv-guest linker script (run through cpp for layout.h). One PT_LOAD at KBASE; the
 * sections whose addresses are baked into prebuilt tables sit at fixed addresses. */
#include "layout.h"

OUTPUT_FORMAT("elf64-x86-64")
OUTPUT_ARCH(i386:x86-64)
ENTRY(pvh_entry)

PHDRS
{
	image PT_LOAD FLAGS(7);
	note PT_NOTE FLAGS(4);
}

SECTIONS
{
	. = KBASE;
	.head : { KEEP(*(.head)) } :image
	ASSERT(head_start == KBASE, "head_start must be at KBASE")
	ASSERT(entry64 == KBASE + ENTRY64_OFFSET, "entry64 must be at KBASE + 0x200")
	ASSERT(. <= VECTORS_ADDR, ".head overflows into .vectors")

	. = VECTORS_ADDR;
	.vectors : { KEEP(*(.vectors)) } :image
	ASSERT(. <= TSS_ADDR, ".vectors overflows into .tss")

	. = TSS_ADDR;
	.tss : { KEEP(*(.tss)) } :image
	ASSERT(. == IOBITMAP_ADDR + IOBITMAP_BYTES + 1, ".tss has the wrong size")

	.text : { *(.text .text.*) } :image
	.rodata : { *(.rodata .rodata.*) } :image
	.note.Xen : { KEEP(*(.note.Xen)) } :image :note
	.data : ALIGN(4096) { *(.data.pagetables) *(.data .data.*) } :image

	.bss : ALIGN(64) {
		__bss_start = .;
		*(.bss .bss.* COMMON)
		. = ALIGN(64);
		__bss_end = .;
	} :image
	.stacks (NOLOAD) : ALIGN(4096) { *(.stacks) } :image
	. = ALIGN(4096);
	_end = .;

	/DISCARD/ : { *(.comment) *(.eh_frame) *(.note.GNU-stack) *(.note.gnu.*) }
}
