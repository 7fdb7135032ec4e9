/* hvctl serve: the host agent (docs/agent.md). It listens on TCP for authenticated callers
 * (TLS 1.3 with the migration key or certificates), starts receivers for incoming
 * migrations under its own destination policy, reports this host's VMs and free
 * resources, and runs hvctl commands for a caller under the rules of agent_policy.h. Every
 * command runs as a child process (this binary) in the agent's directory, in a session of
 * its own: an agent that stops or dies takes no VM and no migration with it. The VMs it
 * started are recorded in its state file (agent_state.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hv/control_proto.h"
#include "hv/cpu_model.h"
#include "hv/cpuid.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/parse.h"
#include "hv/printable.h"
#include "hv/rundir.h"
#include "migrate/channel.h"
#include "migrate/tls.h"
#include "tools/agent_conn.h"
#include "tools/agent_policy.h"
#include "tools/agent_state.h"
#include "tools/ctl_client.h"
#include "tools/hvctl.h"
#include "tools/tls_opts.h"
#include "tools/vm_process.h"

#define AGENT_MAX_CLIENTS 64
#define AGENT_IDLE_MS (10 * 60 * 1000)   /* a caller silent this long is dropped */
#define AGENT_CHILD_OUTPUT (4u << 20)    /* output of one command passed on, at most */
#define RECEIVE_WAIT_S 120               /* a receiver the agent starts waits this long */

static void serve_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl serve --dir DIR [--listen HOST[:PORT]]\n"
		"         [--migration-address HOST] [--net tap=IF]... [--guest-mem SIZE]\n"
		"         [--psk FILE | --tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
		"         [--insecure]\n"
		"\n"
		"Runs this host's agent: callers with the same key (--psk, from 'hvctl\n"
		"keygen') or a certificate signed by --tls-ca use it through 'hvctl -H HOST',\n"
		"'hvctl migrate NAME HOST', '--to auto' and 'hvctl evacuate'. It listens on\n"
		"--listen (default port 7460; without a key only on a loopback address unless\n"
		"--insecure) and:\n"
		"  - starts a receiver for each migration sent here, listening on\n"
		"    --migration-address (default: the --listen host), under this host's\n"
		"    policy: disks in DIR (copied ones are created there), NICs on the\n"
		"    --net TAPs, at most the memory it has to spare; the VM's console\n"
		"    goes to DIR/NAME.console;\n"
		"  - reports its VMs and free resources: memory available (at most\n"
		"    --guest-mem minus what its guests use, when given), CPU load, the free\n"
		"    space in DIR, the CPU it can offer;\n"
		"  - runs hvctl commands for a caller, in DIR: files are plain names in DIR,\n"
		"    VMs may use only the --net TAPs, console, keygen and the key options\n"
		"    are refused.\n"
		"The VMs it starts are recorded in DIR/hv-agent.json: a restarted agent knows\n"
		"them again. Stopping the agent (SIGTERM) stops no VM and no migration.\n"
		"One agent per DIR. Its log (each caller and command) goes to stderr.\n");
}

struct agent {
	struct agent_config cfg;
	char dir[PATH_MAX];
	char listen_host[256], migration_host[256];
	uint64_t guest_mem; /* 0: no limit beyond MemAvailable */
	struct tls_context *tls;
	char self[PATH_MAX]; /* this binary, which runs every command */
	pthread_mutex_t state_lock;
	struct agent_state state;
	atomic_int clients;
	struct ctl_table table;
};

/* ---- Running hvctl as a child ---- */

struct child_output {
	struct agent_conn *conn; /* events go here (NULL: keep only) */
	char *out; /* stdout kept, NUL-terminated (keep_stdout) */
	size_t out_len;
	char last_err[CTL_ERR_MAX]; /* the last line on stderr, when there is no caller */
	bool keep_stdout, conn_lost;
};

