/* Guest RAM backings: which pages count as populated (what migration scans and sends in
 * round 0) must never miss one that holds data, for every backing; the backings' own
 * promises (alignment, huge pages, no copy in a fork()ed child, clear refusals). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/guest_mem.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "quiet_stderr.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define HUGE_PAGES (2 * MiB / PAGE_SIZE)

static void touch(struct guest_mem *m, uint64_t page)
{
	m->host[page * PAGE_SIZE + 8] = 0x5a;
}

/* The runs next_populated reports, at most `max` of them, as [start, end) pairs. */
static int runs(const struct guest_mem *m, uint64_t (*out)[2], int max)
{
	uint64_t start, end = 0;
	int n = 0;

	while (n < max && guest_mem_next_populated(m, end, &start, &end)) {
		assert_true(start < end);
		out[n][0] = start;
		out[n][1] = end;
		n++;
	}
	return n;
}

static bool covered(uint64_t (*r)[2], int n, uint64_t page)
{
	for (int i = 0; i < n; i++)
		if (page >= r[i][0] && page < r[i][1])
			return true;
	return false;
}

static void create_or_skip(struct guest_mem *m, uint64_t size, enum guest_mem_backend b)
{
	struct guest_mem_spec spec = { .backend = b };
	int q = quiet_begin(false);
	int r = guest_mem_create_spec(m, size, &spec);

	quiet_end(q);
	if (r < 0)
		skip();
}

static void test_parse_backend(void **state)
{
	struct guest_mem_spec s;

	assert_int_equal(guest_mem_parse_backend("anon", &s), 0);
	assert_int_equal(s.backend, GUEST_MEM_ANON);
	assert_int_equal(guest_mem_parse_backend("memfd", &s), 0);
	assert_int_equal(s.backend, GUEST_MEM_MEMFD);
	assert_int_equal(guest_mem_parse_backend("hugetlb", &s), 0);
	assert_int_equal(s.backend, GUEST_MEM_HUGETLB);
	assert_null(s.hugetlb_dir);
	assert_int_equal(guest_mem_parse_backend("hugetlb:/dev/hugepages", &s), 0);
	assert_int_equal(s.backend, GUEST_MEM_HUGETLB);
	assert_string_equal(s.hugetlb_dir, "/dev/hugepages");
	assert_string_equal(guest_mem_backend_name(GUEST_MEM_MEMFD), "memfd");

	int q = quiet_begin(false);
	hv_clear_error();
	assert_int_equal(guest_mem_parse_backend("hugepage", &s), -1);
	assert_non_null(strstr(hv_last_error(), "'hugepage': use anon, memfd or hugetlb[:PATH]"));
	assert_int_equal(guest_mem_parse_backend("hugetlb:", &s), -1);
	assert_int_equal(guest_mem_parse_backend("", &s), -1);
	quiet_end(q);
}

static void test_never_touched_is_not_populated(void **state)
{
	for (enum guest_mem_backend b = GUEST_MEM_ANON; b <= GUEST_MEM_MEMFD; b++) {
		struct guest_mem m;
		uint64_t s, e;

		create_or_skip(&m, 64 * MiB, b);
		assert_false(guest_mem_next_populated(&m, 0, &s, &e));
		assert_false(guest_mem_next_populated(&m, guest_mem_pages(&m), &s, &e));
		guest_mem_destroy(&m);
	}
}

/* memfd: exact 4 KiB granularity (shmem THP is off on the project's hosts; if it were on,
 * the runs could only grow, which the anon test covers). */
static void test_memfd_touched_pages(void **state)
{
	struct guest_mem m;
	uint64_t r[8][2];

	create_or_skip(&m, 64 * MiB, GUEST_MEM_MEMFD);
	touch(&m, 5);
	for (uint64_t p = 600; p <= 700; p++)
		touch(&m, p);
	touch(&m, guest_mem_pages(&m) - 1);
	int n = runs(&m, r, 8);
	assert_int_equal(n, 3);
	assert_true(r[0][0] <= 5 && r[0][1] >= 6 && r[0][1] <= 600);
	assert_true(covered(r, n, 600) && covered(r, n, 700));
	assert_int_equal(r[n - 1][1], guest_mem_pages(&m));
	guest_mem_destroy(&m);
}

/* anon: every touched page is found (a huge page makes its whole 2 MiB populated, never
 * more), and the mapping is 2 MiB-aligned so that huge pages can back it at all. */
static void test_anon_touched_pages(void **state)
{
	struct guest_mem m;
	uint64_t r[16][2];

	create_or_skip(&m, 64 * MiB, GUEST_MEM_ANON);
	assert_int_equal((uintptr_t)m.host % (2 * MiB), 0);
	uint64_t pages[] = { 5, 600, 601, 4095, 9000, guest_mem_pages(&m) - 1 };
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		touch(&m, pages[i]);
	int n = runs(&m, r, 16);
	assert_true(n >= 1);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		assert_true(covered(r, n, pages[i]));
	for (int i = 0; i < n; i++) {
		/* Nothing outside the 2 MiB pages that hold a touched page. */
		for (uint64_t p = r[i][0]; p < r[i][1]; p += HUGE_PAGES / 4) {
			bool near = false;
			for (size_t k = 0; k < sizeof(pages) / sizeof(pages[0]); k++)
				near |= p / HUGE_PAGES == pages[k] / HUGE_PAGES;
			assert_true(near);
		}
	}
	guest_mem_destroy(&m);
}

