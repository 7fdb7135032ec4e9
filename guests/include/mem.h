/* hv-guest: physical memory. Everything is identity-mapped, so addresses are pointers. */
#ifndef HVG_MEM_H
#define HVG_MEM_H

#include <stdint.h>

#include "bootinfo.h"

#define PAGE_SIZE 4096UL
#define MiB (1UL << 20)
#define ALLOC_LIMIT 0xC0000000UL /* allocate below 3 GiB only */

extern char _end[]; /* end of the image, including its stacks (linker script) */

void mem_init(const struct bootinfo *bi);
uint64_t mem_ram_bytes(void);  /* all usable RAM in the map */
uint64_t mem_free_bytes(void); /* left in the allocation region */
uint64_t mem_heap_start(void);
/* Bump allocator over the largest usable region below 3 GiB above the image.
 * Returns 0 if it does not fit. */
uint64_t mem_alloc(uint64_t size, uint64_t align);
/* A usable page below 1 MiB (not page 0) free of loader structures, or 0. */
uint64_t mem_low_page(const struct bootinfo *bi);

#endif
