/* Deadlines: a timeout turns into a point on the monotonic clock, whatever that clock reads
 * (the suite runs once more in a time namespace whose clock reads weeks of uptime). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hv/clock.h"

static void test_a_timeout_is_relative_to_now(void **state)
{
	struct deadline d = deadline_in_ms(10000);
	uint64_t now = clock_now_ns();

	assert_false(deadline_passed(d));
	assert_true(d.at_ns > now && d.at_ns - now <= 10000ULL * 1000000ULL);
	int left = deadline_left_ms(d);
	assert_true(left > 9000 && left <= 10000);
}

static void test_zero_timeout_has_passed(void **state)
{
	struct deadline d = deadline_in_ms(0);

	assert_true(deadline_passed(d));
	assert_int_equal(deadline_left_ms(d), 0);
}

static void test_never_and_huge_timeouts_never_pass(void **state)
{
	struct deadline n = deadline_never();

	assert_false(deadline_passed(n));
	assert_int_equal(deadline_left_ms(n), -1);
	assert_false(deadline_passed(deadline_in_ms(-1)));
	/* Saturates instead of wrapping around to the past. */
	struct deadline huge = deadline_in_ms(INT64_MAX);
	assert_false(deadline_passed(huge));
	/* 30 days fits poll()'s int only by clamping. */
	struct deadline month = deadline_in_ms(30LL * 24 * 3600 * 1000);
	assert_false(deadline_passed(month));
	assert_int_equal(deadline_left_ms(month), INT32_MAX);
}

static void test_one_day_timeout_on_a_host_up_for_weeks(void **state)
{
	/* What hvctl migrate got wrong: 24 h as a timeout must end 24 h from now, not at the
	 * moment the clock read 24 h. */
	struct deadline d = deadline_in_ms(24LL * 3600 * 1000);

	assert_false(deadline_passed(d));
	assert_true(d.at_ns > clock_now_ns() + 23ULL * 3600 * 1000000000ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_timeout_is_relative_to_now),
		cmocka_unit_test(test_zero_timeout_has_passed),
		cmocka_unit_test(test_never_and_huge_timeouts_never_pass),
		cmocka_unit_test(test_one_day_timeout_on_a_host_up_for_weeks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
