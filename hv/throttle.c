/* The vCPU duty cycle of hv/throttle.h: one thread per throttled VM hands every vCPU its
 * sleep and kicks it; the vCPU sleeps in its own thread, on the VM's condition variable, so
 * that a pause or stop (both broadcast) is never held up by a throttle. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "hv/clock.h"
#include "hv/log.h"
#include "hv/throttle.h"
#include "hv/vcpu.h"

uint64_t throttle_sleep_ns(unsigned pct)
{
	if (pct > THROTTLE_MAX_PCT)
		pct = THROTTLE_MAX_PCT;
	return THROTTLE_SLICE_NS * pct / (100 - pct);
}

static struct timespec abs_time(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL) };
}

/* vm->cond runs on CLOCK_MONOTONIC (vm_create), as clock_now_ns does. */
static void wait_until_locked(struct vm *vm, uint64_t deadline_ns)
{
	struct timespec ts = abs_time(deadline_ns);
	pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
}

void throttle_vcpu_sleep_locked(struct vcpu *v)
{
	struct vm *vm = v->vm;
	uint64_t until = clock_now_ns() + v->throttle_sleep_ns;

	if (!v->throttle_sleep_ns)
		return;
	v->throttle_sleep_ns = 0;
	while (!vm->pause_requested && !vm->stop_requested && vm->throttle_pct && clock_now_ns() < until)
		wait_until_locked(vm, until);
}

static void *throttle_thread(void *arg)
{
	struct vm *vm = arg;

	pthread_setname_np(pthread_self(), "throttle");
	pthread_mutex_lock(&vm->lock);
	while (vm->throttle_pct && !vm->stop_requested) {
		uint64_t sleep = throttle_sleep_ns(vm->throttle_pct);
		if (vm->state == VM_RUNNING && !vm->pause_requested)
			for (int i = 0; i < vm->ncpus; i++) {
				vm->vcpus[i].throttle_sleep_ns = sleep;
				vcpu_kick(&vm->vcpus[i]);
			}
		uint64_t next = clock_now_ns() + sleep + THROTTLE_SLICE_NS;
		while (vm->throttle_pct && !vm->stop_requested && clock_now_ns() < next)
			wait_until_locked(vm, next);
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_throttle_set(struct vm *vm, unsigned pct)
{
	if (pct > THROTTLE_MAX_PCT)
		pct = THROTTLE_MAX_PCT;
	pthread_mutex_lock(&vm->lock);
	vm->throttle_pct = pct;
	bool start = pct && !vm->throttle_thread_running, join = !pct && vm->throttle_thread_running;
	if (start) {
		int r = pthread_create(&vm->throttle_thread, NULL, throttle_thread, vm);
		if (r) {
			vm->throttle_pct = 0;
			pthread_mutex_unlock(&vm->lock);
			hv_error("cannot start the vCPU throttle: %s", strerror(r));
			return -1;
		}
		vm->throttle_thread_running = true;
	}
	if (join) {
		for (int i = 0; i < vm->ncpus; i++)
			vm->vcpus[i].throttle_sleep_ns = 0;
		vm->throttle_thread_running = false;
		pthread_cond_broadcast(&vm->cond); /* the thread and any sleeping vCPU */
	}
	pthread_mutex_unlock(&vm->lock);
	if (join)
		pthread_join(vm->throttle_thread, NULL);
	return 0;
}