/* Passes one chunk of the child's output to the caller as an event. */
static void send_output(struct child_output *co, int which, const char *data, size_t len)
{
	if (!co->conn && which == 2) {
		/* The agent's own command (a receiver): its errors go to the agent's log, and the
		 * last one to the caller. */
		char line[CTL_ERR_MAX];
		while (len) {
			size_t n = strcspn(data, "\n");
			if (n > len)
				n = len;
			if (n) {
				printable_copy(line, sizeof(line), data, n);
				hv_warn("agent: %s", line);
				snprintf(co->last_err, sizeof(co->last_err), "%s", line);
			}
			data += n < len ? n + 1 : n;
			len -= n < len ? n + 1 : n;
		}
		return;
	}
	if (!co->conn || co->conn_lost)
		return;
	struct json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("output"));
	json_object_object_add(ev, "fd", json_object_new_int(which));
	json_object_object_add(ev, "data", json_object_new_string_len(data, (int)len));
	if (agent_conn_send(co->conn, ev) < 0)
		co->conn_lost = true; /* the command goes on: it may be a migration */
	json_object_put(ev);
}

/* Runs this binary with argv (argv[0]: the hvctl command) in the agent's directory, in a
 * new session, stdin from /dev/null. Returns its exit status (128+N for signal N), or -1
 * if it could not start. */
static int run_child(struct agent *a, const char *const *argv, struct child_output *co)
{
	int out[2], errp[2];
	const char *full[AGENT_MAX_ARGS * 2 + 32];
	int n = 0;

	full[n++] = "hvctl";
	for (int i = 0; argv[i] && n < (int)(sizeof(full) / sizeof(full[0])) - 1; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]), close(out[1]), close(errp[0]), close(errp[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0 ||
		    chdir(a->dir) < 0)
			_exit(126);
		execv(a->self, (char *const *)full);
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);

	struct pollfd p[2] = { { .fd = out[0], .events = POLLIN }, { .fd = errp[0], .events = POLLIN } };
	size_t passed = 0;
	int open_fds = 2;
	char buf[8192];
	while (open_fds) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t r = read(p[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0 && co->keep_stdout) {
				if (co->out_len + (size_t)r <= AGENT_CHILD_OUTPUT) {
					char *b = realloc(co->out, co->out_len + (size_t)r + 1);
					if (b) {
						memcpy(b + co->out_len, buf, (size_t)r);
						co->out_len += (size_t)r;
						b[co->out_len] = 0;
						co->out = b;
					}
				}
			} else if (passed + (size_t)r <= AGENT_CHILD_OUTPUT) {
				passed += (size_t)r;
				send_output(co, i + 1, buf, (size_t)r);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- This host's resources ---- */

/* A "Name:   N kB" line of /proc/meminfo, in bytes; 0 if absent. */
static uint64_t meminfo(const char *name)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	uint64_t v = 0;
	size_t n = strlen(name);

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10) * 1024;
			break;
		}
	fclose(f);
	return v;
}

/* The running VMs ('hvctl list --json'), each marked with whether this agent started it;
 * records of VMs no longer running are dropped from the state. A new array, or NULL. */
static struct json_object *list_vms(struct agent *a, uint64_t *mem_used)
{
	const char *argv[] = { "list", "--json", NULL };
	struct child_output co = { .keep_stdout = true };
	int st = run_child(a, argv, &co);
	struct json_object *vms = st == 0 && co.out ? json_tokener_parse(co.out) : NULL;

	free(co.out);
	if (!vms || !json_object_is_type(vms, json_type_array)) {
		json_object_put(vms);
		return NULL;
	}
	*mem_used = 0;
	pthread_mutex_lock(&a->state_lock);
	bool seen[AGENT_STATE_MAX_VMS] = { false };
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i), *v;
		const char *name = json_object_object_get_ex(vm, "name", &v) ? json_object_get_string(v) : "";
		int k = agent_state_find(&a->state, name);
		if (k >= 0)
			seen[k] = true;
		json_object_object_add(vm, "agent_started", json_object_new_boolean(k >= 0));
		if (json_object_object_get_ex(vm, "mem", &v))
			*mem_used += (uint64_t)json_object_get_int64(v);
	}
	bool changed = false;
	for (int k = a->state.n - 1; k >= 0; k--)
		if (!seen[k]) {
			hv_info("agent: %s is no longer running here: dropped from the state file", a->state.vms[k].name);
			agent_state_remove(&a->state, a->state.vms[k].name);
			changed = true;
		}
	char err[512];
	if (changed && agent_state_save(&a->state, err, sizeof(err)) < 0)
		hv_warn("agent: %s", err);
	pthread_mutex_unlock(&a->state_lock);
	return vms;
}

