#include "migrate/migrate_control.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/control.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "hv/vm.h"
#include "migrate/migrate.h"

struct migrate_job {
	struct control_server *cs;
	struct machine *machine;
	pthread_mutex_t lock;
	bool running;      /* a migration thread exists (until joined) */
	bool thread_valid;
	pthread_t thread;
	atomic_bool cancel;
	struct migrate_params params;
	struct migrate_stats stats;
	uint64_t last_event_ns;
};

static struct json_object *stats_json(const char *event, const struct migrate_stats *st)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "phase", json_object_new_string(migrate_phase_name(st->phase)));
	json_object_object_add(o, "round", json_object_new_int((int32_t)st->round));
	json_object_object_add(o, "ram_pages", json_object_new_int64((int64_t)st->ram_pages));
	json_object_object_add(o, "remaining_pages", json_object_new_int64((int64_t)st->remaining_pages));
	json_object_object_add(o, "pages_sent", json_object_new_int64((int64_t)st->pages_sent));
	json_object_object_add(o, "zero_pages", json_object_new_int64((int64_t)st->zero_pages));
	json_object_object_add(o, "raw_pages", json_object_new_int64((int64_t)st->raw_pages));
	json_object_object_add(o, "zlib_pages", json_object_new_int64((int64_t)st->zlib_pages));
	json_object_object_add(o, "deflate_pages", json_object_new_int64((int64_t)st->deflate_pages));
	json_object_object_add(o, "wire_bytes", json_object_new_int64((int64_t)st->wire_bytes));
	json_object_object_add(o, "rate_mibs", json_object_new_double(st->rate_mbs));
	json_object_object_add(o, "dirty_rate_mibs", json_object_new_double(st->dirty_rate_mbs));
	json_object_object_add(o, "expected_downtime_ms", json_object_new_double(st->expected_downtime_ms));
	json_object_object_add(o, "round_pages", json_object_new_int64((int64_t)st->round_pages));
	json_object_object_add(o, "round_done_pages", json_object_new_int64((int64_t)st->round_done_pages));
	json_object_object_add(o, "round_bytes", json_object_new_int64((int64_t)st->round_bytes));
	json_object_object_add(o, "round_elapsed_ms", json_object_new_double(st->round_elapsed_ms));
	json_object_object_add(o, "elapsed_ms", json_object_new_double(st->elapsed_ms));
	json_object_object_add(o, "downtime_ms", json_object_new_double(st->downtime_ms));
	json_object_object_add(o, "compressing", json_object_new_boolean(st->compressing));
	if (st->security[0])
		json_object_object_add(o, "security", json_object_new_string(st->security));
	if (st->outcome_unknown)
		json_object_object_add(o, "outcome_unknown", json_object_new_boolean(true));
	if (st->error[0])
		json_object_object_add(o, "error", json_object_new_string(st->error));
	return o;
}

static void on_progress(void *opaque, const struct migrate_stats *st)
{
	struct migrate_job *job = opaque;
	struct json_object *ev = stats_json("migration", st);

	control_emit_event(job->cs, ev);
	json_object_put(ev);
}

