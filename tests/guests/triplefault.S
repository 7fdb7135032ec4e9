/* A kernel that crashes at once: ud2 with no IDT (PVH enters with an empty one) raises #UD,
 * which cannot be delivered (#DF, then a triple fault). hv must report the registers and the
 * instruction bytes and exit 126. */
#include "pvh_note.h"
	.text
	.code32
	.globl _start
_start:
	mov $0x1234abcd, %eax
	ud2
