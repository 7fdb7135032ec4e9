/* KVM vCPU and VM state: save, restore, serialise (cpu_state.h). */
#include "migrate/cpu_state.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/log.h"
#include "migrate/wire.h"

#define CPU_STATE_MAGIC_VCPU 0x50436876u /* bytes "hvCP" */
#define CPU_STATE_MAGIC_VM 0x4d566876u   /* bytes "hvVM" */
#define CPU_STATE_HDR_SIZE 16
#define CPU_STATE_SEC_HDR_SIZE 8
#define CPU_STATE_MAX_SECTIONS 32

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

/* ---- Serialisation ---- */

struct cpu_state_out {
	uint8_t *buf;
	size_t cap, len;
	unsigned nsections;
	bool full;
};

static void cpu_state_put_section(struct cpu_state_out *o, uint16_t id, const void *body,
				  size_t size)
{
	if (o->full || o->cap - o->len < CPU_STATE_SEC_HDR_SIZE + size) {
		o->full = true;
		return;
	}
	wire_put_u16(o->buf + o->len, id);
	wire_put_u16(o->buf + o->len + 2, 0);
	wire_put_u32(o->buf + o->len + 4, (uint32_t)size);
	memcpy(o->buf + o->len + CPU_STATE_SEC_HDR_SIZE, body, size);
	o->len += CPU_STATE_SEC_HDR_SIZE + size;
	o->nsections++;
}

static int cpu_state_begin(struct cpu_state_out *o, uint8_t *buf, size_t cap)
{
	*o = (struct cpu_state_out){ .buf = buf, .cap = cap, .len = CPU_STATE_HDR_SIZE };
	return cap < CPU_STATE_HDR_SIZE ? -ENOSPC : 0;
}

static int cpu_state_finish(struct cpu_state_out *o, uint32_t magic, uint32_t index, size_t *len)
{
	if (o->full)
		return -ENOSPC;
	wire_put_u32(o->buf, magic);
	wire_put_u16(o->buf + 4, CPU_STATE_VERSION);
	wire_put_u16(o->buf + 6, (uint16_t)o->nsections);
	wire_put_u32(o->buf + 8, index);
	wire_put_u32(o->buf + 12, 0);
	*len = o->len;
	return 0;
}

int cpu_state_encode_vcpu(const struct vcpu_state *s, uint8_t *buf, size_t cap, size_t *len)
{
	struct cpu_state_out o;

	if (cpu_state_begin(&o, buf, cap))
		return -ENOSPC;
	if (s->nmsrs > CPU_STATE_MAX_MSRS || s->xsave_size > CPU_STATE_XSAVE_MAX)
		return -EINVAL;
	cpu_state_put_section(&o, CPU_STATE_SEC_REGS, &s->regs, sizeof(s->regs));
	if (s->have & CPU_STATE_HAVE_SREGS2)
		cpu_state_put_section(&o, CPU_STATE_SEC_SREGS2, &s->sregs2, sizeof(s->sregs2));
	else
		cpu_state_put_section(&o, CPU_STATE_SEC_SREGS, &s->sregs, sizeof(s->sregs));
	cpu_state_put_section(&o, CPU_STATE_SEC_FPU, &s->fpu, sizeof(s->fpu));
	if (s->have & CPU_STATE_HAVE_XSAVE)
		cpu_state_put_section(&o, CPU_STATE_SEC_XSAVE, s->xsave, s->xsave_size);
	if (s->have & CPU_STATE_HAVE_XCRS)
		cpu_state_put_section(&o, CPU_STATE_SEC_XCRS, &s->xcrs, sizeof(s->xcrs));
	cpu_state_put_section(&o, CPU_STATE_SEC_MSRS, s->msrs, s->nmsrs * sizeof(s->msrs[0]));
	cpu_state_put_section(&o, CPU_STATE_SEC_LAPIC, &s->lapic, sizeof(s->lapic));
	cpu_state_put_section(&o, CPU_STATE_SEC_EVENTS, &s->events, sizeof(s->events));
	cpu_state_put_section(&o, CPU_STATE_SEC_MP_STATE, &s->mp_state, sizeof(s->mp_state));
	if (s->have & CPU_STATE_HAVE_DEBUGREGS)
		cpu_state_put_section(&o, CPU_STATE_SEC_DEBUGREGS, &s->debugregs,
				      sizeof(s->debugregs));
	if (s->have & CPU_STATE_HAVE_TSC_KHZ) {
		uint8_t khz[4];

		wire_put_u32(khz, s->tsc_khz);
		cpu_state_put_section(&o, CPU_STATE_SEC_TSC_KHZ, khz, sizeof(khz));
	}
	return cpu_state_finish(&o, CPU_STATE_MAGIC_VCPU, s->vcpu_index, len);
}