/* What a guest may still take here: what the guests here do not have yet of --guest-mem
 * (default: all the host's memory), counting each guest's whole size (memory it has not
 * touched yet is not used, but promised), and never more than MemAvailable. */
static uint64_t headroom(const struct agent *a, uint64_t mem_used)
{
	uint64_t avail = meminfo("MemAvailable");
	uint64_t offered = a->guest_mem ? a->guest_mem : meminfo("MemTotal");
	uint64_t left = offered > mem_used ? offered - mem_used : 0;

	return left < avail ? left : avail;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* The CPU this host offers guests: the best named model and the feature list of "host". */
static void add_cpu(struct json_object *r)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	struct cpuid_table *t = kvm >= 0 ? calloc(1, sizeof(*t)) : NULL;

	hv_quiet_errors(true);
	if (t && cpuid_get_supported(kvm, t) == 0) {
		char feats[4096];
		json_object_object_add(r, "cpu_model", json_object_new_string(cpu_model_name(cpu_model_best(t, CPU_MODEL_HOST))));
		cpuid_filter(t);
		if (cpuid_feature_list(t, feats, sizeof(feats)) >= 0)
			json_object_object_add(r, "cpu_features", json_object_new_string(feats));
	}
	hv_quiet_errors(false);
	free(t);
	if (kvm >= 0)
		close(kvm);
}

/* ---- Requests ---- */

static int cmd_hello(struct ctl_call *call, void *opaque)
{
	char host[256] = "";

	(void)opaque;
	gethostname(host, sizeof(host) - 1);
	json_object_object_add(call->resp, "agent", json_object_new_string("hv"));
	json_object_object_add(call->resp, "version", json_object_new_int(1));
	json_object_object_add(call->resp, "host", json_object_new_string(host));
	return 0;
}

static int cmd_list(struct ctl_call *call, void *opaque)
{
	uint64_t used;
	struct json_object *vms = list_vms(opaque, &used);

	if (!vms) {
		snprintf(call->err, sizeof(call->err), "could not list this host's VMs");
		return -1;
	}
	json_object_object_add(call->resp, "vms", vms);
	return 0;
}

static int cmd_resources(struct ctl_call *call, void *opaque)
{
	struct agent *a = opaque;
	uint64_t used = 0;
	struct json_object *vms = list_vms(a, &used), *r = call->resp;
	struct statvfs fs;
	double load[1] = { 0 };

	if (!vms) {
		snprintf(call->err, sizeof(call->err), "could not list this host's VMs");
		return -1;
	}
	add_u64(r, "mem_total", meminfo("MemTotal"));
	add_u64(r, "mem_available", meminfo("MemAvailable"));
	add_u64(r, "guest_mem", a->guest_mem);
	add_u64(r, "vm_mem", used);
	add_u64(r, "headroom", headroom(a, used));
	json_object_object_add(r, "vms", json_object_new_int((int)json_object_array_length(vms)));
	json_object_put(vms);
	json_object_object_add(r, "cpus", json_object_new_int((int)sysconf(_SC_NPROCESSORS_ONLN)));
	if (getloadavg(load, 1) == 1)
		json_object_object_add(r, "load", json_object_new_double(load[0]));
	if (statvfs(a->dir, &fs) == 0)
		add_u64(r, "disk_free", (uint64_t)fs.f_bavail * fs.f_frsize);
	json_object_object_add(r, "dir", json_object_new_string(a->dir));
	json_object_object_add(r, "migration_address", json_object_new_string(a->migration_host));
	add_cpu(r);
	return 0;
}

static void record_vm(struct agent *a, const char *name, const char *origin)
{
	char err[512];

	pthread_mutex_lock(&a->state_lock);
	if (agent_state_add(&a->state, name, origin, (long long)time(NULL)) < 0)
		hv_warn("agent: cannot record %s: the state holds at most %d VMs", name, AGENT_STATE_MAX_VMS);
	else if (agent_state_save(&a->state, err, sizeof(err)) < 0)
		hv_warn("agent: %s", err);
	pthread_mutex_unlock(&a->state_lock);
}

