#include "migrate/prefault.h"

#include <sys/mman.h>

#include "hv/guest_mem.h"
#include "hv/layout.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK_PAGES 512 /* 2 MiB: small enough to stop promptly */

static void *prefault_thread(void *arg)
{
	struct prefault *p = arg;
	uint64_t pages = guest_mem_pages(p->mem);

	for (uint32_t i = 0; i < p->nranges && !atomic_load(&p->stop); i++) {
		uint64_t g = p->ranges[i].gfn, end = g + p->ranges[i].npages;
		if (end > pages)
			end = pages;
		while (g < end && !atomic_load(&p->stop)) {
			uint64_t n = end - g < CHUNK_PAGES ? end - g : CHUNK_PAGES;
			/* Best effort: an old kernel without POPULATE_WRITE just leaves the faults to
			 * the receive path. */
			if (madvise(p->mem->host + g * PAGE_SIZE, n * PAGE_SIZE, MADV_POPULATE_WRITE) < 0)
				return NULL;
			g += n;
		}
	}
	return NULL;
}

void prefault_start(struct prefault *p, struct guest_mem *mem, const struct wire_ram_range *ranges,
		    uint32_t n)
{
	p->mem = mem;
	p->ranges = ranges;
	p->nranges = n;
	atomic_store(&p->stop, false);
	p->started = n > 0 && pthread_create(&p->thread, NULL, prefault_thread, p) == 0;
}

void prefault_stop(struct prefault *p)
{
	if (!p->started)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	p->started = false;
}