int cpu_state_encode_vm(const struct vm_kvm_state *s, uint8_t *buf, size_t cap, size_t *len)
{
	struct cpu_state_out o;

	if (cpu_state_begin(&o, buf, cap))
		return -ENOSPC;
	cpu_state_put_section(&o, CPU_STATE_SEC_PIC_MASTER, &s->pic_master, sizeof(s->pic_master));
	cpu_state_put_section(&o, CPU_STATE_SEC_PIC_SLAVE, &s->pic_slave, sizeof(s->pic_slave));
	cpu_state_put_section(&o, CPU_STATE_SEC_IOAPIC, &s->ioapic, sizeof(s->ioapic));
	if (s->have & CPU_STATE_HAVE_PIT)
		cpu_state_put_section(&o, CPU_STATE_SEC_PIT2, &s->pit, sizeof(s->pit));
	cpu_state_put_section(&o, CPU_STATE_SEC_CLOCK, &s->clock, sizeof(s->clock));
	return cpu_state_finish(&o, CPU_STATE_MAGIC_VM, 0, len);
}

/* A fixed-size section: where it goes, which have-bit it sets. */
struct cpu_state_section_desc {
	uint16_t id;
	const char *name;
	size_t offset, size; /* size 0: variable, handled by the caller */
	uint32_t have;
	bool required;
};

static const struct cpu_state_section_desc cpu_state_vcpu_sections[] = {
	{ CPU_STATE_SEC_REGS, "REGS", offsetof(struct vcpu_state, regs), sizeof(struct kvm_regs), 0,
	  true },
	{ CPU_STATE_SEC_SREGS, "SREGS", offsetof(struct vcpu_state, sregs),
	  sizeof(struct kvm_sregs), 0, false },
	{ CPU_STATE_SEC_SREGS2, "SREGS2", offsetof(struct vcpu_state, sregs2),
	  sizeof(struct kvm_sregs2), CPU_STATE_HAVE_SREGS2, false },
	{ CPU_STATE_SEC_FPU, "FPU", offsetof(struct vcpu_state, fpu), sizeof(struct kvm_fpu), 0,
	  true },
	{ CPU_STATE_SEC_XSAVE, "XSAVE", 0, 0, CPU_STATE_HAVE_XSAVE, false },
	{ CPU_STATE_SEC_XCRS, "XCRS", offsetof(struct vcpu_state, xcrs), sizeof(struct kvm_xcrs),
	  CPU_STATE_HAVE_XCRS, false },
	{ CPU_STATE_SEC_MSRS, "MSRS", 0, 0, 0, true },
	{ CPU_STATE_SEC_LAPIC, "LAPIC", offsetof(struct vcpu_state, lapic),
	  sizeof(struct kvm_lapic_state), 0, true },
	{ CPU_STATE_SEC_EVENTS, "VCPU_EVENTS", offsetof(struct vcpu_state, events),
	  sizeof(struct kvm_vcpu_events), 0, true },
	{ CPU_STATE_SEC_MP_STATE, "MP_STATE", offsetof(struct vcpu_state, mp_state),
	  sizeof(struct kvm_mp_state), 0, true },
	{ CPU_STATE_SEC_DEBUGREGS, "DEBUGREGS", offsetof(struct vcpu_state, debugregs),
	  sizeof(struct kvm_debugregs), CPU_STATE_HAVE_DEBUGREGS, false },
	{ CPU_STATE_SEC_TSC_KHZ, "TSC_KHZ", 0, 0, CPU_STATE_HAVE_TSC_KHZ, false },
};

static const struct cpu_state_section_desc cpu_state_vm_sections[] = {
	{ CPU_STATE_SEC_PIC_MASTER, "PIC_MASTER", offsetof(struct vm_kvm_state, pic_master),
	  sizeof(struct kvm_irqchip), 0, true },
	{ CPU_STATE_SEC_PIC_SLAVE, "PIC_SLAVE", offsetof(struct vm_kvm_state, pic_slave),
	  sizeof(struct kvm_irqchip), 0, true },
	{ CPU_STATE_SEC_IOAPIC, "IOAPIC", offsetof(struct vm_kvm_state, ioapic),
	  sizeof(struct kvm_irqchip), 0, true },
	{ CPU_STATE_SEC_PIT2, "PIT2", offsetof(struct vm_kvm_state, pit),
	  sizeof(struct kvm_pit_state2), CPU_STATE_HAVE_PIT, false },
	{ CPU_STATE_SEC_CLOCK, "CLOCK", offsetof(struct vm_kvm_state, clock),
	  sizeof(struct kvm_clock_data), 0, true },
};

