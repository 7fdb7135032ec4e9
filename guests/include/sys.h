/* hv-guest: CPL3 runtime services: exit, idle, system calls. */
#ifndef HVG_SYS_H
#define HVG_SYS_H

#include "arch.h"
#include "layout.h"

/* Prints "hv-guest: exit <status>", writes status to the debug-exit port, stops. */
__attribute__((noreturn)) void guest_exit(int status);
/* Stops this CPU for good (cli; hlt at CPL0). */
__attribute__((noreturn)) void cpu_stop(void);

static inline void sys_wait(void)
{
	syscall3(SYS_WAIT, 0, 0, 0);
}

#endif
