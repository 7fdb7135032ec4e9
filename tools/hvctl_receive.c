/* hvctl receive: a VM process that waits for one incoming migration, then runs the guest
 * as an ordinary VM (like `qemu -incoming`). From the moment it listens it has its name and
 * control socket: `hvctl list` shows it (state incoming, then migrating while the guest
 * arrives), `hvctl status` shows where it listens, and `hvctl stop` ends it cleanly. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv/control.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/syscall_filter.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "migrate/channel.h"
#include "migrate/dest_policy.h"
#include "migrate/migrate.h"
#include "tools/hvctl.h"
#include "tools/vm_process.h"

static void receive_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl receive --listen HOST:PORT [--name N] [--console stdio|file:PATH|pty|none]\n"
		"                     [--timeout SECS] [--detach] [--mem-backend anon|memfd|hugetlb[:PATH]]\n"
		"                     [--disk PATH[,ro]]... [--net tap=IF[,mac=MAC]]... [--disk-dir DIR]\n"
		"                     [--shared-storage] [--max-mem SIZE] [--cpu-model NAME]\n"
		"\n"
		"Waits for one migration from 'hvctl migrate' and then runs the guest here. The VM\n"
		"keeps the source's name unless --name is given; until the source connects it is\n"
		"listed as --name, or as incoming-PORT. 'hvctl stop' ends it at any point (the\n"
		"source then keeps its guest). --timeout bounds the wait for the source to connect\n"
		"(default: forever). With --detach, returns once listening.\n"
		"--mem-backend backs the guest's RAM here as for 'hvctl run' (default anon).\n"
		"--cpu-model x86-64-vN: this destination offers at most that level (an EVC-like\n"
		"baseline): a guest that uses more is refused with the features named (default host:\n"
		"whatever this host's CPU offers).\n"
		"\n"
		"What backs the guest's devices here is this host's choice, never the stream's:\n"
		"--disk and --net name them, matched to the source's disks and NICs in order (same\n"
		"size; a disk given ,ro here only takes a read-only source disk; the MAC comes from\n"
		"the source). Disks without a --disk: --disk-dir DIR opens the image of the source's\n"
		"file name in DIR, --shared-storage the source's own path (both: regular files, no\n"
		"symbolic links). --max-mem refuses larger guests (default: MemAvailable).\n"
		"Exit status: as 'hvctl run' once the guest runs; 0 if stopped before that; 125 if\n"
		"the migration failed.\n");
}

/* What "hvctl stop" and signals do before the guest runs: end the wait for a source, or
 * cut the incoming stream (the receive path then tells the source). */
struct receive_stop {
	atomic_bool requested;
	int wake_fd;         /* eventfd: ends channel_accept */
	pthread_mutex_t lock; /* guards conn_fd against being closed under shutdown() */
	int conn_fd;         /* the migration connection once accepted, else -1 */
};

static void request_stop(void *opaque)
{
	struct receive_stop *s = opaque;
	uint64_t one = 1;

	atomic_store(&s->requested, true);
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* only fails when the counter is saturated: already woken */
	}
	pthread_mutex_lock(&s->lock);
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RD);
	pthread_mutex_unlock(&s->lock);
}

static void set_conn_fd(struct receive_stop *s, int fd)
{
	pthread_mutex_lock(&s->lock);
	s->conn_fd = fd;
	pthread_mutex_unlock(&s->lock);
}

struct receive_opts {
	const char *listen_on, *name, *console;
	long timeout_s;
	int detach;
	struct guest_mem_spec mem_backend;
	enum cpu_model cpu_model; /* the ceiling */
	struct dest_policy policy; /* --disk, --net, --disk-dir, --shared-storage, --max-mem */
};

