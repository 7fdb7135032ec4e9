/* Times a command: from fork to the first byte on its stdout, and to its exit.
 * usage: firstbyte RUNS CMD [ARGS...]; prints "first_byte_ms exit_ms" medians. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: firstbyte RUNS CMD [ARGS...]\n");
		return 2;
	}
	int runs = atoi(argv[1]);
	if (runs < 1 || runs > 1000)
		return 2;
	double *first = calloc((size_t)runs, sizeof(double));
	double *total = calloc((size_t)runs, sizeof(double));
	for (int r = 0; r < runs; r++) {
		int p[2];
		if (pipe(p) < 0)
			return 1;
		double t0 = now_ms();
		pid_t pid = fork();
		if (pid == 0) {
			dup2(p[1], 1);
			close(p[0]);
			close(p[1]);
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		close(p[1]);
		char buf[4096];
		first[r] = -1;
		for (;;) {
			ssize_t n = read(p[0], buf, sizeof(buf));
			if (n <= 0)
				break;
			if (first[r] < 0)
				first[r] = now_ms() - t0;
		}
		int st;
		waitpid(pid, &st, 0);
		total[r] = now_ms() - t0;
		close(p[0]);
	}
	qsort(first, (size_t)runs, sizeof(double), cmp);
	qsort(total, (size_t)runs, sizeof(double), cmp);
	printf("%.2f %.2f\n", first[runs / 2], total[runs / 2]);
	return 0;
}
