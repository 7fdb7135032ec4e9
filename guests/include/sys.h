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

/* CPUID executed by the CPL0 system call (what the VMM's CPUID table says) into r[4]. */
static inline void cpuid_cpl0(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
	uint64_t a, b, c, d;

	__asm__ volatile("int3" : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
			 : "a"((uint64_t)SYS_CPUID), "D"((uint64_t)leaf), "S"((uint64_t)subleaf)
			 : "memory");
	r[0] = (uint32_t)a;
	r[1] = (uint32_t)b;
	r[2] = (uint32_t)c;
	r[3] = (uint32_t)d;
}

#endif
