#include "hv/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void log_line(const char *tag, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf per line so that lines from different threads never interleave. */
	fprintf(stderr, "hv: %s%s\n", tag, line);
}

static __thread char last_error[512];
static __thread bool quiet_errors;

void hv_quiet_errors(bool on)
{
	quiet_errors = on;
}

void hv_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (!quiet_errors)
		fprintf(stderr, "hv: error: %s\n", last_error);
}

const char *hv_last_error(void)
{
	return last_error;
}

void hv_clear_error(void)
{
	last_error[0] = 0;
}

void hv_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

void hv_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void hv_debug(const char *fmt, ...)
{
	static int enabled = -1;
	va_list ap;

	if (enabled < 0)
		enabled = getenv("HV_DEBUG") != NULL;
	if (!enabled)
		return;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}

int hv_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int hv_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen && !err[0]) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}
