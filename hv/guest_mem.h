/* Guest RAM: one memfd mapped MAP_SHARED, split around the 32-bit MMIO hole.
 * Low RAM [0, low_size) is memfd offset 0; high RAM [4 GiB, 4 GiB + high_size) follows it.
 * The VMM-side dirty bitmap records every write the VMM makes into guest RAM
 * (KVM's dirty log does not see them); migration ORs it into KVM's log. */
#ifndef HV_GUEST_MEM_H
#define HV_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem {
	int memfd;
	uint8_t *host;       /* mapping of the whole memfd, size bytes */
	uint64_t size;       /* total RAM */
	uint64_t low_size;   /* RAM below MMIO_HOLE_START */
	uint64_t high_size;  /* RAM from HIGH_RAM_START */
	uint64_t *vmm_dirty; /* one bit per 4 KiB page, indexed by memfd offset; atomic ops */
};

/* Creates RAM of `size` bytes (a multiple of 4 KiB). Returns 0 or -errno, with a message. */
int guest_mem_create(struct guest_mem *m, uint64_t size);
void guest_mem_destroy(struct guest_mem *m);

/* Host pointer for [gpa, gpa+len) if the whole range is RAM inside one slot, else NULL.
 * Every guest-supplied address goes through here. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* memfd offset of a RAM gpa, or -1 if gpa is not RAM. */
int64_t guest_mem_offset(const struct guest_mem *m, uint64_t gpa);

/* Copy helpers that check bounds; writes mark the VMM dirty bitmap. Return 0 or -EFAULT. */
int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* Record that the VMM wrote [gpa, gpa+len) (for writes made through guest_mem_ptr). */
void guest_mem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Atomically fetch and clear the VMM dirty bitmap word `word` (pages word*64 .. word*64+63). */
uint64_t guest_mem_take_dirty_word(struct guest_mem *m, uint64_t word);
uint64_t guest_mem_pages(const struct guest_mem *m);

#endif
