/* How fast this host hands out fresh guest RAM: a new memfd of MIB MiB mapped MAP_SHARED and
 * populated for writing (what the migration destination does before pages arrive). With
 * TCP throughput it bounds incompressible migration: a destination cannot take pages
 * faster than its kernel can give it zeroed memory. usage: memfill [MIB]; prints MiB/s. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024, size = mib << 20;
	struct timespec a, b;
	int fd = memfd_create("hv-bench-memfill", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror("memfill: memfd");
		return 1;
	}
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("memfill: mmap");
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
