/* One vCPU: its thread, its KVM_RUN loop and exit dispatch, its boot registers. */
#ifndef HV_VCPU_H
#define HV_VCPU_H

#include "hv/vm.h"

struct boot_entry;

/* Installs the no-op signal that kicks vCPU threads out of KVM_RUN (once per process). */
void vcpu_init_signals(void);
int vcpu_start_thread(struct vcpu *v);
void vcpu_join_thread(struct vcpu *v);
/* Makes the vCPU leave KVM_RUN soon; call with vm->lock held. */
void vcpu_kick(struct vcpu *v);
/* Entry state for the boot protocol (PVH 32-bit or Linux 64-bit). */
int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *e);
/* Prints registers and the instruction bytes at RIP after a failure, as hv lines. */
void vcpu_dump(struct vcpu *v);

#endif
