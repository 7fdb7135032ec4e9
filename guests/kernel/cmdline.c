/* hv-guest: command line parameters (space-separated key=value; unknown keys ignored). */
#include "cmdline.h"

#include "layout.h"
#include "lib.h"
#include "print.h"
#include "sys.h"

static const char *cmdline = "";

void cmdline_init(const char *s)
{
	cmdline = s ? s : "";
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cmdline_get(const char *key, char *val, size_t n)
{
	size_t klen = strlen(key);
	int found = 0;
	const char *p = cmdline;

	while (*p) {
		while (is_space(*p))
			p++;
		const char *tok = p;
		while (*p && !is_space(*p))
			p++;
		size_t tlen = (size_t)(p - tok);
		if (tlen < klen || strncmp(tok, key, klen) != 0)
			continue;
		if (tlen == klen || tok[klen] == '=') {
			const char *v = tlen == klen ? tok + klen : tok + klen + 1;
			size_t vlen = (size_t)(p - v);
			if (n) {
				if (vlen > n - 1)
					vlen = n - 1;
				memcpy(val, v, vlen);
				val[vlen] = '\0';
			}
			found = 1; /* keep going: the last occurrence wins */
		}
	}
	return found;
}

int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -1;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		if (v > (UINT64_MAX - d) / base)
			return -1;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t i = 0;
	unsigned shift = 0;
	int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');

	if (hex) {
		num[i] = s[i], i++;
		num[i] = s[i], i++;
	}
	while (i < sizeof(num) - 1 &&
	       ((s[i] >= '0' && s[i] <= '9') ||
		(hex && ((s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F'))))) {
		num[i] = s[i];
		i++;
	}
	num[i] = '\0';
	const char *suf = s + i;
	switch (*suf) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; suf++; break;
	case 'm': case 'M': shift = 20; suf++; break;
	case 'g': case 'G': shift = 30; suf++; break;
	case 't': case 'T': shift = 40; suf++; break;
	default:
		return -1;
	}
	/* Accept K, KB, KiB (and the same for M, G, T); a plain number is bytes. */
	if (shift && (strcmp(suf, "iB") == 0 || strcmp(suf, "B") == 0))
		suf += strlen(suf);
	if (*suf)
		return -1;
	uint64_t v;
	if (parse_uint(num, &v) < 0)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

static uint64_t param(const char *prog, const char *key, uint64_t dflt,
		      int (*parse)(const char *, uint64_t *))
{
	char val[64];
	uint64_t v;

	if (!cmdline_get(key, val, sizeof(val)))
		return dflt;
	if (parse(val, &v) < 0) {
		kprintf("%s: bad parameter %s=%s: not a number\n", prog, key, val);
		guest_exit(EXIT_BADPARAM);
	}
	return v;
}

uint64_t param_uint(const char *prog, const char *key, uint64_t dflt)
{
	return param(prog, key, dflt, parse_uint);
}

uint64_t param_size(const char *prog, const char *key, uint64_t dflt)
{
	return param(prog, key, dflt, parse_size);
}
