/* hvctl: the command line of hv. */
#include <stdio.h>
#include <string.h>

#include "tools/hvctl.h"
#include "tools/hvctl_ctl.h"

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
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hvctl COMMAND [ARGS...]   (hvctl COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "hvctl: unknown command '%s'; run 'hvctl --help' for the list\n", argv[1]);
	return 2;
}