static void forget_vm(struct agent *a, const char *name)
{
	char err[512];

	pthread_mutex_lock(&a->state_lock);
	if (agent_state_find(&a->state, name) >= 0) {
		agent_state_remove(&a->state, name);
		if (agent_state_save(&a->state, err, sizeof(err)) < 0)
			hv_warn("agent: %s", err);
	}
	pthread_mutex_unlock(&a->state_lock);
}

static const char *req_str(const struct ctl_call *call, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(call->req->obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* {"cmd":"receive","name":N}: a receiver for VM N, under this host's policy; replies with
 * the address it listens on. */
static int cmd_receive(struct ctl_call *call, void *opaque)
{
	struct agent *a = opaque;
	const char *name = req_str(call, "name");
	char listen[300], mem[32], timeout[16], console[PATH_MAX + 80];
	uint64_t used = 0;

	if (!name || !rundir_valid_name(name)) {
		snprintf(call->err, sizeof(call->err), "receive needs \"name\": a VM name (letters, digits, '-', '_', '.')");
		return -1;
	}
	struct json_object *vms = list_vms(a, &used);
	json_object_put(vms);
	uint64_t room = headroom(a, used);
	if (room < 2 * MiB) {
		snprintf(call->err, sizeof(call->err), "this host has no memory to spare for a guest");
		return -1;
	}
	snprintf(listen, sizeof(listen), strchr(a->migration_host, ':') ? "[%s]:0" : "%s:0", a->migration_host);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)room);
	snprintf(timeout, sizeof(timeout), "%d", RECEIVE_WAIT_S);
	/* Nobody is attached to a VM that arrives: its console goes to a file beside it. */
	snprintf(console, sizeof(console), "file:%s/%s.console", a->dir, name);
	struct agent_exec_plan plan = { .argc = 0 };
	const char *base[] = { "receive", "--listen", listen, "--name", name, "--detach", "--timeout", timeout,
			       "--disk-dir", a->dir, "--max-mem", mem, "--console", console };
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		plan.argv[plan.argc++] = base[i];
	for (int i = 0; i < a->cfg.ntaps; i++) {
		plan.argv[plan.argc++] = "--net";
		plan.argv[plan.argc++] = a->cfg.taps[i];
	}
	agent_policy_add_auth(&a->cfg, &plan, 1);
	plan.argv[plan.argc] = NULL;

	struct child_output co = { .keep_stdout = true };
	int st = run_child(a, plan.argv, &co);
	free(co.out);
	if (st != 0) {
		snprintf(call->err, sizeof(call->err), "could not start a receiver for %s here: %.150s", name,
			 co.last_err[0] ? co.last_err : "see the agent's log");
		return -1;
	}
	/* Where it listens (the port was the kernel's choice): its status says. */
	struct ctl_conn c;
	struct json_object *reply = NULL, *v;
	if (ctl_conn_open(&c, name, true) == CTL_CONN_OK) {
		reply = ctl_conn_call(&c, "status", 5000, true);
		ctl_conn_close(&c);
	}
	if (!reply || !json_object_object_get_ex(reply, "listen", &v)) {
		json_object_put(reply);
		snprintf(call->err, sizeof(call->err), "the receiver for %s started but does not say where it listens", name);
		return -1;
	}
	json_object_object_add(call->resp, "listen", json_object_new_string(json_object_get_string(v)));
	json_object_put(reply);
	record_vm(a, name, "receive");
	hv_info("agent: receiving %s", name);
	return 0;
}

/* {"cmd":"cancel-receive","name":N}: stops the receiver for N if no source has reached it
 * (its state is still "incoming"); one that is receiving or running is left alone. */
static int cmd_cancel_receive(struct ctl_call *call, void *opaque)
{
	struct agent *a = opaque;
	const char *name = req_str(call, "name");
	struct ctl_conn c;
	struct json_object *st, *v;
	bool waiting = false;

	if (!name || !rundir_valid_name(name) || ctl_conn_open(&c, name, true) != CTL_CONN_OK) {
		snprintf(call->err, sizeof(call->err), "no receiver of that name runs here");
		return -1;
	}
	st = ctl_conn_call(&c, "status", 5000, true);
	waiting = st && json_object_object_get_ex(st, "state", &v) && !strcmp(json_object_get_string(v), "incoming");
	json_object_put(st);
	if (waiting) {
		json_object_put(ctl_conn_call(&c, "stop", 5000, true));
		hv_info("agent: stopped the receiver for %s (no source came)", name);
	}
	ctl_conn_close(&c);
	if (waiting)
		forget_vm(a, name);
	json_object_object_add(call->resp, "stopped", json_object_new_boolean(waiting));
	return 0;
}

