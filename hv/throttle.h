/* Slowing a guest down: a duty cycle on its vCPUs, for a migration whose guest dirties memory
 * faster than the link carries it (--auto-converge). Every THROTTLE_SLICE_NS of running, each
 * vCPU is kicked out of KVM_RUN and sleeps long enough that it runs (100 - pct)% of the time,
 * as QEMU's cpu-throttle does. A sleeping vCPU wakes at once for a pause or a stop. */
#ifndef HV_THROTTLE_H
#define HV_THROTTLE_H

#include <stdint.h>

#include "hv/vm.h"

#define THROTTLE_SLICE_NS (10 * 1000000ULL)
#define THROTTLE_MAX_PCT 99

/* Sets the share of time the vCPUs are held back (0 .. THROTTLE_MAX_PCT; 0 ends throttling
 * and joins its thread). 0, or -1 with one hv_error line (no thread could be started). */
int vm_throttle_set(struct vm *vm, unsigned pct);
/* How long a vCPU sleeps after each slice at `pct` (pure; 0 for 0). */
uint64_t throttle_sleep_ns(unsigned pct);
/* Called by a vCPU thread outside KVM_RUN with vm->lock held: sleeps what the throttle asked
 * of it, if anything, until then or until a pause or stop is requested. */
void throttle_vcpu_sleep_locked(struct vcpu *v);

#endif
