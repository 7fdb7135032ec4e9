/* hvctl receive: a VM process that waits for one incoming migration, then runs the guest
 * as an ordinary VM (like `qemu -incoming`). From the moment it listens it has its name and
 * control socket: `hvctl list` shows it (state incoming, then migrating while the guest
 * arrives), `hvctl status` shows where it listens, and `hvctl stop` ends it cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/board.h"
#include "devices/virtio_devices.h"
#include "hv/control.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/syscall_filter.h"
#include "hv/machine.h"
#include "hv/dev_state.h"
#include "hv/parse.h"
#include "migrate/channel.h"
#include "migrate/dest_policy.h"
#include "migrate/migrate.h"
#include "migrate/migrate_control.h"
#include "migrate/snapshot.h"
#include "migrate/tls.h"
#include "migrate/wire.h"
#include "tools/hvctl.h"
#include "tools/tls_opts.h"
#include "tools/vm_process.h"

static void receive_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl receive --listen HOST:PORT [--name N] [--timeout SECS]\n"
		"         [--console stdio|file:PATH|pty|none] [--detach] [--log FILE]\n"
		"         [--mem-backend anon|memfd|hugetlb[:PATH]] [--cpu-model NAME]\n"
		"         [--disk PATH[,ro]]... [--net tap=IF[,mac=MAC]]... [--disk-dir DIR]\n"
		"         [--shared-storage] [--max-mem SIZE] [--force]\n"
		"         [--psk FILE | --tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
		"         [--insecure] [--announce-rounds N] [--announce-step MS]\n"
		"         [--no-guest-announce]\n"
		"\n"
		"Waits for one migration from 'hvctl migrate', then runs the guest here. The\n"
		"VM keeps the source's name unless --name is given; until the source connects\n"
		"it is listed as --name, or as incoming-PORT. 'hvctl stop' ends it at any\n"
		"point (the source then keeps its guest). --timeout bounds the wait for the\n"
		"source (default: forever). With --detach, returns once listening. From then\n"
		"on the log (why a migration was refused, dropped connections) goes to --log\n"
		"FILE; detached, by default to NAME.log in the run directory.\n"
		"--mem-backend backs the guest's RAM as for 'hvctl run' (default anon).\n"
		"--cpu-model x86-64-vN: this host offers at most that level (an EVC-like\n"
		"baseline); a guest that uses more is refused with the features named.\n"
		"\n"
		"What backs the guest's devices is this host's choice, never the stream's:\n"
		"--disk and --net name them, matched to the source's disks and NICs in order\n"
		"(same size; a disk given ,ro here only takes a read-only source disk; the\n"
		"MAC comes from the source). Disks without a --disk: --disk-dir DIR opens\n"
		"the image of the source's file name in DIR, --shared-storage the source's\n"
		"own path (both: regular files, no symbolic links). --max-mem refuses larger\n"
		"guests (default: MemAvailable).\n"
		"A source that sends its disks ('hvctl migrate --storage copy') gets new\n"
		"images: --disk PATH, or its file name (or the one it asks for) in\n"
		"--disk-dir; an existing file is refused unless --force, and so is a copy\n"
		"its file system has no room for. A failed migration removes them.\n"
		"\n"
		"Who may migrate here: with --psk FILE (from 'hvctl keygen', the same file on\n"
		"both hosts) or --tls-cert/--tls-key/--tls-ca (the source's certificate\n"
		"signed by that CA) the migration runs over TLS 1.3, the source authenticated\n"
		"before anything of it is read. Without them only a loopback address is\n"
		"accepted, unless --insecure. A connection without a valid HELLO within 10 s\n"
		"is dropped and the receiver listens on (at most 32 times).\n"
		"\n"
		"Once the guest runs here, each NIC tells the network where it now is: RARP\n"
		"from its MAC and a gratuitous ARP for the address the guest was seen using,\n"
		"out of its TAP, --announce-rounds times (default 5; 0: none), the first at\n"
		"once, then 50 ms later, each gap --announce-step ms longer (default 100, at\n"
		"most 1 s apart); and the guest's driver is asked to announce itself\n"
		"(VIRTIO_NET_F_GUEST_ANNOUNCE), unless --no-guest-announce.\n"
		"Exit status: as 'hvctl run' once the guest runs; 0 if stopped before that;\n"
		"125 if the migration failed.\n");
}

static void restore_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl restore FILE [--name N] [--paused]\n"
		"         [--console stdio|file:PATH|pty|none] [--detach] [--log FILE]\n"
		"         [--mem-backend anon|memfd|hugetlb[:PATH]] [--cpu-model NAME]\n"
		"         [--disk PATH[,ro]]... [--net tap=IF[,mac=MAC]]... [--disk-dir DIR]\n"
		"         [--shared-storage] [--max-mem SIZE] [--announce-rounds N]\n"
		"         [--announce-step MS] [--no-guest-announce]\n"
		"\n"
		"Starts the VM that 'hvctl save' wrote to FILE, here or on another host, where\n"
		"it was (running, or paused if it was paused; --paused: paused in any case).\n"
		"It keeps its name unless --name is given. The checks are a migration's: CPU,\n"
		"memory, and the disks and NICs, which this host names with --disk, --net,\n"
		"--disk-dir or --shared-storage as for 'hvctl receive' (see its --help). A\n"
		"damaged or truncated file is refused with nothing started. Its NICs announce\n"
		"the guest as after a migration (--announce-*: see 'hvctl receive --help').\n"
		"Exit status: as 'hvctl run' once the guest runs; 125 if the restore failed.\n");
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
	const char *listen_on, *name, *console, *log;
	long timeout_s;
	int detach;
	struct guest_mem_spec mem_backend;
	enum cpu_model cpu_model; /* the ceiling */
	struct dest_policy policy; /* --disk, --net, --disk-dir, --shared-storage, --max-mem */
	struct tls_options tls;
	int insecure;
	const char *from_file; /* hvctl restore: the snapshot instead of a listener */
	int paused;
	struct dev_announce announce; /* --announce-rounds, --announce-step, --no-guest-announce */
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
	case 'F': p->force = true; return 1;
	case 'M':
		if (parse_size(optarg, &p->max_mem) < 0 || p->max_mem < 2 * MiB) {
			hv_error("--max-mem '%s' is not a valid size; use e.g. 4G (at least 2M)", optarg);
			*rc = 2;
		}
		return 1;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct receive_opts *o, bool restore)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "name", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' }, { "timeout", required_argument, NULL, 't' },
		{ "detach", no_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ "log", required_argument, NULL, 'L' },
		{ "mem-backend", required_argument, NULL, 'B' },
		{ "cpu-model", required_argument, NULL, 'P' },
		{ "disk", required_argument, NULL, 'D' }, { "net", required_argument, NULL, 'N' },
		{ "disk-dir", required_argument, NULL, 'R' },
		{ "shared-storage", no_argument, NULL, 'S' },
		{ "max-mem", required_argument, NULL, 'M' }, { "force", no_argument, NULL, 'F' },
		TLS_LONGOPTS, { "insecure", no_argument, NULL, 'I' },
		{ "paused", no_argument, NULL, 'p' },
		{ "announce-rounds", required_argument, NULL, 'a' },
		{ "announce-step", required_argument, NULL, 's' },
		{ "no-guest-announce", no_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int prc;
		if (parse_policy_opt(c, &o->policy, &prc) || hvctl_parse_tls_opt(c, optarg, &o->tls, &prc)) {
			if (prc >= 0)
				return prc;
			continue;
		}
		switch (c) {
		case 'l': o->listen_on = optarg; break;
		case 'n': o->name = optarg; break;
		case 'C': o->console = optarg; break;
		case 'd': o->detach = 1; break;
		case 'L': o->log = optarg; break;
		case 'I': o->insecure = 1; break;
		case 'p': o->paused = 1; break;
		case 'g': o->announce.guest = false; break;
		case 'a':
		case 's': {
			long v;
			long max = c == 'a' ? DEV_ANNOUNCE_MAX_ROUNDS : DEV_ANNOUNCE_MAX_STEP_MS;
			if (parse_int(optarg, 0, max, &v) < 0) {
				hv_error(c == 'a' ? "--announce-rounds '%s' is not a number of rounds (0-%ld)"
						  : "--announce-step '%s' is not a number of milliseconds (0-%ld)",
					 optarg, max);
				return 2;
			}
			if (c == 'a')
				o->announce.rounds = (unsigned)v;
			else
				o->announce.step_ms = (unsigned)v;
			break;
		}
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
		case 'h': (restore ? restore_usage : receive_usage)(stdout); return 0;
		default:
			hv_error("hvctl %s: unknown or incomplete option '%s'; see hvctl %s --help",
				 restore ? "restore" : "receive", argv[optind - 1], restore ? "restore" : "receive");
			return 2;
		}
	}
	if (restore) {
		if (o->listen_on || o->timeout_s || o->insecure || tls_options_any(&o->tls)) {
			hv_error("hvctl restore reads a file: --listen, --timeout, --insecure, --psk and "
				 "--tls-* belong to 'hvctl receive'");
			return 2;
		}
		if (argc - optind != 1) {
			hv_error("usage: hvctl restore FILE [options]; see hvctl restore --help");
			return 2;
		}
		o->from_file = argv[optind];
	} else if (o->paused) {
		hv_error("--paused belongs to 'hvctl restore'; a receiver starts the guest as the source had it");
		return 2;
	} else if (!o->listen_on || optind < argc) {
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

#define RECEIVE_MAX_STRAYS 32

/* True if the socket is bound to a loopback address: only this host can reach it. */
static bool listens_on_loopback(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* The first byte of a connection, without consuming it, by `by`. 1, 0 on EOF, -1 on timeout. */
static int peek_first_byte(int fd, struct deadline by, unsigned char *b)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		int left = deadline_left_ms(by);
		int r = left == 0 ? 0 : poll(&p, 1, left);
		if (r == 0)
			return -1;
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t n = recv(fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 1)
			return 1;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 0;
	}
}

