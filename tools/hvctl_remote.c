/* hvctl against host agents (see hvctl_remote.h and docs/agent.md). */
#include "tools/hvctl_remote.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hv/log.h"
#include "hv/printable.h"
#include "tools/agent_client.h"
#include "tools/agent_policy.h"
#include "tools/tls_opts.h"

#define MAX_HOSTS 16

bool destination_is_agent(const char *dest)
{
	if (dest[0] == '[')
		return !strstr(dest, "]:");
	return !strchr(dest, ':');
}

/* Splits "A,B,C" into at most MAX_HOSTS names (in buf). The count, or -1 with a message. */
static int split_hosts(const char *list, char *buf, size_t len, char **out)
{
	int n = 0;

	if ((size_t)snprintf(buf, len, "%s", list) >= len) {
		hv_error("--hosts is too long");
		return -1;
	}
	for (char *save = NULL, *h = strtok_r(buf, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
		if (n == MAX_HOSTS) {
			hv_error("--hosts names more than %d hosts", MAX_HOSTS);
			return -1;
		}
		out[n++] = h;
	}
	if (!n)
		hv_error("--hosts names no host: give A,B,...");
	return n ? n : -1;
}

void agent_survey(struct agent_conn *c, const char *host, const struct tls_options *tls, struct placement_host *h)
{
	char err[400];
	struct json_object *res = NULL, *list = NULL, *vms = NULL;

	memset(h, 0, sizeof(*h));
	printable(h->addr, sizeof(h->addr), host);
	if (agent_open(c, host, tls, err, sizeof(err)) < 0 ||
	    !(res = agent_call(c, "resources", NULL, err, sizeof(err))) ||
	    !(list = agent_call(c, "list", NULL, err, sizeof(err)))) {
		h->reachable = false;
		snprintf(h->unreachable, sizeof(h->unreachable), "%.190s", err);
		json_object_put(res);
		agent_conn_close(c);
		return;
	}
	json_object_object_get_ex(list, "vms", &vms);
	placement_host_from_json(h, res, vms);
	json_object_put(res);
	json_object_put(list);
}

int agent_target_prepare(const char *to, const char *hosts, const struct tls_options *tls,
			 const struct placement_vm *vm, FILE *table, struct agent_target *t)
{
	char err[400];

	memset(t, 0, sizeof(*t));
	t->conn.fd = -1;
	if (!strcmp(to, "auto")) {
		char buf[4096], *names[MAX_HOSTS];
		struct placement_host h[MAX_HOSTS];
		struct agent_conn conns[MAX_HOSTS];
		if (!hosts) {
			hv_error("--to auto chooses among --hosts A,B,...: give them");
			return -1;
		}
		int n = split_hosts(hosts, buf, sizeof(buf), names);
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++)
			agent_survey(&conns[i], names[i], tls, &h[i]);
		int best = placement_choose(vm, h, n);
		if (table)
			placement_print(table, vm, h, n);
		for (int i = 0; i < n; i++) {
			if (i != best && h[i].reachable)
				agent_conn_close(&conns[i]);
			placement_host_free(&h[i]);
		}
		if (best < 0) {
			hv_error("no host of --hosts can take %s (the table says why); it keeps running here", vm->name);
			return -1;
		}
		t->conn = conns[best];
		snprintf(t->host, sizeof(t->host), "%s", names[best]);
	} else {
		if (hosts) {
			hv_error("--hosts is for --to auto; --to %s names the destination already", to);
			return -1;
		}
		if (agent_open(&t->conn, to, tls, err, sizeof(err)) < 0) {
			/* A typo of HOST:PORT reads as an agent's host: say so. */
			hv_error("%s%s", err, strchr(to, ':') ? "" : " (a destination without a port is an agent's host; "
								   "for 'hvctl receive' give HOST:PORT)");
			return -1;
		}
		snprintf(t->host, sizeof(t->host), "%s", to);
	}
	if (agent_receive(&t->conn, vm->name, t->listen, sizeof(t->listen), err, sizeof(err)) < 0) {
		hv_error("%s", err);
		agent_conn_close(&t->conn);
		return -1;
	}
	return 0;
}

void agent_target_finish(struct agent_target *t, const char *name, int status)
{
	if (status == 1)
		agent_cancel_receive(&t->conn, name);
	agent_conn_close(&t->conn);
}

