/* hvctl receive: a VM process that waits for one incoming migration, then runs the guest
 * as an ordinary VM (like `qemu -incoming`). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "migrate/channel.h"
#include "migrate/migrate.h"
#include "tools/hvctl.h"
#include "tools/vm_process.h"

static void receive_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl receive --listen HOST:PORT [--name N] [--console stdio|file:PATH|pty|none]\n"
		"                     [--timeout SECS] [--detach] [--mem-backend anon|memfd|hugetlb[:PATH]]\n"
		"\n"
		"Waits for one migration from 'hvctl migrate' and then runs the guest here. The VM\n"
		"keeps the source's name unless --name is given. --timeout bounds the wait for the\n"
		"source to connect (default: forever). With --detach, returns once listening.\n"
		"--mem-backend backs the guest's RAM here as for 'hvctl run' (default anon).\n"
		"Exit status: as 'hvctl run' once the guest runs; 125 if the migration failed.\n");
}

int hvctl_cmd_receive(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "name", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' }, { "timeout", required_argument, NULL, 't' },
		{ "detach", no_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ "mem-backend", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_on = NULL, *name = NULL, *console = NULL;
	long timeout_s = 0;
	int detach = 0, c;
	char err[512], peer[160];
	struct guest_mem_spec mem_backend = { .backend = GUEST_MEM_ANON };

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_on = optarg; break;
		case 'n': name = optarg; break;
		case 'C': console = optarg; break;
		case 'd': detach = 1; break;
		case 'B':
			if (guest_mem_parse_backend(optarg, &mem_backend) < 0)
				return 2;
			break;
		case 't':
			if (parse_int(optarg, 1, 86400, &timeout_s) < 0) {
				hv_error("--timeout '%s' is not a number of seconds (1-86400)", optarg);
				return 2;
			}
			break;
		case 'h': receive_usage(stdout); return 0;
		default:
			hv_error("hvctl receive: unknown or incomplete option '%s'; see hvctl receive --help",
				 argv[optind - 1]);
			return 2;
		}
	}
	if (!listen_on || optind < argc) {
		hv_error("hvctl receive: --listen HOST:PORT is required; see hvctl receive --help");
		return 2;
	}
	if (!console)
		console = detach ? "pty" : "stdio";
	if (detach && !strcmp(console, "stdio")) {
		hv_error("--console stdio cannot be used with --detach; use pty or file:PATH");
		return 2;
	}
	int lfd = channel_listen(listen_on, err, sizeof(err));
	if (lfd < 0) {
		hv_error("%s", err);
		return HV_EXIT_START_FAILED;
	}
	if (detach && vm_process_detach(NULL) < 0)
		return HV_EXIT_START_FAILED;
	/* Listening is what the caller waits for; the guest arrives later. */
	vm_process_detach_done();

	int fd = channel_accept(lfd, timeout_s ? (int)timeout_s * 1000 : -1, peer, sizeof(peer), err,
				sizeof(err));
	close(lfd);
	if (fd < 0) {
		hv_error("%s", err);
		return HV_EXIT_START_FAILED;
	}
	/* From here threads exist; signals go to the watcher (until then they just end us). */
	struct signal_watch sw;
	signal_watch_block(&sw);
	struct machine m;
	struct machine_config cfg = { .name = name, .console = console, .mem_backend = mem_backend };
	int r = migrate_incoming(fd, &m, &cfg);
	close(fd);
	if (r < 0)
		return HV_EXIT_START_FAILED;
	hv_info("%s: received from %s, running", m.vm.name, peer);
	signal_watch_start(&sw, &m.vm);
	int status = machine_wait(&m);
	if (status != 0)
		hv_info("%s: %s", m.vm.name, m.vm.exit_reason);
	machine_destroy(&m);
	signal_watch_stop(&sw);
	return status;
}
