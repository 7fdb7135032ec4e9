/* hv-guest: CPL0 trap handler (emulated on PVM, so short). int3 from CPL3 is a system
 * call; every other exception is fatal: it is reported on the serial port and the guest
 * exits with EXIT_EXCEPTION. */
#include "trap.h"

#include "arch.h"
#include "layout.h"
#include "print.h"

static const char *const names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound", "#UD invalid opcode", "#NM no FPU", "#DF double fault",
	"coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
	"#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
	"#VE virtualization", "#CP control protection", "reserved", "reserved",
	"reserved", "reserved", "reserved", "reserved", "#HV hypervisor injection",
	"#VC VMM communication", "#SX security", "reserved",
};

static uint32_t volatile *lapic_reg(uint64_t reg)
{
	return (uint32_t volatile *)(uintptr_t)(LAPIC_BASE + (reg & 0xff0));
}

static void syscall_dispatch(struct trap_frame *f)
{
	switch (f->rax) {
	case SYS_WAIT:
		__asm__ volatile("sti; hlt; cli" : : : "memory");
		f->rax = 0;
		break;
	case SYS_STOP:
		for (;;)
			__asm__ volatile("cli; hlt");
	case SYS_LAPIC_RD:
		f->rax = *lapic_reg(f->rdi);
		break;
	case SYS_LAPIC_WR:
		*lapic_reg(f->rdi) = (uint32_t)f->rsi;
		f->rax = 0;
		break;
	case SYS_CPUID: {
		/* At CPL0 because PVM intercepts CPUID only there: what the VMM set. */
		uint32_t a, b, c, d;

		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
				 : "a"((uint32_t)f->rdi), "c"((uint32_t)f->rsi));
		f->rax = a;
		f->rbx = b;
		f->rcx = c;
		f->rdx = d;
		break;
	}
	default:
		f->rax = (uint64_t)-1;
		break;
	}
}

void trap(struct trap_frame *f)
{
	if (f->vector == VEC_SYSCALL && (f->cs & 3) == 3) {
		syscall_dispatch(f);
		return;
	}
	uint32_t apic = *lapic_reg(LAPIC_ID) >> 24;
	kprintf_nolock("\nFATAL: exception %lu (%s) error=0x%lx at CPL%lu apic=%u\n", f->vector,
		       f->vector < 32 ? names[f->vector] : "?", f->error, f->cs & 3, apic);
	kprintf_nolock("FATAL: rip=0x%lx rsp=0x%lx rflags=0x%lx cr2=0x%lx\n", f->rip, f->rsp,
		       f->rflags, read_cr2());
	kprintf_nolock("FATAL: rax=0x%lx rbx=0x%lx rcx=0x%lx rdx=0x%lx rsi=0x%lx rdi=0x%lx\n",
		       f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi);
	kprintf_nolock("hv-guest: exit %d\n", EXIT_EXCEPTION);
	outb(DEBUG_EXIT_PORT, EXIT_EXCEPTION);
	for (;;)
		__asm__ volatile("cli; hlt");
}
