/* hv-guest: polled 16550 UART output on COM1. */
#ifndef HVG_SERIAL_H
#define HVG_SERIAL_H

#include <stddef.h>

void serial_init(void);
void serial_putc(char c);      /* no lock */
void serial_lock(void);        /* CPL3 spinlock so lines from several CPUs do not mix */
void serial_unlock(void);

#endif