/* Closes a failed or dropped connection gently: our side first, then what the peer still sends is read
 * for a moment, so that it gets our refusal (an ABORT, a TLS alert) rather than a reset. */
static void close_dropped(int fd)
{
	struct deadline by = deadline_in_ms(500);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char sink[4096];

	shutdown(fd, SHUT_WR);
	while (!deadline_passed(by) && poll(&p, 1, deadline_left_ms(by)) > 0)
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

/* One accepted connection: TLS first when required (the peer authenticated before any of the
 * stream is read), then the migration. MIGRATE_INCOMING_STRAY with `why` when the peer was
 * not a source that could migrate here; security says how the stream came. */
static int serve_connection(struct tls_context *tls, int fd, struct machine *m,
			    const struct machine_config *cfg, const struct dev_announce *announce,
			    const atomic_bool *stop, char *why, size_t whylen, char *security,
			    size_t seclen, bool *paused)
{
	struct migrate_incoming_opts io = { .hello_by = deadline_in_ms(TLS_HANDSHAKE_TIMEOUT_MS),
					    .stop = stop, .stray_reason = why, .stray_reason_len = whylen,
					    .arrived_paused = paused, .announce = announce };
	struct tls_session *session = NULL;
	struct wire_conn conn;
	unsigned char first;

	int r = peek_first_byte(fd, io.hello_by, &first);
	if (r <= 0) {
		snprintf(why, whylen, r == 0 ? "it closed the connection without sending anything"
					     : "it sent nothing within 10 s");
		return MIGRATE_INCOMING_STRAY;
	}
	wire_conn_init_fd(&conn, fd);
	snprintf(security, seclen, "no authentication");
	if (tls && first != TLS_FIRST_BYTE) {
		/* Most likely an 'hvctl migrate' without a key: tell it, in its own protocol. */
		channel_set_send_timeout(fd, 1000);
		wire_send_abort(&conn, WIRE_ABORT_INCOMPATIBLE,
				"this destination accepts only authenticated migrations: give 'hvctl migrate' "
				"the same --psk or --tls-cert/--tls-key/--tls-ca as 'hvctl receive'");
		snprintf(why, whylen, "it did not start TLS (an 'hvctl migrate' without --psk or --tls-*?)");
		return MIGRATE_INCOMING_STRAY;
	}
	if (!tls && first == TLS_FIRST_BYTE) {
		snprintf(why, whylen, "it speaks TLS and this receiver has no key: start 'hvctl receive' "
				      "with the same --psk or --tls-* options");
		return MIGRATE_INCOMING_STRAY;
	}
	if (tls) {
		session = tls_handshake(tls, fd, NULL, io.hello_by, why, whylen);
		if (!session)
			return MIGRATE_INCOMING_STRAY;
		tls_session_conn(session, &conn);
		tls_session_describe(session, security, seclen);
	}
	r = migrate_incoming(&conn, m, cfg, &io);
	tls_session_free(session);
	return r;
}

/* hvctl restore: the stream from a snapshot file, read one way; nothing listens. Before
 * anything starts, the file must open and have a valid header. */
static int restore_from(struct receive_opts *o);
static int receive_main(int argc, char **argv, bool restore);

int hvctl_cmd_restore(int argc, char **argv)
{
	return receive_main(argc, argv, true);
}

int hvctl_cmd_receive(int argc, char **argv)
{
	return receive_main(argc, argv, false);
}

static int receive_main(int argc, char **argv, bool restore)
{
	static struct receive_opts o; /* static: the disk paths make it ~16 KiB */
	o = (struct receive_opts){ .mem_backend = { .backend = GUEST_MEM_ANON }, .announce = DEV_ANNOUNCE_DEFAULT };
	char err[512], peer[160], waiting_name[32], why[400], security[96], log_buf[4096];
	struct tls_context *tls = NULL;
	bool paused = false;
	int r = parse_opts(argc, argv, &o, restore);

	if (r >= 0)
		return r;
	if (restore)
		return restore_from(&o);
	if (tls_options_any(&o.tls)) {
		tls = tls_context_new(&o.tls, TLS_SERVER, err, sizeof(err));
		if (!tls) {
			hv_error("%s", err);
			return 2;
		}
	}
	int lfd = channel_listen(o.listen_on, err, sizeof(err));
	if (lfd < 0) {
		hv_error("%s", err);
		tls_context_free(tls);
		return HV_EXIT_START_FAILED;
	}
	if (!tls && !listens_on_loopback(lfd)) {
		if (!o.insecure) {
			hv_error("%s is reachable from other hosts: give --psk FILE (see 'hvctl keygen') or "
				 "--tls-cert/--tls-key/--tls-ca, or --insecure to accept any peer", o.listen_on);
			close(lfd);
			return 2;
		}
		hv_warn("listening on %s without authentication (--insecure): anyone who reaches the "
			"port can send a VM here", o.listen_on);
	}
	snprintf(waiting_name, sizeof(waiting_name), "incoming-%d", channel_local_port(lfd));
	/* What status shows: the port the kernel chose for --listen HOST:0 (the agent asks). */
	char listening[300], lhost[256], lport[32];
	if (channel_parse_hostport(o.listen_on, lhost, sizeof(lhost), lport, sizeof(lport), err, sizeof(err)) == 0)
		snprintf(listening, sizeof(listening), strchr(lhost, ':') ? "[%s]:%d" : "%s:%d", lhost,
			 channel_local_port(lfd));
	else
		snprintf(listening, sizeof(listening), "%s", o.listen_on);
	if (o.detach && vm_process_detach(NULL) < 0) {
		tls_context_free(tls);
		return HV_EXIT_START_FAILED;
	}

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
		tls_context_free(tls);
		return HV_EXIT_START_FAILED;
	}
	if (machine_reserve(&m, o.name ? o.name : waiting_name) < 0) {
		close(lfd);
		close(stop.wake_fd);
		tls_context_free(tls);
		return HV_EXIT_START_FAILED;
	}
	control_set_incoming(m.control, "incoming", listening, NULL);
	control_set_stop_handler(m.control, request_stop, &stop);
	signal_watch_start_fn(&sw, request_stop, &stop);
	/* Listening, with a name and a socket, is what the caller waits for. */
	vm_process_detach_done(vm_process_log_path(o.log, o.detach, o.name ? o.name : waiting_name, log_buf, sizeof(log_buf)));

	struct deadline wait_until = deadline_in_ms(o.timeout_s ? o.timeout_s * 1000 : -1);
	struct machine_config cfg = { .name = o.name, .console = o.console, .mem_backend = o.mem_backend,
				      .cpu_model = o.cpu_model,
				      .incoming_policy = &o.policy,
				      .board = &pc_board, .attach_commands = migrate_control_attach,
				      .detach_commands = migrate_control_detach };
	for (int strays = 0;;) {
		int left = deadline_left_ms(wait_until);
		int fd = left == 0 ? -1
				   : channel_accept(lfd, left, stop.wake_fd, peer, sizeof(peer), err, sizeof(err));
		if (left == 0)
			snprintf(err, sizeof(err), "no incoming migration within %ld s", o.timeout_s);
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
		r = serve_connection(tls, fd, &m, &cfg, &o.announce, &stop.requested, why, sizeof(why),
				     security, sizeof(security), &paused);
		set_conn_fd(&stop, -1);
		if (r == 0) {
			close(fd);
			break;
		}
		close_dropped(fd);
		if (r != MIGRATE_INCOMING_STRAY)
			break;
		if (atomic_load(&stop.requested)) {
			/* Our own shutdown ended the connection: not the peer's doing. */
			hv_info("%s: stopped while waiting for a migration", m.name);
			status = 0;
			goto out;
		}
		/* The peer's bytes never reach this line: the reasons are our own words. */
		if (++strays == RECEIVE_MAX_STRAYS) {
			hv_error("dropped a connection from %s: %s; that was the %dth without a valid "
				 "migration: giving up", peer, why, RECEIVE_MAX_STRAYS);
			goto out;
		}
		hv_warn("dropped a connection from %s: %s; still listening (%d of %d)", peer, why, strays,
			RECEIVE_MAX_STRAYS);
		control_set_incoming(m.control, "incoming", listening, NULL);
	}
	close(lfd); /* the port is free from here: one migration per receiver */
	lfd = -1;
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
	hv_info("%s: received from %s (%s), %s", m.vm.name, peer, security,
		paused ? "paused as at the source ('hvctl resume' runs it)" : "running");
	status = machine_wait(&m);
	if (status != 0)
		hv_info("%s: %s", m.vm.name, m.vm.exit_reason);
out:
	if (lfd >= 0)
		close(lfd);
	signal_watch_stop(&sw);
	machine_destroy(&m);
	close(stop.wake_fd);
	tls_context_free(tls);
	return status;
}