static void *migration_thread(void *arg)
{
	struct migrate_job *job = arg;
	struct vm *vm = &job->machine->vm;
	int r = migrate_source(job->machine, &job->params, &job->cancel, on_progress, job, &job->stats);
	struct json_object *ev = stats_json(r == 0 ? "migration-done" : "migration-failed", &job->stats);

	/* The result goes out before the VM stops, so a subscriber always learns it. */
	control_emit_event(job->cs, ev);
	json_object_put(ev);
	if (r == 0) {
		char why[320];
		snprintf(why, sizeof(why), "migrated to %s", job->params.uri);
		vm_request_stop(vm, 0, why);
	} else if (job->stats.outcome_unknown) {
		hv_warn("migration of '%s' to %s: %s", vm->name, job->params.uri, job->stats.error);
	} else {
		hv_warn("migration of '%s' to %s failed: %s; the VM keeps running here", vm->name,
			job->params.uri, job->stats.error);
	}
	pthread_mutex_lock(&job->lock);
	job->running = false;
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

static int get_uint(struct json_object *req, const char *key, uint64_t max, uint64_t *out,
		    char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    (uint64_t)json_object_get_int64(v) > max) {
		snprintf(err, errlen, "'%s' must be an integer from 0 to %llu", key, (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_object_get_int64(v);
	return 0;
}

static int get_choice(struct json_object *req, const char *key, const char *const *names, int n,
		      int *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	const char *s = json_object_get_string(v);
	for (int i = 0; s && i < n; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	snprintf(err, errlen, "'%s' has no value '%s'", key, s ? s : "");
	return -1;
}

/* An optional string of fewer than size bytes into out. */
static int get_string(struct json_object *req, const char *key, char *out, size_t size, char *err,
		      size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) || (size_t)json_object_get_string_len(v) >= size) {
		snprintf(err, errlen, "'%s' must be a string of fewer than %zu bytes", key, size);
		return -1;
	}
	snprintf(out, size, "%s", json_object_get_string(v));
	return 0;
}

static int parse_tls(struct json_object *req, struct tls_options *t, char *err, size_t errlen)
{
	if (get_string(req, "psk", t->psk_file, sizeof(t->psk_file), err, errlen) < 0 ||
	    get_string(req, "tls_cert", t->cert_file, sizeof(t->cert_file), err, errlen) < 0 ||
	    get_string(req, "tls_key", t->key_file, sizeof(t->key_file), err, errlen) < 0 ||
	    get_string(req, "tls_ca", t->ca_file, sizeof(t->ca_file), err, errlen) < 0 ||
	    get_string(req, "tls_server_name", t->server_name, sizeof(t->server_name), err, errlen) < 0)
		return -1;
	if (!tls_options_any(t))
		return 0;
	/* Load it all now, so that a bad file is this request's error, not a failed migration. */
	struct tls_context *ctx = tls_context_new(t, TLS_CLIENT, err, errlen);
	tls_context_free(ctx);
	return ctx ? 0 : -1;
}

static int parse_params(struct json_object *req, struct migrate_params *p, char *err, size_t errlen)
{
	static const char *const compress[] = { "auto", "zlib", "none" };
	static const char *const on_timeout[] = { "force", "cancel" };
	struct json_object *v;
	uint64_t n;
	int c;

	migrate_params_default(p);
	if (!json_object_object_get_ex(req, "uri", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) >= (int)sizeof(p->uri) || json_object_get_string_len(v) == 0) {
		snprintf(err, errlen, "'uri' (HOST:PORT) is required");
		return -1;
	}
	snprintf(p->uri, sizeof(p->uri), "%s", json_object_get_string(v));
	n = p->downtime_ms;
	if (get_uint(req, "downtime_ms", 3600000, &n, err, errlen) < 0)
		return -1;
	p->downtime_ms = (uint32_t)n;
	n = p->max_rounds;
	if (get_uint(req, "max_rounds", 10000, &n, err, errlen) < 0)
		return -1;
	p->max_rounds = n ? (uint32_t)n : 1;
	if (get_uint(req, "bandwidth", UINT64_MAX >> 1, &p->bandwidth, err, errlen) < 0)
		return -1;
	c = (int)p->compress;
	if (get_choice(req, "compress", compress, 3, &c, err, errlen) < 0)
		return -1;
	p->compress = (enum migrate_compress)c;
	c = (int)p->on_timeout;
	if (get_choice(req, "on_timeout", on_timeout, 2, &c, err, errlen) < 0)
		return -1;
	p->on_timeout = (enum migrate_on_timeout)c;
	return parse_tls(req, &p->tls, err, errlen);
}

static int cmd_migrate(struct ctl_call *call, void *opaque)
{
	struct migrate_job *job = opaque;
	struct migrate_params p;

	if (parse_params(call->req->obj, &p, call->err, sizeof(call->err)) < 0)
		return -1;
	pthread_mutex_lock(&job->lock);
	if (job->running) {
		pthread_mutex_unlock(&job->lock);
		snprintf(call->err, sizeof(call->err), "a migration of this VM is already in progress");
		return -1;
	}
	if (job->thread_valid)
		pthread_join(job->thread, NULL); /* the previous, finished one */
	job->thread_valid = false;
	job->params = p;
	atomic_store(&job->cancel, false);
	job->running = true;
	if (pthread_create(&job->thread, NULL, migration_thread, job) != 0) {
		job->running = false;
		pthread_mutex_unlock(&job->lock);
		snprintf(call->err, sizeof(call->err), "cannot start the migration thread");
		return -1;
	}
	job->thread_valid = true;
	pthread_mutex_unlock(&job->lock);
	return 0;
}

static int cmd_migrate_cancel(struct ctl_call *call, void *opaque)
{
	struct migrate_job *job = opaque;

	pthread_mutex_lock(&job->lock);
	bool running = job->running;
	if (running)
		atomic_store(&job->cancel, true);
	pthread_mutex_unlock(&job->lock);
	if (!running) {
		snprintf(call->err, sizeof(call->err), "no migration is in progress");
		return -1;
	}
	return 0;
}

struct migrate_job *migrate_control_register(struct control_server *cs, struct machine *m)
{
	struct migrate_job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->cs = cs;
	job->machine = m;
	pthread_mutex_init(&job->lock, NULL);
	if (control_register_command(cs, "migrate", cmd_migrate, job) < 0 ||
	    control_register_command(cs, "migrate-cancel", cmd_migrate_cancel, job) < 0) {
		free(job);
		return NULL;
	}
	return job;
}

void migrate_control_stop(struct migrate_job *job)
{
	if (!job)
		return;
	pthread_mutex_lock(&job->lock);
	atomic_store(&job->cancel, true);
	bool joinable = job->thread_valid;
	job->thread_valid = false;
	pthread_mutex_unlock(&job->lock);
	if (joinable)
		pthread_join(job->thread, NULL);
	pthread_mutex_destroy(&job->lock);
	free(job);
}