/* A variable-size section body, for the blob-specific handler. */
typedef int (*cpu_state_var_fn)(void *state, uint16_t id, const uint8_t *body, uint32_t size,
				char *err, size_t errlen);

/* Walks the header and the sections of a blob, copying fixed-size ones into state.
 * *index gets the header's vcpu_index; *have the have-bits of the sections seen, *seen a bit
 * (1 << id) per section seen. */
static int cpu_state_decode_blob(const uint8_t *buf, size_t len, uint32_t magic, const char *what,
				 const struct cpu_state_section_desc *descs, unsigned ndescs,
				 cpu_state_var_fn var, void *state, uint32_t *index,
				 uint32_t *have, uint32_t *seen_out, char *err, size_t errlen)
{
	uint32_t seen = 0;
	unsigned nsections;
	size_t off = CPU_STATE_HDR_SIZE;

	if (len < CPU_STATE_HDR_SIZE) {
		hv_errf(err, errlen, "%s state: %zu bytes, shorter than its header", what, len);
		return -EINVAL;
	}
	if (wire_get_u32(buf) != magic) {
		hv_errf(err, errlen, "%s state: bad magic 0x%08x", what, wire_get_u32(buf));
		return -EINVAL;
	}
	if (wire_get_u16(buf + 4) != CPU_STATE_VERSION) {
		hv_errf(err, errlen, "%s state: version %u, this hv reads version %u", what,
			      wire_get_u16(buf + 4), CPU_STATE_VERSION);
		return -EINVAL;
	}
	nsections = wire_get_u16(buf + 6);
	*index = wire_get_u32(buf + 8);
	if (nsections > CPU_STATE_MAX_SECTIONS || wire_get_u32(buf + 12) != 0) {
		hv_errf(err, errlen, "%s state: bad header (%u sections)", what, nsections);
		return -EINVAL;
	}
	*have = 0;
	for (unsigned k = 0; k < nsections; k++) {
		const struct cpu_state_section_desc *d = NULL;
		uint16_t id;
		uint32_t size;

		if (len - off < CPU_STATE_SEC_HDR_SIZE) {
			hv_errf(err, errlen, "%s state: truncated at section %u", what, k);
			return -EINVAL;
		}
		id = wire_get_u16(buf + off);
		size = wire_get_u32(buf + off + 4);
		if (wire_get_u16(buf + off + 2) != 0) {
			hv_errf(err, errlen, "%s state: section %u has reserved bits set", what,
				      id);
			return -EINVAL;
		}
		off += CPU_STATE_SEC_HDR_SIZE;
		for (unsigned i = 0; i < ndescs; i++)
			if (descs[i].id == id)
				d = &descs[i];
		if (!d) {
			hv_errf(err, errlen, "%s state: unknown section %u (from a newer hv?)",
				      what, id);
			return -EINVAL;
		}
		if (seen & (1u << id)) {
			hv_errf(err, errlen, "%s state: section %s twice", what, d->name);
			return -EINVAL;
		}
		seen |= 1u << id;
		if (size > len - off) {
			hv_errf(err, errlen, "%s state: section %s of %u bytes is truncated",
				      what, d->name, size);
			return -EINVAL;
		}
		if (d->size) {
			if (size != d->size) {
				hv_errf(err, errlen,
					      "%s state: section %s is %u bytes, expected %zu", what,
					      d->name, size, d->size);
				return -EINVAL;
			}
			memcpy((uint8_t *)state + d->offset, buf + off, size);
		} else {
			int rc = var(state, id, buf + off, size, err, errlen);

			if (rc)
				return rc;
		}
		*have |= d->have;
		off += size;
	}
	if (off != len) {
		hv_errf(err, errlen, "%s state: %zu bytes after the last section", what,
			      len - off);
		return -EINVAL;
	}
	for (unsigned i = 0; i < ndescs; i++) {
		if (descs[i].required && !(seen & (1u << descs[i].id))) {
			hv_errf(err, errlen, "%s state: section %s is missing", what,
				      descs[i].name);
			return -EINVAL;
		}
	}
	*seen_out = seen;
	return 0;
}

