/* Destination-side prefaulting: allocates the guest RAM ranges the source says it uses, on
 * a thread of its own, ahead of the page stream. Receiving a page into never-touched memfd
 * memory costs a page fault, an allocation and a clear; done here in parallel, the receive
 * path is left with copying. */
#ifndef MIGRATE_PREFAULT_H
#define MIGRATE_PREFAULT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/wire.h"

struct guest_mem;

struct prefault {
	struct guest_mem *mem;
	const struct wire_ram_range *ranges;
	uint32_t nranges;
	atomic_bool stop;
	pthread_t thread;
	bool started;
};

/* Starts the thread (if there is anything to do). ranges must outlive prefault_stop. */
void prefault_start(struct prefault *p, struct guest_mem *mem, const struct wire_ram_range *ranges,
		    uint32_t n);
void prefault_stop(struct prefault *p);

#endif
