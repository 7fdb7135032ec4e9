#include "hv/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "hv/layout.h"
#include "hv/log.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#define HUGETLBFS_MAGIC_NUMBER 0x958458f6
#define THP_SIZE (2 * MiB)

/* /proc/self/pagemap: one 64-bit entry per 4 KiB page (Documentation/admin-guide/mm/pagemap.rst). */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_CHUNK 4096 /* entries per read: 16 MiB of RAM, 32 KiB of buffer */

static const char *const backend_names[] = {
	[GUEST_MEM_ANON] = "anon", [GUEST_MEM_MEMFD] = "memfd", [GUEST_MEM_HUGETLB] = "hugetlb",
};

const char *guest_mem_backend_name(enum guest_mem_backend b)
{
	return (unsigned)b < sizeof(backend_names) / sizeof(backend_names[0]) ? backend_names[b] : "?";
}

int guest_mem_parse_backend(const char *arg, struct guest_mem_spec *spec)
{
	*spec = (struct guest_mem_spec){ .backend = GUEST_MEM_ANON };
	if (!strcmp(arg, "anon"))
		return 0;
	if (!strcmp(arg, "memfd")) {
		spec->backend = GUEST_MEM_MEMFD;
		return 0;
	}
	if (!strcmp(arg, "hugetlb") || (!strncmp(arg, "hugetlb:", 8) && arg[8])) {
		spec->backend = GUEST_MEM_HUGETLB;
		spec->hugetlb_dir = arg[7] ? arg + 8 : NULL;
		return 0;
	}
	hv_error("--mem-backend '%s': use anon, memfd or hugetlb[:PATH]", arg);
	return -1;
}

static uint64_t read_sys_u64(const char *path)
{
	FILE *f = fopen(path, "re");
	unsigned long long v = 0;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

/* Huge pages of `page_bytes` in the pool that no mapping has claimed yet. */
static uint64_t hugetlb_available(uint64_t page_bytes)
{
	char path[128];
	unsigned long long kb = (unsigned long long)(page_bytes >> 10);

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages", kb);
	uint64_t free_pages = read_sys_u64(path);
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/resv_hugepages", kb);
	uint64_t resv = read_sys_u64(path);
	return free_pages > resv ? free_pages - resv : 0;
}

static int hugetlb_pool_error(const struct guest_mem *m)
{
	uint64_t need = m->size / m->page_bytes, have = hugetlb_available(m->page_bytes);
	unsigned long long mib = (unsigned long long)(m->page_bytes >> 20);

	hv_error("--mem-backend hugetlb needs %llu huge pages of %llu MiB but the pool has %llu free; reserve them with sysctl vm.nr_hugepages=%llu%s (or use --mem-backend anon)",
		 (unsigned long long)need, mib, (unsigned long long)have,
		 (unsigned long long)(need + read_sys_u64("/proc/sys/vm/nr_hugepages") - have),
		 mib == 2 ? "" : " for that page size");
	return -ENOMEM;
}

/* hv's own hugetlbfs file (default huge page size), or an unlinked one in the mount `dir`. */
static int hugetlb_open(struct guest_mem *m, const char *dir)
{
	struct statfs sfs;
	int fd;

	if (dir) {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/hv-guest-ram.XXXXXX", dir) >= (int)sizeof(path)) {
			hv_error("--mem-backend hugetlb:%s: the path is too long", dir);
			return -ENAMETOOLONG;
		}
		if (statfs(dir, &sfs) < 0 || (uint32_t)sfs.f_type != HUGETLBFS_MAGIC_NUMBER) {
			hv_error("--mem-backend hugetlb:%s: not a hugetlbfs mount; mount one (mount -t hugetlbfs none %s) or use --mem-backend hugetlb",
				 dir, dir);
			return -EINVAL;
		}
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			hv_error("--mem-backend hugetlb:%s: cannot create a file there: %s", dir, strerror(err));
			return -err;
		}
		unlink(path);
	} else {
		fd = memfd_create("hv-guest-ram", MFD_CLOEXEC | MFD_HUGETLB);
		if (fd < 0) {
			int err = errno;
			hv_error("--mem-backend hugetlb: this kernel has no hugetlbfs (%s); use --mem-backend anon",
				 strerror(err));
			return -err;
		}
	}
	m->fd = fd;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_bsize <= 0) {
		hv_error("--mem-backend hugetlb: cannot find the huge page size: %s", strerror(errno));
		return -EINVAL;
	}
	m->page_bytes = (uint64_t)sfs.f_bsize;
	if (m->size % m->page_bytes) {
		hv_error("--mem %llu MiB is not a multiple of the %llu MiB huge page size; round --mem to a multiple of it for --mem-backend hugetlb",
			 (unsigned long long)(m->size >> 20), (unsigned long long)(m->page_bytes >> 20));
		return -EINVAL;
	}
	if (hugetlb_available(m->page_bytes) < m->size / m->page_bytes)
		return hugetlb_pool_error(m);
	return 0;
}

