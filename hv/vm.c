#include "hv/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "hv/boot.h"
#include "hv/clock.h"
#include "hv/cpu_model.h"
#include "hv/cpuid.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/throttle.h"
#include "hv/vcpu.h"
#include "hv/x86_tables.h"

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int err = errno;
		if (err == ENOENT)
			hv_error("/dev/kvm does not exist: load the kvm module (modprobe kvm_intel or kvm_amd) or enable virtualization");
		else
			hv_error("cannot open /dev/kvm: %s; run as root or as a member of the kvm group", strerror(err));
		return -1;
	}
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		hv_error("/dev/kvm speaks KVM API %d, hv needs %d", version, KVM_API_VERSION);
		close(fd);
		return -1;
	}
	return fd;
}

static int check_host_memory(uint64_t mem_size)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0;
	uint64_t host = (uint64_t)si.totalram * si.mem_unit + (uint64_t)si.totalswap * si.mem_unit;
	if (mem_size > host) {
		hv_error("%llu MiB of guest memory is more than this host has (%llu MiB of RAM and swap); choose a smaller --mem",
			 (unsigned long long)(mem_size >> 20), (unsigned long long)(host >> 20));
		return -1;
	}
	return 0;
}

static int set_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		       uint32_t flags);

static int add_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
	return set_memslot(vm, slot, gpa, size, host, 0);
}

static int set_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		       uint32_t flags)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		hv_error("KVM refused a %llu MiB memory slot: %s", (unsigned long long)(size >> 20),
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int create_vcpus(struct vm *vm)
{
	vm->run_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_mmap_size <= 0) {
		hv_error("KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
		return -1;
	}
	vm->cpuid = calloc(1, sizeof(*vm->cpuid));
	vm->vcpus = calloc((size_t)vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->cpuid || !vm->vcpus) {
		hv_error("out of memory creating vCPUs");
		return -1;
	}
	int r = cpuid_get_supported(vm->kvm_fd, vm->cpuid);
	if (r < 0) {
		hv_error("KVM_GET_SUPPORTED_CPUID failed: %s", strerror(-r));
		return -1;
	}
	char missing[400];
	if (cpu_model_missing(vm->cpuid, vm->cpu_model, missing, sizeof(missing)) > 0) {
		hv_error("this host cannot offer --cpu-model %s: its CPU lacks %s; choose a lower "
			 "model ('hvctl cpu-models' lists what this host offers)",
			 cpu_model_name(vm->cpu_model), missing);
		return -1;
	}
	cpu_model_build(vm->cpuid, vm->cpu_model);
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = -1;
	}
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0) {
			hv_error("cannot create vCPU %d: %s; try fewer --cpus", i, strerror(errno));
			return -1;
		}
		v->run = mmap(NULL, (size_t)vm->run_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			hv_error("cannot map vCPU %d run area: %s", i, strerror(errno));
			return -1;
		}
		if (cpuid_apply(v->fd, vm->cpuid, i, vm->ncpus) < 0)
			return -1;
	}
	vm_read_cpu_features(vm);
	return 0;
}

void vm_read_cpu_features(struct vm *vm)
{
	char f[sizeof(vm->cpu_features)], set[sizeof(vm->cpu_features_set)];

	if (vm->ncpus < 1 || cpuid_read_features(vm->vcpus[0].fd, f, sizeof(f)) < 0)
		snprintf(f, sizeof(f), "?");
	if (cpuid_feature_list(vm->cpuid, set, sizeof(set)) < 0)
		snprintf(set, sizeof(set), "?");
	pthread_mutex_lock(&vm->lock);
	memcpy(vm->cpu_features, f, sizeof(f));
	memcpy(vm->cpu_features_set, set, sizeof(set));
	pthread_mutex_unlock(&vm->lock);
}

int vm_create(struct vm *vm, const char *name, uint64_t mem_size,
	      const struct guest_mem_spec *mem_spec, int ncpus, enum cpu_model cpu_model)
{
	memset(vm, 0, sizeof(*vm));
	vm->cpu_model = cpu_model;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem.fd = vm->mem.pagemap_fd = -1;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	uuid_t id;
	uuid_generate(id);
	uuid_unparse_lower(id, vm->uuid);
	vm->ncpus = ncpus;
	vm->state = VM_CREATED;
	pthread_mutex_init(&vm->lock, NULL);
	/* Monotonic: the throttle's timed waits on it follow clock_now_ns. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	bus_init(&vm->pio);
	bus_init(&vm->mmio);

	if (ncpus < 1 || ncpus > VM_MAX_CPUS) {
		hv_error("--cpus %d is out of range; choose 1 to %d", ncpus, VM_MAX_CPUS);
		goto fail;
	}
	if (mem_size < 2 * MiB) {
		hv_error("--mem must be at least 2M");
		goto fail;
	}
	if (check_host_memory(mem_size) < 0)
		goto fail;
	vm->kvm_fd = open_kvm();
	if (vm->kvm_fd < 0)
		goto fail;
	int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus > 0 && ncpus > max_vcpus) {
		hv_error("--cpus %d exceeds what KVM supports here (%d)", ncpus, max_vcpus);
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		hv_error("KVM_CREATE_VM failed: %s", strerror(errno));
		goto fail;
	}
	/* Needed on VMX hosts for real-mode emulation; harmless elsewhere. */
	ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR);
	uint64_t ident = KVM_IDENTITY_MAP_ADDR;
	ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		hv_error("KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
		goto fail;
	}
	struct kvm_pit_config pit = { .flags = 0 };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		hv_error("KVM_CREATE_PIT2 failed: %s", strerror(errno));
		goto fail;
	}
	if (guest_mem_create_spec(&vm->mem, mem_size, mem_spec) < 0)
		goto fail;
	if (add_memslot(vm, VM_SLOT_LOW, 0, vm->mem.low_size, vm->mem.host) < 0)
		goto fail;
	if (vm->mem.high_size &&
	    add_memslot(vm, VM_SLOT_HIGH, HIGH_RAM_START, vm->mem.high_size, vm->mem.host + vm->mem.low_size) < 0)
		goto fail;
	if (create_vcpus(vm) < 0)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return -1;
}

