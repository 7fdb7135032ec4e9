/* Choosing a destination (--to auto, evacuate): the emptiest host that can take the guest,
 * and a reason for every other one (tools/placement.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/placement.h"

#define MB (1024ull * 1024)

static struct placement_host host(const char *addr, uint64_t headroom_mb, double load, const char *cpu)
{
	struct placement_host h = { .reachable = true, .headroom = headroom_mb * MB, .load = load };

	snprintf(h.addr, sizeof(h.addr), "%s", addr);
	h.cpu_features = cpu ? strdup(cpu) : NULL;
	return h;
}

static void test_most_memory_to_spare_wins(void **state)
{
	struct placement_vm vm = { .name = "web", .mem = 256 * MB, .cpu_features = "fpu sse2 avx2" };
	struct placement_host h[] = {
		host("a", 512, 0.1, "fpu sse2 avx2 avx512f"),
		host("b", 2048, 0.9, "fpu sse2 avx2"),
		host("c", 1024, 0.0, "fpu sse2 avx2"),
	};

	(void)state;
	assert_int_equal(placement_choose(&vm, h, 3), 1);
	assert_true(h[0].fits && h[2].fits);
	assert_non_null(strstr(h[1].verdict, "chosen"));
	assert_non_null(strstr(h[0].verdict, "less memory"));
	/* Already planned there in this run counts: b is no longer the emptiest. */
	h[1].planned = 1536 * MB;
	assert_int_equal(placement_choose(&vm, h, 3), 2);
	for (int i = 0; i < 3; i++)
		placement_host_free(&h[i]);
}

static void test_every_refusal_has_a_reason(void **state)
{
	struct placement_vm vm = { .name = "web", .mem = 256 * MB, .cpu_features = "fpu avx2 avx512f" };
	struct placement_host h[] = {
		host("small", 128, 0, "fpu avx2 avx512f"), host("old", 4096, 0, "fpu sse2"),
		host("nokvm", 4096, 0, NULL), host("down", 0, 0, NULL), host("twin", 4096, 0, "fpu avx2 avx512f"),
	};
	char *twin_vms[] = { strdup("web") };

	(void)state;
	h[3].reachable = false;
	snprintf(h[3].unreachable, sizeof(h[3].unreachable), "connection refused");
	h[4].vm_names = malloc(sizeof(char *));
	h[4].vm_names[0] = twin_vms[0];
	h[4].nvm_names = 1;
	assert_int_equal(placement_choose(&vm, h, 5), -1);
	assert_non_null(strstr(h[0].verdict, "too little memory"));
	assert_non_null(strstr(h[1].verdict, "lacks avx2, avx512f"));
	assert_non_null(strstr(h[2].verdict, "unknown"));
	assert_non_null(strstr(h[3].verdict, "connection refused"));
	assert_non_null(strstr(h[4].verdict, "already"));

	/* The table fits 80 columns, reasons and all. */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	placement_print(f, &vm, h, 5);
	fclose(f);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		assert_true(strlen(line) <= 80);
	free(text);
	for (int i = 0; i < 5; i++)
		placement_host_free(&h[i]);
}

static void test_cpu_covers(void **state)
{
	char missing[64];

	(void)state;
	assert_int_equal(placement_cpu_covers("fpu sse2 avx2", "sse2 fpu", missing, sizeof(missing)), 1);
	assert_int_equal(placement_cpu_covers("fpu sse", "sse2", missing, sizeof(missing)), 0);
	assert_string_equal(missing, "sse2");
	assert_int_equal(placement_cpu_covers("", "a b c d e f", missing, sizeof(missing)), 0);
	assert_string_equal(missing, "a, b, c, d and 2 more");
	assert_int_equal(placement_cpu_covers("x", "", missing, sizeof(missing)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_most_memory_to_spare_wins),
		cmocka_unit_test(test_every_refusal_has_a_reason),
		cmocka_unit_test(test_cpu_covers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
