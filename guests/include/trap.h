/* hv-guest: CPL0 exception and system call dispatch. */
#ifndef HVG_TRAP_H
#define HVG_TRAP_H

#include <stdint.h>

/* Layout pushed by vectors.S trap_common, lowest address first. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

void trap(struct trap_frame *f);

#endif
