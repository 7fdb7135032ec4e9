/* Parsing of user-given values: sizes with binary units, bounded decimal integers, MACs.
 * Hand-written on purpose: strtoull() accepts leading blanks, signs ("-1" wraps to 2^64-1)
 * and hex, none of which a memory size should be. */
#include "hv/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];

	if (strlen(s) != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -1;
		if (i < 5 && p[2] != ':' && p[2] != '-')
			return -1;
		char hex[3] = { p[0], p[1], 0 };
		m[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	static const uint8_t zero[6];
	if ((m[0] & 1) || !memcmp(m, zero, 6))
		return -1; /* multicast / broadcast, or no address at all */
	memcpy(mac, m, 6);
	return 0;
}

void format_mac(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}
