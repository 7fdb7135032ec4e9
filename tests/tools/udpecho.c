/* udpecho: a tiny UDP client for the device tests (t_net.sh).
 *
 *   udpecho HOST PORT COUNT [SIZE [TIMEOUT_MS [TRIES]]]
 *     Sends COUNT datagrams of SIZE bytes (default 64) to HOST:PORT one at a time, each
 *     with distinct contents (a sequence number and a pattern derived from it), and waits
 *     up to TIMEOUT_MS (default 1000) for the echo, resending up to TRIES times in all
 *     (default 3). Every reply must equal its request byte for byte; stale replies to an
 *     earlier try are skipped. Prints `udpecho: sent=<n> ok=<n> bad=<n> lost=<n>
 *     retries=<n> rtt_avg_us=<us> rtt_max_us=<us>`; exit 0 if every request got its echo.
 *     If none of the first 3 requests gets an echo it gives up at once (nobody there).
 *
 *   udpecho --sink PORT SECS [IDLE_MS]
 *     Counts datagrams arriving on PORT (any address) for SECS seconds, or until IDLE_MS
 *     pass without one once the first has arrived; prints
 *     `udpsink: packets=<n> bytes=<n> max_seq=<n>` (max_seq: the largest 64-bit
 *     little-endian sequence number seen at the start of a payload, as prog=netbench
 *     sends them). Exit 0.
 *
 * Every wait is bounded; exit 2 on a usage or socket error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static long num(const char *s, long lo, long hi, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < lo || v > hi) {
		fprintf(stderr, "udpecho: bad %s '%s' (%ld to %ld)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static void fill(uint8_t *p, size_t size, uint64_t seq)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
	int n = snprintf((char *)p, size, "udpecho seq=%llu ", (unsigned long long)seq);
	for (size_t i = (size_t)n < size ? (size_t)n : size; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static int sink(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: udpecho --sink PORT SECS [IDLE_MS]\n");
		return 2;
	}
	int port = (int)num(argv[2], 1, 65535, "port");
	long secs = num(argv[3], 1, 3600, "seconds");
	long idle_ms = argc == 5 ? num(argv[4], 1, 3600000, "idle time") : 0;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int rcvbuf = 8 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "udpecho: cannot bind UDP port %d: %s\n", port, strerror(errno));
		return 2;
	}
	printf("udpsink: listening port=%d secs=%ld\n", port, secs);
	fflush(stdout);
	uint64_t end = now_us() + (uint64_t)secs * 1000000, packets = 0, bytes = 0, max_seq = 0;
	static uint8_t buf[65536];
	uint64_t last = 0;
	for (uint64_t t; (t = now_us()) < end;) {
		if (idle_ms && packets && t - last >= (uint64_t)idle_ms * 1000)
			break;
		struct pollfd p = { .fd = s, .events = POLLIN };
		int wait_ms = (int)((end - t) / 1000 + 1);
		if (idle_ms && wait_ms > 50)
			wait_ms = 50;
		if (poll(&p, 1, wait_ms) <= 0)
			continue;
		last = now_us();
		for (;;) {
			ssize_t r = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
			if (r < 0)
				break;
			packets++;
			bytes += (uint64_t)r;
			if (r >= 8) {
				uint64_t seq;
				memcpy(&seq, buf, 8);
				if (seq > max_seq)
					max_seq = seq;
			}
		}
	}
	printf("udpsink: packets=%llu bytes=%llu max_seq=%llu\n", (unsigned long long)packets,
	       (unsigned long long)bytes, (unsigned long long)max_seq);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--sink"))
		return sink(argc, argv);
	if (argc < 4 || argc > 7) {
		fprintf(stderr, "usage: udpecho HOST PORT COUNT [SIZE [TIMEOUT_MS [TRIES]]]\n"
				"       udpecho --sink PORT SECS [IDLE_MS]\n");
		return 2;
	}
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "udpecho: '%s' is not an IPv4 address\n", argv[1]);
		return 2;
	}
	a.sin_port = htons((uint16_t)num(argv[2], 1, 65535, "port"));
	long count = num(argv[3], 1, 1000000, "count");
	size_t size = argc > 4 ? (size_t)num(argv[4], 1, 1472, "size") : 64;
	long timeout_ms = argc > 5 ? num(argv[5], 1, 60000, "timeout") : 1000;
	long tries = argc > 6 ? num(argv[6], 1, 100, "tries") : 3;

	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "udpecho: cannot reach %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	static uint8_t req[2048], rep[2048];
	long ok = 0, bad = 0, lost = 0, retries = 0, nsent = 0;
	uint64_t rtt_sum = 0, rtt_max = 0;
	for (long i = 0; i < count; i++, nsent++) {
		fill(req, size, (uint64_t)i);
		int done = 0;
		for (long t = 0; t < tries && !done; t++) {
			if (t)
				retries++;
			uint64_t t0 = now_us(), deadline = t0 + (uint64_t)timeout_ms * 1000;
			if (send(s, req, size, 0) < 0 && errno != ECONNREFUSED) {
				fprintf(stderr, "udpecho: send: %s\n", strerror(errno));
				return 2;
			}
			for (uint64_t t1; !done && (t1 = now_us()) < deadline;) {
				struct pollfd p = { .fd = s, .events = POLLIN };
				if (poll(&p, 1, (int)((deadline - t1) / 1000 + 1)) <= 0)
					continue;
				ssize_t r = recv(s, rep, sizeof(rep), MSG_DONTWAIT);
				if (r < 0)
					continue; /* e.g. ECONNREFUSED from an ICMP error: wait on */
				char tag[32];
				int n = snprintf(tag, sizeof(tag), "udpecho seq=%ld ", i);
				if ((size_t)r >= (size_t)n && (size_t)n <= size && memcmp(rep, tag, (size_t)n))
					continue; /* a late echo of an earlier request */
				if ((size_t)r != size || memcmp(rep, req, size)) {
					if (bad < 5)
						fprintf(stderr, "udpecho: request %ld: reply of %zd bytes differs\n", i, r);
					bad++;
				} else {
					ok++;
				}
				uint64_t rtt = now_us() - t0;
				rtt_sum += rtt;
				if (rtt > rtt_max)
					rtt_max = rtt;
				done = 1;
			}
		}
		if (!done && ++lost >= 3 && !ok && !bad) {
			fprintf(stderr, "udpecho: no echo for the first %ld requests; giving up\n", lost);
			nsent++;
			break;
		}
	}
	printf("udpecho: sent=%ld ok=%ld bad=%ld lost=%ld retries=%ld rtt_avg_us=%llu rtt_max_us=%llu\n",
	       nsent, ok, bad, lost, retries, (unsigned long long)(ok + bad ? rtt_sum / (uint64_t)(ok + bad) : 0),
	       (unsigned long long)rtt_max);
	close(s);
	return ok == count ? 0 : 1;
}
