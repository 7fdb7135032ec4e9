/* hvctl run: boot a kernel in a new VM, in the foreground or detached. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/board.h"
#include "devices/virtio_devices.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "hv/syscall_filter.h"
#include "migrate/migrate_control.h"
#include "tools/hvctl.h"
#include "tools/vm_process.h"

struct run_opts {
	const char *kernel, *initrd, *cmdline, *console, *name, *log;
	uint64_t mem;
	struct guest_mem_spec mem_backend;
	int cpus;
	enum cpu_model cpu_model;
	int detach;
	struct disk_spec disks[VIRTIO_MAX_DISKS];
	int ndisks;
	struct nic_spec nics[VIRTIO_MAX_NICS];
	int nnics;
};

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl run --kernel FILE [--name N] [--cpus N] [--mem SIZE]\n"
		"         [--initrd FILE] [--cmdline STRING] [--cpu-model NAME]\n"
		"         [--mem-backend anon|memfd|hugetlb[:PATH]]\n"
		"         [--console stdio|file:PATH|pty|none] [--detach] [--log FILE]\n"
		"         [--disk PATH[,ro]]... [--net tap=IF[,mac=MAC]]...\n"
		"\n"
		"Boots a PVH ELF or bzImage kernel in a new VM. --mem takes K/M/G suffixes\n"
		"(default 256M), --cpus 1-%d (default 1). In the foreground the console is\n"
		"stdio; with --detach a PTY (hvctl console NAME). Once started, hv's messages\n"
		"go to --log FILE (appended); detached, by default to NAME.log in the run\n"
		"directory. Exit status: the guest's debug-exit value, 125 if hv could not\n"
		"start the VM, 126 if the guest crashed, 128+N if hvctl got signal N.\n"
		"\n"
		"--disk attaches a raw image (or block device) as virtio-blk, read-only with\n"
		",ro; up to %d, at PCI 00:01.0 onwards. --net attaches a virtio-net NIC to\n"
		"TAP IF, creating it if needed (root or CAP_NET_ADMIN); the MAC defaults to\n"
		"52:54:00:xx:xx:xx derived from the VM's UUID; up to %d, from PCI 00:08.0.\n"
		"\n"
		"--mem-backend: anon (default; private memory on transparent huge pages),\n"
		"memfd (shareable, 4 KiB pages where shmem THP is off) or hugetlb[:PATH]\n"
		"(huge pages reserved from vm.nr_hugepages, in hv's own file or one in the\n"
		"hugetlbfs mount PATH).\n"
		"\n"
		"--cpu-model: the CPU the guest sees. host (default): this host's, as KVM\n"
		"offers it; x86-64-v1, -v2, -v3, -v4: only that x86-64 psABI level's\n"
		"features, so the VM can migrate to any host that offers the level ('hvctl\n"
		"cpu-models' lists them here).\n",
		VM_MAX_CPUS, VIRTIO_MAX_DISKS, VIRTIO_MAX_NICS);
}

static int parse_run_opts(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' }, { "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' }, { "name", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' }, { "detach", no_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'L' },
		{ "disk", required_argument, NULL, 'D' }, { "net", required_argument, NULL, 'N' },
		{ "mem-backend", required_argument, NULL, 'B' },
		{ "cpu-model", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	long cpus;
	int c;

	o->mem = 256 * MiB;
	o->cpus = 1;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'i': o->initrd = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 'n': o->name = optarg; break;
		case 'C': o->console = optarg; break;
		case 'd': o->detach = 1; break;
		case 'L': o->log = optarg; break;
		case 'D':
			if (o->ndisks == VIRTIO_MAX_DISKS) {
				hv_error("at most %d --disk options are supported", VIRTIO_MAX_DISKS);
				return -1;
			}
			if (virtio_devices_parse_disk(optarg, &o->disks[o->ndisks]) < 0)
				return -1;
			o->ndisks++;
			break;
		case 'N':
			if (o->nnics == VIRTIO_MAX_NICS) {
				hv_error("at most %d --net options are supported", VIRTIO_MAX_NICS);
				return -1;
			}
			if (virtio_devices_parse_net(optarg, &o->nics[o->nnics]) < 0)
				return -1;
			o->nnics++;
			break;
		case 'm':
			if (parse_size(optarg, &o->mem) < 0 || o->mem < 2 * MiB || o->mem % PAGE_SIZE) {
				hv_error("--mem '%s' is not a valid size; use e.g. 256M or 2G (at least 2M)", optarg);
				return -1;
			}
			break;
		case 'B':
			if (guest_mem_parse_backend(optarg, &o->mem_backend) < 0)
				return -1;
			break;
		case 'M':
			if (cpu_model_parse(optarg, &o->cpu_model) < 0) {
				hv_error("--cpu-model '%s' is not a CPU model; use host, x86-64-v1, "
					 "x86-64-v2, x86-64-v3 or x86-64-v4", optarg);
				return -2;
			}
			break;
		case 'p':
			if (parse_int(optarg, 1, VM_MAX_CPUS, &cpus) < 0) {
				hv_error("--cpus '%s' is out of range; use 1 to %d", optarg, VM_MAX_CPUS);
				return -1;
			}
			o->cpus = (int)cpus;
			break;
		case 'h':
			run_usage(stdout);
			exit(0);
		default:
			hv_error("hvctl run: unknown or incomplete option '%s'; see hvctl run --help",
				 argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		hv_error("hvctl run: unexpected argument '%s'; see hvctl run --help", argv[optind]);
		return -1;
	}
	if (!o->kernel) {
		hv_error("hvctl run: --kernel FILE is required; see hvctl run --help");
		return -1;
	}
	if (!o->console)
		o->console = o->detach ? "pty" : "stdio";
	if (o->detach && !strcmp(o->console, "stdio")) {
		hv_error("--console stdio cannot be used with --detach; use pty or file:PATH");
		return -1;
	}
	return 0;
}

int hvctl_cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	char default_name[32], log_buf[4096];
	struct signal_watch sw;

	int r = parse_run_opts(argc, argv, &o);
	if (r == -2)
		return 2; /* a name that no host knows: a usage error, as for hvctl receive */
	if (r < 0)
		return HV_EXIT_START_FAILED;
	if (!o.name) {
		snprintf(default_name, sizeof(default_name), "vm-%d", (int)getpid());
		o.name = default_name;
	}
	if (o.detach && vm_process_detach(o.name) < 0)
		return HV_EXIT_START_FAILED;
	signal_watch_block(&sw);

	struct machine m;
	static struct machine_config cfg; /* static: the disk paths make it ~16 KiB */
	cfg = (struct machine_config){ .name = o.name, .mem_size = o.mem,
				       .mem_backend = o.mem_backend, .ncpus = o.cpus,
				       .cpu_model = o.cpu_model,
				       .console = o.console, .ndisks = o.ndisks, .nnics = o.nnics,
				       .board = &pc_board, .attach_commands = migrate_control_attach,
				       .detach_commands = migrate_control_detach };
	memcpy(cfg.disks, o.disks, sizeof(cfg.disks));
	memcpy(cfg.nics, o.nics, sizeof(cfg.nics));
	if (machine_create(&m, &cfg) < 0)
		return HV_EXIT_START_FAILED;
	if (machine_load_kernel(&m, o.kernel, o.initrd, o.cmdline) < 0 || machine_start(&m) < 0) {
		machine_destroy(&m);
		return HV_EXIT_START_FAILED;
	}
	signal_watch_start(&sw, &m.vm);
	/* Set up: from here on the process needs only what running the VM takes. Before the
	 * detach, so that a refusal still reaches the caller's terminal. */
	if (syscall_filter_install() < 0) {
		vm_request_stop(&m.vm, HV_EXIT_START_FAILED, "no system-call filter");
		machine_wait(&m);
		machine_destroy(&m);
		signal_watch_stop(&sw);
		return HV_EXIT_START_FAILED;
	}
	vm_process_detach_done(vm_process_log_path(o.log, o.detach, o.name, log_buf, sizeof(log_buf)));

	int status = machine_wait(&m);
	if (status != 0)
		hv_info("%s: %s", m.vm.name, m.vm.exit_reason);
	machine_destroy(&m);
	signal_watch_stop(&sw);
	return status;
}
