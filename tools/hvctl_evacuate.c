/* hvctl evacuate HOST --to A,B: every VM off HOST (maintenance mode), through the agents.
 * The VMs are placed one after the other (largest first) on the destination with the most
 * memory to spare, counting those already sent there; then up to --parallel of them move
 * at once, each by HOST's agent to a receiver the destination's agent started. A move that
 * fails leaves its VM running on HOST (the migration's rule) and the others go on. */
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/log.h"
#include "hv/parse.h"
#include "hv/printable.h"
#include "tools/agent_client.h"
#include "tools/hvctl_remote.h"
#include "tools/tls_opts.h"

#define MAX_DESTS 16
#define MAX_VMS 64

static void evacuate_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl evacuate HOST --to A,B[,...] [--parallel N]\n"
		"         [--storage shared|copy] [--downtime MS]\n"
		"         [--psk FILE | --tls-cert F --tls-key F --tls-ca F]\n"
		"\n"
		"Moves every running or paused VM off HOST (for maintenance), each to the\n"
		"host of --to with the most memory to spare that can take it (its CPU\n"
		"features, its memory), through the agents ('hvctl serve') on all of them.\n"
		"--parallel N moves up to N at once (default 1). --storage and --downtime\n"
		"go to each migration (see hvctl migrate --help). A VM whose move fails\n"
		"keeps running on HOST and the others go on; the table at the end says\n"
		"where each VM is. Ctrl-C: no new move starts, those in flight end, then the\n"
		"table (Ctrl-C again quits; a move in flight still ends by itself).\n"
		"Exit status: 0 if every VM moved, 1 if not, 2 bad usage.\n");
}

struct move {
	struct placement_vm vm;
	char name[64];
	char *features;
	int disks;
	int dest;      /* index in dests, -1: none can take it */
	char result[200];
	bool moved;
	double elapsed_ms, downtime_ms;
};

struct evacuation {
	const char *src;
	struct tls_options tls;
	char *dests[MAX_DESTS];
	int ndests;
	const char *storage, *downtime;
	struct move moves[MAX_VMS];
	int nmoves;
	pthread_mutex_t lock;
	int next;
};

static int by_mem_desc(const void *a, const void *b)
{
	const struct move *x = a, *y = b;

	return x->vm.mem < y->vm.mem ? 1 : x->vm.mem > y->vm.mem ? -1 : strcmp(x->name, y->name);
}

/* The numbers of a --json migration's last event; false if it never said it was done. */
static bool parse_done(const char *out, struct move *m, char *why, size_t len)
{
	bool done = false;

	for (const char *p = out; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		struct json_tokener *tok = json_tokener_new();
		struct json_object *ev = tok ? json_tokener_parse_ex(tok, p, (int)n) : NULL, *v;
		json_tokener_free(tok);
		const char *kind = ev && json_object_object_get_ex(ev, "event", &v) ? json_object_get_string(v) : "";
		if (!strcmp(kind, "migration-done")) {
			done = true;
			m->elapsed_ms = json_object_object_get_ex(ev, "elapsed_ms", &v) ? json_object_get_double(v) : 0;
			m->downtime_ms = json_object_object_get_ex(ev, "downtime_ms", &v) ? json_object_get_double(v) : 0;
		} else if (!strcmp(kind, "migration-failed") && json_object_object_get_ex(ev, "error", &v)) {
			printable(why, len, json_object_get_string(v));
		}
		json_object_put(ev);
		p = nl ? nl + 1 : NULL;
	}
	return done;
}

/* The state of VM m on its destination ("" if it is not there, NULL if the destination's
 * agent cannot be asked), into buf. */
static const char *state_at_dest(const struct evacuation *e, const struct move *m, char *buf, size_t len)
{
	struct agent_conn c;
	char err[300];
	struct json_object *list = NULL, *vm, *v;
	const char *r = NULL;

	if (agent_open(&c, e->dests[m->dest], &e->tls, err, sizeof(err)) < 0)
		return NULL;
	list = agent_call(&c, "list", NULL, err, sizeof(err));
	if (list) {
		buf[0] = 0;
		r = buf;
		vm = agent_list_vm(list, m->name);
		if (vm && json_object_object_get_ex(vm, "state", &v))
			printable(buf, len, json_object_get_string(v));
	}
	json_object_put(list);
	agent_conn_close(&c);
	return r;
}

