/* faultproxy: a TCP relay on 127.0.0.1 that injects faults into an hv migration stream, or
 * adds latency (netem is not available on the test machines).
 *
 * usage: faultproxy LISTEN_PORT TARGET_HOST:TARGET_PORT [options]
 *
 * It listens on 127.0.0.1:LISTEN_PORT (0 = any free port), accepts a connection, connects to
 * the target and relays both ways. "Forward" is client -> target (source -> destination),
 * "reverse" the other way. Offsets are stream offsets in bytes, counted from 0 per direction.
 *
 *   --cut-after N            after forwarding N bytes, reset both connections (RST)
 *   --cut-after-reverse N    the same for the reverse direction
 *   --corrupt-at N           flip (xor 0xff) the byte at forward offset N
 *   --corrupt-at-reverse N
 *   --stall-at N             forward N bytes, then forward nothing more and stop reading from
 *                            the client (backpressure), without closing anything
 *   --stall-at-reverse N
 *
 * The same faults can be placed relative to hv wire records (32-byte headers, see
 * docs/migration-protocol.md): SPEC is TYPE[#K][+OFF], the K-th (default first) record of
 * TYPE (a name such as PAGES or END_OF_STATE, or a number), OFF bytes into it (0 = before its
 * first header byte; 32 = the first payload byte):
 *   --cut-at-record SPEC, --corrupt-at-record SPEC, --stall-at-record SPEC, and the same
 *   with -reverse. A record-relative cut happens once the record has reached the proxy
 *   (so "COMMIT+0" cuts after the source has written COMMIT, before any of it is forwarded).
 *
 *   --delay-ms MS            every chunk is held MS milliseconds in each direction (a timed
 *                            queue: the stream stays pipelined; RTT = 2 * MS)
 *   --queue-max BYTES        bytes held per direction before reading pauses (default 64 MiB)
 *   --once                   serve one connection, then exit (default: serve them in turn)
 *   --max-seconds S          hard limit on the whole run (default 120)
 *   --log-records            print every record header seen (type, offset, length)
 *
 * Output (stdout, one line each): "faultproxy: listening on 127.0.0.1:PORT", then per
 * connection "faultproxy: conn=N fwd=BYTES rev=BYTES end=REASON" where fwd/rev count bytes
 * delivered to the target/client and REASON is closed, cut-fwd, cut-rev, reset-by-client,
 * reset-by-target, connect-failed or time-limit. Exit status 0, or 1 on bad usage or when
 * the time limit ended the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#define NONE UINT64_MAX
#define CHUNK_MAX (64u * 1024)
#define HDR_SIZE 32
#define GRACE_NS (5ull * 1000000000ull) /* after one side ended, the other gets this long */
#define DRAIN_NS (1000ull * 1000000ull)  /* a cut waits this long for sent bytes to arrive */

static const char *const type_names[] = {
	NULL, "HELLO", "HELLO_REPLY", "PAGES", "ROUND_END", "CPU_STATE", "VM_STATE",
	"DEVICE_STATE", "END_OF_STATE", "ACK", "COMMIT", "ABORT", "PROGRESS", "DISK_DATA", "STARTED",
	"DISCARD", "PAGE_REQUEST", "POSTCOPY_DONE",
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/* A fault placed relative to a record: the K-th record of TYPE, OFF bytes in. */
struct recspec {
	bool set;
	unsigned type, k;
	uint64_t off;
};

struct fault {
	uint64_t cut, corrupt, stall; /* absolute offsets, NONE if unset */
	struct recspec cut_rec, corrupt_rec, stall_rec;
};

struct chunk {
	struct chunk *next;
	uint64_t due_ns;
	uint64_t off; /* stream offset of data[0] */
	size_t len, sent;
	uint8_t data[];
};

/* One direction of a relayed connection. */
struct dir {
	const char *name; /* "fwd" or "rev" */
	int from, to;
	struct fault f;   /* resolved per connection */
	bool corrupt_done;
	uint64_t rd, wr;  /* bytes read from `from`, delivered to `to` */
	struct chunk *head, *tail;
	uint64_t queued;
	bool eof;         /* `from` ended */
	bool shut;        /* we shut down writing on `to` */
	/* record tracking */
	bool track, lost_sync;
	uint8_t hdr[HDR_SIZE];
	unsigned hdr_have;
	uint64_t rec_start, payload_left;
	unsigned counts[NTYPES];
	uint64_t nrec;
};

static struct {
	int listen_port;
	const char *target;
	struct fault fwd, rev;
	uint64_t delay_ns, queue_max;
	bool once, log_records;
	unsigned max_seconds;
} opt = { .queue_max = 64u << 20, .max_seconds = 120 };

static uint64_t deadline_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: faultproxy LISTEN_PORT TARGET_HOST:TARGET_PORT [--cut-after N] [--cut-after-reverse N]\n"
		"       [--corrupt-at N] [--corrupt-at-reverse N] [--stall-at N] [--stall-at-reverse N]\n"
		"       [--cut-at-record SPEC] [--corrupt-at-record SPEC] [--stall-at-record SPEC] (and -reverse)\n"
		"       [--delay-ms MS] [--queue-max BYTES] [--once] [--max-seconds S] [--log-records]\n"
		"SPEC is TYPE[#K][+OFF], e.g. PAGES#3+40, END_OF_STATE, COMMIT+0, ACK+16\n");
	exit(1);
}

