/* A kernel that exits through the debug-exit port with status 126, the value hvctl uses for
 * a crashed guest: hvctl must not report it as a crash (docs/hvctl.md, exit statuses). */
#include "pvh_note.h"
	.text
	.code32
	.globl _start
_start:
	mov $126, %al
	out %al, $0xf4
1:	hlt
	jmp 1b
