/* CPU models (hv/cpu_model.c): a named baseline gives the guest its level's features and
 * nothing above it, whatever the host has; a ceiling clears what lies above it; the names
 * of missing features are what the compatibility check prints. Pure functions over tables,
 * so this runs on any host. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hv/cpu_model.h"
#include "hv/cpuid.h"

/* A host that has every bit of the feature leaves, as KVM_GET_SUPPORTED_CPUID would say. */
static struct cpuid_table *everything(void)
{
	static const uint32_t leaves[][2] = { { 0, 0 }, { 1, 0 }, { 7, 0 }, { 0xd, 0 }, { 0xd, 1 },
					      { 0x80000000, 0 }, { 0x80000001, 0 } };
	struct cpuid_table *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[t->hdr.nent++];
		e->function = leaves[i][0];
		e->index = leaves[i][1];
		e->flags = e->function == 7 || e->function == 0xd ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
		e->eax = e->ebx = e->ecx = e->edx = 0xffffffff;
	}
	t->entries[0].eax = 0xd;          /* highest basic leaf */
	t->entries[5].eax = 0x80000001;   /* highest extended leaf */
	return t;
}

static int has(struct cpuid_table *t, const char *name)
{
	struct cpuid_bit b;

	assert_int_equal(cpuid_feature_bit(name, &b), 0);
	struct kvm_cpuid_entry2 *e = cpuid_find(t, b.function, b.index);
	return e && (*cpuid_reg(e, b.reg) >> b.bit) & 1;
}

static void test_names_round_trip(void **unused)
{
	enum cpu_model m;

	for (int i = 0; i < CPU_MODEL_COUNT; i++) {
		assert_int_equal(cpu_model_parse(cpu_model_name((enum cpu_model)i), &m), 0);
		assert_int_equal(m, i);
	}
	assert_int_equal(cpu_model_parse("x86-64-v9", &m), -1);
	assert_int_equal(cpu_model_parse("", &m), -1);
	assert_int_equal(cpu_model_parse("X86-64-V2", &m), -1);
}

/* Each level has its own features and none of the next one's. */
static void test_levels_mask_what_lies_above(void **unused)
{
	static const struct {
		enum cpu_model m;
		const char *has, *lacks;
	} cases[] = {
		{ CPU_MODEL_X86_64_V1, "sse2", "sse4_2" },   { CPU_MODEL_X86_64_V1, "cx8", "popcnt" },
		{ CPU_MODEL_X86_64_V1, "lm", "lahf_lm" },    { CPU_MODEL_X86_64_V2, "sse4_2", "avx" },
		{ CPU_MODEL_X86_64_V2, "popcnt", "avx2" },   { CPU_MODEL_X86_64_V3, "avx2", "avx512f" },
		{ CPU_MODEL_X86_64_V3, "bmi2", "avx512bw" }, { CPU_MODEL_X86_64_V4, "avx512vl", "sha_ni" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cpuid_table *t = everything();
		cpu_model_build(t, cases[i].m);
		if (!has(t, cases[i].has))
			fail_msg("%s lacks %s", cpu_model_name(cases[i].m), cases[i].has);
		if (has(t, cases[i].lacks))
			fail_msg("%s has %s", cpu_model_name(cases[i].m), cases[i].lacks);
		free(t);
	}
}

/* A destination's ceiling clears what its level does not contain, and nothing else. */
static void test_ceiling_limits_a_host_table(void **unused)
{
	struct cpuid_table *t = everything();

	cpu_model_limit(t, CPU_MODEL_X86_64_V2);
	assert_true(has(t, "sse4_2"));
	assert_false(has(t, "avx"));
	assert_false(has(t, "avx512f"));
	free(t);
	t = everything();
	cpu_model_limit(t, CPU_MODEL_HOST); /* no ceiling */
	assert_true(has(t, "avx512f"));
	free(t);
}

/* What a host lacks for a level is named, and the best level it can offer is found. */
static void test_missing_and_best(void **unused)
{
	struct cpuid_table *full = everything(), *v1 = everything();
	char buf[512];

	assert_int_equal(cpu_model_missing(full, CPU_MODEL_X86_64_V4, buf, sizeof(buf)), 0);
	assert_int_equal(cpu_model_best(full, CPU_MODEL_HOST), CPU_MODEL_X86_64_V4);
	assert_int_equal(cpu_model_best(full, CPU_MODEL_X86_64_V2), CPU_MODEL_X86_64_V2);
	cpu_model_build(v1, CPU_MODEL_X86_64_V1);
	assert_true(cpu_model_missing(v1, CPU_MODEL_X86_64_V2, buf, sizeof(buf)) >= 5);
	assert_non_null(strstr(buf, "sse4_2"));
	assert_non_null(strstr(buf, "popcnt"));
	assert_null(strstr(buf, "avx"));
	assert_int_equal(cpu_model_best(v1, CPU_MODEL_HOST), CPU_MODEL_X86_64_V1);
	/* A guest built for v3 on the full host, checked against a v2 ceiling: avx2 is named. */
	struct cpuid_table *guest = everything(), *dest = everything();
	cpu_model_build(guest, CPU_MODEL_X86_64_V3);
	cpu_model_limit(dest, CPU_MODEL_X86_64_V2);
	assert_true(cpuid_missing_features(guest, dest, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "avx2"));
	assert_null(strstr(buf, "sse4_2"));
	free(full);
	free(v1);
	free(guest);
	free(dest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_levels_mask_what_lies_above),
		cmocka_unit_test(test_ceiling_limits_a_host_table),
		cmocka_unit_test(test_missing_and_best),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
