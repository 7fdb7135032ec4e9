/* hv-guest: printf-style formatting (%d %i %u %x %X %s %c %p %%, flags 0 and width,
 * length modifiers l ll z). */
#ifndef HVG_PRINT_H
#define HVG_PRINT_H

#include <stdarg.h>
#include <stddef.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Serial output of one message, holding the serial lock (CPL3 callers). */
void kprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Serial output without the lock: fatal paths at CPL0. */
void kprintf_nolock(const char *fmt, ...) PRINTF_LIKE(1, 2);
int ksnprintf(char *buf, size_t n, const char *fmt, ...) PRINTF_LIKE(3, 4);

#endif
