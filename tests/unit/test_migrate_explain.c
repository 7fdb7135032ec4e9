/* hvctl migrate --explain (tools/migrate_explain.c): what it says for each step of a real
 * migration (tests/data/migration-events.jsonl), and that no line is ever wider than a
 * projector's 100 columns, whatever the values. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/migrate_explain.h"

/* Every line of text is at most the projector's width. */
static void assert_narrow(const char *text)
{
	for (const char *line = text; line;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		if (l > MIGRATE_EXPLAIN_COLUMNS)
			fail_msg("line of %zu columns: %.*s", l, (int)l, line);
		line = nl ? nl + 1 : NULL;
	}
}

static size_t say(struct migrate_explain *x, const char *json, char *buf, size_t len)
{
	struct json_object *ev = json_tokener_parse(json);
	size_t n;

	assert_non_null(ev);
	n = migrate_explain_event(x, ev, buf, len);
	json_object_put(ev);
	assert_int_equal(n, strlen(buf));
	assert_narrow(buf);
	return n;
}

static void test_real_migration(void **state)
{
	struct migrate_explain x = { .limit_ms = 30, .max_rounds = 30 };
	FILE *f = fopen("tests/data/migration-events.jsonl", "r");
	char *line = NULL, out[4096] = "", buf[MIGRATE_EXPLAIN_MAX];
	size_t cap = 0;
	int said = 0, rounds = 0;

	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		if (say(&x, line, buf, sizeof(buf))) {
			said++;
			strncat(out, buf, sizeof(out) - strlen(out) - 2);
			strcat(out, "\n");
		}
		rounds += strstr(line, "\"round_end\":true") != NULL;
	}
	free(line);
	fclose(f);
	/* One line to start, one (two rows) per round, one at the end. */
	assert_int_equal(said, rounds + 2);
	assert_non_null(strstr(out, "round 0: the guest keeps running while we copy the 18.0 MiB it has touched"));
	assert_non_null(strstr(out, "over the 30 ms limit: another round"));
	assert_non_null(strstr(out, "fits the 30 ms limit: switch over now"));
	assert_non_null(strstr(out, "done: paused 31.2 ms"));
}

static void test_verdicts(void **state)
{
	struct migrate_explain x = { .limit_ms = 5, .max_rounds = 4, .started = true };
	char buf[512];

	say(&x, "{\"event\":\"migration\",\"round\":3,\"round_end\":true,\"next\":\"switchover\","
		"\"remaining_pages\":10496,\"round_bytes\":67108864,\"rate_mibs\":1945.6,"
		"\"expected_downtime_ms\":22}", buf, sizeof(buf));
	assert_string_equal(buf, "round 3: the guest rewrote 41.0 MiB while we sent 64.0 MiB\n"
				 "  at 1.9 GiB/s the rest would take 22 ms: over the 5 ms limit, no rounds "
				 "left: switch over");
	say(&x, "{\"event\":\"migration\",\"round\":1,\"round_end\":true,\"next\":\"switchover\","
		"\"expected_downtime_ms\":22}", buf, sizeof(buf));
	assert_non_null(strstr(buf, "not shrinking: switch over"));
	/* Within the limit while rounds still shrink the rest: one more, for less downtime. */
	say(&x, "{\"event\":\"migration\",\"round\":2,\"round_end\":true,\"next\":\"round\","
		"\"expected_downtime_ms\":4.5}", buf, sizeof(buf));
	assert_non_null(strstr(buf, "would take 4.5 ms: fits the 5 ms limit, still shrinking: one more round"));
	say(&x, "{\"event\":\"migration\",\"round\":3,\"round_end\":true,\"next\":\"give-up\","
		"\"expected_downtime_ms\":22}", buf, sizeof(buf));
	assert_non_null(strstr(buf, "no rounds left: give up"));
	/* The longest verdict after a wide rate and time still fits the projector. */
	say(&x, "{\"event\":\"migration\",\"round\":999,\"round_end\":true,\"next\":\"round\","
		"\"remaining_pages\":1e9,\"round_bytes\":1e13,\"rate_mibs\":1023,\"expected_downtime_ms\":4.9}",
	    buf, sizeof(buf));
	assert_non_null(strstr(buf, "still shrinking: one more round"));
	/* --postcopy: the round that hands the guest over says so. */
	say(&x, "{\"event\":\"migration\",\"round\":1,\"round_end\":true,\"next\":\"postcopy\","
		"\"expected_downtime_ms\":900}", buf, sizeof(buf));
	assert_non_null(strstr(buf, "would take 900 ms: post-copy: it starts there now, the rest follows"));
	/* --auto-converge: a throttle is said when it changes, not at every round. */
	say(&x, "{\"event\":\"migration\",\"round\":4,\"round_end\":true,\"next\":\"round\","
		"\"expected_downtime_ms\":90,\"throttle_pct\":20}", buf, sizeof(buf));
	assert_non_null(strstr(buf, "another round\n  the guest outruns the link: its vCPUs are held back 20% of the time"));
	say(&x, "{\"event\":\"migration\",\"round\":5,\"round_end\":true,\"next\":\"round\","
		"\"expected_downtime_ms\":60,\"throttle_pct\":20}", buf, sizeof(buf));
	assert_null(strstr(buf, "held back"));
	say(&x, "{\"event\":\"migration\",\"round\":6,\"round_end\":true,\"next\":\"round\","
		"\"expected_downtime_ms\":60,\"throttle_pct\":1e300}", buf, sizeof(buf));
	assert_null(strstr(buf, "held back"));
	/* A progress report in the middle of a round says nothing. */
	assert_int_equal(say(&x, "{\"event\":\"migration\",\"phase\":\"precopy\",\"round\":2}", buf, sizeof(buf)), 0);
	say(&x, "{\"event\":\"migration-failed\",\"error\":\"the destination gave up\\u001b[2J\"}", buf,
	    sizeof(buf));
	assert_string_equal(buf, "failed, the guest keeps running here: the destination gave up?[2J");
}

/* Absurd values (huge, negative, not numbers, long strings) still make narrow lines. */
static void test_absurd_values(void **state)
{
	static const char *const events[] = {
		"{\"event\":\"migration\",\"phase\":\"precopy\",\"round_pages\":1e300,\"ram_pages\":-5}",
		"{\"event\":\"migration\",\"round\":1e14,\"round_end\":true,\"next\":\"round\",\"remaining_pages\":1e14,"
		"\"round_bytes\":1e14,\"rate_mibs\":1e14,\"expected_downtime_ms\":1e14}",
		"{\"event\":\"migration\",\"round\":\"x\",\"round_end\":true,\"rate_mibs\":[1]}",
		"{\"event\":\"migration-done\",\"downtime_ms\":1e14,\"switchover\":{\"pause_ms\":1e14,"
		"\"last_pages_ms\":1e14,\"state_ms\":1e14,\"load_ms\":1e14}}",
	};
	struct migrate_explain x = { .limit_ms = 1e9, .max_rounds = 1 };
	char buf[512], tiny[8], err[400];

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		say(&x, events[i], buf, sizeof(buf));
		x.started = false;
		say(&x, events[i], tiny, sizeof(tiny));
	}
	memset(err, 'e', sizeof(err));
	memcpy(err, "{\"event\":\"migration-failed\",\"error\":\"", 37);
	memcpy(err + sizeof(err) - 3, "\"}", 3);
	say(&x, err, buf, sizeof(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_migration),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_absurd_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
