/* KVM vCPU and VM state: save, restore, serialise (cpu_state.h). */
#include "migrate/cpu_state.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/log.h"
#include "hv/state_enc.h"
#include "migrate/wire.h"

#define CPU_STATE_MAGIC_VCPU 0x50436876u /* bytes "vhCP" */
#define CPU_STATE_MAGIC_VM 0x4d566876u   /* bytes "vhVM" */
#define CPU_STATE_HDR_SIZE 16

/* Section ids of a vCPU blob. */
enum cpu_state_vcpu_section {
	CPU_STATE_SEC_REGS = 1,
	CPU_STATE_SEC_SREGS = 2,
	CPU_STATE_SEC_SREGS2 = 3,
	CPU_STATE_SEC_FPU = 4,
	CPU_STATE_SEC_XSAVE = 5,
	CPU_STATE_SEC_XCRS = 6,
	CPU_STATE_SEC_MSRS = 7,
	CPU_STATE_SEC_LAPIC = 8,
	CPU_STATE_SEC_EVENTS = 9,
	CPU_STATE_SEC_MP_STATE = 10,
	CPU_STATE_SEC_DEBUGREGS = 11,
	CPU_STATE_SEC_TSC_KHZ = 12,
};

/* Section ids of a VM blob. */
enum cpu_state_vm_section {
	CPU_STATE_SEC_PIC_MASTER = 1,
	CPU_STATE_SEC_PIC_SLAVE = 2,
	CPU_STATE_SEC_IOAPIC = 3,
	CPU_STATE_SEC_PIT2 = 4,
	CPU_STATE_SEC_CLOCK = 5,
};

static int cpu_state_ioctl(int fd, unsigned long req, void *arg, const char *name, char *err,
			   size_t errlen)
{
	if (ioctl(fd, req, arg) < 0) {
		int e = errno;

		hv_errf(err, errlen, "%s failed: %s", name, strerror(e));
		return -e;
	}
	return 0;
}

static int cpu_state_check_cap(int kvm_fd, long cap)
{
	int r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

/* ---- Save and restore of a vCPU ---- */

/* Reads every MSR of KVM_GET_MSR_INDEX_LIST. KVM_GET_MSRS stops at the first MSR it cannot
 * read and returns how many it read; such an MSR is skipped (and noted) and the read goes on. */
static int cpu_state_save_msrs(int vcpu_fd, int kvm_fd, struct vcpu_state *s, char *err,
			       size_t errlen)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *list = NULL;
	struct kvm_msrs *msrs = NULL;
	uint32_t n, i = 0;
	int rc = 0;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		hv_errf(err, errlen, "KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
		return -errno;
	}
	n = probe.nmsrs;
	if (n > CPU_STATE_MAX_MSRS) {
		hv_errf(err, errlen, "KVM lists %u MSRs, more than the %u hv can save", n,
			      CPU_STATE_MAX_MSRS);
		return -E2BIG;
	}
	list = calloc(1, sizeof(*list) + n * sizeof(list->indices[0]));
	msrs = calloc(1, sizeof(*msrs) + n * sizeof(msrs->entries[0]));
	if (!list || !msrs) {
		rc = -ENOMEM;
		hv_errf(err, errlen, "out of memory for the MSR list");
		goto out;
	}
	list->nmsrs = n;
	rc = cpu_state_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list, "KVM_GET_MSR_INDEX_LIST", err,
			     errlen);
	if (rc)
		goto out;
	n = list->nmsrs < n ? list->nmsrs : n;

	while (i < n) {
		int r;

		memset(msrs, 0, sizeof(*msrs) + n * sizeof(msrs->entries[0]));
		msrs->nmsrs = n - i;
		for (uint32_t k = 0; k < n - i; k++)
			msrs->entries[k].index = list->indices[i + k];
		r = ioctl(vcpu_fd, KVM_GET_MSRS, msrs);
		if (r < 0) {
			rc = -errno;
			hv_errf(err, errlen, "KVM_GET_MSRS failed: %s", strerror(errno));
			goto out;
		}
		if ((uint32_t)r > n - i)
			r = (int)(n - i);
		memcpy(&s->msrs[s->nmsrs], msrs->entries, (size_t)r * sizeof(msrs->entries[0]));
		s->nmsrs += (uint32_t)r;
		i += (uint32_t)r;
		if (i < n) {
			if (s->nmsrs_unreadable < sizeof(s->msrs_unreadable) / sizeof(uint32_t))
				s->msrs_unreadable[s->nmsrs_unreadable] = list->indices[i];
			s->nmsrs_unreadable++;
			i++;
		}
	}
out:
	free(list);
	free(msrs);
	return rc;
}

