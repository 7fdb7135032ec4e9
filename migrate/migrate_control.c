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
#include "migrate/disk_move.h"
#include "migrate/migrate.h"
#include "migrate/migrate_json.h"
#include "migrate/snapshot.h"

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
	/* hvctl move-disk runs as this job too: one migration or disk move at a time. */
	char move_disk[16], move_path[1024];
	struct disk_move_stats move;
	uint64_t last_event_ns;
};

static void on_progress(void *opaque, const struct migrate_stats *st)
{
	struct migrate_job *job = opaque;
	struct json_object *ev = migrate_stats_to_json("migration", st);

	control_emit_event(job->cs, ev);
	json_object_put(ev);
}

static void *migration_thread(void *arg)
{
	struct migrate_job *job = arg;
	struct vm *vm = &job->machine->vm;
	int r = migrate_source(job->machine, &job->params, &job->cancel, on_progress, job, &job->stats);
	struct json_object *ev = migrate_stats_to_json(r == 0 ? "migration-done" : "migration-failed", &job->stats);
	struct json_object *params = json_object_new_object();

	/* What was asked, so that a saved --json log is a complete record (hvctl report). */
	migrate_params_to_json(&job->params, params);
	json_object_object_add(ev, "params", params);
	json_object_object_add(ev, "vm", json_object_new_string(vm->name));

	/* The result goes out before the VM stops, so a subscriber always learns it. */
	control_emit_event(job->cs, ev);
	json_object_put(ev);
	bool saved = !strncmp(job->params.uri, SNAPSHOT_URI_PREFIX, strlen(SNAPSHOT_URI_PREFIX));
	if (r == 0 && (!saved || job->params.stop)) {
		char why[320];
		snprintf(why, sizeof(why), saved ? "saved to %s" : "migrated to %s",
			 saved ? job->params.uri + strlen(SNAPSHOT_URI_PREFIX) : job->params.uri);
		vm_request_stop(vm, 0, why);
	} else if (r == 0) {
		hv_info("saved '%s' to %s", vm->name, job->params.uri + strlen(SNAPSHOT_URI_PREFIX));
	} else if (job->stats.outcome_unknown || job->stats.postcopy_lost) {
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

static void on_move_progress(void *opaque, const struct disk_move_stats *st)
{
	struct migrate_job *job = opaque;
	struct json_object *ev = disk_move_stats_to_json("move-disk", job->move_disk, st);

	control_emit_event(job->cs, ev);
	json_object_put(ev);
}

static void *move_thread(void *arg)
{
	struct migrate_job *job = arg;
	struct vm *vm = &job->machine->vm;
	int r = disk_move(&job->machine->devs, job->move_disk, job->move_path, &job->cancel, on_move_progress,
			  job, &job->move);
	struct json_object *ev = disk_move_stats_to_json(r == 0 ? "move-disk-done" : "move-disk-failed",
							 job->move_disk, &job->move);

	control_emit_event(job->cs, ev);
	json_object_put(ev);
	if (r == 0)
		hv_info("'%s': %s moved from %s to %s (guest I/O paused %.1f ms)", vm->name, job->move_disk,
			job->move.old_path, job->move.new_path, job->move.stall_ms);
	else
		hv_warn("'%s': moving %s to %s failed: %s; the disk stays where it was", vm->name, job->move_disk,
			job->move_path, job->move.error);
	pthread_mutex_lock(&job->lock);
	job->running = false;
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

/* Starts fn on the job's thread; -1 with call->err if a migration or move runs already. */
static int start_job(struct migrate_job *job, struct ctl_call *call, void *(*fn)(void *))
{
	pthread_mutex_lock(&job->lock);
	if (job->running) {
		pthread_mutex_unlock(&job->lock);
		snprintf(call->err, sizeof(call->err), "a migration or disk move of this VM is already in progress");
		return -1;
	}
	if (job->thread_valid)
		pthread_join(job->thread, NULL); /* the previous, finished one */
	job->thread_valid = false;
	atomic_store(&job->cancel, false);
	job->running = true;
	if (pthread_create(&job->thread, NULL, fn, job) != 0) {
		job->running = false;
		pthread_mutex_unlock(&job->lock);
		snprintf(call->err, sizeof(call->err), "cannot start the job's thread");
		return -1;
	}
	job->thread_valid = true;
	pthread_mutex_unlock(&job->lock);
	return 0;
}

static int cmd_move_disk(struct ctl_call *call, void *opaque)
{
	struct migrate_job *job = opaque;
	struct json_object *v;
	const char *disk = NULL, *path = NULL;

	if (json_object_object_get_ex(call->req->obj, "disk", &v) && json_object_is_type(v, json_type_string))
		disk = json_object_get_string(v);
	if (json_object_object_get_ex(call->req->obj, "path", &v) && json_object_is_type(v, json_type_string))
		path = json_object_get_string(v);
	if (!disk || !path || strlen(disk) >= sizeof(job->move_disk) || strlen(path) >= sizeof(job->move_path) ||
	    path[0] != '/') {
		snprintf(call->err, sizeof(call->err), "'disk' (disk0, ...) and 'path' (absolute) are required");
		return -1;
	}
	pthread_mutex_lock(&job->lock);
	bool busy = job->running;
	if (!busy) {
		snprintf(job->move_disk, sizeof(job->move_disk), "%s", disk);
		snprintf(job->move_path, sizeof(job->move_path), "%s", path);
	}
	pthread_mutex_unlock(&job->lock);
	if (busy) {
		snprintf(call->err, sizeof(call->err), "a migration or disk move of this VM is already in progress");
		return -1;
	}
	return start_job(job, call, move_thread);
}

/* The request's parameters; the TLS files are loaded now, so that a bad one is this
 * request's error, not a failed migration. */
static int parse_params(struct json_object *req, struct migrate_params *p, char *err, size_t errlen)
{
	if (migrate_params_from_json(req, p, err, errlen) < 0)
		return -1;
	if (!tls_options_any(&p->tls))
		return 0;
	struct tls_context *ctx = tls_context_new(&p->tls, TLS_CLIENT, err, errlen);
	tls_context_free(ctx);
	return ctx ? 0 : -1;
}

static int cmd_migrate(struct ctl_call *call, void *opaque)
{
	struct migrate_job *job = opaque;
	struct migrate_params p;

	if (parse_params(call->req->obj, &p, call->err, sizeof(call->err)) < 0)
		return -1;
	pthread_mutex_lock(&job->lock);
	bool busy = job->running;
	if (!busy)
		job->params = p;
	pthread_mutex_unlock(&job->lock);
	if (busy) {
		snprintf(call->err, sizeof(call->err), "a migration or disk move of this VM is already in progress");
		return -1;
	}
	return start_job(job, call, migration_thread);
}

static int cmd_migrate_cancel(struct ctl_call *call, void *opaque)
{
	struct migrate_job *job = opaque;

	pthread_mutex_lock(&job->lock);
	bool running = job->running;
	/* The engine ignores it then (it would lose the guest); say so rather than seem to agree. */
	bool postcopy = running && job->stats.phase == MIGRATE_PHASE_POSTCOPY;
	if (running)
		atomic_store(&job->cancel, true);
	pthread_mutex_unlock(&job->lock);
	if (!running) {
		snprintf(call->err, sizeof(call->err), "no migration or disk move is in progress");
		return -1;
	}
	if (postcopy) {
		snprintf(call->err, sizeof(call->err), "the guest already runs on the destination (post-copy): "
			 "the migration cannot be cancelled; its last pages are on their way");
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
	    control_register_command(cs, "migrate-cancel", cmd_migrate_cancel, job) < 0 ||
	    control_register_command(cs, "move-disk", cmd_move_disk, job) < 0 ||
	    control_register_command(cs, "move-disk-cancel", cmd_migrate_cancel, job) < 0) {
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

void *migrate_control_attach(struct control_server *cs, struct machine *m)
{
	return migrate_control_register(cs, m);
}

void migrate_control_detach(void *job)
{
	migrate_control_stop(job);
}