static uint64_t parse_u64(const char *opt_name, const char *s)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "faultproxy: %s '%s' is not a number\n", opt_name, s);
		exit(1);
	}
	return v;
}

static void parse_recspec(const char *opt_name, const char *s, struct recspec *r)
{
	char type[32];
	size_t n = strcspn(s, "#+");

	if (n == 0 || n >= sizeof(type))
		goto bad;
	memcpy(type, s, n);
	type[n] = 0;
	r->type = 0;
	for (unsigned i = 1; i < NTYPES; i++)
		if (!strcasecmp(type, type_names[i]))
			r->type = i;
	if (!r->type) {
		char *end;
		unsigned long v = strtoul(type, &end, 10);
		if (*end || v == 0 || v > 65535)
			goto bad;
		r->type = (unsigned)v;
	}
	r->k = 1;
	r->off = 0;
	s += n;
	if (*s == '#') {
		char *end;
		unsigned long v = strtoul(s + 1, &end, 10);
		if (end == s + 1 || v == 0 || v > 1000000)
			goto bad;
		r->k = (unsigned)v;
		s = end;
	}
	if (*s == '+') {
		r->off = parse_u64(opt_name, s + 1);
		s += strlen(s);
	}
	if (*s)
		goto bad;
	r->set = true;
	return;
bad:
	fprintf(stderr, "faultproxy: %s '%s': expected TYPE[#K][+OFF]\n", opt_name, s);
	exit(1);
}

