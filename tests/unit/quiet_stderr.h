/* Hides the expected hv_error lines of failure tests; HV_TEST_VERBOSE=1 shows them unless
 * the caller insists (always), e.g. around a loop that would print thousands of lines. */
#ifndef TESTS_UNIT_QUIET_STDERR_H
#define TESTS_UNIT_QUIET_STDERR_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int quiet_begin(bool always)
{
	int saved, fd;

	if (!always && getenv("HV_TEST_VERBOSE"))
		return -1;
	fflush(stderr);
	saved = dup(2);
	fd = open("/dev/null", O_WRONLY);
	dup2(fd, 2);
	close(fd);
	return saved;
}

static inline void quiet_end(int saved)
{
	if (saved < 0)
		return;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

#endif