/* A 2 MiB-aligned private anonymous mapping: only aligned 2 MiB ranges can be huge pages,
 * and KVM maps a huge page into the guest only where guest and host addresses agree
 * modulo 2 MiB (guest RAM starts at gpa 0). */
static void *map_anon_aligned(uint64_t size)
{
	uint64_t len = size + THP_SIZE;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return p;
	uint8_t *start = (uint8_t *)(((uintptr_t)p + THP_SIZE - 1) & ~(uintptr_t)(THP_SIZE - 1));
	if (start > p)
		munmap(p, (size_t)(start - p));
	if (p + len > start + size)
		munmap(start + size, (size_t)(p + len - (start + size)));
	return start;
}

static int map_backing(struct guest_mem *m, const struct guest_mem_spec *spec)
{
	void *p;
	int r;

	m->page_bytes = PAGE_SIZE;
	switch (m->backend) {
	case GUEST_MEM_ANON:
		p = map_anon_aligned(m->size);
		break;
	case GUEST_MEM_MEMFD:
		m->fd = memfd_create("hv-guest-ram", MFD_CLOEXEC);
		if (m->fd < 0 || ftruncate(m->fd, (off_t)m->size) < 0) {
			int err = errno;
			hv_error("cannot create %llu MiB of guest memory: %s",
				 (unsigned long long)(m->size >> 20), strerror(err));
			return -err;
		}
		/* MAP_NORESERVE: pages are allocated on first touch, so a large idle guest costs little. */
		p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
		break;
	case GUEST_MEM_HUGETLB:
		r = hugetlb_open(m, spec->hugetlb_dir);
		if (r < 0)
			return r;
		if (ftruncate(m->fd, (off_t)m->size) < 0) {
			int err = errno;
			hv_error("cannot size the hugetlbfs file to %llu MiB: %s",
				 (unsigned long long)(m->size >> 20), strerror(err));
			return -err;
		}
		/* No MAP_NORESERVE: the kernel reserves the pool pages now, or refuses. */
		p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
		if (p == MAP_FAILED && errno == ENOMEM)
			return hugetlb_pool_error(m);
		break;
	default:
		hv_error("unknown guest memory backend %d", (int)m->backend);
		return -EINVAL;
	}
	if (p == MAP_FAILED) {
		int err = errno;
		hv_error("cannot map %llu MiB of guest memory: %s; try a smaller --mem",
			 (unsigned long long)(m->size >> 20), strerror(err));
		return -err;
	}
	m->host = p;
	/* Where THP applies (anon; memfd if shmem THP is "advise"), back RAM with 2 MiB pages:
	 * with shadow paging every 4 KiB first touch is a fault of its own. */
	if (m->backend != GUEST_MEM_HUGETLB)
		madvise(m->host, m->size, MADV_HUGEPAGE);
	/* A fork()ed child (a helper we might exec) must not get a copy-on-write twin of
	 * private RAM, nor pin a shared one. */
	madvise(m->host, m->size, MADV_DONTFORK);
	if (m->backend != GUEST_MEM_MEMFD) {
		m->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (m->pagemap_fd < 0)
			hv_warn("cannot open /proc/self/pagemap (%s): migration will scan all of guest RAM",
				strerror(errno));
	}
	return 0;
}

