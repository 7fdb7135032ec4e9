/* labclient: what a user of a guest feels while it migrates (tools/lab.sh, t_lab.sh).
 *
 *   labclient HOST PORT SECS [--rate N] [--tcp-rate N] [--no-tcp] [--gaps MS]
 *
 * For SECS seconds sends N UDP requests a second (default 1000; 16 bytes: a sequence number
 * and a tag) to HOST:PORT and takes the echoes (prog=netecho), and over one TCP connection
 * to the same port, opened first, sends a 16-byte message --tcp-rate times a second (default
 * 50) and checks that the echo comes back byte for byte, in order. Then waits up to 1 s for
 * late UDP replies and closes the connection (FIN, the echo's end within 3 s). Prints:
 *   labclient: udp sent=<n> replies=<n> lost=<n> longest_gap_ms=<ms>
 *   labclient: tcp sent=<n> echoed=<n> longest_gap_ms=<ms> connection=<ok|reset|broken|none>
 * longest_gap_ms: the longest time without a reply (UDP) or an echoed byte (TCP) while the
 * client was sending, from its start; connection=ok means the connection stayed open to the
 * end and closed cleanly with every byte echoed. SIGINT or SIGTERM ends the sending early
 * (then as at SECS: late replies, the close, the lines). With --gaps MS, first one line for each UDP
 * silence longer than MS (at most 64), in order:
 *   labclient: gap from_ms=<since the start> ms=<length> Exit 0 when it ran (the numbers are the
 * caller's to judge), 2 on a usage or socket error. Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TAG 0x6876206c61622121ULL /* "hv lab!!" */
#define MSG 16
#define TCP_BUF (1 << 20)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void usage(void)
{
	fprintf(stderr, "usage: labclient HOST PORT SECS [--rate N] [--tcp-rate N] [--no-tcp] [--gaps MS]\n");
	exit(2);
}

static long number(const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
	return v;
}

struct tcp_side {
	int fd;
	bool up, broken, reset;
	uint8_t *sent;        /* every byte sent, to compare the echo with */
	size_t nsent, nechoed;
	uint64_t msgs;
	uint64_t last_echo_us, longest_gap_us;
};

/* One message of 16 bytes: its number and the tag. */
static void message(uint8_t *m, uint64_t seq)
{
	memcpy(m, &seq, 8);
	uint64_t tag = TAG;
	memcpy(m + 8, &tag, 8);
}