static bool thp_enabled(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/* anon on a host with THP: one write populates a whole 2 MiB huge page (one fault instead
 * of 512, the point of the anon backing), and next_populated reports it whole. */
static void test_anon_gets_huge_pages(void **state)
{
	struct guest_mem m;
	uint64_t s, e;

	if (!thp_enabled())
		skip();
	create_or_skip(&m, 64 * MiB, GUEST_MEM_ANON);
	touch(&m, 3 * HUGE_PAGES + 7);
	assert_true(guest_mem_next_populated(&m, 0, &s, &e));
	/* A fragmented host may fall back to a 4 KiB page; then the run is that page. */
	if (e - s == 1) {
		assert_int_equal(s, 3 * HUGE_PAGES + 7);
		print_message("note: no huge page was available for this test\n");
	} else {
		assert_int_equal(s, 3 * HUGE_PAGES);
		assert_int_equal(e, 4 * HUGE_PAGES);
	}
	guest_mem_destroy(&m);
}

static bool have_swap(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[256];
	int lines = 0;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines > 1;
}

/* A page swapped out is not resident (mincore() says no) but holds data: it must count. */
static void test_anon_swapped_page_is_populated(void **state)
{
	struct guest_mem m;
	uint64_t s, e;

	if (!have_swap())
		skip();
	create_or_skip(&m, 8 * MiB, GUEST_MEM_ANON);
	madvise(m.host, m.size, MADV_NOHUGEPAGE);
	touch(&m, 100);
	if (madvise(m.host + 100 * PAGE_SIZE, PAGE_SIZE, MADV_PAGEOUT) < 0) {
		guest_mem_destroy(&m);
		skip();
	}
	/* Its page table entry is now a swap entry (mincore() may still count it resident
	 * while it sits in the swap cache). */
	uint64_t entry = 0;
	assert_int_equal(pread(m.pagemap_fd, &entry, sizeof(entry),
			       (off_t)((uintptr_t)m.host / PAGE_SIZE + 100) * 8), 8);
	if (entry >> 63)
		print_message("note: the page was not paged out\n");
	else
		assert_true(entry >> 62 & 1);
	assert_true(guest_mem_next_populated(&m, 0, &s, &e));
	assert_int_equal(s, 100);
	assert_int_equal(e, 101);
	assert_int_equal(m.host[100 * PAGE_SIZE + 8], 0x5a);
	guest_mem_destroy(&m);
}

static bool hugetlb_pool_has(uint64_t pages)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	unsigned long long n = 0;

	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n >= pages;
}

/* hugetlb: the run is the huge page that holds the touched page. */
static void test_hugetlb_touched_pages(void **state)
{
	struct guest_mem m;
	uint64_t s, e;

	if (!hugetlb_pool_has(4))
		skip();
	create_or_skip(&m, 8 * MiB, GUEST_MEM_HUGETLB);
	assert_int_equal(m.page_bytes, 2 * MiB);
	assert_false(guest_mem_next_populated(&m, 0, &s, &e));
	touch(&m, HUGE_PAGES + 88);
	assert_true(guest_mem_next_populated(&m, 0, &s, &e));
	assert_int_equal(s, HUGE_PAGES);
	assert_int_equal(e, 2 * HUGE_PAGES);
	assert_false(guest_mem_next_populated(&m, e, &s, &e));
	guest_mem_destroy(&m);
}

/* hugetlb refuses up front what would otherwise be a SIGBUS later. */
static void test_hugetlb_refusals(void **state)
{
	struct guest_mem_spec spec = { .backend = GUEST_MEM_HUGETLB };
	struct guest_mem m;

	int q = quiet_begin(false);
	hv_clear_error();
	int r = guest_mem_create_spec(&m, 3 * MiB, &spec);
	quiet_end(q);
	if (r == -ENOSYS || r == -EOPNOTSUPP)
		skip();
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(hv_last_error(), "not a multiple of the 2 MiB huge page size"));

	q = quiet_begin(false);
	hv_clear_error();
	r = guest_mem_create_spec(&m, 1ULL << 40, &spec); /* 1 TiB: more than any pool here */
	quiet_end(q);
	assert_int_equal(r, -ENOMEM);
	assert_non_null(strstr(hv_last_error(), "vm.nr_hugepages="));

	spec.hugetlb_dir = "/proc";
	q = quiet_begin(false);
	hv_clear_error();
	r = guest_mem_create_spec(&m, 2 * MiB, &spec);
	quiet_end(q);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(hv_last_error(), "not a hugetlbfs mount"));
}

/* A fork()ed child does not get guest RAM: no copy-on-write twin of private memory. */
static void test_child_does_not_inherit_ram(void **state)
{
	for (enum guest_mem_backend b = GUEST_MEM_ANON; b <= GUEST_MEM_MEMFD; b++) {
		struct guest_mem m;

		create_or_skip(&m, 4 * MiB, b);
		touch(&m, 1);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* madvise on an unmapped range fails with ENOMEM. */
			int r = madvise(m.host, PAGE_SIZE, MADV_NORMAL);
			_exit(r < 0 && errno == ENOMEM ? 0 : 1);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		guest_mem_destroy(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_backend),
		cmocka_unit_test(test_never_touched_is_not_populated),
		cmocka_unit_test(test_memfd_touched_pages),
		cmocka_unit_test(test_anon_touched_pages),
		cmocka_unit_test(test_anon_gets_huge_pages),
		cmocka_unit_test(test_anon_swapped_page_is_populated),
		cmocka_unit_test(test_hugetlb_touched_pages),
		cmocka_unit_test(test_hugetlb_refusals),
		cmocka_unit_test(test_child_does_not_inherit_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