/* Takes the caller's own key options out of argv (they are this side's, never passed on). */
static int strip_tls_opts(int *argc, char **argv, struct tls_options *tls)
{
	int out = 0;

	for (int i = 0; i < *argc; i++) {
		int rc;
		if (!hvctl_take_tls_arg(*argc, argv, &i, tls, &rc))
			argv[out++] = argv[i];
		else if (rc >= 0)
			return -1;
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

/* The options of 'hvctl migrate' that take a value (the rest are flags or positional). */
static bool migrate_opt_takes_value(const char *a)
{
	static const char *const with_value[] = { "--downtime", "--bandwidth", "--compress", "--max-rounds",
						  "--on-timeout", "--report", "--storage", "--dest-disk" };
	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		if (!strcmp(a, with_value[i]))
			return true;
	return false;
}

/* The guest's facts for placement, from the list of an agent. 0, or -1 if it is not there. */
static int vm_from_list(struct json_object *list, const char *name, struct placement_vm *vm)
{
	struct json_object *e = agent_list_vm(list, name), *v;

	if (!e)
		return -1;
	vm->name = name;
	vm->mem = json_object_object_get_ex(e, "mem", &v) ? (uint64_t)json_object_get_int64(v) : 0;
	vm->cpu_features = json_object_object_get_ex(e, "cpu_features", &v) ? json_object_get_string(v) : "";
	return 0;
}

/* hvctl -H SRC migrate NAME DEST|--to X [--hosts L] [options]: when the destination is an
 * agent, it receives; SRC's agent migrates to it. */
static int remote_migrate(struct agent_conn *src, const char *src_host, const struct tls_options *tls, int argc,
			  char **argv)
{
	const char *to = NULL, *hosts = NULL, *pos[2] = { NULL, NULL };
	const char *pass[AGENT_MAX_ARGS + 4];
	int npos = 0, npass = 0;
	char err[400];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--to") || !strcmp(a, "--hosts")) {
			if (i + 1 == argc) {
				hv_error("%s needs a value", a);
				return 2;
			}
			*(a[2] == 't' ? &to : &hosts) = argv[++i];
		} else if (!strncmp(a, "--to=", 5)) {
			to = a + 5;
		} else if (!strncmp(a, "--hosts=", 8)) {
			hosts = a + 8;
		} else if (a[0] == '-' && a[1] == '-') {
			if (npass < AGENT_MAX_ARGS)
				pass[npass++] = a;
			if (migrate_opt_takes_value(a) && i + 1 < argc && npass < AGENT_MAX_ARGS)
				pass[npass++] = argv[++i];
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			hv_error("usage: hvctl -H HOST migrate NAME DEST [options]; see hvctl migrate --help");
			return 2;
		}
	}
	if (!pos[0] || (!pos[1] && !to) || (pos[1] && to)) {
		hv_error("usage: hvctl -H HOST migrate NAME HOST2[:PORT] | --to HOST2|auto [--hosts A,B]");
		return 2;
	}
	if (!to && !destination_is_agent(pos[1]))
		return -1; /* a waiting 'hvctl receive': the command goes as it is */
	const char *name = pos[0];
	struct placement_vm vm = { 0 };
	struct json_object *list = agent_call(src, "list", NULL, err, sizeof(err));
	if (!list) {
		hv_error("%s", err);
		return 1;
	}
	if (vm_from_list(list, name, &vm) < 0) {
		char p[64];
		hv_error("no VM named '%s' runs on %s (see 'hvctl -H %s list')", printable(p, sizeof(p), name), src_host,
			 src_host);
		json_object_put(list);
		return 1;
	}
	struct agent_target t;
	int r = agent_target_prepare(to ? to : pos[1], hosts, tls, &vm, stdout, &t);
	json_object_put(list);
	if (r < 0)
		return 1;
	const char *cmd[AGENT_MAX_ARGS + 8] = { "migrate", name, t.listen };
	int n = 3;
	for (int i = 0; i < npass; i++)
		cmd[n++] = pass[i];
	int st = agent_exec(src, n, cmd, stdout, NULL, stderr, err, sizeof(err));
	if (st == AGENT_EXEC_REFUSED) {
		hv_error("%s", err);
		st = 1; /* nothing ran: the receiver goes */
	} else if (st < 0) {
		/* The migration runs in the VM and may go on without its caller. */
		hv_error("%s; where %s runs now is unknown: see 'hvctl -H %s list' and 'hvctl -H %s list'", err, name,
			 src_host, t.host);
		st = 3;
	}
	agent_target_finish(&t, name, st);
	return st;
}

int hvctl_remote(const char *host, struct tls_options *tls, int argc, char **argv)
{
	struct agent_conn c;
	char err[400];

	if (strip_tls_opts(&argc, argv, tls) < 0)
		return 2;
	if (argc < 1) {
		hv_error("hvctl -H HOST: give a command, e.g. hvctl -H %s list", host);
		return 2;
	}
	if (!strcmp(argv[0], "evacuate")) {
		hv_error("hvctl evacuate names the host itself: hvctl evacuate %s --to A,B", host);
		return 2;
	}
	if (agent_open(&c, host, tls, err, sizeof(err)) < 0) {
		hv_error("%s", err);
		return 1;
	}
	int st = -1;
	if (!strcmp(argv[0], "migrate"))
		st = remote_migrate(&c, host, tls, argc, argv);
	if (st == -1) {
		st = agent_exec(&c, argc, (const char *const *)argv, stdout, NULL, stderr, err, sizeof(err));
		if (st < 0) {
			hv_error("%s", err);
			st = 1;
		}
	}
	agent_conn_close(&c);
	return st;
}
