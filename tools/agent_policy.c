/* The host agent's rules for a remote caller's hvctl command line (see agent_policy.h). */
#include "tools/agent_policy.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Commands a caller may run through the agent. */
static const char *const allowed[] = {
	"list", "status", "pause", "resume", "stop", "migrate", "save", "run",
	"restore", "inspect", "report", "move-disk", "cpu-models",
};

/* Why the others are not run, in the caller's words. */
static const struct { const char *cmd, *why; } refused[] = {
	{ "console", "needs a terminal on that host: use 'hvctl status NAME' for its PTY and log in there" },
	{ "keygen", "writes a key on that host: make keys where you hold them and copy them" },
	{ "serve", "is the agent itself" },
	{ "receive", "is the agent's own job: 'hvctl migrate NAME HOST' asks it to receive" },
};

/* Options that are the agent's to give, never the caller's. */
static const char *const agent_only[] = {
	"--psk", "--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name", "--insecure",
	"--shared-storage",
};

/* getopt_long takes any unambiguous prefix of a long option: "--ins" is --insecure. True if
 * arg (up to '=') could be taken for `option`. */
static bool may_mean(const char *arg, const char *option)
{
	size_t n = strcspn(arg, "=");

	return n > 2 && !strncmp(arg, "--", 2) && n <= strlen(option) && !strncmp(arg, option, n);
}

static bool tap_allowed(const struct agent_config *cfg, const char *value)
{
	if (strncmp(value, "tap=", 4))
		return false;
	size_t n = strcspn(value + 4, ",");
	for (int i = 0; i < cfg->ntaps; i++) {
		const char *mine = cfg->taps[i] + 4; /* "tap=IF[,mac=...]" */
		if (strcspn(mine, ",") == n && !strncmp(mine, value + 4, n))
			return true;
	}
	return false;
}

static int push(struct agent_exec_plan *p, const char *arg)
{
	if (p->argc + 1 >= (int)(sizeof(p->argv) / sizeof(p->argv[0])))
		return -1;
	p->argv[p->argc++] = arg;
	p->argv[p->argc] = NULL;
	return 0;
}

/* One argument: printable ASCII, no path, short enough. */
static int check_arg(const char *a, char *err, size_t errlen)
{
	size_t n = strlen(a);

	if (n > AGENT_MAX_ARG_LEN) {
		snprintf(err, errlen, "an argument is longer than %d bytes", AGENT_MAX_ARG_LEN);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] < 0x20 || (unsigned char)a[i] > 0x7e) {
			snprintf(err, errlen, "an argument holds a byte that is not printable ASCII");
			return -1;
		}
	if (strchr(a, '/') || strstr(a, "..")) {
		snprintf(err, errlen, "'%s': remote commands name files by plain names, which are "
			 "looked up in the agent's directory ('/' and '..' are refused)", a);
		return -1;
	}
	return 0;
}

int agent_policy_plan(const struct agent_config *cfg, int argc, char *const argv[],
		      unsigned long long max_mem_bytes, struct agent_exec_plan *plan, char *err,
		      size_t errlen)
{
	memset(plan, 0, sizeof(*plan));
	if (argc < 1 || !argv[0]) {
		snprintf(err, errlen, "no command given");
		return -1;
	}
	if (argc > AGENT_MAX_ARGS) {
		snprintf(err, errlen, "more than %d arguments", AGENT_MAX_ARGS);
		return -1;
	}
	for (int i = 0; i < argc; i++)
		if (!argv[i] || check_arg(argv[i], err, errlen) < 0)
			return argv[i] ? -1 : (snprintf(err, errlen, "a missing argument"), -1);

	const char *cmd = argv[0];
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (!strcmp(cmd, refused[i].cmd)) {
			snprintf(err, errlen, "'%s' is not run for a remote caller: it %s", cmd, refused[i].why);
			return -1;
		}
	bool known = false;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		known |= !strcmp(cmd, allowed[i]);
	if (!known) {
		snprintf(err, errlen, "unknown command '%s'; run 'hvctl --help' for the list", cmd);
		return -1;
	}
	plan->starts_vm = !strcmp(cmd, "run") || !strcmp(cmd, "restore");

	bool has_net = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		for (size_t j = 0; j < sizeof(agent_only) / sizeof(agent_only[0]); j++)
			if (may_mean(a, agent_only[j])) {
				snprintf(err, errlen, "%s is the agent's to give, not a remote caller's", agent_only[j]);
				return -1;
			}
		if (may_mean(a, "--net")) {
			const char *v = strchr(a, '=') ? strchr(a, '=') + 1 : i + 1 < argc ? argv[i + 1] : "";
			if (!tap_allowed(cfg, v)) {
				snprintf(err, errlen, "--net %s: this agent lets guests use only the TAPs it was "
					 "given (hvctl serve --net tap=IF)", v);
				return -1;
			}
			has_net = true;
		}
		if (may_mean(a, "--name")) {
			const char *v = strchr(a, '=') ? strchr(a, '=') + 1 : i + 1 < argc ? argv[i + 1] : NULL;
			plan->vm_name = v;
		}
	}
	if (plan->starts_vm && !plan->vm_name) {
		snprintf(err, errlen, "give --name: the agent keeps track of the VMs it starts by name");
		return -1;
	}

	for (int i = 0; i < argc; i++)
		push(plan, argv[i]);
	if (plan->starts_vm)
		push(plan, "--detach");
	if (!strcmp(cmd, "restore")) {
		push(plan, "--disk-dir");
		push(plan, cfg->dir);
		if (!has_net)
			for (int i = 0; i < cfg->ntaps; i++) {
				push(plan, "--net");
				push(plan, cfg->taps[i]);
			}
		if (max_mem_bytes) {
			snprintf(plan->max_mem, sizeof(plan->max_mem), "%llu", max_mem_bytes);
			push(plan, "--max-mem");
			push(plan, plan->max_mem);
		}
	}
	if (!strcmp(cmd, "migrate"))
		agent_policy_add_auth(cfg, plan, 0);
	return 0;
}

void agent_policy_add_auth(const struct agent_config *cfg, struct agent_exec_plan *plan, int receiver)
{
	if (cfg->tls.psk_file[0]) {
		push(plan, "--psk");
		push(plan, cfg->tls.psk_file);
	} else if (cfg->tls.cert_file[0]) {
		push(plan, "--tls-cert");
		push(plan, cfg->tls.cert_file);
		push(plan, "--tls-key");
		push(plan, cfg->tls.key_file);
		push(plan, "--tls-ca");
		push(plan, cfg->tls.ca_file);
	} else if (receiver && cfg->insecure) {
		push(plan, "--insecure");
	}
}
