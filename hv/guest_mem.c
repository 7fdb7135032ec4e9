#include "hv/guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv/layout.h"
#include "hv/log.h"

int guest_mem_create(struct guest_mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size == 0 || size % PAGE_SIZE) {
		hv_error("guest memory size %llu is not a positive multiple of 4 KiB",
			 (unsigned long long)size);
		return -EINVAL;
	}
	m->size = size;
	m->low_size = size < MMIO_HOLE_START ? size : MMIO_HOLE_START;
	m->high_size = size - m->low_size;

	m->memfd = memfd_create("hv-guest-ram", MFD_CLOEXEC);
	if (m->memfd < 0 || ftruncate(m->memfd, (off_t)size) < 0) {
		int err = errno;
		hv_error("cannot create %llu MiB of guest memory: %s",
			 (unsigned long long)(size >> 20), strerror(err));
		guest_mem_destroy(m);
		return -err;
	}
	/* MAP_NORESERVE: pages are allocated on first touch, so a large idle guest costs little. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd, 0);
	if (p == MAP_FAILED) {
		int err = errno;
		hv_error("cannot map %llu MiB of guest memory: %s; try a smaller --mem",
			 (unsigned long long)(size >> 20), strerror(err));
		guest_mem_destroy(m);
		return -err;
	}
	m->host = p;
	/* Hugepage advice helps the TLB where shmem THP is enabled; harmless elsewhere. */
	madvise(m->host, size, MADV_HUGEPAGE);

	uint64_t words = (guest_mem_pages(m) + 63) / 64;
	m->vmm_dirty = calloc(words, sizeof(uint64_t));
	if (!m->vmm_dirty) {
		hv_error("out of memory for the dirty bitmap of %llu MiB of guest RAM",
			 (unsigned long long)(size >> 20));
		guest_mem_destroy(m);
		return -ENOMEM;
	}
	return 0;
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	free(m->vmm_dirty);
	m->host = NULL;
	m->vmm_dirty = NULL;
	m->memfd = -1;
}

uint64_t guest_mem_pages(const struct guest_mem *m)
{
	return m->size / PAGE_SIZE;
}

int64_t guest_mem_offset(const struct guest_mem *m, uint64_t gpa)
{
	if (gpa < m->low_size)
		return (int64_t)gpa;
	if (gpa >= HIGH_RAM_START && gpa - HIGH_RAM_START < m->high_size)
		return (int64_t)(m->low_size + (gpa - HIGH_RAM_START));
	return -1;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	/* The range must lie inside one slot: the MMIO hole separates the two. */
	if (gpa < m->low_size) {
		if (len > m->low_size - gpa)
			return NULL;
		return m->host + gpa;
	}
	if (gpa >= HIGH_RAM_START) {
		uint64_t off = gpa - HIGH_RAM_START;
		if (off >= m->high_size || len > m->high_size - off)
			return NULL;
		return m->host + m->low_size + off;
	}
	return NULL;
}

void guest_mem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	int64_t off = guest_mem_offset(m, gpa);

	if (off < 0 || len == 0)
		return;
	uint64_t first = (uint64_t)off / PAGE_SIZE;
	uint64_t last = ((uint64_t)off + len - 1) / PAGE_SIZE;
	if (last >= guest_mem_pages(m))
		last = guest_mem_pages(m) - 1;
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&m->vmm_dirty[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
}

uint64_t guest_mem_take_dirty_word(struct guest_mem *m, uint64_t word)
{
	return __atomic_exchange_n(&m->vmm_dirty[word], 0, __ATOMIC_ACQ_REL);
}

int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_mem_ptr(m, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	guest_mem_mark_dirty(m, gpa, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *src = guest_mem_ptr(m, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}
