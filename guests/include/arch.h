/* hv-guest: small inline wrappers around x86 instructions. */
#ifndef HVG_ARCH_H
#define HVG_ARCH_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static inline void barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

static inline uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

/* CPL3 -> CPL0 system call: int3 through the DPL3 gate (see layout.h SYS_*). */
static inline long syscall3(long nr, long a, long b, long c)
{
	long r;
	__asm__ volatile("int3" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "memory");
	return r;
}

#endif
