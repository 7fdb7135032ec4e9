/* Loopback TCP throughput, the reference for migration throughput: one stream, 1 MiB
 * writes, for SECS seconds. usage: tcpbw [SECS]; prints MiB/s. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sink(void *arg)
{
	int fd = *(int *)arg;
	char *buf = malloc(CHUNK);

	while (buf && read(fd, buf, CHUNK) > 0)
		;
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		return 1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	int s = accept(l, NULL, NULL);
	pthread_t t;
	pthread_create(&t, NULL, sink, &s);
	char *buf = malloc(CHUNK);
	memset(buf, 0x5a, CHUNK);
	double t0 = now_s(), t1;
	unsigned long long total = 0;
	do {
		ssize_t n = write(c, buf, CHUNK);
		if (n <= 0)
			return 1;
		total += (unsigned long long)n;
		t1 = now_s();
	} while (t1 - t0 < secs);
	close(c);
	pthread_join(t, NULL);
	printf("%.0f\n", (double)total / (t1 - t0) / (1 << 20));
	free(buf);
	return 0;
}
