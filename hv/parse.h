/* Parsing of user-given values on the command line. */
#ifndef HV_PARSE_H
#define HV_PARSE_H

#include <stdint.h>

/* "512", "512K", "64M", "2G", "1T" (binary units; optional trailing 'B' or 'iB').
 * 0, or -1 if malformed or overflowing. */
int parse_size(const char *s, uint64_t *out);
/* Decimal integer within [min, max]. 0 or -1. */
int parse_int(const char *s, long min, long max, long *out);

/* "52:54:00:12:34:56" (':' or '-'): 0, or -1 if malformed, multicast or all zero. */
int parse_mac(const char *s, uint8_t mac[6]);
/* The same form, lower case, ':' (17 characters and the NUL). */
void format_mac(const uint8_t mac[6], char out[18]);

#endif