int vm_set_dirty_logging(struct vm *vm, bool on)
{
	uint32_t flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;

	if (set_memslot(vm, VM_SLOT_LOW, 0, vm->mem.low_size, vm->mem.host, flags) < 0)
		return -1;
	if (vm->mem.high_size && set_memslot(vm, VM_SLOT_HIGH, HIGH_RAM_START, vm->mem.high_size,
					     vm->mem.host + vm->mem.low_size, flags) < 0)
		return -1;
	return 0;
}

int vm_setup_boot(struct vm *vm, const struct boot_entry *entry)
{
	if (mptable_write(&vm->mem, vm->ncpus) < 0)
		return -1;
	return vcpu_setup_boot_regs(&vm->vcpus[0], entry);
}

static void notify(struct vm *vm, enum vm_state s)
{
	pthread_mutex_lock(&vm->lock);
	vm_state_listener_fn fn = vm->listener;
	void *opaque = vm->listener_opaque;
	pthread_mutex_unlock(&vm->lock);
	if (fn)
		fn(opaque, vm, s);
}

static void set_state_locked(struct vm *vm, enum vm_state s)
{
	vm->state = s;
	pthread_cond_broadcast(&vm->cond);
}

static void kick_all_locked(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_cond_broadcast(&vm->cond); /* a vCPU sleeping for the throttle */
}

int vm_start(struct vm *vm)
{
	vcpu_init_signals();
	pthread_mutex_lock(&vm->lock);
	vm->started_ns = clock_now_ns();
	set_state_locked(vm, VM_RUNNING);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->ncpus; i++) {
		if (vcpu_start_thread(&vm->vcpus[i]) < 0) {
			vm_request_stop(vm, HV_EXIT_START_FAILED, "cannot start vCPU threads");
			return -1;
		}
	}
	notify(vm, VM_RUNNING);
	return 0;
}

int vm_start_paused(struct vm *vm)
{
	/* Every KVM_RUN returns at once (immediate_exit) into the pause wait. */
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = true;
	for (int i = 0; i < vm->ncpus; i++)
		__atomic_store_n(&vm->vcpus[i].run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	if (vm_start(vm) < 0)
		return -1;
	return vm_pause(vm);
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_RUNNING) {
		int r = vm->state == VM_PAUSED ? 0 : -1;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->pause_requested = true;
	kick_all_locked(vm);
	while (vm->vcpus_paused + vm->vcpus_exited < vm->ncpus && !vm->stop_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	bool stopped = vm->stop_requested;
	if (!stopped)
		set_state_locked(vm, VM_PAUSED);
	pthread_mutex_unlock(&vm->lock);
	if (stopped)
		return -1;
	notify(vm, VM_PAUSED);
	return 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_PAUSED) {
		int r = vm->state == VM_RUNNING ? 0 : -1;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->pause_requested = false;
	set_state_locked(vm, VM_RUNNING);
	/* Wait until every vCPU has left the pause wait, so a quick pause-again is clean. */
	while (vm->vcpus_paused > 0)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	notify(vm, VM_RUNNING);
	return 0;
}

void vm_request_stop(struct vm *vm, int status, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stop_requested) {
		vm->stop_requested = true;
		vm->exit_status = status;
		snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason);
		kick_all_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

int vm_wait(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	while (!vm->stop_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	vm_throttle_set(vm, 0); /* a migration that was throttling it ends with the VM */
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_join_thread(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	set_state_locked(vm, VM_STOPPED);
	int status = vm->exit_status;
	pthread_mutex_unlock(&vm->lock);
	notify(vm, VM_STOPPED);
	return status;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (int i = 0; i < vm->ncpus; i++) {
			struct vcpu *v = &vm->vcpus[i];
			if (v->run)
				munmap(v->run, (size_t)vm->run_mmap_size);
			if (v->fd >= 0)
				close(v->fd);
		}
	}
	free(vm->vcpus);
	vm->vcpus = NULL;
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
	guest_mem_destroy(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
}

enum vm_state vm_get_state(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	enum vm_state s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

const char *vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_CREATED: return "created";
	case VM_RUNNING: return "running";
	case VM_PAUSED: return "paused";
	case VM_STOPPED: return "stopped";
	}
	return "unknown";
}

void vm_set_listener(struct vm *vm, vm_state_listener_fn fn, void *opaque)
{
	pthread_mutex_lock(&vm->lock);
	vm->listener = fn;
	vm->listener_opaque = opaque;
	pthread_mutex_unlock(&vm->lock);
}

int vm_irq_line(struct vm *vm, int irq, int level)
{
	struct kvm_irq_level l = { .irq = (uint32_t)irq, .level = (uint32_t)level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}
