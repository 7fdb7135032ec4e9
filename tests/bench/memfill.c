/* How fast this host hands out fresh guest RAM: MIB MiB of new memory, backed as hv's
 * --mem-backend anon (private anonymous, MADV_HUGEPAGE: also what QEMU does) or memfd (a
 * memfd mapped MAP_SHARED), populated for writing as the migration destination does before
 * pages arrive. With TCP throughput it bounds incompressible migration: a destination
 * cannot take pages faster than its kernel can give it zeroed memory.
 * usage: memfill [MIB [anon|memfd]]; prints MiB/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static char *map_ram(const char *backend, size_t size)
{
	if (!strcmp(backend, "anon")) {
		/* 2 MiB-aligned, as hv maps it: only aligned ranges can be huge pages. */
		char *p = mmap(NULL, size + (2 << 20), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return p;
		return (char *)(((unsigned long)p + (2 << 20) - 1) & ~((2UL << 20) - 1));
	}
	int fd = memfd_create("hv-bench-memfill", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return MAP_FAILED;
	return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024, size = mib << 20;
	const char *backend = argc > 2 ? argv[2] : "anon";
	struct timespec a, b;

	if (strcmp(backend, "anon") && strcmp(backend, "memfd")) {
		fprintf(stderr, "memfill: backend '%s': use anon or memfd\n", backend);
		return 2;
	}
	char *p = map_ram(backend, size);
	if (p == MAP_FAILED) {
		perror("memfill: mapping guest RAM");
		return 1;
	}
	madvise(p, size, MADV_HUGEPAGE); /* as hv does for guest RAM */
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (madvise(p, size, MADV_POPULATE_WRITE) < 0) {
		perror("memfill: MADV_POPULATE_WRITE");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.0f\n", (double)mib / s);
	return 0;
}
