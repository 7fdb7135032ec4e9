/* KVM state of the vCPUs and of the VM (irqchips, PIT, clock): save, restore, serialise.
 *
 * The state is plain data, saved and restored as a whole, in a documented order
 * (PLATFORM.md; Firecracker does the same):
 *   SET_CPUID2 (by the VMM, before the first KVM_RUN)
 *   -> VM clock (cpu_state_restore_vm_clock)
 *   -> per vCPU (cpu_state_restore_vcpu): TSC_KHZ, SREGS(2), REGS, FPU, XSAVE, XCRS, LAPIC,
 *      MSRs (IA32_TSC before IA32_TSC_DEADLINE, which goes last, after the LAPIC),
 *      VCPU_EVENTS, MP_STATE, DEBUGREGS
 *   -> VM chips (cpu_state_restore_vm_chips): PIC master, PIC slave, IOAPIC, PIT2.
 * cpu_state_restore_all does exactly that.
 *
 * Serialised form (docs/migration-protocol.md, 5): a 16-byte header {u32 magic, u16 version,
 * u16 nsections, u32 vcpu_index, u32 reserved} then the sections of hv/state_enc.h. A section
 * body is one KVM struct written field by field (fixed width, little endian; padding and
 * reserved words left out), as the field tables of cpu_state.c list them. Decoding is strict:
 * every size must be exactly right, counts are bounded, no section twice, no unknown section,
 * nothing trailing, every required section present. All functions return 0 or a negative
 * errno; failing ones write one line naming the ioctl or field into err (may be NULL). */
#ifndef MIGRATE_CPU_STATE_H
#define MIGRATE_CPU_STATE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

/* 1: sections held the KVM structs byte for byte; 2: field by field (hv/state_enc.h). */
#define CPU_STATE_VERSION 2
#define CPU_STATE_MAX_MSRS 512
#define CPU_STATE_XSAVE_MAX 16384
#define CPU_STATE_MAX_VCPUS 1024
#define CPU_STATE_VCPU_BLOB_MAX (64 * 1024)
#define CPU_STATE_VM_BLOB_MAX 4096

#define CPU_STATE_MSR_IA32_TSC 0x10u
#define CPU_STATE_MSR_IA32_TSC_DEADLINE 0x6e0u

/* What a vcpu_state holds besides the always-present REGS, FPU, MSRS, LAPIC, EVENTS, MP_STATE. */
enum cpu_state_have {
	CPU_STATE_HAVE_SREGS2 = 1u << 0, /* sregs2 valid; otherwise sregs */
	CPU_STATE_HAVE_XSAVE = 1u << 1,
	CPU_STATE_HAVE_XCRS = 1u << 2,
	CPU_STATE_HAVE_DEBUGREGS = 1u << 3,
	CPU_STATE_HAVE_TSC_KHZ = 1u << 4,
};

struct vcpu_state {
	uint32_t vcpu_index; /* set by the caller before encoding; checked < CPU_STATE_MAX_VCPUS */
	uint32_t have;       /* enum cpu_state_have */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_sregs2 sregs2;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint32_t tsc_khz;
	uint32_t xsave_size; /* bytes of xsave in use (4096 .. CPU_STATE_XSAVE_MAX) */
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[CPU_STATE_MAX_MSRS];
	/* struct kvm_xsave, as large as KVM_CAP_XSAVE2 says */
	uint8_t xsave[CPU_STATE_XSAVE_MAX] __attribute__((aligned(64)));

	/* Save diagnostics, not serialised: MSRs KVM listed but would not read. */
	uint32_t nmsrs_unreadable;
	uint32_t msrs_unreadable[16];
};

enum cpu_state_vm_have {
	CPU_STATE_HAVE_PIT = 1u << 0,
};

struct vm_kvm_state {
	uint32_t have; /* enum cpu_state_vm_have */
	struct kvm_irqchip pic_master; /* chip_id 0 */
	struct kvm_irqchip pic_slave;  /* chip_id 1 */
	struct kvm_irqchip ioapic;     /* chip_id 2 */
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/* Saves one vCPU (not in KVM_RUN, and not stopped in a port or MMIO exit: see
 * docs/migration-protocol.md, 5). kvm_fd is the /dev/kvm fd
 * (MSR index list, XSAVE2 size). */
int cpu_state_save_vcpu(int vcpu_fd, int kvm_fd, struct vcpu_state *s, char *err, size_t errlen);
int cpu_state_restore_vcpu(int vcpu_fd, int kvm_fd, const struct vcpu_state *s, char *err,
			   size_t errlen);

int cpu_state_save_vm(int vm_fd, struct vm_kvm_state *s, char *err, size_t errlen);
/* KVM_SET_CLOCK: kvmclock continues from the saved value (the downtime is not added). */
int cpu_state_restore_vm_clock(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen);
/* PIC master, PIC slave, IOAPIC, PIT2: after the vCPUs. */
int cpu_state_restore_vm_chips(int vm_fd, const struct vm_kvm_state *s, char *err, size_t errlen);

/* The whole documented order for a VM whose vCPUs exist and have their CPUID set.
 * vcpus[i] goes to vcpu_fds[i]. */
int cpu_state_restore_all(int vm_fd, int kvm_fd, const int *vcpu_fds, const struct vcpu_state *vcpus,
			  unsigned n, const struct vm_kvm_state *vm, char *err, size_t errlen);


/* Serialisation. encode: 0, -ENOSPC if cap is too small (CPU_STATE_*_BLOB_MAX always
 * suffices), -EINVAL for a count the decoder would refuse, -ENOMEM. decode: 0 or -EINVAL
 * with the reason in err; the decoded irqchips get chip_id 0, 1, 2. */
int cpu_state_encode_vcpu(const struct vcpu_state *s, uint8_t *buf, size_t cap, size_t *len);
int cpu_state_decode_vcpu(const uint8_t *buf, size_t len, struct vcpu_state *s, char *err,
			  size_t errlen);
int cpu_state_encode_vm(const struct vm_kvm_state *s, uint8_t *buf, size_t cap, size_t *len);
int cpu_state_decode_vm(const uint8_t *buf, size_t len, struct vm_kvm_state *s, char *err,
			size_t errlen);

#endif