#define LOST_WAIT_S 600    /* a move in flight when HOST's agent was lost: how long to watch it */
#define NEVER_BEGAN_S 10   /* a receiver no source reached after this long: the move never began */

/* HOST's agent was lost while it ran m's migration. The migration itself runs in the VM
 * and goes on without it: watch the destination until it says how the move ended. */
static void after_loss(const struct evacuation *e, struct move *m)
{
	char state[32];
	int incoming_s = 0;

	for (int s = 0; s < LOST_WAIT_S; s++) {
		const char *st = state_at_dest(e, m, state, sizeof(state));
		if (st && (!strcmp(st, "running") || !strcmp(st, "paused"))) {
			m->moved = true;
			snprintf(m->result, sizeof(m->result), "moved (%s's agent was lost on the way)", e->src);
			return;
		}
		if (st && !st[0]) {
			snprintf(m->result, sizeof(m->result), "stayed: %s's agent was lost; the move failed", e->src);
			return;
		}
		if (st && !strcmp(st, "incoming") && ++incoming_s >= NEVER_BEGAN_S) {
			snprintf(m->result, sizeof(m->result), "stayed: %s's agent was lost before the move began", e->src);
			return;
		}
		sleep(1);
	}
	snprintf(m->result, sizeof(m->result), "unknown: %s's agent was lost; check both hosts", e->src);
}

static void move_one(struct evacuation *e, struct move *m)
{
	struct agent_conn src;
	struct agent_target t;
	char err[400], why[200] = "";
	const char *dest = e->dests[m->dest];

	fprintf(stderr, "%s -> %s: starting\n", m->name, dest);
	if (agent_open(&src, e->src, &e->tls, err, sizeof(err)) < 0) {
		snprintf(m->result, sizeof(m->result), "stayed: %.180s", err);
		goto out;
	}
	hv_quiet_errors(true);
	int r = agent_target_prepare(dest, NULL, &e->tls, &m->vm, NULL, &t);
	hv_quiet_errors(false);
	if (r < 0) {
		snprintf(m->result, sizeof(m->result), "stayed: %s", hv_last_error());
		agent_conn_close(&src);
		goto out;
	}
	const char *argv[12] = { "migrate", m->name, t.listen, "--json" };
	int n = 4;
	if (e->storage && m->disks > 0) { /* a VM without disks has none to copy */
		argv[n++] = "--storage";
		argv[n++] = e->storage;
	}
	if (e->downtime) {
		argv[n++] = "--downtime";
		argv[n++] = e->downtime;
	}
	char *out = NULL, *errtext = NULL;
	size_t errlen = 0;
	FILE *errf = open_memstream(&errtext, &errlen);
	int st = agent_exec(&src, n, argv, NULL, &out, errf, err, sizeof(err));
	bool refused = st == AGENT_EXEC_REFUSED; /* the agent answered: nothing ran */
	if (errf)
		fclose(errf);
	bool done = out && parse_done(out, m, why, sizeof(why));
	if (st == 0 && done) {
		m->moved = true;
		snprintf(m->result, sizeof(m->result), "moved");
	} else if (st < 0 && !refused) {
		after_loss(e, m);
	} else if (st < 0) {
		snprintf(m->result, sizeof(m->result), "stayed: %.180s", err);
	} else {
		if (!why[0] && errtext) {
			/* The last line the command wrote. */
			char *end = errtext + strlen(errtext);
			while (end > errtext && end[-1] == '\n')
				*--end = 0;
			char *last = strrchr(errtext, '\n');
			printable(why, sizeof(why), last ? last + 1 : errtext);
		}
		snprintf(m->result, sizeof(m->result), st == 3 ? "unknown: %s" : "stayed: %s", why[0] ? why : "failed");
	}
	free(out);
	free(errtext);
	/* A receiver that no source reached goes (a failed move: 1); else it is left alone. */
	agent_target_finish(&t, m->name, m->moved ? 0 : !strncmp(m->result, "stayed", 6) ? 1 : 3);
	agent_conn_close(&src);
out:
	fprintf(stderr, "%s -> %s: %s\n", m->name, dest, m->result);
}

