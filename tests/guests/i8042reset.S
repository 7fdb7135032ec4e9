/* A kernel that resets the machine through the keyboard controller, as Linux's reboot=k
 * does: command 0xfe on port 0x64. hv must end the VM cleanly (status 0). */
#include "pvh_note.h"
	.text
	.code32
	.globl _start
_start:
	mov $0xfe, %al
	out %al, $0x64
1:	hlt
	jmp 1b
