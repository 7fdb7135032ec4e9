/* The HTML report of a migration (tools/migrate_report.c), from the events of a real
 * migration (tests/data/migration-events.jsonl, recorded from `hvctl migrate --json`) and
 * from crafted ones: one chart point per round, the summary equal to the final event, every
 * string from the events escaped. */
#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/migrate_report.h"

#define EVENTS "tests/data/migration-events.jsonl"

/* The report of every event in path, and how many closed a round; the final event in *final. */
static struct migrate_report *load(const char *path, int *rounds, struct json_object **final)
{
	struct migrate_report *r = migrate_report_new();
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	assert_non_null(r);
	assert_non_null(f);
	*rounds = 0;
	while (getline(&line, &cap, f) > 0) {
		struct json_object *ev = json_tokener_parse(line), *v;
		assert_non_null(ev);
		if (json_object_object_get_ex(ev, "round_end", &v) && json_object_get_boolean(v))
			(*rounds)++;
		if (json_object_object_get_ex(ev, "event", &v) && strcmp(json_object_get_string(v), "migration"))
			*final = json_object_get(ev);
		migrate_report_add(r, ev);
		json_object_put(ev);
	}
	free(line);
	fclose(f);
	return r;
}

static char *page(const struct migrate_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(migrate_report_write(r, f), 0);
	fclose(f);
	return buf;
}

/* Pairs in the points attribute of the polyline of series s. */
static int points(const char *html, const char *series)
{
	char key[64];
	const char *p;
	int n = 0;

	snprintf(key, sizeof(key), "data-series=\"%s\" points=\"", series);
	p = strstr(html, key);
	assert_non_null(p);
	for (p += strlen(key); *p && *p != '"'; p++)
		n += *p == ',';
	return n;
}

static int count(const char *html, const char *needle)
{
	int n = 0;

	for (const char *p = html; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The data-value of the summary cell id. */
static double value(const char *html, const char *id)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "id=\"%s\" data-value=\"", id);
	p = strstr(html, key);
	assert_non_null(p);
	return strtod(p + strlen(key), NULL);
}

static double field(struct json_object *ev, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(ev, key, &v));
	return json_object_get_double(v);
}

static void test_real_migration(void **state)
{
	struct json_object *final = NULL;
	int rounds;
	struct migrate_report *r = load(EVENTS, &rounds, &final);
	char *html = page(r);

	assert_true(migrate_report_complete(r));
	assert_true(rounds > 1);
	/* One point per pre-copy round in every line chart. */
	for (const char *s = "rate\0dirty\0left\0estimate\0limit\0"; *s; s += strlen(s) + 1)
		assert_int_equal(points(html, s), rounds);
	/* The summary is the final event. */
	assert_true(fabs(value(html, "elapsed_ms") - field(final, "elapsed_ms")) < 1e-6);
	assert_true(fabs(value(html, "downtime_ms") - field(final, "downtime_ms")) < 1e-6);
	assert_true(fabs(value(html, "wire_bytes") - field(final, "wire_bytes")) < 1e-6);
	assert_int_equal((int)value(html, "rounds"), (int)field(final, "round") + 1);
	assert_int_equal((int)value(html, "zero_pages"), (int)field(final, "zero_pages"));
	assert_int_equal((int)value(html, "raw_pages"), (int)field(final, "raw_pages"));
	assert_int_equal((int)value(html, "zlib_pages"), (int)field(final, "zlib_pages"));
	/* The pages chart: every round and the switchover, and its raw pages add up. */
	assert_int_equal((int)field(final, "round") + 1, rounds + 1);
	int raw = count(html, "<rect class=\"s-raw\"");
	assert_true(raw >= 1 && raw <= rounds + 1);
	/* The switchover's steps, and the paragraph. */
	assert_int_equal(count(html, "data-step="), 5);
	assert_non_null(strstr(html, "That fits the 30 ms limit, so hv switched over"));
	/* Self-contained: nothing fetched, no script. */
	assert_null(strstr(html, "http://"));
	assert_null(strstr(html, "https://"));
	assert_null(strstr(html, "<script"));
	assert_null(strstr(html, "src="));
	free(html);
	json_object_put(final);
	migrate_report_free(r);
}

static struct json_object *event(const char *json)
{
	struct json_object *ev = json_tokener_parse(json);

	assert_non_null(ev);
	return ev;
}