/* {"cmd":"exec","argv":[...]}: an hvctl command line under the agent's rules; its output
 * comes as {"event":"output","fd":1|2,"data":...} events, then {"ok":true,"status":N}. */
static int cmd_exec(struct ctl_call *call, void *opaque)
{
	struct agent *a = opaque;
	struct agent_conn *conn = call->ctx;
	struct json_object *arr;
	char *argv[AGENT_MAX_ARGS + 1];
	struct agent_exec_plan plan;
	int argc = 0;

	if (!json_object_object_get_ex(call->req->obj, "argv", &arr) || !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) < 1 || json_object_array_length(arr) > AGENT_MAX_ARGS) {
		snprintf(call->err, sizeof(call->err), "exec needs \"argv\": a list of 1 to %d strings", AGENT_MAX_ARGS);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(e, json_type_string)) {
			snprintf(call->err, sizeof(call->err), "exec: \"argv\" holds something that is not a string");
			return -1;
		}
		argv[argc++] = (char *)json_object_get_string(e);
	}
	argv[argc] = NULL;
	uint64_t used = 0, room = 0;
	if (!strcmp(argv[0], "restore")) {
		json_object_put(list_vms(a, &used));
		room = headroom(a, used);
	}
	char err[CTL_ERR_MAX];
	if (agent_policy_plan(&a->cfg, argc, argv, room, &plan, err, sizeof(err)) < 0) {
		char p[CTL_ERR_MAX];
		snprintf(call->err, sizeof(call->err), "%s", printable(p, sizeof(p), err));
		hv_info("agent: %s: refused '%s': %s", conn->peer, printable(p, 40, argv[0]), call->err);
		return -1;
	}
	char what[80];
	printable(what, sizeof(what), argc > 1 ? argv[1] : "");
	hv_info("agent: %s: %s %s", conn->peer, argv[0], what);
	struct child_output co = { .conn = conn };
	int st = run_child(a, plan.argv, &co);
	if (st < 0) {
		snprintf(call->err, sizeof(call->err), "could not run the command: %s", strerror(errno));
		return -1;
	}
	if (st == 0 && plan.starts_vm)
		record_vm(a, plan.vm_name, argv[0]);
	if (st == 0 && !strcmp(argv[0], "migrate") && argc > 1)
		forget_vm(a, argv[1]);
	json_object_object_add(call->resp, "status", json_object_new_int(st));
	return 0;
}

/* ---- Connections ---- */

struct client {
	struct agent *a;
	int fd;
	char peer[160];
};

static void *serve_client(void *arg)
{
	struct client *cl = arg;
	struct agent *a = cl->a;
	struct tls_session *s = NULL;
	char why[400];

	if (a->tls) {
		s = tls_handshake(a->tls, cl->fd, NULL, deadline_in_ms(TLS_HANDSHAKE_TIMEOUT_MS), why, sizeof(why));
		if (!s) {
			hv_warn("agent: refused %s: %s", cl->peer, why);
			/* Closing with the caller's bytes unread would reset the connection and could
			 * destroy the alert that tells it why: let it read that first. */
			char drain[4096];
			struct deadline until = deadline_in_ms(1000);
			shutdown(cl->fd, SHUT_WR);
			channel_set_recv_timeout(cl->fd, 500);
			while (deadline_left_ms(until) > 0 && recv(cl->fd, drain, sizeof(drain), 0) > 0) {
			}
			close(cl->fd);
			goto out;
		}
	}
	struct agent_conn conn;
	agent_conn_accepted(&conn, cl->fd, s, cl->peer);
	channel_set_send_timeout(cl->fd, 30000);
	for (;;) {
		char *line;
		int r = agent_conn_read_line(&conn, AGENT_IDLE_MS, &line);
		if (r <= 0)
			break;
		size_t len;
		int subscribe;
		char *resp = ctl_handle_line(&a->table, &conn, line, strlen(line), &len, &subscribe);
		free(line);
		if (!resp)
			break;
		int w = agent_conn_write(&conn, resp, len);
		free(resp);
		if (w < 0)
			break;
	}
	agent_conn_close(&conn);
out:
	atomic_fetch_sub(&a->clients, 1);
	free(cl);
	return NULL;
}