int cpu_state_save_vcpu(int vcpu_fd, int kvm_fd, struct vcpu_state *s, char *err, size_t errlen)
{
	int rc, xsave2;

	memset(s, 0, sizeof(*s));
	rc = cpu_state_ioctl(vcpu_fd, KVM_GET_REGS, &s->regs, "KVM_GET_REGS", err, errlen);
	if (rc)
		return rc;

	xsave2 = cpu_state_check_cap(kvm_fd, KVM_CAP_XSAVE2);
	if (xsave2 > 0) {
		if (xsave2 > CPU_STATE_XSAVE_MAX) {
			hv_errf(err, errlen, "XSAVE state of %d bytes, more than hv's %d", xsave2,
				      CPU_STATE_XSAVE_MAX);
			return -E2BIG;
		}
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_XSAVE2, s->xsave, "KVM_GET_XSAVE2", err,
				     errlen);
		s->xsave_size = (uint32_t)xsave2;
	} else if (cpu_state_check_cap(kvm_fd, KVM_CAP_XSAVE) > 0) {
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_XSAVE, s->xsave, "KVM_GET_XSAVE", err, errlen);
		s->xsave_size = sizeof(struct kvm_xsave);
	}
	if (rc)
		return rc;
	if (s->xsave_size)
		s->have |= CPU_STATE_HAVE_XSAVE;

	if (cpu_state_check_cap(kvm_fd, KVM_CAP_XCRS) > 0) {
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_XCRS, &s->xcrs, "KVM_GET_XCRS", err, errlen);
		if (rc)
			return rc;
		s->have |= CPU_STATE_HAVE_XCRS;
	}
	if (cpu_state_check_cap(kvm_fd, KVM_CAP_SREGS2) > 0) {
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_SREGS2, &s->sregs2, "KVM_GET_SREGS2", err,
				     errlen);
		s->have |= CPU_STATE_HAVE_SREGS2;
	} else {
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS", err, errlen);
	}
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_GET_FPU, &s->fpu, "KVM_GET_FPU", err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_save_msrs(vcpu_fd, kvm_fd, s, err, errlen);
	if (rc)
		return rc;
	/* MP_STATE before LAPIC: reading it makes KVM process pending INIT/SIPI into the LAPIC. */
	rc = cpu_state_ioctl(vcpu_fd, KVM_GET_MP_STATE, &s->mp_state, "KVM_GET_MP_STATE", err,
			     errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC", err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS", err,
			     errlen);
	if (rc)
		return rc;
	if (cpu_state_check_cap(kvm_fd, KVM_CAP_DEBUGREGS) > 0) {
		rc = cpu_state_ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs, "KVM_GET_DEBUGREGS",
				     err, errlen);
		if (rc)
			return rc;
		s->have |= CPU_STATE_HAVE_DEBUGREGS;
	}
	if (cpu_state_check_cap(kvm_fd, KVM_CAP_GET_TSC_KHZ) > 0) {
		int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

		if (khz > 0) {
			s->tsc_khz = (uint32_t)khz;
			s->have |= CPU_STATE_HAVE_TSC_KHZ;
		}
	}
	return 0;
}

/* SREGS2 -> SREGS for a destination without KVM_CAP_SREGS2 (the PDPTRs are lost; KVM reloads
 * them from CR3 when PAE paging is on). */
static void cpu_state_sregs2_to_sregs(const struct kvm_sregs2 *s2, struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	s->cs = s2->cs;
	s->ds = s2->ds;
	s->es = s2->es;
	s->fs = s2->fs;
	s->gs = s2->gs;
	s->ss = s2->ss;
	s->tr = s2->tr;
	s->ldt = s2->ldt;
	s->gdt = s2->gdt;
	s->idt = s2->idt;
	s->cr0 = s2->cr0;
	s->cr2 = s2->cr2;
	s->cr3 = s2->cr3;
	s->cr4 = s2->cr4;
	s->cr8 = s2->cr8;
	s->efer = s2->efer;
	s->apic_base = s2->apic_base;
}

/* All MSRs in one KVM_SET_MSRS, in saved order except that TSC_DEADLINE goes last (after the
 * TSC, and after the LAPIC, which the caller has already restored). */
static int cpu_state_restore_msrs(int vcpu_fd, const struct vcpu_state *s, char *err,
				  size_t errlen)
{
	struct kvm_msrs *msrs;
	uint32_t n = 0;
	int r;

	if (s->nmsrs > CPU_STATE_MAX_MSRS)
		return -EINVAL;
	msrs = calloc(1, sizeof(*msrs) + s->nmsrs * sizeof(msrs->entries[0]));
	if (!msrs) {
		hv_errf(err, errlen, "out of memory for the MSRs");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index != CPU_STATE_MSR_IA32_TSC_DEADLINE)
			msrs->entries[n++] = s->msrs[i];
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == CPU_STATE_MSR_IA32_TSC_DEADLINE)
			msrs->entries[n++] = s->msrs[i];
	msrs->nmsrs = n;
	r = ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
	if (r < 0) {
		r = -errno;
		hv_errf(err, errlen, "KVM_SET_MSRS failed: %s", strerror(errno));
	} else if ((uint32_t)r < n) {
		hv_errf(err, errlen,
			      "KVM_SET_MSRS: this host's KVM rejected MSR 0x%x = 0x%llx (%d of %u "
			      "written): the hosts' CPUs or kernels differ", msrs->entries[r].index,
			      (unsigned long long)msrs->entries[r].data, r, n);
		r = -EINVAL;
	} else {
		r = 0;
	}
	free(msrs);
	return r;
}

