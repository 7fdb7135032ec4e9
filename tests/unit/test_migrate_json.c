/* The migrate command's JSON (migrate/migrate_json.c): what hvctl writes the VM process
 * reads back unchanged; every member is range-checked; errors never echo the value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "migrate/migrate_json.h"

static int parse(const char *text, struct migrate_params *p, char *err, size_t len)
{
	struct json_object *o = json_tokener_parse(text);
	assert_non_null(o);
	err[0] = 0;
	int r = migrate_params_from_json(o, p, err, len);
	json_object_put(o);
	return r;
}

static void test_round_trip(void **unused)
{
	struct migrate_params a, b;
	char err[256];

	migrate_params_default(&a);
	snprintf(a.uri, sizeof(a.uri), "10.0.0.9:4440");
	a.downtime_ms = 250;
	a.max_rounds = 7;
	a.bandwidth = 100 << 20;
	a.compress = MIGRATE_COMPRESS_NONE;
	a.on_timeout = MIGRATE_ON_TIMEOUT_CANCEL;
	a.offline = true;
	a.storage_copy = true;
	a.auto_converge = true;
	a.compress_threads = 3;
	a.dirty_clear = true;
	a.max_throttle_pct = 60;
	snprintf(a.dest_disk[1], sizeof(a.dest_disk[1]), "/srv/in/b.img");
	snprintf(a.tls.psk_file, sizeof(a.tls.psk_file), "/etc/hv/migration.key");
	struct json_object *req = json_object_new_object();
	migrate_params_to_json(&a, req);
	assert_int_equal(migrate_params_from_json(req, &b, err, sizeof(err)), 0);
	json_object_put(req);
	assert_string_equal(b.uri, a.uri);
	assert_int_equal(b.downtime_ms, 250);
	assert_int_equal(b.max_rounds, 7);
	assert_int_equal(b.bandwidth, 100 << 20);
	assert_int_equal(b.compress, MIGRATE_COMPRESS_NONE);
	assert_int_equal(b.on_timeout, MIGRATE_ON_TIMEOUT_CANCEL);
	assert_true(b.offline);
	assert_true(b.storage_copy);
	assert_true(b.auto_converge);
	assert_int_equal(b.compress_threads, 3);
	assert_true(b.dirty_clear);
	assert_int_equal(b.max_throttle_pct, 60);
	assert_string_equal(b.dest_disk[0], "");
	assert_string_equal(b.dest_disk[1], "/srv/in/b.img");
	assert_string_equal(b.tls.psk_file, "/etc/hv/migration.key");
	assert_string_equal(b.tls.cert_file, "");
}

/* What is not given takes the defaults; the limit's old name is still understood. */
static void test_defaults_and_old_name(void **unused)
{
	struct migrate_params p;
	char err[256];

	assert_int_equal(parse("{\"uri\":\"h:1\"}", &p, err, sizeof(err)), 0);
	assert_int_equal(p.downtime_ms, MIGRATE_DEFAULT_DOWNTIME_MS);
	assert_int_equal(p.max_rounds, MIGRATE_DEFAULT_MAX_ROUNDS);
	assert_int_equal(p.bandwidth, 0);
	assert_int_equal(p.compress, MIGRATE_COMPRESS_AUTO);
	assert_int_equal(p.on_timeout, MIGRATE_ON_TIMEOUT_FORCE);
	assert_false(p.offline);
	assert_false(p.storage_copy);
	assert_false(p.auto_converge);
	assert_int_equal(p.max_throttle_pct, MIGRATE_DEFAULT_MAX_THROTTLE);
	assert_int_equal(parse("{\"uri\":\"h:1\",\"downtime_ms\":99}", &p, err, sizeof(err)), 0);
	assert_int_equal(p.downtime_ms, 99);
}