static int cpu_state_vcpu_var(void *state, uint16_t id, const uint8_t *body, uint32_t size,
			      char *err, size_t errlen)
{
	struct vcpu_state *s = state;

	switch (id) {
	case CPU_STATE_SEC_XSAVE:
		if (size < sizeof(struct kvm_xsave) || size > CPU_STATE_XSAVE_MAX || size % 4) {
			hv_errf(err, errlen, "vCPU state: XSAVE section of %u bytes", size);
			return -EINVAL;
		}
		memcpy(s->xsave, body, size);
		s->xsave_size = size;
		return 0;
	case CPU_STATE_SEC_MSRS:
		if (size % sizeof(struct kvm_msr_entry) ||
		    size / sizeof(struct kvm_msr_entry) > CPU_STATE_MAX_MSRS) {
			hv_errf(err, errlen, "vCPU state: MSRS section of %u bytes (at most %u "
				      "entries of 16)", size, CPU_STATE_MAX_MSRS);
			return -EINVAL;
		}
		s->nmsrs = size / sizeof(struct kvm_msr_entry);
		memcpy(s->msrs, body, size);
		for (uint32_t i = 0; i < s->nmsrs; i++) {
			if (s->msrs[i].reserved) {
				hv_errf(err, errlen, "vCPU state: MSR entry %u has reserved bits",
					      i);
				return -EINVAL;
			}
		}
		return 0;
	case CPU_STATE_SEC_TSC_KHZ:
		if (size != 4 || wire_get_u32(body) == 0) {
			hv_errf(err, errlen, "vCPU state: bad TSC_KHZ section");
			return -EINVAL;
		}
		s->tsc_khz = wire_get_u32(body);
		return 0;
	default:
		return -EINVAL;
	}
}

int cpu_state_decode_vcpu(const uint8_t *buf, size_t len, struct vcpu_state *s, char *err,
			  size_t errlen)
{
	uint32_t index, have, seen;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = cpu_state_decode_blob(buf, len, CPU_STATE_MAGIC_VCPU, "vCPU", cpu_state_vcpu_sections,
				   sizeof(cpu_state_vcpu_sections) / sizeof(cpu_state_vcpu_sections[0]),
				   cpu_state_vcpu_var, s, &index, &have, &seen, err, errlen);
	if (rc)
		goto fail;
	rc = -EINVAL;
	if (index >= CPU_STATE_MAX_VCPUS) {
		hv_errf(err, errlen, "vCPU state: vCPU index %u", index);
		goto fail;
	}
	/* Exactly one of SREGS and SREGS2: a zero-filled SREGS would be a broken vCPU. */
	if (!(seen & (1u << CPU_STATE_SEC_SREGS)) == !(seen & (1u << CPU_STATE_SEC_SREGS2))) {
		hv_errf(err, errlen, "vCPU state: needs exactly one of SREGS and SREGS2");
		goto fail;
	}
	s->vcpu_index = index;
	s->have = have;
	if (s->xcrs.nr_xcrs > KVM_MAX_XCRS) {
		hv_errf(err, errlen, "vCPU state: %u XCRs", s->xcrs.nr_xcrs);
		goto fail;
	}
	return 0;
fail:
	memset(s, 0, sizeof(*s));
	return rc;
}

static int cpu_state_vm_var(void *state, uint16_t id, const uint8_t *body, uint32_t size,
			    char *err, size_t errlen)
{
	return -EINVAL;
}

int cpu_state_decode_vm(const uint8_t *buf, size_t len, struct vm_kvm_state *s, char *err,
			size_t errlen)
{
	uint32_t index, have, seen;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = cpu_state_decode_blob(buf, len, CPU_STATE_MAGIC_VM, "VM", cpu_state_vm_sections,
				   sizeof(cpu_state_vm_sections) / sizeof(cpu_state_vm_sections[0]),
				   cpu_state_vm_var, s, &index, &have, &seen, err, errlen);
	if (rc)
		goto fail;
	rc = -EINVAL;
	if (index != 0) {
		hv_errf(err, errlen, "VM state: index field is %u, expected 0", index);
		goto fail;
	}
	if (s->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    s->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE || s->ioapic.chip_id != KVM_IRQCHIP_IOAPIC) {
		hv_errf(err, errlen, "VM state: irqchip ids %u/%u/%u, expected 0/1/2",
			      s->pic_master.chip_id, s->pic_slave.chip_id, s->ioapic.chip_id);
		goto fail;
	}
	s->have = have;
	return 0;
fail:
	memset(s, 0, sizeof(*s));
	return rc;
}
