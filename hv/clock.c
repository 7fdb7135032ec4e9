#include "hv/clock.h"

#include <time.h>

uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct deadline deadline_never(void)
{
	return (struct deadline){ .at_ns = UINT64_MAX };
}

struct deadline deadline_in_ms(int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return deadline_never();
	uint64_t now = clock_now_ns(), add = (uint64_t)timeout_ms * 1000000ULL;
	/* Saturate rather than wrap: a huge timeout is "never", not "already passed". */
	if ((uint64_t)timeout_ms > UINT64_MAX / 1000000ULL || add > UINT64_MAX - 1 - now)
		return deadline_never();
	return (struct deadline){ .at_ns = now + add };
}

bool deadline_passed(struct deadline d)
{
	return d.at_ns != UINT64_MAX && clock_now_ns() >= d.at_ns;
}

int deadline_left_ms(struct deadline d)
{
	if (d.at_ns == UINT64_MAX)
		return -1;
	uint64_t now = clock_now_ns();
	if (now >= d.at_ns)
		return 0;
	uint64_t ms = (d.at_ns - now + 999999ULL) / 1000000ULL;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}