static void parse_args(int argc, char **argv)
{
	struct fault *f;
	int i;

	if (argc < 3)
		usage();
	opt.listen_port = (int)parse_u64("LISTEN_PORT", argv[1]);
	if (opt.listen_port > 65535)
		usage();
	opt.target = argv[2];
	opt.fwd = (struct fault){ NONE, NONE, NONE, { 0 }, { 0 }, { 0 } };
	opt.rev = opt.fwd;
	for (i = 3; i < argc; i++) {
		const char *a = argv[i];
		bool reverse = strstr(a, "-reverse") != NULL;

		f = reverse ? &opt.rev : &opt.fwd;
		if (!strcmp(a, "--once")) {
			opt.once = true;
			continue;
		}
		if (!strcmp(a, "--log-records")) {
			opt.log_records = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--cut-after") || !strcmp(a, "--cut-after-reverse"))
			f->cut = parse_u64(a, v);
		else if (!strcmp(a, "--corrupt-at") || !strcmp(a, "--corrupt-at-reverse"))
			f->corrupt = parse_u64(a, v);
		else if (!strcmp(a, "--stall-at") || !strcmp(a, "--stall-at-reverse"))
			f->stall = parse_u64(a, v);
		else if (!strcmp(a, "--cut-at-record") || !strcmp(a, "--cut-at-record-reverse"))
			parse_recspec(a, v, &f->cut_rec);
		else if (!strcmp(a, "--corrupt-at-record") || !strcmp(a, "--corrupt-at-record-reverse"))
			parse_recspec(a, v, &f->corrupt_rec);
		else if (!strcmp(a, "--stall-at-record") || !strcmp(a, "--stall-at-record-reverse"))
			parse_recspec(a, v, &f->stall_rec);
		else if (!strcmp(a, "--delay-ms"))
			opt.delay_ns = parse_u64(a, v) * 1000000ull;
		else if (!strcmp(a, "--queue-max"))
			opt.queue_max = parse_u64(a, v);
		else if (!strcmp(a, "--max-seconds"))
			opt.max_seconds = (unsigned)parse_u64(a, v);
		else
			usage();
	}
	if (opt.queue_max < CHUNK_MAX)
		opt.queue_max = CHUNK_MAX;
	if (opt.max_seconds == 0)
		opt.max_seconds = 1;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void reset_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int connect_target(void)
{
	char host[256];
	const char *colon = strrchr(opt.target, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1;

	if (!colon || (size_t)(colon - opt.target) >= sizeof(host)) {
		fprintf(stderr, "faultproxy: target '%s' is not HOST:PORT\n", opt.target);
		return -1;
	}
	memcpy(host, opt.target, (size_t)(colon - opt.target));
	host[colon - opt.target] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		fprintf(stderr, "faultproxy: cannot resolve '%s'\n", opt.target);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "faultproxy: cannot connect to %s: %s\n", opt.target, strerror(errno));
	return fd;
}

/* ---- record tracking ---- */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void record_match(struct dir *d, const struct recspec *r, uint64_t *abs, unsigned type)
{
	if (r->set && *abs == NONE && r->type == type && d->counts[type < NTYPES ? type : 0] == r->k)
		*abs = d->rec_start + r->off;
}

static void apply_corrupt(struct dir *d)
{
	if (d->corrupt_done || d->f.corrupt == NONE)
		return;
	for (struct chunk *c = d->head; c; c = c->next) {
		if (d->f.corrupt >= c->off + c->sent && d->f.corrupt < c->off + c->len) {
			c->data[d->f.corrupt - c->off] ^= 0xff;
			d->corrupt_done = true;
			printf("faultproxy: %s byte %llu flipped\n", d->name,
			       (unsigned long long)d->f.corrupt);
			return;
		}
	}
}

/* Follows record boundaries through newly read bytes p[0..n) at stream offset off. */
static void track(struct dir *d, const uint8_t *p, size_t n)
{
	while (n > 0 && !d->lost_sync) {
		if (d->payload_left) {
			size_t k = d->payload_left < n ? (size_t)d->payload_left : n;
			d->payload_left -= k;
			p += k;
			n -= k;
			continue;
		}
		size_t k = HDR_SIZE - d->hdr_have < n ? HDR_SIZE - d->hdr_have : n;
		memcpy(d->hdr + d->hdr_have, p, k);
		d->hdr_have += (unsigned)k;
		p += k;
		n -= k;
		if (d->hdr_have < HDR_SIZE)
			break;
		if (memcmp(d->hdr, "hvmg", 4) != 0) {
			d->lost_sync = true;
			printf("faultproxy: %s: no record header at byte %llu; record tracking stops\n",
			       d->name, (unsigned long long)d->rec_start);
			break;
		}
		unsigned type = (unsigned)(d->hdr[6] | d->hdr[7] << 8);
		uint32_t len = get_le32(d->hdr + 16);
		if (type < NTYPES)
			d->counts[type]++;
		else
			d->counts[0]++;
		if (opt.log_records)
			printf("faultproxy: %s record #%llu %s at byte %llu, %u bytes of payload\n",
			       d->name, (unsigned long long)d->nrec,
			       type < NTYPES && type_names[type] ? type_names[type] : "?",
			       (unsigned long long)d->rec_start, len);
		record_match(d, &d->f.cut_rec, &d->f.cut, type);
		record_match(d, &d->f.corrupt_rec, &d->f.corrupt, type);
		record_match(d, &d->f.stall_rec, &d->f.stall, type);
		d->nrec++;
		d->hdr_have = 0;
		d->payload_left = len;
		d->rec_start += HDR_SIZE + (uint64_t)len;
	}
}

/* Bytes up to this offset may be delivered. An incomplete header is held back while faults
 * wait for a record to be recognised, so a record-relative fault is never too late. */
static uint64_t limit(const struct dir *d)
{
	uint64_t l = d->f.cut < d->f.stall ? d->f.cut : d->f.stall;

	if (d->track && !d->lost_sync && !d->eof && d->hdr_have > 0 && d->rec_start < l)
		l = d->rec_start;
	return l;
}

/* A stall or cut point has been read past: nothing more will be read from this side. */
static bool stopped(const struct dir *d)
{
	return d->rd > d->f.stall || d->rd > d->f.cut;
}

static bool can_read(const struct dir *d)
{
	return !d->eof && d->queued < opt.queue_max && !stopped(d);
}

/* 1: read something, 0: nothing now, -1: error (reset). */
static int do_read(struct dir *d)
{
	struct chunk *c = malloc(sizeof(*c) + CHUNK_MAX);

	if (!c) {
		fprintf(stderr, "faultproxy: out of memory\n");
		exit(1);
	}
	ssize_t r = recv(d->from, c->data, CHUNK_MAX, MSG_DONTWAIT);
	if (r <= 0) {
		free(c);
		if (r == 0) {
			d->eof = true;
			return 1;
		}
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -1;
	}
	if ((size_t)r < CHUNK_MAX / 2) {
		/* Small records stay small in the queue. */
		struct chunk *s = realloc(c, sizeof(*c) + (size_t)r);
		if (s)
			c = s;
	}
	c->next = NULL;
	c->due_ns = now_ns() + opt.delay_ns;
	c->off = d->rd;
	c->len = (size_t)r;
	c->sent = 0;
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->rd += (uint64_t)r;
	d->queued += (uint64_t)r;
	if (d->track)
		track(d, c->data, c->len);
	apply_corrupt(d);
	return 1;
}

/* Delivers what is due. 1: progress, 0: none (blocked or waiting), -1: error. */
static int do_write(struct dir *d, uint64_t now, bool *want_out)
{
	int progress = 0;

	*want_out = false;
	while (d->head && d->head->due_ns <= now) {
		struct chunk *c = d->head;
		uint64_t lim = limit(d);
		if (d->wr >= lim)
			break;
		size_t n = c->len - c->sent;
		if (d->wr + n > lim)
			n = (size_t)(lim - d->wr);
		ssize_t r = send(d->to, c->data + c->sent, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				*want_out = true;
				break;
			}
			return -1;
		}
		c->sent += (size_t)r;
		d->wr += (uint64_t)r;
		d->queued -= (uint64_t)r;
		progress = 1;
		if (c->sent == c->len) {
			d->head = c->next;
			if (!d->head)
				d->tail = NULL;
			free(c);
		}
	}
	return progress;
}

static void free_queue(struct dir *d)
{
	while (d->head) {
		struct chunk *c = d->head;
		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
}

/* Waits (bounded) until what was sent on fd has left our socket, so that a cut after N bytes
 * really delivers N bytes before the reset. */
static void drain(int fd)
{
	uint64_t until = now_ns() + DRAIN_NS;
	int outq = 0;

	while (now_ns() < until && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static const char *relay(int conn, int cfd, int tfd)
{
	struct dir dirs[2] = {
		{ .name = "fwd", .from = cfd, .to = tfd, .f = opt.fwd },
		{ .name = "rev", .from = tfd, .to = cfd, .f = opt.rev },
	};
	uint64_t grace_end = NONE;
	const char *end = NULL;

	for (int i = 0; i < 2; i++) {
		struct fault *f = &dirs[i].f;
		dirs[i].track = f->cut_rec.set || f->corrupt_rec.set || f->stall_rec.set ||
				opt.log_records;
	}
	set_nonblock(cfd);
	set_nonblock(tfd);
	while (!end) {
		uint64_t now = now_ns();
		struct pollfd pfd[2] = { { .fd = cfd }, { .fd = tfd } };
		uint64_t wake = NONE;
		bool progress = false;

		if (now >= deadline_ns) {
			end = "time-limit";
			break;
		}
		if (now >= grace_end) {
			end = "closed";
			break;
		}
		for (int i = 0; i < 2 && !end; i++) {
			struct dir *d = &dirs[i];
			bool want_out;
			int r = do_write(d, now, &want_out);
			if (r < 0) {
				end = i == 0 ? "reset-by-target" : "reset-by-client";
				break;
			}
			progress |= r > 0;
			if (d->f.cut != NONE && d->wr >= d->f.cut) {
				printf("faultproxy: cut %s at byte %llu\n", d->name,
				       (unsigned long long)d->wr);
				drain(d->to);
				end = i == 0 ? "cut-fwd" : "cut-rev";
				break;
			}
			if (want_out)
				pfd[i == 0 ? 1 : 0].events |= POLLOUT;
			if (d->head && d->head->due_ns > now && d->head->due_ns < wake)
				wake = d->head->due_ns;
			if (d->eof && !d->head && !d->shut) {
				shutdown(d->to, SHUT_WR);
				d->shut = true;
				if (grace_end == NONE)
					grace_end = now + GRACE_NS;
			}
		}
		if (end)
			break;
		/* Both sides have ended; what is still queued is held back by a fault for good. */
		bool done = true;
		for (int i = 0; i < 2; i++)
			done &= dirs[i].shut || (dirs[i].eof && dirs[i].wr >= limit(&dirs[i]));
		if (done) {
			end = "closed";
			break;
		}
		for (int i = 0; i < 2; i++) {
			struct dir *d = &dirs[i];
			/* Watch for the peer going away even while its data is held back for good
			 * (a full queue only waits: its FIN comes after the unread data). */
			if (!d->eof && stopped(d))
				pfd[i].events |= POLLRDHUP;
			if (can_read(d))
				pfd[i].events |= POLLIN;
		}
		/* A socket with nothing to wait for is left out: after both sides shut down, poll
		 * would report POLLHUP on it forever. */
		for (int i = 0; i < 2; i++)
			if (!pfd[i].events)
				pfd[i].fd = -1;
		if (progress)
			continue;
		if (deadline_ns < wake)
			wake = deadline_ns;
		if (grace_end < wake)
			wake = grace_end;
		int timeout = -1;
		if (wake != NONE) {
			uint64_t ms = wake > now ? (wake - now + 999999) / 1000000 : 0;
			timeout = ms > INT_MAX ? INT_MAX : (int)ms;
		}
		int pr = poll(pfd, 2, timeout);
		if (pr < 0 && errno != EINTR) {
			end = "poll-failed";
			break;
		}
		if (pr <= 0)
			continue;
		for (int i = 0; i < 2 && !end; i++) {
			struct dir *d = &dirs[i];
			short re = pfd[i].revents;
			if ((re & POLLIN) && can_read(d)) {
				if (do_read(d) < 0)
					end = i == 0 ? "reset-by-client" : "reset-by-target";
			} else if (re & POLLERR) {
				end = i == 0 ? "reset-by-client" : "reset-by-target";
			} else if ((re & (POLLRDHUP | POLLHUP)) && !d->eof && stopped(d)) {
				/* Closed while we hold back its data (stall or full queue). */
				d->eof = true;
				if (grace_end == NONE)
					grace_end = now_ns() + GRACE_NS;
			}
		}
	}
	printf("faultproxy: conn=%d fwd=%llu rev=%llu end=%s\n", conn, (unsigned long long)dirs[0].wr,
	       (unsigned long long)dirs[1].wr, end);
	if (!strcmp(end, "closed")) {
		close(cfd);
		close(tfd);
	} else {
		reset_close(cfd);
		reset_close(tfd);
	}
	free_queue(&dirs[0]);
	free_queue(&dirs[1]);
	return end;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1, status = 0, conns = 0;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	deadline_ns = now_ns() + (uint64_t)opt.max_seconds * 1000000000ull;

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_port = htons((uint16_t)opt.listen_port);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0) {
		fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%d: %s\n", opt.listen_port,
			strerror(errno));
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&a, &al);
	printf("faultproxy: listening on 127.0.0.1:%d\n", ntohs(a.sin_port));

	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline_ns) {
			printf("faultproxy: time limit of %u s reached\n", opt.max_seconds);
			status = 1;
			break;
		}
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		uint64_t ms = (deadline_ns - now + 999999) / 1000000;
		if (poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) <= 0)
			continue;
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		conns++;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		int tfd = connect_target();
		if (tfd < 0) {
			printf("faultproxy: conn=%d fwd=0 rev=0 end=connect-failed\n", conns);
			reset_close(cfd);
		} else {
			setsockopt(tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (!strcmp(relay(conns, cfd, tfd), "time-limit"))
				status = 1;
		}
		if (opt.once || status)
			break;
	}
	close(lfd);
	return status;
}
