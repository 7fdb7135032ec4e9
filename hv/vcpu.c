/* The vCPU thread: KVM_RUN, dispatch exits to the buses, park on pause, leave on stop. */
#include "hv/vcpu.h"

#include <errno.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/log.h"
#include "hv/throttle.h"

#define SIG_VCPU_KICK SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

/* No SA_RESTART: the signal must make KVM_RUN return EINTR. */
static void install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIG_VCPU_KICK, &sa, NULL);
}

void vcpu_init_signals(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install_kick_handler);
}

void vcpu_kick(struct vcpu *v)
{
	/* immediate_exit covers the window before the thread enters KVM_RUN; the signal
	 * covers a thread already inside it. */
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (v->thread_started)
		pthread_kill(v->thread, SIG_VCPU_KICK);
}

static void crash(struct vcpu *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void crash(struct vcpu *v, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	hv_error("vCPU %d: %s; the VM is stopped", v->index, why);
	vcpu_dump(v);
	vm_request_stop(v->vm, HV_EXIT_GUEST_CRASHED, why);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_dispatch(&v->vm->pio, run->io.port, data, run->io.size, is_write);
		data += run->io.size;
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t len = run->mmio.len <= 8 ? run->mmio.len : 8;

	bus_dispatch(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

/* Returns false when the thread must leave its loop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		crash(v, "guest triple fault (shutdown)");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_request_stop(v->vm, 0, "guest requested a system reset or power off");
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		crash(v, "KVM internal error, suberror %u%s", run->internal.suberror,
		      run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
			      ? " (instruction emulation failed)"
			      : "");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		crash(v, "VM entry failed, hardware reason 0x%llx",
		      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	default:
		crash(v, "unexpected KVM exit reason %u", run->exit_reason);
		return false;
	}
}

/* Called after KVM_RUN returned EINTR/EAGAIN, i.e. with no exit pending: the vCPU state
 * is complete here, so this is where it parks for a pause. Returns false on stop. */
static bool park_if_asked(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool keep_running = true;

	pthread_mutex_lock(&vm->lock);
	throttle_vcpu_sleep_locked(v);
	if (vm->pause_requested && !vm->stop_requested) {
		vm->vcpus_paused++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_requested && !vm->stop_requested)
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->vcpus_paused--;
		pthread_cond_broadcast(&vm->cond);
	}
	if (vm->stop_requested)
		keep_running = false;
	else
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	return keep_running;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%d", v->index);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			int err = errno;
			if (err == EINTR || err == EAGAIN) {
				if (!park_if_asked(v))
					break;
				continue;
			}
			crash(v, "KVM_RUN failed: %s", strerror(err));
			break;
		}
		if (!handle_exit(v))
			break;
	}
	pthread_mutex_lock(&v->vm->lock);
	v->vm->vcpus_exited++;
	pthread_cond_broadcast(&v->vm->cond);
	pthread_mutex_unlock(&v->vm->lock);
	return NULL;
}

int vcpu_start_thread(struct vcpu *v)
{
	sigset_t all, old;

	/* Only vCPU threads take the kick signal's default-ignoring handler path. */
	sigfillset(&all);
	sigdelset(&all, SIG_VCPU_KICK);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		hv_error("cannot start vCPU %d thread: %s", v->index, strerror(r));
		return -1;
	}
	pthread_mutex_lock(&v->vm->lock);
	v->thread_started = true;
	/* A stop or pause that raced with creation must still reach this thread. */
	if (v->vm->stop_requested || v->vm->pause_requested)
		vcpu_kick(v);
	pthread_mutex_unlock(&v->vm->lock);
	return 0;
}

void vcpu_join_thread(struct vcpu *v)
{
	if (v->thread_started) {
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
}
