/* parse_size / parse_int over tables of good and bad input. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hv/parse.h"

static void test_parse_size_good(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} cases[] = {
		{ "0", 0 },
		{ "512", 512 },
		{ "512B", 512 },
		{ "4096", 4096 },
		{ "512K", 512ULL << 10 },
		{ "512k", 512ULL << 10 },
		{ "64M", 64ULL << 20 },
		{ "64MB", 64ULL << 20 },
		{ "64MiB", 64ULL << 20 },
		{ "64m", 64ULL << 20 },
		{ "2G", 2ULL << 30 },
		{ "2GiB", 2ULL << 30 },
		{ "2gb", 2ULL << 30 },
		{ "1T", 1ULL << 40 },
		{ "16777215T", 16777215ULL << 40 }, /* the largest T that fits in 64 bits */
		{ "0G", 0 },
		{ "007M", 7ULL << 20 },
		{ "18446744073709551615", UINT64_MAX },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;

		if (parse_size(cases[i].s, &v) != 0)
			fail_msg("parse_size(\"%s\") refused", cases[i].s);
		if (v != cases[i].v)
			fail_msg("parse_size(\"%s\") = %llu, want %llu", cases[i].s,
				 (unsigned long long)v, (unsigned long long)cases[i].v);
	}
}

static void test_parse_size_bad(void **state)
{
	static const char *const cases[] = {
		"", "12Q", "-1", "+1", " 1", "1 ", "1.5G", "1,5G", "G", "M", "B", "iB", "0x10",
		"1e9", "99999999999T", "16777216T", "18446744073709551616", "99999999999999999999",
		"64MiBB", "64iB", "64Bi", "64MBB", "64M B", "1KM", "abc", "\t5",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 777;

		if (parse_size(cases[i], &v) != -1)
			fail_msg("parse_size(\"%s\") accepted (%llu)", cases[i],
				 (unsigned long long)v);
		assert_int_equal(v, 777); /* untouched on failure */
	}
	assert_int_equal(parse_size(NULL, &(uint64_t){ 0 }), -1);
}

static void test_parse_int(void **state)
{
	static const struct {
		const char *s;
		long min, max;
		int ret;
		long v;
	} cases[] = {
		{ "0", 0, 10, 0, 0 },
		{ "10", 0, 10, 0, 10 },
		{ "11", 0, 10, -1, 0 },
		{ "1", 1, 64, 0, 1 },
		{ "64", 1, 64, 0, 64 },
		{ "0", 1, 64, -1, 0 },
		{ "-1", 1, 64, -1, 0 },
		{ "-5", -10, 10, 0, -5 },
		{ "+7", 0, 10, 0, 7 },
		{ "007", 0, 10, 0, 7 },
		{ "", 0, 10, -1, 0 },
		{ "-", -10, 10, -1, 0 },
		{ "+", 0, 10, -1, 0 },
		{ " 5", 0, 10, -1, 0 },
		{ "5 ", 0, 10, -1, 0 },
		{ "5x", 0, 10, -1, 0 },
		{ "0x5", 0, 10, -1, 0 },
		{ "1.0", 0, 10, -1, 0 },
		{ "2G", 0, LONG_MAX, -1, 0 },
		{ "9223372036854775807", 0, LONG_MAX, 0, LONG_MAX },
		{ "9223372036854775808", 0, LONG_MAX, -1, 0 },
		{ "-9223372036854775808", LONG_MIN, 0, 0, LONG_MIN },
		{ "-9223372036854775809", LONG_MIN, 0, -1, 0 },
		{ "99999999999999999999999", 0, LONG_MAX, -1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long v = 4242;
		int r = parse_int(cases[i].s, cases[i].min, cases[i].max, &v);

		if (r != cases[i].ret)
			fail_msg("parse_int(\"%s\", %ld, %ld) returned %d, want %d", cases[i].s,
				 cases[i].min, cases[i].max, r, cases[i].ret);
		if (r == 0 && v != cases[i].v)
			fail_msg("parse_int(\"%s\") = %ld, want %ld", cases[i].s, v, cases[i].v);
		if (r != 0)
			assert_int_equal(v, 4242);
	}
	assert_int_equal(parse_int(NULL, 0, 1, &(long){ 0 }), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_good),
		cmocka_unit_test(test_parse_size_bad),
		cmocka_unit_test(test_parse_int),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
