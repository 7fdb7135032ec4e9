/* hvctl: the command line of hv. */
#include <stdio.h>
#include <string.h>

#include "hv/log.h"
#include "migrate/tls.h"
#include "tools/hvctl.h"
#include "tools/hvctl_ctl.h"
#include "tools/hvctl_remote.h"
#include "tools/tls_opts.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "run", hvctl_cmd_run, "boot a guest kernel in a new VM" },
	{ "list", hvctl_cmd_list, "list running VMs" },
	{ "status", hvctl_cmd_status, "show one VM's state" },
	{ "pause", hvctl_cmd_pause, "stop a VM's vCPUs" },
	{ "resume", hvctl_cmd_resume, "restart a paused VM's vCPUs" },
	{ "stop", hvctl_cmd_stop, "end a VM" },
	{ "console", hvctl_cmd_console, "attach to a VM's serial console (PTY)" },
	{ "migrate", hvctl_cmd_migrate, "live-migrate a VM to 'hvctl receive' on another host" },
	{ "report", hvctl_cmd_report, "write the HTML report of a migration from its --json log" },
	{ "move-disk", hvctl_cmd_move_disk, "move a running VM's disk to a new image on this host" },
	{ "save", hvctl_cmd_save, "write a VM's whole state to a snapshot file" },
	{ "receive", hvctl_cmd_receive, "wait for one incoming migration and run the guest" },
	{ "restore", hvctl_cmd_restore, "start a VM from a snapshot file ('hvctl save')" },
	{ "inspect", hvctl_cmd_inspect, "show what a snapshot file holds, start nothing" },
	{ "cpu-models", hvctl_cmd_cpu_models, "list the CPU models this host can offer" },
	{ "keygen", hvctl_cmd_keygen, "write a new pre-shared key for authenticated migration" },
	{ "serve", hvctl_cmd_serve, "run this host's agent, for hvctl -H, --to and evacuate" },
	{ "evacuate", hvctl_cmd_evacuate, "move every VM off a host (with agents)" },
	{ "hosts", hvctl_cmd_hosts, "what the agents on some hosts report: VMs, memory, load" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hvctl [-H HOST [--psk FILE | --tls-*]] COMMAND [ARGS...]\n"
		   "       (hvctl COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\n-H HOST[:PORT] runs the command on HOST through its agent ('hvctl serve',\n"
		   "default port 7460), authenticated with --psk or --tls-cert/--tls-key/--tls-ca.\n");
}

/* The options before COMMAND: -H HOST (or --host) and this side's key. Returns how many
 * arguments they took, or -1 after a message. */
static int global_opts(int argc, char **argv, const char **host, struct tls_options *tls)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--help") && strcmp(argv[i], "-h")) {
		int rc;
		if (!strcmp(argv[i], "-H") || !strcmp(argv[i], "--host")) {
			if (i + 1 >= argc) {
				hv_error("%s needs a value; run 'hvctl --help'", argv[i]);
				return -1;
			}
			*host = argv[++i];
		} else if (!hvctl_take_tls_arg(argc, argv, &i, tls, &rc)) {
			hv_error("unknown option '%s' before the command; run 'hvctl --help'", argv[i]);
			return -1;
		} else if (rc >= 0) {
			return -1;
		}
		i++;
	}
	if (!*host && tls_options_any(tls)) {
		hv_error("--psk and --tls-* before the command go with -H HOST; give them after it otherwise");
		return -1;
	}
	return i - 1;
}

int main(int argc, char **argv)
{
	static struct tls_options tls;
	const char *host = NULL;
	int skip = global_opts(argc, argv, &host, &tls);

	if (skip < 0)
		return 2;
	argc -= skip;
	argv += skip;
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (host)
		return hvctl_remote(host, &tls, argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "hvctl: unknown command '%s'; run 'hvctl --help' for the list\n", argv[1]);
	return 2;
}