/* The destination policy's options; 1 if opt is one (0 or 2 from *rc), 0 if not. */
static int parse_policy_opt(int opt, struct dest_policy *p, int *rc)
{
	*rc = -1;
	switch (opt) {
	case 'D':
		if (p->ndisks == VIRTIO_MAX_DISKS) {
			hv_error("at most %d --disk options are supported", VIRTIO_MAX_DISKS);
			*rc = 2;
		} else if (virtio_devices_parse_disk(optarg, &p->disks[p->ndisks]) < 0) {
			*rc = 2;
		} else {
			p->ndisks++;
		}
		return 1;
	case 'N':
		if (p->nnics == VIRTIO_MAX_NICS) {
			hv_error("at most %d --net options are supported", VIRTIO_MAX_NICS);
			*rc = 2;
		} else if (virtio_devices_parse_net(optarg, &p->nics[p->nnics]) < 0) {
			*rc = 2;
		} else {
			p->nnics++;
		}
		return 1;
	case 'R': p->disk_dir = optarg; return 1;
	case 'S': p->shared_storage = true; return 1;
	case 'M':
		if (parse_size(optarg, &p->max_mem) < 0 || p->max_mem < 2 * MiB) {
			hv_error("--max-mem '%s' is not a valid size; use e.g. 4G (at least 2M)", optarg);
			*rc = 2;
		}
		return 1;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct receive_opts *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "name", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' }, { "timeout", required_argument, NULL, 't' },
		{ "detach", no_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ "mem-backend", required_argument, NULL, 'B' },
		{ "cpu-model", required_argument, NULL, 'P' },
		{ "disk", required_argument, NULL, 'D' }, { "net", required_argument, NULL, 'N' },
		{ "disk-dir", required_argument, NULL, 'R' },
		{ "shared-storage", no_argument, NULL, 'S' },
		{ "max-mem", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int prc;
		if (parse_policy_opt(c, &o->policy, &prc)) {
			if (prc >= 0)
				return prc;
			continue;
		}
		switch (c) {
		case 'l': o->listen_on = optarg; break;
		case 'n': o->name = optarg; break;
		case 'C': o->console = optarg; break;
		case 'd': o->detach = 1; break;
		case 'B':
			if (guest_mem_parse_backend(optarg, &o->mem_backend) < 0)
				return 2;
			break;
		case 'P':
			if (cpu_model_parse(optarg, &o->cpu_model) < 0) {
				hv_error("--cpu-model '%s' is not a CPU model; use host, x86-64-v1, "
					 "x86-64-v2, x86-64-v3 or x86-64-v4", optarg);
				return 2;
			}
			break;
		case 't':
			if (parse_int(optarg, 1, 86400, &o->timeout_s) < 0) {
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
	if (!o->listen_on || optind < argc) {
		hv_error("hvctl receive: --listen HOST:PORT is required; see hvctl receive --help");
		return 2;
	}
	if (!o->console)
		o->console = o->detach ? "pty" : "stdio";
	if (o->detach && !strcmp(o->console, "stdio")) {
		hv_error("--console stdio cannot be used with --detach; use pty or file:PATH");
		return 2;
	}
	return -1;
}

int hvctl_cmd_receive(int argc, char **argv)
{
	static struct receive_opts o; /* static: the disk paths make it ~16 KiB */
	o = (struct receive_opts){ .mem_backend = { .backend = GUEST_MEM_ANON } };
	char err[512], peer[160], waiting_name[32];
	int r = parse_opts(argc, argv, &o);

	if (r >= 0)
		return r;
	int lfd = channel_listen(o.listen_on, err, sizeof(err));
	if (lfd < 0) {
		hv_error("%s", err);
		return HV_EXIT_START_FAILED;
	}
	snprintf(waiting_name, sizeof(waiting_name), "incoming-%d", channel_local_port(lfd));
	if (o.detach && vm_process_detach(NULL) < 0)
		return HV_EXIT_START_FAILED;

	/* From here threads exist (the control socket's): signals go to the watcher. */
	struct receive_stop stop = { .conn_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct signal_watch sw;
	struct machine m;
	int status = HV_EXIT_START_FAILED;
	signal_watch_block(&sw);
	stop.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stop.wake_fd < 0) {
		hv_error("cannot create an eventfd: %s", strerror(errno));
		close(lfd);
		return HV_EXIT_START_FAILED;
	}
	if (machine_reserve(&m, o.name ? o.name : waiting_name) < 0) {
		close(lfd);
		close(stop.wake_fd);
		return HV_EXIT_START_FAILED;
	}
	control_set_incoming(m.control, "incoming", o.listen_on, NULL);
	control_set_stop_handler(m.control, request_stop, &stop);
	signal_watch_start_fn(&sw, request_stop, &stop);
	/* Listening, with a name and a socket, is what the caller waits for. */
	vm_process_detach_done();

	int fd = channel_accept(lfd, o.timeout_s ? (int)o.timeout_s * 1000 : -1, stop.wake_fd, peer,
				sizeof(peer), err, sizeof(err));
	close(lfd); /* the port is free from here: one migration per receiver */
	if (fd == CHANNEL_CANCELLED) {
		hv_info("%s: stopped while waiting for a migration", m.name);
		status = 0;
		goto out;
	}
	if (fd < 0) {
		hv_error("%s", err);
		goto out;
	}
	set_conn_fd(&stop, fd);
	control_set_incoming(m.control, "migrating", NULL, peer);
	if (atomic_load(&stop.requested))
		shutdown(fd, SHUT_RD); /* a stop that came between accept and here */
	struct machine_config cfg = { .name = o.name, .console = o.console, .mem_backend = o.mem_backend,
				      .cpu_model = o.cpu_model,
				      .incoming_policy = &o.policy };
	r = migrate_incoming(fd, &m, &cfg, &stop.requested);
	set_conn_fd(&stop, -1);
	close(fd);
	if (r < 0) {
		status = atomic_load(&stop.requested) ? 0 : HV_EXIT_START_FAILED;
		goto out;
	}
	/* The guest runs: from now on stop and signals stop the VM itself. */
	control_set_stop_handler(m.control, NULL, NULL);
	control_set_incoming(m.control, NULL, NULL, NULL);
	signal_watch_set_vm(&sw, &m.vm);
	if (atomic_load(&stop.requested))
		vm_request_stop(&m.vm, 0, "stopped by hvctl");
	/* The incoming stream is done and the VM set up: filter as hvctl run does. */
	if (syscall_filter_install() < 0)
		vm_request_stop(&m.vm, HV_EXIT_START_FAILED, "no system-call filter");
	hv_info("%s: received from %s, running", m.vm.name, peer);
	status = machine_wait(&m);
	if (status != 0)
		hv_info("%s: %s", m.vm.name, m.vm.exit_reason);
out:
	signal_watch_stop(&sw);
	machine_destroy(&m);
	close(stop.wake_fd);
	return status;
}
