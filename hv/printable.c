#include "hv/printable.h"

#include <string.h>

char *printable_copy(char *dst, size_t cap, const char *src, size_t len)
{
	size_t n = 0;

	for (; n + 1 < cap && n < len; n++) {
		unsigned char c = (unsigned char)src[n];
		dst[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = '\0';
	return dst;
}

char *printable(char *dst, size_t cap, const char *src)
{
	return printable_copy(dst, cap, src, strlen(src));
}