static void tcp_read(struct tcp_side *t, uint64_t now, bool sending)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (n < 0 && errno == ECONNRESET)
				t->reset = true;
			else if (n < 0 || t->nechoed < t->nsent)
				t->broken = true;
			t->up = false;
			return;
		}
		if (t->nechoed + (size_t)n > t->nsent || memcmp(buf, t->sent + t->nechoed, (size_t)n)) {
			t->broken = true; /* bytes that were never sent, or not the ones sent */
			t->up = false;
			return;
		}
		t->nechoed += (size_t)n;
		if (sending && now - t->last_echo_us > t->longest_gap_us)
			t->longest_gap_us = now - t->last_echo_us;
		t->last_echo_us = now;
	}
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage();
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons((uint16_t)number(argv[2], 1, 65535)) };
	if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1)
		usage();
	long secs = number(argv[3], 1, 3600), rate = 1000, tcp_rate = 50, gaps_ms = 0;
	bool use_tcp = true;
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = number(argv[++i], 1, 100000);
		else if (!strcmp(argv[i], "--tcp-rate") && i + 1 < argc)
			tcp_rate = number(argv[++i], 1, 1000);
		else if (!strcmp(argv[i], "--no-tcp"))
			use_tcp = false;
		else if (!strcmp(argv[i], "--gaps") && i + 1 < argc)
			gaps_ms = number(argv[++i], 1, 3600000);
		else
			usage();
	}
	uint64_t total = (uint64_t)rate * (uint64_t)secs;
	uint64_t tcp_total = (uint64_t)tcp_rate * (uint64_t)secs;
	uint8_t *replied = calloc(total, 1);
	struct tcp_side t = { .fd = -1 };
	t.sent = malloc(tcp_total * MSG);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!replied || !t.sent || u < 0 || connect(u, (struct sockaddr *)&peer, sizeof(peer)) < 0) {
		perror("labclient: udp");
		return 2;
	}
	if (use_tcp) {
		t.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		setsockopt(t.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct timeval tv = { 5, 0 };
		setsockopt(t.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(t.fd, (struct sockaddr *)&peer, sizeof(peer)) == 0)
			t.up = true;
		else
			fprintf(stderr, "labclient: tcp connect: %s\n", strerror(errno));
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	uint64_t t0 = now_us(), end = t0 + (uint64_t)secs * 1000000, sent = 0, replies = 0;
	uint64_t last_reply = t0, longest = 0;
	uint64_t gap_from[64], gap_len[64];
	int ngaps = 0;
	t.last_echo_us = t0;
	for (;;) {
		uint64_t now = now_us();
		if (interrupted && now < end)
			end = now; /* stop sending; the rest as at the planned end */
		bool sending = now < end;
		if (!sending && now >= end + 1000000)
			break;
		/* Requests due by now (a late wake-up sends the missed ones at once). */
		while (sending && sent < total && t0 + sent * 1000000 / (uint64_t)rate <= now) {
			uint8_t m[MSG];
			message(m, sent);
			send(u, m, sizeof(m), MSG_DONTWAIT); /* a full queue or no route: it is lost */
			sent++;
		}
		while (sending && t.up && t.msgs < tcp_total && t0 + t.msgs * 1000000 / (uint64_t)tcp_rate <= now) {
			message(t.sent + t.nsent, t.msgs);
			if (send(t.fd, t.sent + t.nsent, MSG, MSG_NOSIGNAL) != MSG) {
				t.broken = !(t.reset = errno == ECONNRESET);
				t.up = false;
				break;
			}
			t.nsent += MSG;
			t.msgs++;
		}
		uint64_t next = sending ? t0 + sent * 1000000 / (uint64_t)rate : end + 1000000;
		if (sending && t.up && t.msgs < tcp_total) {
			uint64_t tn = t0 + t.msgs * 1000000 / (uint64_t)tcp_rate;
			next = tn < next ? tn : next;
		}
		struct pollfd p[2] = { { .fd = u, .events = POLLIN }, { .fd = t.up ? t.fd : -1, .events = POLLIN } };
		int wait_ms = next > now ? (int)((next - now + 999) / 1000) : 0;
		poll(p, 2, wait_ms);
		now = now_us();
		if (p[0].revents & POLLIN) {
			uint8_t m[64];
			ssize_t n;
			while ((n = recv(u, m, sizeof(m), MSG_DONTWAIT)) >= 0) {
				uint64_t seq, tag;
				if (n != MSG)
					continue;
				memcpy(&seq, m, 8);
				memcpy(&tag, m + 8, 8);
				if (tag != TAG || seq >= sent || replied[seq])
					continue;
				replied[seq] = 1;
				replies++;
				if (now < end && now - last_reply > longest)
					longest = now - last_reply;
				if (gaps_ms && now - last_reply > (uint64_t)gaps_ms * 1000 && ngaps < 64) {
					gap_from[ngaps] = last_reply - t0;
					gap_len[ngaps++] = now - last_reply;
				}
				last_reply = now;
			}
		}
		if (t.up && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			tcp_read(&t, now, now < end);
	}
	/* Silence until the end counts too: a guest that never came back. */
	if (end - last_reply > longest && last_reply < end)
		longest = end - last_reply;
	if (t.up && end - t.last_echo_us > t.longest_gap_us && t.last_echo_us < end)
		t.longest_gap_us = end - t.last_echo_us;

	const char *conn = "none";
	if (use_tcp) {
		if (t.up) {
			/* Close: every byte echoed, then the peer's FIN. */
			shutdown(t.fd, SHUT_WR);
			uint64_t stop = now_us() + 3000000;
			while (t.up && now_us() < stop) {
				struct pollfd p = { .fd = t.fd, .events = POLLIN };
				poll(&p, 1, 100);
				tcp_read(&t, now_us(), false);
			}
			conn = !t.up && !t.broken && !t.reset && t.nechoed == t.nsent ? "ok" : t.reset ? "reset" : "broken";
		} else {
			conn = t.reset ? "reset" : t.fd >= 0 && t.msgs ? "broken" : "none";
		}
	}
	for (int i = 0; i < ngaps; i++)
		printf("labclient: gap from_ms=%.1f ms=%.1f\n", (double)gap_from[i] / 1000, (double)gap_len[i] / 1000);
	printf("labclient: udp sent=%llu replies=%llu lost=%llu longest_gap_ms=%.1f\n", (unsigned long long)sent,
	       (unsigned long long)replies, (unsigned long long)(sent - replies), (double)longest / 1000);
	if (use_tcp)
		printf("labclient: tcp sent=%llu echoed=%llu longest_gap_ms=%.1f connection=%s\n",
		       (unsigned long long)t.msgs, (unsigned long long)(t.nechoed / MSG),
		       (double)t.longest_gap_us / 1000, conn);
	if (t.fd >= 0)
		close(t.fd);
	close(u);
	free(replied);
	free(t.sent);
	return 0;
}
