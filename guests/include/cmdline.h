/* hv-guest: space-separated key=value command line. */
#ifndef HVG_CMDLINE_H
#define HVG_CMDLINE_H

#include <stddef.h>
#include <stdint.h>

void cmdline_init(const char *s);
/* Copies the value of the last `key=` into val (NUL-terminated, at most n-1 chars).
 * Returns 1 if the key is present, 0 if not. A bare `key` gives an empty value. */
int cmdline_get(const char *key, char *val, size_t n);

/* Number parsers: 0 on success, -1 on a malformed or overflowing value. */
int parse_uint(const char *s, uint64_t *out);              /* decimal or 0x hex */
int parse_size(const char *s, uint64_t *out);              /* with K/M/G/T suffix */

/* Reads an optional parameter; on a bad value prints a line and exits EXIT_BADPARAM. */
uint64_t param_uint(const char *prog, const char *key, uint64_t dflt);
uint64_t param_size(const char *prog, const char *key, uint64_t dflt);

#endif
