/* One way of logging: every message is one line on stderr, prefixed "hv: ".
 * hv_error() is for causes a user can act on: say what failed and how to fix it. */
#ifndef HV_LOG_H
#define HV_LOG_H

#include <stdbool.h>

void hv_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hv_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last hv_error() message of the calling thread ("" if none), like errno: for callers
 * that must pass a failure on (e.g. to a migration source) as well as print it. */
const char *hv_last_error(void);
void hv_clear_error(void);
/* While on, hv_error() in this thread only records the message (for hv_last_error). */
void hv_quiet_errors(bool on);

/* Printed only when HV_DEBUG is set in the environment. */
void hv_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