static int restore_from(struct receive_opts *o)
{
	char err[512], why[400], log_buf[4096];
	struct snapshot_header h;
	bool paused = false;

	int fd = snapshot_open(o->from_file, &h, err, sizeof(err));
	if (fd < 0) {
		hv_error("%s", err);
		return HV_EXIT_START_FAILED;
	}
	const char *name = o->name ? o->name : h.name;
	if (o->detach && vm_process_detach(NULL) < 0) {
		close(fd);
		return HV_EXIT_START_FAILED;
	}
	struct receive_stop stop = { .conn_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct signal_watch sw;
	struct machine m;
	int status = HV_EXIT_START_FAILED;
	signal_watch_block(&sw);
	if (machine_reserve(&m, name) < 0) {
		close(fd);
		return HV_EXIT_START_FAILED;
	}
	control_set_incoming(m.control, "restoring", o->from_file, NULL);
	control_set_stop_handler(m.control, request_stop, &stop);
	signal_watch_start_fn(&sw, request_stop, &stop);
	struct machine_config cfg = { .name = o->name, .console = o->console, .mem_backend = o->mem_backend,
				      .cpu_model = o->cpu_model, .incoming_policy = &o->policy,
				      .board = &pc_board, .attach_commands = migrate_control_attach,
				      .detach_commands = migrate_control_detach };
	struct migrate_incoming_opts io = { .hello_by = deadline_in_ms(TLS_HANDSHAKE_TIMEOUT_MS),
					    .stop = &stop.requested, .stray_reason = why,
					    .stray_reason_len = sizeof(why), .arrived_paused = &paused,
					    .from_file = true, .start_paused = o->paused,
					    .announce = &o->announce };
	struct wire_conn conn;
	wire_conn_init_fd(&conn, fd);
	set_conn_fd(&stop, fd);
	int r = migrate_incoming(&conn, &m, &cfg, &io);
	set_conn_fd(&stop, -1);
	close(fd);
	if (r == MIGRATE_INCOMING_STRAY)
		hv_error("cannot restore '%s': %s", o->from_file, why);
	if (r != 0) {
		status = atomic_load(&stop.requested) ? 0 : HV_EXIT_START_FAILED;
		goto out;
	}
	control_set_stop_handler(m.control, NULL, NULL);
	control_set_incoming(m.control, NULL, NULL, NULL);
	signal_watch_set_vm(&sw, &m.vm);
	/* Detached, the caller returns only now: the VM runs (or it got the refusal). */
	vm_process_detach_done(vm_process_log_path(o->log, o->detach, m.vm.name, log_buf, sizeof(log_buf)));
	if (atomic_load(&stop.requested))
		vm_request_stop(&m.vm, 0, "stopped by hvctl");
	if (syscall_filter_install() < 0)
		vm_request_stop(&m.vm, HV_EXIT_START_FAILED, "no system-call filter");
	hv_info("%s: restored from %s (saved as '%s'), %s", m.vm.name, o->from_file, h.name,
		paused ? "paused ('hvctl resume' runs it)" : "running");
	status = machine_wait(&m);
	if (status != 0)
		hv_info("%s: %s", m.vm.name, m.vm.exit_reason);
out:
	signal_watch_stop(&sw);
	machine_destroy(&m);
	return status;
}