static void test_out_of_range_is_refused(void **unused)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{}", "'uri' (HOST:PORT) is required" },
		{ "{\"uri\":\"\"}", "'uri' must be a string" },
		{ "{\"uri\":5}", "'uri' must be a string" },
		{ "{\"uri\":\"h:1\",\"max_downtime_ms\":0}", "'max_downtime_ms' must be an integer from 1 to 3600000" },
		{ "{\"uri\":\"h:1\",\"max_downtime_ms\":3600001}", "from 1 to 3600000" },
		{ "{\"uri\":\"h:1\",\"max_downtime_ms\":\"30\"}", "must be an integer" },
		{ "{\"uri\":\"h:1\",\"max_rounds\":0}", "'max_rounds' must be an integer from 1 to 10000" },
		{ "{\"uri\":\"h:1\",\"max_rounds\":-3}", "'max_rounds'" },
		{ "{\"uri\":\"h:1\",\"bandwidth\":100}", "'bandwidth' must be 0 (no cap) or at least 4096" },
		{ "{\"uri\":\"h:1\",\"compress\":\"lz4\\u001b[2J\"}", "'compress' must be one of auto, zstd, zlib, none or hybrid" },
		{ "{\"uri\":\"h:1\",\"compress\":\"ZSTD\"}", "'compress' must be one of" },
		{ "{\"uri\":\"h:1\",\"on_timeout\":1}", "'on_timeout' must be one of force or cancel" },
		{ "{\"uri\":\"h:1\",\"psk\":\"\"}", "'psk' must be a string of 1 to" },
		{ "{\"uri\":\"h:1\",\"offline\":1}", "'offline' must be true or false" },
		{ "{\"uri\":\"h:1\",\"storage\":\"nfs\"}", "'storage' must be one of shared or copy" },
		{ "{\"uri\":\"h:1\",\"dest_disk0\":7}", "'dest_disk0' must be a string" },
		{ "{\"uri\":\"h:1\",\"auto_converge\":\"yes\"}", "'auto_converge' must be true or false" },
		{ "{\"uri\":\"h:1\",\"max_throttle\":100}", "'max_throttle' must be an integer from 1 to 99" },
		{ "{\"uri\":\"h:1\",\"max_throttle\":0}", "'max_throttle'" },
		{ "{\"uri\":\"h:1\",\"dirty_log\":\"ring\"}", "'dirty_log' must be one of get or clear" },
		{ "{\"uri\":\"h:1\",\"compress_threads\":65}", "'compress_threads' must be an integer from 0 to 64" },
	};
	struct migrate_params p;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].json, &p, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: '%s' does not say '%s'", bad[i].json, err, bad[i].msg);
		assert_null(strchr(err, '\033'));
	}
}

/* Every --compress choice by its name, and back; the names and the enum agree. */
static void test_compress_names_round_trip(void **unused)
{
	static const char *const expect[MIGRATE_COMPRESS_COUNT] = {
		[MIGRATE_COMPRESS_AUTO] = "auto", [MIGRATE_COMPRESS_ZSTD] = "zstd",
		[MIGRATE_COMPRESS_ZLIB] = "zlib", [MIGRATE_COMPRESS_NONE] = "none",
		[MIGRATE_COMPRESS_HYBRID] = "hybrid",
	};
	char err[256], list[64];

	for (int i = 0; i < MIGRATE_COMPRESS_COUNT; i++) {
		struct migrate_params a, b;
		struct json_object *req = json_object_new_object(), *v;

		assert_string_equal(migrate_compress_names[i], expect[i]);
		migrate_params_default(&a);
		snprintf(a.uri, sizeof(a.uri), "h:1");
		a.compress = (enum migrate_compress)i;
		migrate_params_to_json(&a, req);
		assert_true(json_object_object_get_ex(req, "compress", &v));
		assert_string_equal(json_object_get_string(v), expect[i]);
		assert_int_equal(migrate_params_from_json(req, &b, err, sizeof(err)), 0);
		assert_int_equal(b.compress, i);
		json_object_put(req);
	}
	struct migrate_params p;
	assert_int_equal(parse("{\"uri\":\"h:1\",\"compress\":\"zstd\"}", &p, err, sizeof(err)), 0);
	assert_int_equal(p.compress, MIGRATE_COMPRESS_ZSTD);
	assert_string_equal(migrate_choice_list(migrate_compress_names, MIGRATE_COMPRESS_COUNT, list, sizeof(list)),
			    "auto, zstd, zlib, none or hybrid");
	assert_string_equal(migrate_choice_list(migrate_compress_names, 1, list, sizeof(list)), "auto");
	assert_string_equal(migrate_choice_list(migrate_compress_names, MIGRATE_COMPRESS_COUNT, list, 9), "auto, zs");
}

static void test_events_carry_the_numbers(void **unused)
{
	struct migrate_stats st = { .phase = MIGRATE_PHASE_DONE, .round = 3, .wire_bytes = 12345,
				    .downtime_ms = 1.5, .zlib_pages = 7, .zstd_pages = 11 };
	snprintf(st.security, sizeof(st.security), "none");
	struct json_object *o = migrate_stats_to_json("migration-done", &st), *v;

	assert_true(json_object_object_get_ex(o, "event", &v));
	assert_string_equal(json_object_get_string(v), "migration-done");
	assert_true(json_object_object_get_ex(o, "phase", &v));
	assert_string_equal(json_object_get_string(v), "done");
	assert_true(json_object_object_get_ex(o, "wire_bytes", &v));
	assert_int_equal(json_object_get_int64(v), 12345);
	assert_true(json_object_object_get_ex(o, "downtime_ms", &v));
	assert_float_equal(json_object_get_double(v), 1.5, 1e-9);
	assert_true(json_object_object_get_ex(o, "zlib_pages", &v));
	assert_int_equal(json_object_get_int64(v), 7);
	assert_true(json_object_object_get_ex(o, "zstd_pages", &v));
	assert_int_equal(json_object_get_int64(v), 11);
	assert_true(json_object_object_get_ex(o, "security", &v));
	assert_false(json_object_object_get_ex(o, "error", &v));
	assert_false(json_object_object_get_ex(o, "outcome_unknown", &v));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_defaults_and_old_name),
		cmocka_unit_test(test_out_of_range_is_refused),
		cmocka_unit_test(test_compress_names_round_trip),
		cmocka_unit_test(test_events_carry_the_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
