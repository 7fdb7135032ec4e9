/* cpuid_filter on a synthetic table (exact bits) and on the real KVM_GET_SUPPORTED_CPUID;
 * cpuid_apply's topology through KVM_SET_CPUID2 / KVM_GET_CPUID2 when /dev/kvm is usable. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/cpuid.h"
#include "quiet_stderr.h"

#define ALL 0xffffffffu

static void add(struct cpuid_table *t, uint32_t fn, uint32_t idx, bool indexed, uint32_t eax,
		uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	struct kvm_cpuid_entry2 *e = &t->entries[t->hdr.nent++];

	memset(e, 0, sizeof(*e));
	e->function = fn;
	e->index = idx;
	e->flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
	e->eax = eax;
	e->ebx = ebx;
	e->ecx = ecx;
	e->edx = edx;
}

/* Every feature register all ones, so that the filter's exact effect shows. */
static void synthetic(struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	add(t, 0, 0, false, 0xd, 0x68747541, 0x444d4163, 0x69746e65);
	add(t, 1, 0, false, 0x00a20f12, 0x00000800, ALL & ~(1u << 31), ALL);
	add(t, 7, 0, true, 1, ALL, ALL, ALL);
	add(t, 7, 1, true, ALL, ALL, ALL, ALL);
	add(t, 0xd, 0, true, 7, 0x340, 0x340, 0);
	add(t, 0xd, 1, true, 0xf, 0, 0, 0);
	add(t, 0xd, 2, true, 0x100, 0x240, 0, 0);
	add(t, 0x80000000, 0, false, 0x80000008, 0, 0, 0);
	add(t, 0x80000001, 0, false, 0, 0, ALL, ALL);
}

static uint32_t bit(int b)
{
	return 1u << b;
}

static void test_filter_synthetic(void **state)
{
	struct cpuid_table t;
	struct kvm_cpuid_entry2 *e;
	uint32_t leaf1_ecx_cleared = bit(12) | bit(13) | bit(20) | bit(22) | bit(23) | bit(26) |
				     bit(27) | bit(28) | bit(29) | bit(30);
	uint32_t leaf7_ebx_cleared = bit(3) | bit(5) | bit(8) | bit(10) | bit(16) | bit(17) |
				     bit(18) | bit(19) | bit(21) | bit(26) | bit(27) | bit(28) |
				     bit(29) | bit(30) | bit(31);

	(void)state;
	synthetic(&t);
	cpuid_filter(&t);

	e = cpuid_find(&t, 0, 0);
	assert_int_equal(e->eax, 0xd);
	assert_int_equal(e->ebx, 0x68747541); /* vendor untouched */

	e = cpuid_find(&t, 1, 0);
	assert_int_equal(e->ecx, (ALL & ~leaf1_ecx_cleared) | bit(31)); /* + hypervisor */
	assert_int_equal(e->edx, ALL);
	assert_int_equal(e->eax, 0x00a20f12);
	assert_int_equal(e->ebx, 0x00000800);
	/* spot checks by name: kept */
	assert_true(e->ecx & bit(0));  /* sse3 */
	assert_true(e->ecx & bit(19)); /* sse4_1 */
	assert_true(e->ecx & bit(21)); /* x2apic */
	assert_true(e->ecx & bit(24)); /* tsc_deadline */

	e = cpuid_find(&t, 7, 0);
	assert_int_equal(e->index, 0);
	assert_int_equal(e->eax, 1);
	assert_int_equal(e->ebx, ALL & ~leaf7_ebx_cleared);
	assert_false(e->ecx & bit(22)); /* rdpid */
	assert_false(e->ecx & bit(1));  /* avx512vbmi */
	assert_true(e->ecx & bit(2));   /* umip kept */
	assert_true(e->ebx & bit(0));   /* fsgsbase kept */
	assert_true(e->ebx & bit(7));   /* smep kept */
	assert_false(e->edx & bit(23)); /* avx512_fp16 */
	assert_true(e->edx & bit(10));  /* md_clear kept */

	e = cpuid_find(&t, 7, 1);
	assert_int_equal(e->index, 1);
	assert_int_equal(e->eax, ALL & ~(bit(4) | bit(5)));
	assert_int_equal(e->ebx, ALL);

	for (uint32_t i = 0; i < 3; i++) {
		e = cpuid_find(&t, 0xd, i);
		assert_non_null(e);
		assert_int_equal(e->index, i);
		assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
	}

	e = cpuid_find(&t, 0x80000001, 0);
	assert_int_equal(e->edx, ALL & ~bit(27)); /* rdtscp */
	assert_int_equal(e->ecx, ALL & ~(bit(5) | bit(6) | bit(11) | bit(16) | bit(21)));

	/* Idempotent. */
	{
		struct cpuid_table again = t;

		cpuid_filter(&again);
		assert_memory_equal(&again, &t, sizeof(t));
	}
}

static void test_filter_missing_leaves(void **state)
{
	struct cpuid_table t;

	(void)state;
	memset(&t, 0, sizeof(t));
	add(&t, 0, 0, false, 1, 0, 0, 0);
	cpuid_filter(&t); /* no leaf 1, 7, 0xd: nothing to do, nothing to crash on */
	assert_int_equal(t.hdr.nent, 1);
	assert_int_equal(t.entries[0].eax, 1);
}

static void test_find(void **state)
{
	struct cpuid_table t;

	(void)state;
	synthetic(&t);
	assert_int_equal(cpuid_find(&t, 1, 0)->function, 1);
	assert_int_equal(cpuid_find(&t, 1, 5)->function, 1); /* index not significant */
	assert_null(cpuid_find(&t, 7, 2));                  /* significant, absent */
	assert_null(cpuid_find(&t, 0x40000000, 0));
	assert_int_equal(cpuid_find(&t, 0xd, 2)->eax, 0x100);
	t.hdr.nent = 0;
	assert_null(cpuid_find(&t, 0, 0));
}