/* A failed migration with a hostile error string and VM name: escaped, never markup. */
static void test_failed_and_hostile_strings(void **state)
{
	struct migrate_report *r = migrate_report_new();
	struct json_object *ev = event("{\"event\":\"migration-failed\",\"round\":1e300,\"elapsed_ms\":\"x\","
				       "\"error\":\"<script>alert(1)</script>\\u001b[2J & more\","
				       "\"vm\":\"<b>vm</b>\",\"params\":{\"uri\":\"h\\\"ost:1\"}}");
	char *html, why[512];

	migrate_report_add(r, ev);
	json_object_put(ev);
	html = page(r);
	assert_null(strstr(html, "<script>"));
	assert_null(strstr(html, "<b>vm"));
	assert_null(strchr(html, '\033'));
	assert_non_null(strstr(html, "&lt;script&gt;"));
	assert_non_null(strstr(html, "h&quot;ost:1"));
	assert_non_null(strstr(html, "failed"));
	migrate_report_why(r, why, sizeof(why));
	assert_non_null(strstr(why, "The migration failed"));
	assert_non_null(strstr(why, "kept running on the source"));
	free(html);
	migrate_report_free(r);
}

/* An offline migration: no pre-copy rounds, one bar for the switchover, no line charts. */
static void test_offline(void **state)
{
	struct migrate_report *r = migrate_report_new();
	struct json_object *ev = event("{\"event\":\"migration-done\",\"round\":0,\"raw_pages\":100,\"zero_pages\":5,"
				       "\"downtime_ms\":12.5,\"pages_sent\":100,\"params\":{\"uri\":\"h:1\","
				       "\"offline\":true,\"max_downtime_ms\":30}}");
	char *html, why[512];

	migrate_report_add(r, ev);
	json_object_put(ev);
	html = page(r);
	assert_null(strstr(html, "<polyline"));
	assert_non_null(strstr(html, "data-round=\"0\""));
	migrate_report_why(r, why, sizeof(why));
	assert_non_null(strstr(why, "no pre-copy rounds"));
	assert_non_null(strstr(why, "12.5 ms"));
	free(html);
	migrate_report_free(r);
}

/* Out of rounds: the paragraph says so, naming the limit and the rounds. */
static void test_forced_after_max_rounds(void **state)
{
	struct migrate_report *r = migrate_report_new();
	char why[1024];

	for (int i = 0; i < 3; i++) {
		char json[300];
		snprintf(json, sizeof(json), "{\"event\":\"migration\",\"round\":%d,\"round_end\":true,\"next\":\"%s\","
			 "\"remaining_pages\":5000,\"expected_downtime_ms\":80,\"rate_mibs\":100,"
			 "\"dirty_rate_mibs\":300,\"raw_pages\":%d}", i, i == 2 ? "switchover" : "round", 1000 * (i + 1));
		struct json_object *ev = event(json);
		migrate_report_add(r, ev);
		json_object_put(ev);
	}
	struct json_object *ev = event("{\"event\":\"migration-done\",\"round\":3,\"downtime_ms\":90,"
				       "\"params\":{\"uri\":\"h:1\",\"max_downtime_ms\":30,\"max_rounds\":3}}");
	migrate_report_add(r, ev);
	json_object_put(ev);
	migrate_report_why(r, why, sizeof(why));
	assert_non_null(strstr(why, "over the 30 ms limit"));
	assert_non_null(strstr(why, "the 3 rounds allowed"));
	assert_non_null(strstr(why, "90.0 ms"));
	char *html = page(r);
	assert_int_equal(points(html, "rate"), 3);
	free(html);
	migrate_report_free(r);
}

/* The file: written whole under its name, no temporary left; a missing directory refused. */
static void test_save(void **state)
{
	struct json_object *final = NULL;
	int rounds;
	struct migrate_report *r = load(EVENTS, &rounds, &final);
	char dir[] = "/tmp/hv-report-XXXXXX", path[64], cmd[96];
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.html", dir);
	assert_int_equal(migrate_report_save(r, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 4096);
	snprintf(path, sizeof(path), "%s/no/r.html", dir);
	assert_int_equal(migrate_report_save(r, path), -1);
	snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) = 1 && rm -rf %s", dir, dir);
	assert_int_equal(system(cmd), 0);
	json_object_put(final);
	migrate_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_migration),
		cmocka_unit_test(test_failed_and_hostile_strings),
		cmocka_unit_test(test_offline),
		cmocka_unit_test(test_forced_after_max_rounds),
		cmocka_unit_test(test_save),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