/* ---- Start-up ---- */

static int stop_fd = -1;

static void request_stop(void *opaque)
{
	uint64_t one = 1;

	(void)opaque;
	if (write(stop_fd, &one, sizeof(one)) < 0) {
		/* already woken */
	}
}

static int parse_opts(int argc, char **argv, struct agent *a, const char **listen_on, int *rc)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' }, { "listen", required_argument, NULL, 'l' },
		{ "migration-address", required_argument, NULL, 'm' }, { "net", required_argument, NULL, 'N' },
		{ "guest-mem", required_argument, NULL, 'g' }, { "insecure", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' }, TLS_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *mig = NULL;
	int c;

	*rc = 2;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int trc;
		if (hvctl_parse_tls_opt(c, optarg, &a->cfg.tls, &trc)) {
			if (trc >= 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'd': dir = optarg; break;
		case 'l': *listen_on = optarg; break;
		case 'm': mig = optarg; break;
		case 'i': a->cfg.insecure = 1; break;
		case 'N':
			if (strncmp(optarg, "tap=", 4) || !optarg[4] || a->cfg.ntaps == AGENT_MAX_TAPS) {
				hv_error("--net '%s': give tap=IF, at most %d times", optarg, AGENT_MAX_TAPS);
				return -1;
			}
			a->cfg.taps[a->cfg.ntaps++] = optarg;
			break;
		case 'g':
			if (parse_size(optarg, &a->guest_mem) < 0 || a->guest_mem < 2 * MiB) {
				hv_error("--guest-mem '%s' is not a size; use e.g. 16G", optarg);
				return -1;
			}
			break;
		case 'h': serve_usage(stdout); *rc = 0; return -1;
		default:
			hv_error("hvctl serve: unknown or incomplete option '%s'; see hvctl serve --help", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		hv_error("hvctl serve: unexpected argument '%s'; see hvctl serve --help", argv[optind]);
		return -1;
	}
	if (!dir) {
		hv_error("hvctl serve: --dir DIR is required (where this host keeps images and snapshots)");
		return -1;
	}
	struct stat sb;
	if (!realpath(dir, a->dir) || stat(a->dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		hv_error("--dir '%s' is not a directory: create it first", dir);
		return -1;
	}
	a->cfg.dir = a->dir;

	char addr[300], port[32], err[400];
	if (agent_address(*listen_on, addr, sizeof(addr), err, sizeof(err)) < 0 ||
	    channel_parse_hostport(addr, a->listen_host, sizeof(a->listen_host), port, sizeof(port), err, sizeof(err)) < 0) {
		hv_error("--listen: %s", err);
		return -1;
	}
	static char listen_buf[300];
	snprintf(listen_buf, sizeof(listen_buf), "%s", addr);
	*listen_on = listen_buf;
	if (mig && (!strcmp(mig, "0.0.0.0") || !strcmp(mig, "::") || !strcmp(mig, "[::]") || !mig[0])) {
		hv_error("--migration-address '%s' is every address: give the one other hosts send migrations to", mig);
		return -1;
	} else if (mig) {
		snprintf(a->migration_host, sizeof(a->migration_host), "%s", mig);
	} else if (!a->listen_host[0] || !strcmp(a->listen_host, "0.0.0.0") || !strcmp(a->listen_host, "::")) {
		hv_error("the agent listens on every address: give --migration-address HOST, the address "
			 "other hosts send migrations to");
		return -1;
	} else {
		snprintf(a->migration_host, sizeof(a->migration_host), "%s", a->listen_host);
	}
	return 0;
}

/* True if the address is a loopback one (a plain agent may listen only there). */
static bool is_loopback(const char *host)
{
	return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

int hvctl_cmd_serve(int argc, char **argv)
{
	static struct agent a;
	const char *listen_on = "127.0.0.1";
	char err[600];
	int rc;

	memset(&a, 0, sizeof(a));
	pthread_mutex_init(&a.state_lock, NULL);
	if (parse_opts(argc, argv, &a, &listen_on, &rc) < 0)
		return rc;
	if (tls_options_any(&a.cfg.tls)) {
		a.tls = tls_context_new(&a.cfg.tls, TLS_SERVER, err, sizeof(err));
		if (!a.tls) {
			hv_error("%s", err);
			return 2;
		}
	} else if (!a.cfg.insecure && (!is_loopback(a.listen_host) || !is_loopback(a.migration_host))) {
		hv_error("the agent would be reachable from other hosts without a key: give --psk FILE (see "
			 "'hvctl keygen') or --tls-cert/--tls-key/--tls-ca, or --insecure");
		return 2;
	}
	ssize_t n = readlink("/proc/self/exe", a.self, sizeof(a.self) - 1);
	if (n <= 0) {
		hv_error("cannot find this program's path in /proc/self/exe: %s", strerror(errno));
		return 1;
	}
	a.self[n] = 0;
	if (!rundir_path())
		return 1;

	/* One agent per directory: its state file has one writer. */
	char lock_path[PATH_MAX + 32], state_path[PATH_MAX + 32];
	snprintf(lock_path, sizeof(lock_path), "%s/hv-agent.lock", a.dir);
	snprintf(state_path, sizeof(state_path), "%s/%s", a.dir, AGENT_STATE_FILE);
	int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		hv_error(lock < 0 ? "cannot create %s: %s" : "another agent serves %s already (%s): stop it first",
			 lock < 0 ? lock_path : a.dir, strerror(errno));
		return 1;
	}
	if (agent_state_load(&a.state, state_path, err, sizeof(err)) < 0) {
		hv_error("%s", err);
		return 1;
	}
	int lfd = channel_listen(listen_on, err, sizeof(err));
	if (lfd < 0) {
		hv_error("%s", err);
		return 1;
	}
	if (!a.tls)
		hv_warn("agent without authentication (%s): anyone who reaches %s can run hvctl here",
			a.cfg.insecure ? "--insecure" : "loopback only", listen_on);

	ctl_table_add(&a.table, "hello", cmd_hello, &a);
	ctl_table_add(&a.table, "list", cmd_list, &a);
	ctl_table_add(&a.table, "resources", cmd_resources, &a);
	ctl_table_add(&a.table, "receive", cmd_receive, &a);
	ctl_table_add(&a.table, "cancel-receive", cmd_cancel_receive, &a);
	ctl_table_add(&a.table, "exec", cmd_exec, &a);

	signal(SIGPIPE, SIG_IGN);
	struct signal_watch sw;
	signal_watch_block(&sw);
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	signal_watch_start_fn(&sw, request_stop, NULL);
	hv_info("agent: serving %s on %s (port %d), migrations to %s, %d VM(s) recorded", a.dir, listen_on,
		channel_local_port(lfd), a.migration_host, a.state.n);
	for (int i = 0; i < a.state.n; i++)
		hv_info("agent: recorded: %s (%s)", a.state.vms[i].name, a.state.vms[i].origin);

	for (;;) {
		char peer[160];
		int fd = channel_accept(lfd, -1, stop_fd, peer, sizeof(peer), err, sizeof(err));
		if (fd == CHANNEL_CANCELLED)
			break;
		if (fd < 0) {
			hv_warn("agent: %s", err);
			continue;
		}
		if (atomic_fetch_add(&a.clients, 1) >= AGENT_MAX_CLIENTS) {
			atomic_fetch_sub(&a.clients, 1);
			hv_warn("agent: %s: refused, %d callers are connected already", peer, AGENT_MAX_CLIENTS);
			close(fd);
			continue;
		}
		struct client *cl = calloc(1, sizeof(*cl));
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (!cl) {
			close(fd);
			atomic_fetch_sub(&a.clients, 1);
			continue;
		}
		*cl = (struct client){ .a = &a, .fd = fd };
		snprintf(cl->peer, sizeof(cl->peer), "%s", peer);
		if (pthread_create(&t, &attr, serve_client, cl) != 0) {
			close(fd);
			free(cl);
			atomic_fetch_sub(&a.clients, 1);
		}
		pthread_attr_destroy(&attr);
	}
	hv_info("agent: stopped; the VMs it started run on");
	close(lfd);
	signal_watch_stop(&sw);
	/* Callers still connected end with the process; their commands run on by themselves. */
	return 0;
}