int guest_mem_create_spec(struct guest_mem *m, uint64_t size, const struct guest_mem_spec *spec)
{
	static const struct guest_mem_spec default_spec = { .backend = GUEST_MEM_ANON };
	int r;

	if (!spec)
		spec = &default_spec;
	memset(m, 0, sizeof(*m));
	m->fd = m->pagemap_fd = -1;
	m->backend = spec->backend;
	if (size == 0 || size % PAGE_SIZE) {
		hv_error("guest memory size %llu is not a positive multiple of 4 KiB",
			 (unsigned long long)size);
		return -EINVAL;
	}
	m->size = size;
	m->low_size = size < MMIO_HOLE_START ? size : MMIO_HOLE_START;
	m->high_size = size - m->low_size;

	r = map_backing(m, spec);
	if (r < 0) {
		guest_mem_destroy(m);
		return r;
	}
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

int guest_mem_create(struct guest_mem *m, uint64_t size)
{
	return guest_mem_create_spec(m, size, NULL);
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	if (m->pagemap_fd >= 0)
		close(m->pagemap_fd);
	free(m->vmm_dirty);
	m->host = NULL;
	m->vmm_dirty = NULL;
	m->fd = m->pagemap_fd = -1;
}

/* SEEK_DATA/SEEK_HOLE: the memfd's allocated ranges (resident or in swap). */
static bool next_populated_seek(const struct guest_mem *m, uint64_t from, uint64_t *start,
				uint64_t *end)
{
	off_t data = lseek(m->fd, (off_t)(from * PAGE_SIZE), SEEK_DATA);

	if (data < 0)
		return false; /* ENXIO: no data after from */
	off_t hole = lseek(m->fd, data, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole > m->size)
		hole = (off_t)m->size;
	*start = (uint64_t)data / PAGE_SIZE;
	*end = ((uint64_t)hole + PAGE_SIZE - 1) / PAGE_SIZE;
	return *start < *end;
}

/* Reads pagemap entries for pages [first, first + n); returns how many it got (0 on error). */
static size_t read_pagemap(const struct guest_mem *m, uint64_t first, uint64_t *buf, size_t n)
{
	uintptr_t vpage = (uintptr_t)m->host / PAGE_SIZE + first;
	ssize_t got = pread(m->pagemap_fd, buf, n * sizeof(*buf), (off_t)(vpage * sizeof(*buf)));

	return got > 0 ? (size_t)got / sizeof(*buf) : 0;
}

/* /proc/self/pagemap: present OR swapped. mincore() would miss swapped-out pages, and a
 * page never sent because it sat in swap would be lost. */
static bool next_populated_pagemap(const struct guest_mem *m, uint64_t from, uint64_t *start,
				   uint64_t *end)
{
	uint64_t buf[PAGEMAP_CHUNK], pages = guest_mem_pages(m), pos = from;
	bool in_run = false;

	while (pos < pages) {
		size_t want = pages - pos < PAGEMAP_CHUNK ? (size_t)(pages - pos) : PAGEMAP_CHUNK;
		size_t got = read_pagemap(m, pos, buf, want);
		if (!got) {
			/* The kernel will not say: never claim less than the truth. */
			if (!in_run)
				*start = pos;
			*end = pages;
			return true;
		}
		for (size_t i = 0; i < got; i++) {
			bool populated = buf[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED);
			if (populated && !in_run) {
				*start = pos + i;
				in_run = true;
			} else if (!populated && in_run) {
				*end = pos + i;
				return true;
			}
		}
		pos += got;
	}
	if (in_run)
		*end = pages;
	return in_run;
}

bool guest_mem_next_populated(const struct guest_mem *m, uint64_t from, uint64_t *start,
			      uint64_t *end)
{
	if (from >= guest_mem_pages(m))
		return false;
	if (m->backend == GUEST_MEM_MEMFD && m->fd >= 0)
		return next_populated_seek(m, from, start, end);
	if (m->pagemap_fd >= 0)
		return next_populated_pagemap(m, from, start, end);
	*start = from;
	*end = guest_mem_pages(m);
	return true;
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
