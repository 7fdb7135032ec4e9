/* The progress line of 'hvctl migrate': what it shows, that it fits any width, and that
 * nothing the VM sends can put control characters on the terminal. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tools/migrate_bar.h"

/* Round 2 of a migration: 1000 pages to send, 100 done in 2 s at 4 KiB each. */
static struct migrate_bar_in round2(void)
{
	return (struct migrate_bar_in){
		.phase = "precopy", .round = 2, .round_pages = 1000, .round_done_pages = 100,
		.round_bytes = 100 * 4096.0, .round_elapsed_ms = 2000, .rate_mibs = 0.2,
		.dirty_rate_mibs = 12.5, .wire_bytes = 200.0 * 1024 * 1024, .expected_downtime_ms = 40,
	};
}

static int count(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/* The bar's width: the characters between '[' and ']'. */
static int bar_width(const char *s)
{
	const char *close = strchr(s, ']');

	return s[0] == '[' && close ? (int)(close - s - 1) : 0;
}

static void assert_printable(const char *s)
{
	for (; *s; s++)
		assert_true(*s >= 0x20 && *s < 0x7f);
}

static void test_connecting_shows_an_empty_bar(void **state)
{
	struct migrate_bar_in in = { .phase = "connect" };
	char line[256];

	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_int_equal(count(line, '#'), 0);
	assert_non_null(strstr(line, "   0%"));
	assert_non_null(strstr(line, "connecting"));
	assert_non_null(strstr(line, "ETA --"));
}

static void test_the_bar_is_this_rounds_share(void **state)
{
	struct migrate_bar_in in = round2();
	char line[256];

	migrate_bar_format(&in, 80, line, sizeof(line));
	int w = bar_width(line);
	assert_true(w >= 10);
	assert_int_equal(count(line, '#'), w / 10);
	assert_non_null(strstr(line, " 10%"));
	assert_non_null(strstr(line, "round 2"));

	in.round_done_pages = 500;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_int_equal(count(line, '#'), w / 2);
	assert_non_null(strstr(line, " 50%"));

	in.round_done_pages = 1000;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_int_equal(count(line, '#'), w);
	assert_non_null(strstr(line, "100%"));
	assert_non_null(strstr(line, "ETA 0s"));
}

static void test_time_left_from_the_rounds_rate(void **state)
{
	struct migrate_bar_in in = round2();
	char line[256];

	/* 900 pages left at 4 KiB per page, 200 KiB/s: 18 s. */
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "ETA 18s"));
	assert_non_null(strstr(line, "0.2 MiB/s"));
	/* Zero pages cost nothing: a round that sent half the bytes per page needs half the time. */
	in.round_bytes /= 2;
	in.round_elapsed_ms /= 2;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "ETA 9s"));
	/* Minutes and hours: 9900 and 999900 pages left at 2 KiB each, 200 KiB/s. */
	in.round_pages = 10000;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "ETA 1m39s"));
	in.round_pages = 1e6;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "ETA 2h47m"));
}

static void test_time_left_unknown_until_measured(void **state)
{
	struct migrate_bar_in in = round2();
	char line[256];

	/* Too early in the round to trust its rate: the last round's is used. */
	in.round_elapsed_ms = 50;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_null(strstr(line, "ETA --"));
	/* Round 0 has no last round. */
	in.round = 0;
	in.rate_mibs = 0;
	in.expected_downtime_ms = 0;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "ETA --"));
	assert_non_null(strstr(line, "dirty -- MiB/s"));
	/* Round 0's end measures the dirty rate and estimates the downtime. */
	in.expected_downtime_ms = 12;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "dirty 12.5 MiB/s"));
}

static void test_fits_every_width(void **state)
{
	struct migrate_bar_in in = round2();
	char line[600];

	for (int cols = 0; cols <= 300; cols++) {
		size_t n = migrate_bar_format(&in, cols, line, sizeof(line));
		assert_int_equal(n, strlen(line));
		if (cols > 0)
			assert_true((int)n < cols);
		else
			assert_int_equal(n, 0);
		assert_printable(line);
	}
}