static void test_missing_features(void **state)
{
	struct cpuid_table want, have;
	char buf[2048], small[12];
	int n;

	(void)state;
	synthetic(&want);
	synthetic(&have);
	assert_int_equal(cpuid_missing_features(&want, &have, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");

	cpuid_find(&have, 7, 0)->ebx &= ~bit(5);  /* avx2 */
	cpuid_find(&have, 1, 0)->ecx &= ~bit(20); /* sse4_2 */
	n = cpuid_missing_features(&want, &have, buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_string_equal(buf, "sse4_2, avx2");

	/* A missing leaf lacks all its features. */
	have.hdr.nent = 0;
	n = cpuid_missing_features(&want, &have, buf, sizeof(buf));
	assert_true(n > 50);
	assert_non_null(strstr(buf, "avx512f"));
	assert_non_null(strstr(buf, "rdtscp"));
	/* Truncation stays NUL-terminated. */
	n = cpuid_missing_features(&want, &have, small, sizeof(small));
	assert_true(n > 50);
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(cpuid_missing_features(&want, &have, NULL, 0), n);
}

/* ---- real KVM ---- */

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_filter_real_kvm(void **state)
{
	struct cpuid_table *t = malloc(sizeof(*t));
	struct kvm_cpuid_entry2 *e;
	int kvm = open_kvm();

	(void)state;
	if (kvm < 0) {
		free(t);
		skip();
	}
	assert_int_equal(cpuid_get_supported(kvm, t), 0);
	assert_true(t->hdr.nent > 4 && t->hdr.nent <= CPUID_MAX_ENTRIES);
	cpuid_filter(t);
	e = cpuid_find(t, 1, 0);
	assert_non_null(e);
	assert_true(e->ecx & bit(31));
	assert_int_equal(e->ecx & (bit(13) | bit(20) | bit(23) | bit(26) | bit(27) | bit(28)), 0);
	e = cpuid_find(t, 7, 0);
	if (e)
		assert_int_equal(e->ebx & (bit(5) | bit(10)), 0);
	e = cpuid_find(t, 0x80000001, 0);
	if (e)
		assert_int_equal(e->edx & bit(27), 0);
	for (uint32_t i = 0; i < t->hdr.nent; i++)
		if (t->entries[i].function == 0xd)
			assert_int_equal(t->entries[i].eax | t->entries[i].ebx |
					 t->entries[i].ecx | t->entries[i].edx, 0);
	close(kvm);
	free(t);
}

static void test_apply_real_kvm(void **state)
{
	struct cpuid_table *t = malloc(sizeof(*t)), *got = malloc(sizeof(*got));
	struct kvm_cpuid_entry2 *e;
	int kvm = open_kvm(), vm, vcpu[3], saved;
	uint32_t ebx_before;

	(void)state;
	if (kvm < 0) {
		free(t);
		free(got);
		skip();
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	assert_int_equal(cpuid_get_supported(kvm, t), 0);
	cpuid_filter(t);
	ebx_before = cpuid_find(t, 1, 0)->ebx; /* holds the host CPU's APIC id */
	for (int i = 0; i < 3; i++) {
		vcpu[i] = ioctl(vm, KVM_CREATE_VCPU, i);
		assert_true(vcpu[i] >= 0);
		assert_int_equal(cpuid_apply(vcpu[i], t, i, 3), 0);
	}

	/* The table KVM now holds for vCPU 2. (PVM may add host features back; the
	 * topology fields are hv's.) */
	memset(got, 0, sizeof(*got));
	got->hdr.nent = CPUID_MAX_ENTRIES;
	assert_int_equal(ioctl(vcpu[2], KVM_GET_CPUID2, got), 0);
	e = cpuid_find(got, 1, 0);
	assert_non_null(e);
	assert_int_equal(e->ebx >> 24, 2);
	assert_int_equal((e->ebx >> 16) & 0xff, 3);
	assert_true(e->edx & bit(28)); /* HTT: more than one logical CPU */
	e = cpuid_find(got, 0xb, 0);
	if (e) {
		assert_int_equal(e->edx, 2);
		assert_int_equal(e->ebx, 1);
		e = cpuid_find(got, 0xb, 1);
		assert_non_null(e);
		assert_int_equal(e->eax, 2); /* 3 vCPUs need 2 bits of APIC id */
		assert_int_equal(e->ebx, 3);
		assert_int_equal(e->edx, 2);
	}
	/* The caller's table is not modified. */
	assert_int_equal(cpuid_find(t, 1, 0)->ebx, ebx_before);

	/* Errors: bad arguments, a closed fd. */
	saved = quiet_begin(false);
	assert_int_equal(cpuid_apply(vcpu[0], t, 3, 3), -EINVAL);
	assert_int_equal(cpuid_apply(vcpu[0], t, 0, 0), -EINVAL);
	assert_int_equal(cpuid_apply(-1, t, 0, 1), -EBADF);
	assert_true(cpuid_get_supported(-1, got) < 0);
	quiet_end(saved);

	for (int i = 0; i < 3; i++)
		close(vcpu[i]);
	close(vm);
	close(kvm);
	free(t);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_synthetic),
		cmocka_unit_test(test_filter_missing_leaves),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_missing_features),
		cmocka_unit_test(test_filter_real_kvm),
		cmocka_unit_test(test_apply_real_kvm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
