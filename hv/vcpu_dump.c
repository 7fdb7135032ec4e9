/* What a user sees when a guest dies: the registers and the bytes at RIP. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/log.h"
#include "hv/vcpu.h"

static void dump_code(struct vcpu *v, uint64_t rip)
{
	struct kvm_translation tr = { .linear_address = rip };
	char line[128];
	int n = 0;

	if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid) {
		hv_info("  code: RIP 0x%llx is not mapped", (unsigned long long)rip);
		return;
	}
	/* Stop at the page end: the next page may map elsewhere. */
	uint64_t len = 16;
	if ((tr.physical_address & 0xfff) + len > 0x1000)
		len = 0x1000 - (tr.physical_address & 0xfff);
	const uint8_t *p = guest_mem_ptr(&v->vm->mem, tr.physical_address, len);
	if (!p) {
		hv_info("  code: RIP 0x%llx -> gpa 0x%llx is not RAM", (unsigned long long)rip,
			(unsigned long long)tr.physical_address);
		return;
	}
	for (uint64_t i = 0; i < len; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %02x", p[i]);
	hv_info("  code at gpa 0x%llx:%s", (unsigned long long)tr.physical_address, line);
}

void vcpu_dump(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		hv_info("  registers unavailable: %s", strerror(errno));
		return;
	}
	hv_info("  rip %016llx rsp %016llx rflags %08llx", (unsigned long long)r.rip,
		(unsigned long long)r.rsp, (unsigned long long)r.rflags);
	hv_info("  rax %016llx rbx %016llx rcx %016llx rdx %016llx", (unsigned long long)r.rax,
		(unsigned long long)r.rbx, (unsigned long long)r.rcx, (unsigned long long)r.rdx);
	hv_info("  rsi %016llx rdi %016llx rbp %016llx r8  %016llx", (unsigned long long)r.rsi,
		(unsigned long long)r.rdi, (unsigned long long)r.rbp, (unsigned long long)r.r8);
	hv_info("  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx",
		(unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
		(unsigned long long)s.cr4, (unsigned long long)s.efer);
	hv_info("  cs %04x (base %llx, cpl %d, %s) ss %04x", s.cs.selector,
		(unsigned long long)s.cs.base, s.cs.selector & 3,
		s.cs.l ? "64-bit" : (s.cs.db ? "32-bit" : "16-bit"), s.ss.selector);
	if (v->run->exit_reason == KVM_EXIT_INTERNAL_ERROR && v->run->internal.ndata > 0) {
		char line[160];
		int n = 0;
		for (uint32_t i = 0; i < v->run->internal.ndata && i < 8; i++)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %llx",
				      (unsigned long long)v->run->internal.data[i]);
		hv_info("  internal error data:%s", line);
	}
	dump_code(v, r.rip + s.cs.base * !s.cs.l);
}
