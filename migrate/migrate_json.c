#include "migrate/migrate_json.h"

#include "migrate/compress_pool.h"

#include <stdio.h>
#include <string.h>

const char *const migrate_compress_names[MIGRATE_COMPRESS_COUNT] = { "auto", "zstd", "zlib", "none", "hybrid" };
const char *const migrate_on_timeout_names[2] = { "force", "cancel" };

int migrate_choice(const char *s, const char *const *names, int n)
{
	for (int i = 0; s && i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

const char *migrate_choice_list(const char *const *names, int n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
				 names[i]);
		off += w > 0 ? (size_t)w : 0;
	}
	return buf;
}

static void add_str(struct json_object *o, const char *key, const char *value)
{
	if (value[0])
		json_object_object_add(o, key, json_object_new_string(value));
}

void migrate_params_to_json(const struct migrate_params *p, struct json_object *req)
{
	json_object_object_add(req, "uri", json_object_new_string(p->uri));
	json_object_object_add(req, "max_downtime_ms", json_object_new_int64(p->downtime_ms));
	json_object_object_add(req, "max_rounds", json_object_new_int64(p->max_rounds));
	json_object_object_add(req, "bandwidth", json_object_new_int64((int64_t)p->bandwidth));
	json_object_object_add(req, "compress", json_object_new_string(migrate_compress_names[p->compress]));
	json_object_object_add(req, "on_timeout", json_object_new_string(migrate_on_timeout_names[p->on_timeout]));
	if (p->offline)
		json_object_object_add(req, "offline", json_object_new_boolean(true));
	if (p->stop)
		json_object_object_add(req, "stop", json_object_new_boolean(true));
	if (p->live)
		json_object_object_add(req, "live", json_object_new_boolean(true));
	if (p->storage_copy)
		json_object_object_add(req, "storage", json_object_new_string("copy"));
	if (p->dirty_clear)
		json_object_object_add(req, "dirty_log", json_object_new_string("clear"));
	if (p->compress_threads)
		json_object_object_add(req, "compress_threads", json_object_new_int64(p->compress_threads));
	if (p->postcopy_after)
		json_object_object_add(req, "postcopy_after", json_object_new_int64(p->postcopy_after));
	if (p->postcopy_forced)
		json_object_object_add(req, "postcopy_forced", json_object_new_boolean(true));
	if (p->auto_converge) {
		json_object_object_add(req, "auto_converge", json_object_new_boolean(true));
		json_object_object_add(req, "max_throttle", json_object_new_int64(p->max_throttle_pct));
	}
	for (int i = 0; i < MIGRATE_DISKS_MAX; i++) {
		char key[24];
		snprintf(key, sizeof(key), "dest_disk%d", i);
		add_str(req, key, p->dest_disk[i]);
	}
	add_str(req, "psk", p->tls.psk_file);
	add_str(req, "tls_cert", p->tls.cert_file);
	add_str(req, "tls_key", p->tls.key_file);
	add_str(req, "tls_ca", p->tls.ca_file);
	add_str(req, "tls_server_name", p->tls.server_name);
}

/* An optional integer in [min, max]. */
static int get_uint(struct json_object *req, const char *key, uint64_t min, uint64_t max, uint64_t *out,
		    char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	int64_t n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
		snprintf(err, errlen, "'%s' must be an integer from %llu to %llu", key, (unsigned long long)min,
			 (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)n;
	return 0;
}

static int get_choice(struct json_object *req, const char *key, const char *const *names, int n, int *out,
		      char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	int i = migrate_choice(json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL,
			       names, n);
	if (i >= 0) {
		*out = i;
		return 0;
	}
	/* The value is not echoed: it came from a client, and this goes to a terminal. */
	char list[128];
	snprintf(err, errlen, "'%s' must be one of %s", key, migrate_choice_list(names, n, list, sizeof(list)));
	return -1;
}

/* An optional string of 1 to size-1 bytes. */
static int get_string(struct json_object *req, const char *key, char *out, size_t size, char *err,
		      size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
	    (size_t)json_object_get_string_len(v) >= size) {
		snprintf(err, errlen, "'%s' must be a string of 1 to %zu bytes", key, size - 1);
		return -1;
	}
	snprintf(out, size, "%s", json_object_get_string(v));
	return 0;
}

