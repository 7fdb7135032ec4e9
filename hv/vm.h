/* A VM: KVM VM and vCPU threads, guest RAM, buses, devices, lifecycle.
 * All mutable state of a VM lives here (no globals). The pause/resume path is the one
 * migration uses: vm_pause returns only when every vCPU is outside KVM_RUN. */
#ifndef HV_VM_H
#define HV_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uuid/uuid.h>

#include "hv/bus.h"
#include "hv/cpu_model.h"
#include "hv/guest_mem.h"

/* hvctl run exit status: a guest's debug-exit value v passes through as v & 0xff
 * (QEMU's isa-debug-exit would report (v << 1) | 1) when it is below 124; from 124 up it is
 * reported as HV_EXIT_GUEST_HIGH (the exact value is in the stop reason), so that a guest
 * can never pass for hv's own statuses (125-127) or a signal (128+N). */
#define HV_EXIT_GUEST_HIGH 124 /* the guest exited with a status of 124 or more */
#define HV_EXIT_START_FAILED 125 /* hv could not start the VM (bad input, no KVM, ...) */
#define HV_EXIT_GUEST_CRASHED 126 /* emulation failure, triple fault, failed entry */
#define HV_EXIT_SYSCALL_REFUSED 127 /* the system-call filter stopped the VM process */

#define VM_NAME_MAX 64
#define VM_MAX_CPUS 64

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_STOPPED };

struct vm;
struct cpuid_table;

struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	uint64_t throttle_sleep_ns; /* under vm->lock: the sleep hv/throttle.c asked for */
};

/* Called (from any thread, VM lock not held) after every state change. */
typedef void (*vm_state_listener_fn)(void *opaque, struct vm *vm, enum vm_state state);

struct vm {
	char name[VM_NAME_MAX];
	char uuid[37];
	int kvm_fd, vm_fd;
	int run_mmap_size;
	struct guest_mem mem;
	struct bus pio, mmio;
	int ncpus;
	struct vcpu *vcpus;
	struct cpuid_table *cpuid; /* the guest's, as set on every vCPU (less topology) */
	enum cpu_model cpu_model;  /* what built it; migration carries it on */
	char cpu_features[1024];   /* what KVM holds for vCPU 0 (KVM_GET_CPUID2), by name; under lock */
	char cpu_features_set[1024]; /* what hv set (vm->cpuid), by name; differs where the
	                              * platform overrides CPUID (PVM: leaves 1 and 7) */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	enum vm_state state;
	bool pause_requested;
	int vcpus_paused;  /* vCPU threads parked in the pause wait */
	int vcpus_exited;  /* vCPU threads that have left their loop */
	bool stop_requested;
	int exit_status;
	char exit_reason[160];
	uint64_t started_ns; /* CLOCK_MONOTONIC at vm_start */
	unsigned throttle_pct; /* hv/throttle.h: share of time the vCPUs are held back */
	bool throttle_thread_running;
	pthread_t throttle_thread;

	vm_state_listener_fn listener;
	void *listener_opaque;
};

/* Opens /dev/kvm, creates the VM (irqchip, PIT, RAM backed as `mem_spec` says, NULL for the
 * default; memslots) and its vCPUs (CPUID set as `cpu_model` says; refused with the missing
 * features named if this host cannot offer it).
 * 0, or -1 with one hv_error line. On failure everything is released. */
/* Reads back the CPUID KVM holds for vCPU 0 into vm->cpu_features (before it first runs). */
void vm_read_cpu_features(struct vm *vm);

int vm_create(struct vm *vm, const char *name, uint64_t mem_size,
	      const struct guest_mem_spec *mem_spec, int ncpus, enum cpu_model cpu_model);
/* Writes e820/MP tables and sets up the boot vCPU's registers for `entry`. */
struct boot_entry;
int vm_setup_boot(struct vm *vm, const struct boot_entry *entry);
/* Starts one thread per vCPU. */
int vm_start(struct vm *vm);
/* Parks every vCPU outside KVM_RUN; returns when all are parked. Idempotent. */
int vm_pause(struct vm *vm);
/* Starts the vCPU threads without running a guest instruction: the VM is paused at once
 * (a guest that arrives paused). 0 or -1. */
int vm_start_paused(struct vm *vm);
int vm_resume(struct vm *vm);
/* Asks the VM to stop with this status; the first request wins. Safe from any thread,
 * including vCPU threads (device handlers). */
void vm_request_stop(struct vm *vm, int status, const char *reason);
/* Blocks until the VM is stopped and every vCPU thread has been joined; returns exit_status. */
int vm_wait(struct vm *vm);
void vm_destroy(struct vm *vm);

enum vm_state vm_get_state(struct vm *vm);
const char *vm_state_name(enum vm_state s);
void vm_set_listener(struct vm *vm, vm_state_listener_fn fn, void *opaque);

/* KVM memory slots: low RAM, and RAM above 4 GiB (present when mem > MMIO_HOLE_START). */
#define VM_SLOT_LOW 0
#define VM_SLOT_HIGH 1
/* Turns KVM dirty-page logging on or off for all RAM slots. 0 or -1. */
int vm_set_dirty_logging(struct vm *vm, bool on);

/* Raise/lower an IRQ line on the in-kernel irqchip. */
int vm_irq_line(struct vm *vm, int irq, int level);

#endif
