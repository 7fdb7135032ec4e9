/* hv-guest: usable RAM from the loader's memory map, and a bump allocator over the
 * largest usable region below 3 GiB that lies above the image. */
#include "mem.h"

#include "lib.h"

static uint64_t ram_bytes;
static uint64_t heap_start, heap_cur, heap_end;

void mem_init(const struct bootinfo *bi)
{
	uint64_t image_end = (uint64_t)(uintptr_t)_end;

	ram_bytes = 0;
	heap_start = heap_cur = heap_end = 0;
	for (int i = 0; i < bi->nregions; i++) {
		const struct mem_region *r = &bi->regions[i];
		if (r->type != E820_RAM)
			continue;
		ram_bytes += r->size;
		uint64_t s = ALIGN_UP(r->addr, PAGE_SIZE);
		uint64_t e = ALIGN_DOWN(r->addr + r->size, PAGE_SIZE);
		if (s < image_end)
			s = image_end;
		if (e > ALLOC_LIMIT)
			e = ALLOC_LIMIT;
		if (e > s && e - s > heap_end - heap_start) {
			heap_start = heap_cur = s;
			heap_end = e;
		}
	}
}

uint64_t mem_ram_bytes(void)
{
	return ram_bytes;
}

uint64_t mem_free_bytes(void)
{
	return heap_end - heap_cur;
}

uint64_t mem_heap_start(void)
{
	return heap_start;
}

uint64_t mem_alloc(uint64_t size, uint64_t align)
{
	uint64_t p = ALIGN_UP(heap_cur, align);

	if (p < heap_cur || p > heap_end || size > heap_end - p)
		return 0;
	heap_cur = p + size;
	return p;
}

static int overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

uint64_t mem_low_page(const struct bootinfo *bi)
{
	for (uint64_t p = PAGE_SIZE; p < 0x100000; p += PAGE_SIZE) {
		int usable = 0, busy = 0;
		for (int i = 0; i < bi->nregions; i++) {
			const struct mem_region *r = &bi->regions[i];
			if (r->type == E820_RAM && r->addr <= p && r->addr + r->size >= p + PAGE_SIZE)
				usable = 1;
			else if (r->type != E820_RAM && overlaps(p, p + PAGE_SIZE, r->addr,
								 r->addr + r->size))
				busy = 1;
		}
		for (int i = 0; i < bi->nbusy; i++)
			if (overlaps(p, p + PAGE_SIZE, bi->busy[i].start, bi->busy[i].end))
				busy = 1;
		if (usable && !busy)
			return p;
	}
	return 0;
}
