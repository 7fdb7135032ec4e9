/* Parsing of user-given values: sizes with binary units, bounded decimal integers.
 * Hand-written on purpose: strtoull() accepts leading blanks, signs ("-1" wraps to 2^64-1)
 * and hex, none of which a memory size should be. */
#include "hv/parse.h"

#include <errno.h>
#include <stdlib.h>

static int unit_shift(char c)
{
	switch (c) {
	case 'k': case 'K': return 10;
	case 'm': case 'M': return 20;
	case 'g': case 'G': return 30;
	case 't': case 'T': return 40;
	default: return -1;
	}
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	int shift = 0;

	if (!s || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*p && unit_shift(*p) >= 0) {
		shift = unit_shift(*p);
		p++;
		/* "64M", "64MB", "64MiB" */
		if ((p[0] == 'i' || p[0] == 'I') && (p[1] == 'B' || p[1] == 'b'))
			p += 2;
		else if (p[0] == 'B' || p[0] == 'b')
			p++;
	} else if (*p == 'B' || *p == 'b') {
		p++; /* "512B": bytes */
	}
	if (*p)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' &&
						   s[1] <= '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
