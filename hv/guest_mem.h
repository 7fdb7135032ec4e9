/* Guest RAM: one host mapping, split around the 32-bit MMIO hole.
 * Low RAM [0, low_size) is RAM offset 0; high RAM [4 GiB, 4 GiB + high_size) follows it.
 * Three backings (docs/architecture.md, "Memory"):
 *   anon     private anonymous memory with MADV_HUGEPAGE: 2 MiB transparent huge pages on a
 *            stock host (what QEMU does); the default.
 *   memfd    a memfd mapped shared: for sharing RAM with another process; 4 KiB pages where
 *            shmem THP is off (Debian's default).
 *   hugetlb  a hugetlbfs file (hv's own, or one in a given mount): huge pages reserved from
 *            the pool up front, so an empty pool fails at start rather than with SIGBUS later.
 * The VMM-side dirty bitmap records every write the VMM makes into guest RAM
 * (KVM's dirty log does not see them); migration ORs it into KVM's log. */
#ifndef HV_GUEST_MEM_H
#define HV_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum guest_mem_backend {
	GUEST_MEM_ANON = 0, /* the zero value is the default */
	GUEST_MEM_MEMFD,
	GUEST_MEM_HUGETLB,
};

/* How RAM is backed, as the user chose it (--mem-backend). Zero-initialised: anon. */
struct guest_mem_spec {
	enum guest_mem_backend backend;
	const char *hugetlb_dir; /* hugetlb: a hugetlbfs mount for the file; NULL = hv's own */
};

struct guest_mem {
	enum guest_mem_backend backend;
	int fd;              /* memfd or hugetlbfs file; -1 for anon */
	int pagemap_fd;      /* /proc/self/pagemap (anon, hugetlb); -1 for memfd */
	uint64_t page_bytes; /* host page size that backing guarantees: 4 KiB, or the huge page */
	uint8_t *host;       /* mapping of all RAM, size bytes, 2 MiB-aligned */
	uint64_t size;       /* total RAM */
	uint64_t low_size;   /* RAM below MMIO_HOLE_START */
	uint64_t high_size;  /* RAM from HIGH_RAM_START */
	uint64_t *vmm_dirty; /* one bit per 4 KiB page, indexed by RAM offset; atomic ops */
};

/* "anon", "memfd", "hugetlb" or "hugetlb:PATH" -> spec (PATH points into `arg`).
 * 0, or -1 with one hv_error line naming the choices. */
int guest_mem_parse_backend(const char *arg, struct guest_mem_spec *spec);
const char *guest_mem_backend_name(enum guest_mem_backend b);

/* Creates RAM of `size` bytes (a multiple of 4 KiB; of the huge page size for hugetlb) with
 * the backing `spec` asks for (NULL: the default, anon). Returns 0 or -errno, with one
 * hv_error line. The mapping is not inherited by a fork()ed child (MADV_DONTFORK). */
int guest_mem_create_spec(struct guest_mem *m, uint64_t size, const struct guest_mem_spec *spec);
/* guest_mem_create_spec with the default backing. */
int guest_mem_create(struct guest_mem *m, uint64_t size);
void guest_mem_destroy(struct guest_mem *m);

/* The first run of populated RAM pages at or after page index `from`: pages that hold data
 * someone wrote or read (resident or swapped out). Never-touched pages read as zero and
 * need not be scanned or sent. Sets [*start, *end) (page indices) and returns true, or
 * returns false if there is none. Exact for every backing: SEEK_DATA for memfd,
 * /proc/self/pagemap (present or swapped) otherwise. If the kernel will not say, the
 * whole rest of RAM counts as populated (never less than the truth). */
bool guest_mem_next_populated(const struct guest_mem *m, uint64_t from, uint64_t *start,
			      uint64_t *end);

/* Host pointer for [gpa, gpa+len) if the whole range is RAM inside one slot, else NULL.
 * Every guest-supplied address goes through here. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* RAM offset of a RAM gpa, or -1 if gpa is not RAM. */
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