static int cpu_state_restore_xsave(int vcpu_fd, int kvm_fd, const struct vcpu_state *s, char *err,
				   size_t errlen)
{
	int size = cpu_state_check_cap(kvm_fd, KVM_CAP_XSAVE2);

	if (size <= 0)
		size = cpu_state_check_cap(kvm_fd, KVM_CAP_XSAVE) > 0 ? (int)sizeof(struct kvm_xsave)
								       : 0;
	if (size == 0) {
		hv_errf(err, errlen, "this host's KVM has no XSAVE state, the source had");
		return -EOPNOTSUPP;
	}
	if (size > CPU_STATE_XSAVE_MAX) {
		hv_errf(err, errlen, "this host's XSAVE state is %d bytes, more than hv's %d",
			      size, CPU_STATE_XSAVE_MAX);
		return -E2BIG;
	}
	/* KVM reads `size` bytes; the buffer is CPU_STATE_XSAVE_MAX long with zeros past
	 * xsave_size. State beyond `size` would be lost: refuse it. */
	for (uint32_t i = (uint32_t)size; i < s->xsave_size; i++) {
		if (s->xsave[i]) {
			hv_errf(err, errlen,
				      "XSAVE state needs %u bytes, this host's KVM takes %d: the "
				      "source CPU has features this one lacks", s->xsave_size, size);
			return -EOPNOTSUPP;
		}
	}
	return cpu_state_ioctl(vcpu_fd, KVM_SET_XSAVE, (void *)s->xsave, "KVM_SET_XSAVE", err,
			       errlen);
}