static void test_fields_go_in_order_on_narrow_terminals(void **state)
{
	struct migrate_bar_in in = round2();
	char line[256];

	migrate_bar_format(&in, 120, line, sizeof(line));
	assert_true(bar_width(line) >= 16);
	assert_non_null(strstr(line, "dirty"));
	assert_non_null(strstr(line, "0.4/3.9 MiB")); /* this round: done/total */
	assert_non_null(strstr(line, "sent"));

	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_true(bar_width(line) >= 16);
	assert_non_null(strstr(line, "ETA"));
	assert_non_null(strstr(line, "MiB/s  dirty"));
	assert_null(strstr(line, "sent"));

	migrate_bar_format(&in, 60, line, sizeof(line));
	assert_non_null(strstr(line, "ETA"));
	assert_non_null(strstr(line, "MiB/s"));
	assert_null(strstr(line, "dirty"));

	/* The core stays with a shorter bar. */
	migrate_bar_format(&in, 40, line, sizeof(line));
	assert_true(bar_width(line) >= 10);
	assert_non_null(strstr(line, "10%"));
	assert_non_null(strstr(line, "round 2"));
	assert_non_null(strstr(line, "ETA 18s"));
	assert_null(strstr(line, "MiB/s"));

	/* No room for a bar: what fits of the rest. */
	migrate_bar_format(&in, 12, line, sizeof(line));
	assert_null(strchr(line, '['));
	assert_string_equal(line, " 10%");
}

static void test_switchover_is_named(void **state)
{
	struct migrate_bar_in in = round2();
	char line[256];

	in.phase = "switchover";
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_non_null(strstr(line, "switchover"));
}

static void test_hostile_values_print_nothing_strange(void **state)
{
	struct migrate_bar_in in = {
		.phase = "\033[2J\033]0;owned\007", .round = NAN, .round_pages = -5,
		.round_done_pages = INFINITY, .round_bytes = 1e300, .round_elapsed_ms = -1,
		.rate_mibs = NAN, .dirty_rate_mibs = 1e300, .wire_bytes = -INFINITY,
		.expected_downtime_ms = NAN,
	};
	char line[600];

	for (int cols = 1; cols <= 300; cols += 7) {
		migrate_bar_format(&in, cols, line, sizeof(line));
		assert_printable(line);
		assert_true((int)strlen(line) < cols);
	}
	in.phase = NULL;
	migrate_bar_format(&in, 80, line, sizeof(line));
	assert_printable(line);
}

static void test_a_small_buffer_is_not_overrun(void **state)
{
	struct migrate_bar_in in = round2();
	char line[16 + 8];

	memset(line + 16, 'X', 8);
	size_t n = migrate_bar_format(&in, 200, line, 16);
	assert_true(n < 16);
	assert_int_equal(strlen(line), n);
	for (int i = 16; i < 24; i++)
		assert_int_equal(line[i], 'X');
	assert_int_equal(migrate_bar_format(&in, 80, line, 0), 0);
}

static void test_bytes_in_binary_units(void **state)
{
	char b[32];

	migrate_bar_bytes(b, sizeof(b), 0);
	assert_string_equal(b, "0.0 B");
	migrate_bar_bytes(b, sizeof(b), 1536);
	assert_string_equal(b, "1.5 KiB");
	migrate_bar_bytes(b, sizeof(b), 250.0 * 1024 * 1024);
	assert_string_equal(b, "250.0 MiB");
	migrate_bar_bytes(b, sizeof(b), NAN);
	assert_string_equal(b, "0.0 B");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connecting_shows_an_empty_bar),
		cmocka_unit_test(test_the_bar_is_this_rounds_share),
		cmocka_unit_test(test_time_left_from_the_rounds_rate),
		cmocka_unit_test(test_time_left_unknown_until_measured),
		cmocka_unit_test(test_fits_every_width),
		cmocka_unit_test(test_fields_go_in_order_on_narrow_terminals),
		cmocka_unit_test(test_switchover_is_named),
		cmocka_unit_test(test_hostile_values_print_nothing_strange),
		cmocka_unit_test(test_a_small_buffer_is_not_overrun),
		cmocka_unit_test(test_bytes_in_binary_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
