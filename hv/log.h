/* One way of logging: every message is one line on stderr, prefixed "hv: ".
 * hv_error() is for causes a user can act on: say what failed and how to fix it.
 *
 * Who prints: code that a caller may run where nobody reads stderr (decoders, the migration
 * engines, device state, anything fed by a peer) does not print its failures. It writes one
 * line into the caller's buffer (hv_errf, or hv_fail where the first failure is the cause
 * and later ones are its consequences) and returns an error; the caller that owns the
 * user's terminal or the peer's reply prints or sends it once, adding its context. Device
 * and VM set-up code, which runs only under hvctl, calls hv_error directly. */
#ifndef HV_LOG_H
#define HV_LOG_H

#include <stdbool.h>
#include <stddef.h>

void hv_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hv_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last hv_error() message of the calling thread ("" if none), like errno: for callers
 * that must pass a failure on (e.g. to a migration source) as well as print it. */
const char *hv_last_error(void);
void hv_clear_error(void);
/* While on, hv_error() in this thread only records the message (for hv_last_error). */
void hv_quiet_errors(bool on);

/* One line into err[errlen] (nothing when err is NULL or errlen 0). hv_fail writes only
 * while err is still empty (the first failure wins). Both return -1. */
int hv_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int hv_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Printed only when HV_DEBUG is set in the environment. */
void hv_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