int cpu_state_restore_vcpu(int vcpu_fd, int kvm_fd, const struct vcpu_state *s, char *err,
			   size_t errlen)
{
	struct kvm_regs regs = s->regs;
	struct kvm_fpu fpu = s->fpu;
	struct kvm_lapic_state lapic = s->lapic;
	struct kvm_vcpu_events events = s->events;
	struct kvm_mp_state mp = s->mp_state;
	int rc;

	if (s->have & CPU_STATE_HAVE_TSC_KHZ) {
		int cur = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

		if (cur != (int)s->tsc_khz &&
		    ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0)
			hv_warn("vCPU %u: the source TSC ran at %u kHz, this host's at %d kHz and KVM "
				"cannot scale it (%s): guest time may drift", s->vcpu_index,
				s->tsc_khz, cur, strerror(errno));
	}

	if (s->have & CPU_STATE_HAVE_SREGS2) {
		if (cpu_state_check_cap(kvm_fd, KVM_CAP_SREGS2) > 0) {
			struct kvm_sregs2 sregs2 = s->sregs2;

			rc = cpu_state_ioctl(vcpu_fd, KVM_SET_SREGS2, &sregs2, "KVM_SET_SREGS2", err,
					     errlen);
		} else {
			struct kvm_sregs sregs;

			cpu_state_sregs2_to_sregs(&s->sregs2, &sregs);
			rc = cpu_state_ioctl(vcpu_fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", err,
					     errlen);
		}
	} else {
		struct kvm_sregs sregs = s->sregs;

		rc = cpu_state_ioctl(vcpu_fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", err, errlen);
	}
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_SET_REGS, &regs, "KVM_SET_REGS", err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU", err, errlen);
	if (rc)
		return rc;
	if (s->have & CPU_STATE_HAVE_XSAVE) {
		rc = cpu_state_restore_xsave(vcpu_fd, kvm_fd, s, err, errlen);
		if (rc)
			return rc;
	}
	if (s->have & CPU_STATE_HAVE_XCRS) {
		struct kvm_xcrs xcrs = s->xcrs;

		rc = cpu_state_ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", err, errlen);
		if (rc)
			return rc;
	}
	rc = cpu_state_ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_restore_msrs(vcpu_fd, s, err, errlen);
	if (rc)
		return rc;
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	rc = cpu_state_ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS", err,
			     errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", err, errlen);
	if (rc)
		return rc;
	if (s->have & CPU_STATE_HAVE_DEBUGREGS) {
		struct kvm_debugregs dr = s->debugregs;

		rc = cpu_state_ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS", err,
				     errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Save and restore of the VM ---- */

int cpu_state_save_vm(int vm_fd, struct vm_kvm_state *s, char *err, size_t errlen)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	rc = cpu_state_ioctl(vm_fd, KVM_GET_IRQCHIP, &s->pic_master, "KVM_GET_IRQCHIP (PIC master)",
			     err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vm_fd, KVM_GET_IRQCHIP, &s->pic_slave, "KVM_GET_IRQCHIP (PIC slave)",
			     err, errlen);
	if (rc)
		return rc;
	rc = cpu_state_ioctl(vm_fd, KVM_GET_IRQCHIP, &s->ioapic, "KVM_GET_IRQCHIP (IOAPIC)", err,
			     errlen);
	if (rc)
		return rc;
	if (ioctl(vm_fd, KVM_GET_PIT2, &s->pit) == 0) {
		s->have |= CPU_STATE_HAVE_PIT;
	} else if (errno != ENXIO) {
		hv_errf(err, errlen, "KVM_GET_PIT2 failed: %s", strerror(errno));
		return -errno;
	}
	return cpu_state_ioctl(vm_fd, KVM_GET_CLOCK, &s->clock, "KVM_GET_CLOCK", err, errlen);
}

int cpu_state_restore_vm_clock(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen)
{
	struct kvm_clock_data clock = { .clock = s->clock.clock };

	return cpu_state_ioctl(vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", err, errlen);
}

int cpu_state_restore_vm_chips(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen)
{
	struct kvm_irqchip chip;
	int rc;

	chip = s->pic_master;
	rc = cpu_state_ioctl(vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (PIC master)", err,
			     errlen);
	if (rc)
		return rc;
	chip = s->pic_slave;
	rc = cpu_state_ioctl(vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (PIC slave)", err,
			     errlen);
	if (rc)
		return rc;
	chip = s->ioapic;
	rc = cpu_state_ioctl(vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (IOAPIC)", err, errlen);
	if (rc)
		return rc;
	if (s->have & CPU_STATE_HAVE_PIT) {
		struct kvm_pit_state2 pit = s->pit;

		rc = cpu_state_ioctl(vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2", err, errlen);
	}
	return rc;
}

int cpu_state_restore_all(int vm_fd, int kvm_fd, const int *vcpu_fds, const struct vcpu_state *vcpus,
			  unsigned n, const struct vm_kvm_state *vm, char *err, size_t errlen)
{
	int rc = cpu_state_restore_vm_clock(vm_fd, vm, err, errlen);

	for (unsigned i = 0; rc == 0 && i < n; i++) {
		rc = cpu_state_restore_vcpu(vcpu_fds[i], kvm_fd, &vcpus[i], err, errlen);
		if (rc && err && errlen) {
			char inner[200];

			snprintf(inner, sizeof(inner), "%s", err);
			hv_errf(err, errlen, "vCPU %u: %s", i, inner);
		}
	}
	if (rc == 0)
		rc = cpu_state_restore_vm_chips(vm_fd, vm, err, errlen);
	return rc;
}

/* ---- Serialisation ----
 *
 * A blob is a 16-byte header, then sections of hv/state_enc.h. The header counts the
 * sections, so a blob cut at a section boundary is refused too. Each section body is a host
 * struct written field by field, in the order of its table below: the tables are the wire
 * format (docs/migration-protocol.md, 5), and what they leave out (padding, reserved words,
 * the unused rest of a union) never goes on the wire. */

/* `count` values of `width` bytes (1, 2, 4 or 8), back to back at `offset` in a host struct.
 * Width 1 goes as bytes, wider values little endian. */
struct cpu_state_field {
	uint32_t offset;
	uint8_t width;
	uint16_t count;
};

/* 0, or a compile error (an array of negative size) when cond is false: every table entry
 * checks that the host struct really has the bytes it claims. */
#define SIZE_CHECK(cond) (sizeof(char[(cond) ? 1 : -1]) - 1)
#define MEMBER_SIZE(T, m) sizeof(((T *)0)->m)

/* Member m of T: `count` values of `width` bytes. */
#define FIELD(T, m, width, count)                                                       \
	{ offsetof(T, m) + SIZE_CHECK(MEMBER_SIZE(T, m) == (width) * (count)), width, count }
/* Members first..last of T, with no padding between them: `count` values of `width` bytes. */
#define SPAN(T, first, last, width, count)                                              \
	{ offsetof(T, first) + SIZE_CHECK(offsetof(T, last) + MEMBER_SIZE(T, last) -      \
					  offsetof(T, first) == (width) * (count)),       \
	  width, count }
#define TABLE(t) t, sizeof(t) / sizeof(t[0])

/* struct kvm_segment: base, limit, selector, then the bytes type, present, dpl, db, s, l, g,
 * avl, unusable (23 bytes); struct kvm_dtable: base, limit (10 bytes). */
#define SEGMENT(T, seg)                                                                 \
	FIELD(T, seg.base, 8, 1), FIELD(T, seg.limit, 4, 1), FIELD(T, seg.selector, 2, 1), \
	SPAN(T, seg.type, seg.unusable, 1, 9)
#define DTABLE(T, dt) FIELD(T, dt.base, 8, 1), FIELD(T, dt.limit, 2, 1)
/* What kvm_sregs and kvm_sregs2 share: cs ds es fs gs ss tr ldt, gdt idt, then cr0 cr2 cr3
 * cr4 cr8 efer apic_base (260 bytes). */
#define SREGS_COMMON(T)                                                                 \
	SEGMENT(T, cs), SEGMENT(T, ds), SEGMENT(T, es), SEGMENT(T, fs), SEGMENT(T, gs),   \
	SEGMENT(T, ss), SEGMENT(T, tr), SEGMENT(T, ldt), DTABLE(T, gdt), DTABLE(T, idt),  \
	SPAN(T, cr0, apic_base, 8, 7)

static const struct cpu_state_field regs_fields[] = {
	/* rax rbx rcx rdx rsi rdi rsp rbp r8 .. r15 rip rflags */
	SPAN(struct kvm_regs, rax, rflags, 8, 18),
};

static const struct cpu_state_field sregs_fields[] = {
	SREGS_COMMON(struct kvm_sregs),
	FIELD(struct kvm_sregs, interrupt_bitmap, 8, 4),
};

static const struct cpu_state_field sregs2_fields[] = {
	SREGS_COMMON(struct kvm_sregs2),
	FIELD(struct kvm_sregs2, flags, 8, 1),
	FIELD(struct kvm_sregs2, pdptrs, 8, 4),
};

static const struct cpu_state_field fpu_fields[] = {
	FIELD(struct kvm_fpu, fpr, 1, 128),
	FIELD(struct kvm_fpu, fcw, 2, 1),
	FIELD(struct kvm_fpu, fsw, 2, 1),
	FIELD(struct kvm_fpu, ftwx, 1, 1),
	FIELD(struct kvm_fpu, last_opcode, 2, 1),
	FIELD(struct kvm_fpu, last_ip, 8, 1),
	FIELD(struct kvm_fpu, last_dp, 8, 1),
	FIELD(struct kvm_fpu, xmm, 1, 256),
	FIELD(struct kvm_fpu, mxcsr, 4, 1),
};

/* One entry of the counted lists of XCRS and MSRS. */
static const struct cpu_state_field xcr_fields[] = {
	FIELD(struct kvm_xcr, xcr, 4, 1),
	FIELD(struct kvm_xcr, value, 8, 1),
};

static const struct cpu_state_field msr_fields[] = {
	FIELD(struct kvm_msr_entry, index, 4, 1),
	FIELD(struct kvm_msr_entry, data, 8, 1),
};

static const struct cpu_state_field lapic_fields[] = {
	FIELD(struct kvm_lapic_state, regs, 1, KVM_APIC_REG_SIZE),
};

static const struct cpu_state_field events_fields[] = {
	/* exception: injected nr has_error_code pending, error_code */
	SPAN(struct kvm_vcpu_events, exception.injected, exception.pending, 1, 4),
	FIELD(struct kvm_vcpu_events, exception.error_code, 4, 1),
	/* interrupt: injected nr soft shadow; nmi: injected pending masked */
	SPAN(struct kvm_vcpu_events, interrupt.injected, interrupt.shadow, 1, 4),
	SPAN(struct kvm_vcpu_events, nmi.injected, nmi.masked, 1, 3),
	FIELD(struct kvm_vcpu_events, sipi_vector, 4, 1),
	FIELD(struct kvm_vcpu_events, flags, 4, 1),
	/* smi: smm pending smm_inside_nmi latched_init */
	SPAN(struct kvm_vcpu_events, smi.smm, smi.latched_init, 1, 4),
	FIELD(struct kvm_vcpu_events, triple_fault.pending, 1, 1),
	FIELD(struct kvm_vcpu_events, exception_has_payload, 1, 1),
	FIELD(struct kvm_vcpu_events, exception_payload, 8, 1),
};

static const struct cpu_state_field mp_state_fields[] = {
	FIELD(struct kvm_mp_state, mp_state, 4, 1),
};

static const struct cpu_state_field debugregs_fields[] = {
	FIELD(struct kvm_debugregs, db, 8, 4),
	SPAN(struct kvm_debugregs, dr6, flags, 8, 3), /* dr6 dr7 flags */
};

static const struct cpu_state_field tsc_khz_fields[] = {
	FIELD(struct vcpu_state, tsc_khz, 4, 1),
};

/* The chip is the section's: chip_id is not on the wire. */
static const struct cpu_state_field pic_fields[] = {
	/* last_irr irr imr isr priority_add irq_base read_reg_select poll special_mask
	 * init_state auto_eoi rotate_on_auto_eoi special_fully_nested_mode init4 elcr elcr_mask */
	SPAN(struct kvm_irqchip, chip.pic.last_irr, chip.pic.elcr_mask, 1, 16),
};

static const struct cpu_state_field ioapic_fields[] = {
	FIELD(struct kvm_irqchip, chip.ioapic.base_address, 8, 1),
	SPAN(struct kvm_irqchip, chip.ioapic.ioregsel, chip.ioapic.irr, 4, 3), /* ioregsel id irr */
	FIELD(struct kvm_irqchip, chip.ioapic.redirtbl, 8, KVM_IOAPIC_NUM_PINS),
};

/* count, latched_count, then the bytes count_latched status_latched status read_state
 * write_state write_latch rw_mode mode bcd gate, then count_load_time (24 bytes). */
#define PIT_CHANNEL(i)                                                                  \
	FIELD(struct kvm_pit_state2, channels[i].count, 4, 1),                            \
	FIELD(struct kvm_pit_state2, channels[i].latched_count, 2, 1),                    \
	SPAN(struct kvm_pit_state2, channels[i].count_latched, channels[i].gate, 1, 10),  \
	FIELD(struct kvm_pit_state2, channels[i].count_load_time, 8, 1)

static const struct cpu_state_field pit_fields[] = {
	PIT_CHANNEL(0),
	PIT_CHANNEL(1),
	PIT_CHANNEL(2),
	FIELD(struct kvm_pit_state2, flags, 4, 1),
};

static const struct cpu_state_field clock_fields[] = {
	FIELD(struct kvm_clock_data, clock, 8, 1),
	FIELD(struct kvm_clock_data, flags, 4, 1),
	FIELD(struct kvm_clock_data, realtime, 8, 1),
	FIELD(struct kvm_clock_data, host_tsc, 8, 1),
};

/* A section of a blob: which host struct of the state it holds, as which fields. */
struct cpu_state_section {
	unsigned id;
	const char *name;
	size_t offset;                        /* of the host struct in the state */
	const struct cpu_state_field *fields; /* NULL: a counted list (XSAVE, XCRS, MSRS) */
	size_t nfields;
	uint32_t have; /* the have-bit it stands for, or 0 */
	bool required;
};

/* In the order they are written. */
static const struct cpu_state_section vcpu_sections[] = {
	{ CPU_STATE_SEC_REGS, "REGS", offsetof(struct vcpu_state, regs), TABLE(regs_fields), 0,
	  true },
	{ CPU_STATE_SEC_SREGS, "SREGS", offsetof(struct vcpu_state, sregs), TABLE(sregs_fields),
	  0, false },
	{ CPU_STATE_SEC_SREGS2, "SREGS2", offsetof(struct vcpu_state, sregs2),
	  TABLE(sregs2_fields), CPU_STATE_HAVE_SREGS2, false },
	{ CPU_STATE_SEC_FPU, "FPU", offsetof(struct vcpu_state, fpu), TABLE(fpu_fields), 0, true },
	{ CPU_STATE_SEC_XSAVE, "XSAVE", 0, NULL, 0, CPU_STATE_HAVE_XSAVE, false },
	{ CPU_STATE_SEC_XCRS, "XCRS", 0, NULL, 0, CPU_STATE_HAVE_XCRS, false },
	{ CPU_STATE_SEC_MSRS, "MSRS", 0, NULL, 0, 0, true },
	{ CPU_STATE_SEC_LAPIC, "LAPIC", offsetof(struct vcpu_state, lapic), TABLE(lapic_fields), 0,
	  true },
	{ CPU_STATE_SEC_EVENTS, "VCPU_EVENTS", offsetof(struct vcpu_state, events),
	  TABLE(events_fields), 0, true },
	{ CPU_STATE_SEC_MP_STATE, "MP_STATE", offsetof(struct vcpu_state, mp_state),
	  TABLE(mp_state_fields), 0, true },
	{ CPU_STATE_SEC_DEBUGREGS, "DEBUGREGS", offsetof(struct vcpu_state, debugregs),
	  TABLE(debugregs_fields), CPU_STATE_HAVE_DEBUGREGS, false },
	{ CPU_STATE_SEC_TSC_KHZ, "TSC_KHZ", 0, TABLE(tsc_khz_fields), CPU_STATE_HAVE_TSC_KHZ,
	  false },
};

static const struct cpu_state_section vm_sections[] = {
	{ CPU_STATE_SEC_PIC_MASTER, "PIC_MASTER", offsetof(struct vm_kvm_state, pic_master),
	  TABLE(pic_fields), 0, true },
	{ CPU_STATE_SEC_PIC_SLAVE, "PIC_SLAVE", offsetof(struct vm_kvm_state, pic_slave),
	  TABLE(pic_fields), 0, true },
	{ CPU_STATE_SEC_IOAPIC, "IOAPIC", offsetof(struct vm_kvm_state, ioapic),
	  TABLE(ioapic_fields), 0, true },
	{ CPU_STATE_SEC_PIT2, "PIT2", offsetof(struct vm_kvm_state, pit), TABLE(pit_fields),
	  CPU_STATE_HAVE_PIT, false },
	{ CPU_STATE_SEC_CLOCK, "CLOCK", offsetof(struct vm_kvm_state, clock), TABLE(clock_fields),
	  0, true },
};

/* An integer member of a host struct: 1, 2, 4 or 8 bytes, in the host's byte order. */
union host_int {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
};

/* The host integer of `width` bytes at p (memcpy: struct members need not be aligned). */
static uint64_t host_int(const uint8_t *p, unsigned width)
{
	union host_int v;

	memcpy(&v, p, width);
	return width == 1 ? v.u8 : width == 2 ? v.u16 : width == 4 ? v.u32 : v.u64;
}

static void set_host_int(uint8_t *p, unsigned width, uint64_t value)
{
	union host_int v;

	if (width == 1)
		v.u8 = (uint8_t)value;
	else if (width == 2)
		v.u16 = (uint16_t)value;
	else if (width == 4)
		v.u32 = (uint32_t)value;
	else
		v.u64 = value;
	memcpy(p, &v, width);
}

static void put_fields(struct state_out *o, const void *obj, const struct cpu_state_field *f,
		       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)obj + f[i].offset;

		if (f[i].width == 1)
			state_out_bytes(o, p, f[i].count);
		else
			for (unsigned k = 0; k < f[i].count; k++, p += f[i].width)
				state_out_le(o, host_int(p, f[i].width), f[i].width);
	}
}

/* Reads what put_fields wrote; a short section reads zeros (state_sec_end then refuses it). */
static void get_fields(struct state_sec *sec, void *obj, const struct cpu_state_field *f,
		       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = (uint8_t *)obj + f[i].offset;

		if (f[i].width == 1)
			state_sec_bytes(sec, p, f[i].count);
		else
			for (unsigned k = 0; k < f[i].count; k++, p += f[i].width)
				set_host_int(p, f[i].width, state_sec_le(sec, f[i].width));
	}
}

/* The counted sections: u32 count, then the entries. */
static void put_vcpu_list(struct state_out *o, const struct vcpu_state *s, unsigned id)
{
	switch (id) {
	case CPU_STATE_SEC_XSAVE:
		state_out_u32(o, s->xsave_size);
		state_out_bytes(o, s->xsave, s->xsave_size);
		break;
	case CPU_STATE_SEC_XCRS:
		state_out_u32(o, s->xcrs.nr_xcrs);
		state_out_u32(o, s->xcrs.flags);
		for (uint32_t i = 0; i < s->xcrs.nr_xcrs; i++)
			put_fields(o, &s->xcrs.xcrs[i], TABLE(xcr_fields));
		break;
	case CPU_STATE_SEC_MSRS:
		state_out_u32(o, s->nmsrs);
		for (uint32_t i = 0; i < s->nmsrs; i++)
			put_fields(o, &s->msrs[i], TABLE(msr_fields));
		break;
	}
}

/* 0, or -1 with the reason in e. Counts are checked before anything is read into the state;
 * a count the section is too short for reads zeros, and state_sec_end refuses the section. */
static int get_vcpu_list(struct state_sec *sec, struct vcpu_state *s, char *e, size_t elen)
{
	uint32_t n = state_sec_u32(sec);

	if (sec->short_read)
		return 0;
	switch (sec->id) {
	case CPU_STATE_SEC_XSAVE:
		if (n < sizeof(struct kvm_xsave) || n > CPU_STATE_XSAVE_MAX || n % 4)
			return hv_errf(e, elen,
				       "XSAVE area of %u bytes (%zu .. %u, a multiple of 4)", n,
				       sizeof(struct kvm_xsave), CPU_STATE_XSAVE_MAX);
		state_sec_bytes(sec, s->xsave, n);
		s->xsave_size = n;
		return 0;
	case CPU_STATE_SEC_XCRS:
		if (n > KVM_MAX_XCRS)
			return hv_errf(e, elen, "%u XCRs, at most %u", n, KVM_MAX_XCRS);
		s->xcrs.nr_xcrs = n;
		s->xcrs.flags = state_sec_u32(sec);
		for (uint32_t i = 0; i < n; i++)
			get_fields(sec, &s->xcrs.xcrs[i], TABLE(xcr_fields));
		return 0;
	case CPU_STATE_SEC_MSRS:
		if (n > CPU_STATE_MAX_MSRS)
			return hv_errf(e, elen, "%u MSRs, at most %u", n, CPU_STATE_MAX_MSRS);
		s->nmsrs = n;
		for (uint32_t i = 0; i < n; i++)
			get_fields(sec, &s->msrs[i], TABLE(msr_fields));
		return 0;
	}
	return hv_errf(e, elen, "section %u has no decoder", sec->id);
}

static void put_section(struct state_out *o, unsigned *nsections, const void *state,
			const struct cpu_state_section *d)
{
	++*nsections;
	state_out_begin(o, d->id);
	if (d->fields)
		put_fields(o, (const uint8_t *)state + d->offset, d->fields, d->nfields);
	else
		put_vcpu_list(o, state, d->id);
	state_out_end(o);
}

/* The header, its section count 0 until finish_blob. */
static void put_header(struct state_out *o, uint32_t magic, uint32_t index)
{
	state_out_u32(o, magic);
	state_out_u16(o, CPU_STATE_VERSION);
	state_out_u16(o, 0);
	state_out_u32(o, index);
	state_out_u32(o, 0);
}

/* Sets the section count, copies the blob out to the caller's buffer and frees it. */
static int finish_blob(struct state_out *o, unsigned nsections, uint8_t *buf, size_t cap,
		       size_t *len)
{
	int rc = state_out_error(o);

	if (rc == 0 && o->len > cap)
		rc = -ENOSPC;
	if (rc == 0) {
		memcpy(buf, o->buf, o->len);
		wire_put_u16(buf + 6, (uint16_t)nsections);
		*len = o->len;
	}
	state_out_free(o);
	return rc;
}

/* Exactly one of SREGS and SREGS2; every other section by its have-bit. */
static bool vcpu_has_section(const struct vcpu_state *s, const struct cpu_state_section *d)
{
	if (d->id == CPU_STATE_SEC_SREGS)
		return !(s->have & CPU_STATE_HAVE_SREGS2);
	return d->required || (s->have & d->have);
}

int cpu_state_encode_vcpu(const struct vcpu_state *s, uint8_t *buf, size_t cap, size_t *len)
{
	struct state_out o;
	unsigned n = 0;

	/* Nothing the decoder would refuse. */
	if (s->vcpu_index >= CPU_STATE_MAX_VCPUS || s->nmsrs > CPU_STATE_MAX_MSRS ||
	    ((s->have & CPU_STATE_HAVE_XSAVE) &&
	     (s->xsave_size < sizeof(struct kvm_xsave) || s->xsave_size > CPU_STATE_XSAVE_MAX ||
	      s->xsave_size % 4)) ||
	    ((s->have & CPU_STATE_HAVE_XCRS) && s->xcrs.nr_xcrs > KVM_MAX_XCRS))
		return -EINVAL;
	state_out_init(&o);
	put_header(&o, CPU_STATE_MAGIC_VCPU, s->vcpu_index);
	for (size_t i = 0; i < sizeof(vcpu_sections) / sizeof(vcpu_sections[0]); i++)
		if (vcpu_has_section(s, &vcpu_sections[i]))
			put_section(&o, &n, s, &vcpu_sections[i]);
	return finish_blob(&o, n, buf, cap, len);
}

int cpu_state_encode_vm(const struct vm_kvm_state *s, uint8_t *buf, size_t cap, size_t *len)
{
	struct state_out o;
	unsigned n = 0;

	state_out_init(&o);
	put_header(&o, CPU_STATE_MAGIC_VM, 0);
	for (size_t i = 0; i < sizeof(vm_sections) / sizeof(vm_sections[0]); i++)
		if (vm_sections[i].required || (s->have & vm_sections[i].have))
			put_section(&o, &n, s, &vm_sections[i]);
	return finish_blob(&o, n, buf, cap, len);
}

/* What a decoded blob says besides the state it fills. */
struct cpu_state_blob_info {
	uint32_t index; /* the header's vcpu_index */
	uint32_t have;  /* have-bits of the sections seen */
	uint64_t seen;  /* bit (1 << id) per section seen */
};

/* Checks the header and reads every section of a blob into state. 0, or -1 with the reason
 * in e (the caller names the blob). */
static int decode_blob(const uint8_t *buf, size_t len, uint32_t magic,
		       const struct cpu_state_section *secs, size_t nsecs, void *state,
		       struct cpu_state_blob_info *info, char *e, size_t elen)
{
	struct state_in in;
	struct state_sec sec;
	uint64_t required = 0;
	unsigned nsections, missing, seen = 0;
	int r;

	if (len < CPU_STATE_HDR_SIZE)
		return hv_errf(e, elen, "%zu bytes, shorter than its header", len);
	if (wire_get_u32(buf) != magic)
		return hv_errf(e, elen, "bad magic 0x%08x", wire_get_u32(buf));
	/* Before anything else of the header: a blob of another layout is named as such. */
	if (wire_get_u16(buf + 4) != CPU_STATE_VERSION)
		return hv_errf(e, elen, "version %u, this hv reads version %u",
			       wire_get_u16(buf + 4), CPU_STATE_VERSION);
	if (wire_get_u32(buf + 12) != 0)
		return hv_errf(e, elen, "reserved header bytes are not zero");
	nsections = wire_get_u16(buf + 6);
	info->index = wire_get_u32(buf + 8);
	info->have = 0;

	state_in_init(&in, buf + CPU_STATE_HDR_SIZE, len - CPU_STATE_HDR_SIZE);
	while ((r = state_in_next(&in, &sec, e, elen)) == 1) {
		const struct cpu_state_section *d = NULL;

		for (size_t i = 0; i < nsecs; i++)
			if (secs[i].id == sec.id)
				d = &secs[i];
		if (!d)
			return hv_errf(e, elen, "unknown section %u (from a newer hv?)", sec.id);
		if (d->fields)
			get_fields(&sec, (uint8_t *)state + d->offset, d->fields, d->nfields);
		else if (get_vcpu_list(&sec, state, e, elen) < 0)
			return -1;
		if (state_sec_end(&sec, d->name, e, elen) < 0)
			return -1;
		info->have |= d->have;
		seen++;
	}
	if (r < 0)
		return -1;
	if (seen != nsections)
		return hv_errf(e, elen, "%u sections, its header says %u", seen, nsections);
	for (size_t i = 0; i < nsecs; i++)
		if (secs[i].required)
			required |= 1ull << secs[i].id;
	missing = state_in_missing(&in, required);
	for (size_t i = 0; missing && i < nsecs; i++)
		if (secs[i].id == missing)
			return hv_errf(e, elen, "section %s is missing", secs[i].name);
	info->seen = in.seen;
	return 0;
}

int cpu_state_decode_vcpu(const uint8_t *buf, size_t len, struct vcpu_state *s, char *err,
			  size_t errlen)
{
	struct cpu_state_blob_info info;
	char e[200];

	memset(s, 0, sizeof(*s));
	if (decode_blob(buf, len, CPU_STATE_MAGIC_VCPU, TABLE(vcpu_sections), s, &info, e,
			sizeof(e)) < 0)
		goto fail;
	if (info.index >= CPU_STATE_MAX_VCPUS) {
		hv_errf(e, sizeof(e), "vCPU index %u, at most %u", info.index,
			CPU_STATE_MAX_VCPUS - 1);
		goto fail;
	}
	/* Exactly one of SREGS and SREGS2: a zero-filled SREGS would be a broken vCPU. */
	if (!(info.seen & (1ull << CPU_STATE_SEC_SREGS)) ==
	    !(info.seen & (1ull << CPU_STATE_SEC_SREGS2))) {
		hv_errf(e, sizeof(e), "needs exactly one of SREGS and SREGS2");
		goto fail;
	}
	if ((info.have & CPU_STATE_HAVE_TSC_KHZ) && s->tsc_khz == 0) {
		hv_errf(e, sizeof(e), "TSC_KHZ is 0");
		goto fail;
	}
	s->vcpu_index = info.index;
	s->have = info.have;
	return 0;
fail:
	hv_errf(err, errlen, "vCPU state: %s", e);
	memset(s, 0, sizeof(*s));
	return -EINVAL;
}

int cpu_state_decode_vm(const uint8_t *buf, size_t len, struct vm_kvm_state *s, char *err,
			size_t errlen)
{
	struct cpu_state_blob_info info;
	char e[200];

	memset(s, 0, sizeof(*s));
	if (decode_blob(buf, len, CPU_STATE_MAGIC_VM, TABLE(vm_sections), s, &info, e,
			sizeof(e)) < 0)
		goto fail;
	if (info.index != 0) {
		hv_errf(e, sizeof(e), "index field is %u, expected 0", info.index);
		goto fail;
	}
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	s->have = info.have;
	return 0;
fail:
	hv_errf(err, errlen, "VM state: %s", e);
	memset(s, 0, sizeof(*s));
	return -EINVAL;
}