/* Ctrl-C (or SIGTERM): no new move starts; those in flight end first, then the summary. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	static const char msg[] = "\nevacuate: no new move starts; waiting for the moves in flight (again: quit)\n";
	(void)sig;
	interrupted = 1;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing to do */
	}
}

static void *worker(void *arg)
{
	struct evacuation *e = arg;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		while (e->next < e->nmoves && e->moves[e->next].dest < 0)
			e->next++;
		struct move *m = e->next < e->nmoves ? &e->moves[e->next++] : NULL;
		pthread_mutex_unlock(&e->lock);
		if (!m)
			return NULL;
		if (interrupted) {
			snprintf(m->result, sizeof(m->result), "stayed: not started (interrupted)");
			continue;
		}
		move_one(e, m);
	}
}

/* The VMs on the source and a destination for each. 0, or -1 after a message. */
static int plan(struct evacuation *e)
{
	struct agent_conn c;
	char err[400];
	struct json_object *list, *vms, *v;

	if (agent_open(&c, e->src, &e->tls, err, sizeof(err)) < 0) {
		hv_error("%s", err);
		return -1;
	}
	list = agent_call(&c, "list", NULL, err, sizeof(err));
	agent_conn_close(&c);
	if (!list || !json_object_object_get_ex(list, "vms", &vms)) {
		hv_error("%s", list ? "the source agent sent no list" : err);
		json_object_put(list);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(vms) && e->nmoves < MAX_VMS; i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i);
		const char *state = json_object_object_get_ex(vm, "state", &v) ? json_object_get_string(v) : "";
		if (strcmp(state, "running") && strcmp(state, "paused"))
			continue; /* a receiver waiting, or a VM on its way: not a VM of this host yet */
		struct move *m = &e->moves[e->nmoves++];
		printable(m->name, sizeof(m->name), json_object_object_get_ex(vm, "name", &v) ? json_object_get_string(v) : "");
		m->features = strdup(json_object_object_get_ex(vm, "cpu_features", &v) ? json_object_get_string(v) : "");
		m->vm.mem = json_object_object_get_ex(vm, "mem", &v) ? (uint64_t)json_object_get_int64(v) : 0;
		m->disks = json_object_object_get_ex(vm, "disks", &v) ? json_object_get_int(v) : 1;
	}
	json_object_put(list);
	qsort(e->moves, (size_t)e->nmoves, sizeof(e->moves[0]), by_mem_desc);

	struct placement_host hosts[MAX_DESTS];
	for (int i = 0; i < e->ndests; i++) {
		agent_survey(&c, e->dests[i], &e->tls, &hosts[i]);
		if (hosts[i].reachable)
			agent_conn_close(&c);
	}
	for (int k = 0; k < e->nmoves; k++) {
		struct move *m = &e->moves[k];
		m->vm.name = m->name;
		m->vm.cpu_features = m->features;
		m->dest = placement_choose(&m->vm, hosts, e->ndests);
		if (m->dest < 0) {
			placement_print(stderr, &m->vm, hosts, e->ndests);
			snprintf(m->result, sizeof(m->result), "stayed: no host of --to can take it");
			continue;
		}
		struct placement_host *h = &hosts[m->dest];
		h->planned += m->vm.mem;
		char **names = realloc(h->vm_names, (size_t)(h->nvm_names + 1) * sizeof(char *));
		if (names) {
			h->vm_names = names;
			h->vm_names[h->nvm_names++] = strdup(m->name);
		}
	}
	for (int i = 0; i < e->ndests; i++)
		placement_host_free(&hosts[i]);
	return 0;
}