/* An optional boolean. */
static int get_flag(struct json_object *req, const char *key, bool *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "'%s' must be true or false", key);
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

int migrate_params_from_json(struct json_object *req, struct migrate_params *p, char *err, size_t errlen)
{
	uint64_t n;
	int c;

	migrate_params_default(p);
	if (!json_object_object_get_ex(req, "uri", NULL)) {
		snprintf(err, errlen, "'uri' (HOST:PORT) is required");
		return -1;
	}
	if (get_string(req, "uri", p->uri, sizeof(p->uri), err, errlen) < 0)
		return -1;
	n = p->downtime_ms;
	if (get_uint(req, "downtime_ms", 1, MIGRATE_MAX_DOWNTIME_LIMIT_MS, &n, err, errlen) < 0 ||
	    get_uint(req, "max_downtime_ms", 1, MIGRATE_MAX_DOWNTIME_LIMIT_MS, &n, err, errlen) < 0)
		return -1;
	p->downtime_ms = (uint32_t)n;
	n = p->max_rounds;
	if (get_uint(req, "max_rounds", 1, MIGRATE_MAX_ROUNDS_LIMIT, &n, err, errlen) < 0)
		return -1;
	p->max_rounds = (uint32_t)n;
	if (get_uint(req, "bandwidth", 0, UINT64_MAX >> 2, &p->bandwidth, err, errlen) < 0)
		return -1;
	if (p->bandwidth && p->bandwidth < MIGRATE_MIN_BANDWIDTH) {
		snprintf(err, errlen, "'bandwidth' must be 0 (no cap) or at least %d bytes/s", MIGRATE_MIN_BANDWIDTH);
		return -1;
	}
	c = (int)p->compress;
	if (get_choice(req, "compress", migrate_compress_names, MIGRATE_COMPRESS_COUNT, &c, err, errlen) < 0)
		return -1;
	p->compress = (enum migrate_compress)c;
	c = (int)p->on_timeout;
	if (get_choice(req, "on_timeout", migrate_on_timeout_names, 2, &c, err, errlen) < 0)
		return -1;
	p->on_timeout = (enum migrate_on_timeout)c;
	if (get_flag(req, "offline", &p->offline, err, errlen) < 0 ||
	    get_flag(req, "stop", &p->stop, err, errlen) < 0 ||
	    get_flag(req, "live", &p->live, err, errlen) < 0 ||
	    get_flag(req, "auto_converge", &p->auto_converge, err, errlen) < 0 ||
	    get_flag(req, "postcopy_forced", &p->postcopy_forced, err, errlen) < 0)
		return -1;
	static const char *const dirty_log_names[2] = { "get", "clear" };
	c = p->dirty_clear;
	if (get_choice(req, "dirty_log", dirty_log_names, 2, &c, err, errlen) < 0)
		return -1;
	p->dirty_clear = c == 1;
	n = p->compress_threads;
	if (get_uint(req, "compress_threads", 0, COMPRESS_POOL_MAX, &n, err, errlen) < 0)
		return -1;
	p->compress_threads = (uint32_t)n;
	n = p->postcopy_after;
	if (get_uint(req, "postcopy_after", 0, MIGRATE_MAX_ROUNDS_LIMIT, &n, err, errlen) < 0)
		return -1;
	p->postcopy_after = (uint32_t)n;
	n = p->max_throttle_pct;
	if (get_uint(req, "max_throttle", 1, MIGRATE_DEFAULT_MAX_THROTTLE, &n, err, errlen) < 0)
		return -1;
	p->max_throttle_pct = (uint32_t)n;
	static const char *const storage_names[2] = { "shared", "copy" };
	c = p->storage_copy;
	if (get_choice(req, "storage", storage_names, 2, &c, err, errlen) < 0)
		return -1;
	p->storage_copy = c == 1;
	for (int i = 0; i < MIGRATE_DISKS_MAX; i++) {
		char key[24];
		snprintf(key, sizeof(key), "dest_disk%d", i);
		if (get_string(req, key, p->dest_disk[i], sizeof(p->dest_disk[i]), err, errlen) < 0)
			return -1;
	}
	struct tls_options *t = &p->tls;
	if (get_string(req, "psk", t->psk_file, sizeof(t->psk_file), err, errlen) < 0 ||
	    get_string(req, "tls_cert", t->cert_file, sizeof(t->cert_file), err, errlen) < 0 ||
	    get_string(req, "tls_key", t->key_file, sizeof(t->key_file), err, errlen) < 0 ||
	    get_string(req, "tls_ca", t->ca_file, sizeof(t->ca_file), err, errlen) < 0 ||
	    get_string(req, "tls_server_name", t->server_name, sizeof(t->server_name), err, errlen) < 0)
		return -1;
	return 0;
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static void add_dbl(struct json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

struct json_object *migrate_stats_to_json(const char *event, const struct migrate_stats *st)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "phase", json_object_new_string(migrate_phase_name(st->phase)));
	json_object_object_add(o, "round", json_object_new_int((int32_t)st->round));
	add_u64(o, "ram_pages", st->ram_pages);
	add_u64(o, "remaining_pages", st->remaining_pages);
	add_u64(o, "pages_sent", st->pages_sent);
	add_u64(o, "zero_pages", st->zero_pages);
	add_u64(o, "raw_pages", st->raw_pages);
	add_u64(o, "zlib_pages", st->zlib_pages);
	add_u64(o, "zstd_pages", st->zstd_pages);
	add_u64(o, "deflate_pages", st->deflate_pages);
	add_u64(o, "wire_bytes", st->wire_bytes);
	add_dbl(o, "rate_mibs", st->rate_mbs);
	add_dbl(o, "dirty_rate_mibs", st->dirty_rate_mbs);
	add_dbl(o, "expected_downtime_ms", st->expected_downtime_ms);
	add_u64(o, "round_pages", st->round_pages);
	add_u64(o, "round_done_pages", st->round_done_pages);
	add_u64(o, "round_bytes", st->round_bytes);
	add_dbl(o, "round_elapsed_ms", st->round_elapsed_ms);
	add_dbl(o, "elapsed_ms", st->elapsed_ms);
	add_dbl(o, "downtime_ms", st->downtime_ms);
	json_object_object_add(o, "compressing", json_object_new_boolean(st->compressing));
	if (st->max_throttle_pct) {
		add_u64(o, "throttle_pct", st->throttle_pct);
		add_u64(o, "max_throttle_pct", st->max_throttle_pct);
	}
	if (st->disk_blocks_sent || st->disk_dirty_blocks) {
		add_u64(o, "disk_blocks_sent", st->disk_blocks_sent);
		add_u64(o, "disk_bytes", st->disk_bytes);
		add_u64(o, "disk_dirty_blocks", st->disk_dirty_blocks);
	}
	if (st->round_end) {
		json_object_object_add(o, "round_end", json_object_new_boolean(true));
		json_object_object_add(o, "next", json_object_new_string(st->round_next ? st->round_next : "round"));
	}
	if (st->switchover.valid) {
		struct json_object *sw = json_object_new_object();

		add_dbl(sw, "pause_ms", st->switchover.pause_ms);
		add_dbl(sw, "last_pages_ms", st->switchover.last_pages_ms);
		add_u64(sw, "last_pages", st->switchover.last_pages);
		add_dbl(sw, "state_ms", st->switchover.state_ms);
		add_dbl(sw, "load_ms", st->switchover.load_ms);
		add_dbl(sw, "confirm_ms", st->switchover.confirm_ms);
		json_object_object_add(o, "switchover", sw);
	}
	if (st->security[0])
		json_object_object_add(o, "security", json_object_new_string(st->security));
	if (st->paused)
		json_object_object_add(o, "paused", json_object_new_boolean(true));
	if (st->postcopy_pages) {
		struct json_object *pc = json_object_new_object();
		add_u64(pc, "pages", st->postcopy_pages);
		add_u64(pc, "requested_pages", st->postcopy_requested_pages);
		add_u64(pc, "requests", st->postcopy_requests);
		add_dbl(pc, "ms", st->postcopy_ms);
		json_object_object_add(o, "postcopy", pc);
	}
	if (st->postcopy_lost)
		json_object_object_add(o, "postcopy_lost", json_object_new_boolean(true));
	if (st->outcome_unknown)
		json_object_object_add(o, "outcome_unknown", json_object_new_boolean(true));
	if (st->warning[0])
		json_object_object_add(o, "warning", json_object_new_string(st->warning));
	if (st->error[0])
		json_object_object_add(o, "error", json_object_new_string(st->error));
	return o;
}