int hvctl_cmd_evacuate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' }, { "parallel", required_argument, NULL, 'p' },
		{ "storage", required_argument, NULL, 's' }, { "downtime", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' }, TLS_LONGOPTS,
		{ "tls-server-name", required_argument, NULL, TLS_OPT_SERVER_NAME }, { NULL, 0, NULL, 0 },
	};
	static struct evacuation e;
	char to_buf[4096];
	const char *to = NULL;
	long parallel = 1, n;
	int c;

	memset(&e, 0, sizeof(e));
	pthread_mutex_init(&e.lock, NULL);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int trc;
		if (hvctl_parse_tls_opt(c, optarg, &e.tls, &trc)) {
			if (trc >= 0)
				return 2;
			continue;
		}
		switch (c) {
		case 't': to = optarg; break;
		case 'p':
			if (parse_int(optarg, 1, MAX_VMS, &parallel) < 0) {
				hv_error("--parallel '%s' is not a number from 1 to %d", optarg, MAX_VMS);
				return 2;
			}
			break;
		case 's':
			if (strcmp(optarg, "shared") && strcmp(optarg, "copy")) {
				hv_error("--storage '%s': use shared or copy", optarg);
				return 2;
			}
			e.storage = optarg;
			break;
		case 'd':
			if (parse_int(optarg, 1, 60000, &n) < 0) {
				hv_error("--downtime '%s' is not a number of milliseconds", optarg);
				return 2;
			}
			e.downtime = optarg;
			break;
		case 'h': evacuate_usage(stdout); return 0;
		default:
			hv_error("hvctl evacuate: unknown or incomplete option '%s'; see hvctl evacuate --help",
				 argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != 1 || !to) {
		hv_error("usage: hvctl evacuate HOST --to A,B [--parallel N]; see hvctl evacuate --help");
		return 2;
	}
	e.src = argv[optind];
	snprintf(to_buf, sizeof(to_buf), "%s", to);
	for (char *save = NULL, *h = strtok_r(to_buf, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
		if (e.ndests == MAX_DESTS) {
			hv_error("--to names more than %d hosts", MAX_DESTS);
			return 2;
		}
		e.dests[e.ndests++] = h;
	}
	if (!e.ndests) {
		hv_error("--to names no host: give A,B,...");
		return 2;
	}

	uint64_t t0 = clock_now_ns();
	if (plan(&e) < 0)
		return 1;
	if (!e.nmoves) {
		printf("%s runs no VM: nothing to move\n", e.src);
		return 0;
	}
	pthread_t threads[MAX_VMS];
	int nthreads = (int)(parallel < e.nmoves ? parallel : e.nmoves);
	/* The workers never see the signals (a read inside TLS must not be interrupted); this
	 * thread takes them while it waits. */
	sigset_t sigs, old;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, &e) != 0) {
			nthreads = i;
			break;
		}
	struct sigaction sa = { .sa_handler = on_interrupt, .sa_flags = SA_RESTART | SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!nthreads)
		worker(&e);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);

	int moved = 0;
	for (int k = 0; k < e.nmoves; k++)
		moved += e.moves[k].moved;
	char src[40];
	printf("evacuated %s: %d of %d VMs moved in %.1f s (--parallel %ld)\n", printable(src, sizeof(src), e.src),
	       moved, e.nmoves, (double)(clock_now_ns() - t0) / 1e9, parallel);
	printf("  %-14s %-17s %7s %8s  %s\n", "VM", "TO", "TIME", "DOWNTIME", "RESULT");
	for (int k = 0; k < e.nmoves; k++) {
		struct move *m = &e.moves[k];
		char dest[18] = "-", tm[16] = "-", dt[16] = "-";
		if (m->dest >= 0)
			printable(dest, sizeof(dest), e.dests[m->dest]);
		if (m->moved && m->elapsed_ms > 0) {
			snprintf(tm, sizeof(tm), "%.1f s", m->elapsed_ms / 1000);
			snprintf(dt, sizeof(dt), "%.0f ms", m->downtime_ms);
		}
		int col = printf("  %-14.14s %-17s %7s %8s  ", m->name, dest, tm, dt);
		placement_print_wrapped(stdout, m->result, 26, col);
		free(m->features);
	}
	return moved == e.nmoves ? 0 : 1;
}
