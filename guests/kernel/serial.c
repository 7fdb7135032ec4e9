/* hv-guest: polled 16550 output on COM1. Runs at CPL3 through the TSS I/O bitmap (each
 * port access is a VM exit) and at CPL0 on fatal paths. */
#include "serial.h"

#include "arch.h"
#include "layout.h"
#include "time.h"

#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_DLL 0
#define UART_DLM 1
#define LSR_THRE 0x20

static volatile int serial_lock_word;
struct gap *serial_gap;

void serial_init(void)
{
	outb(COM1 + UART_IER, 0x00);   /* no interrupts: output is polled */
	outb(COM1 + UART_LCR, 0x80);   /* DLAB */
	outb(COM1 + UART_DLL, 0x01);   /* 115200 baud */
	outb(COM1 + UART_DLM, 0x00);
	outb(COM1 + UART_LCR, 0x03);   /* 8N1 */
	outb(COM1 + UART_FCR, 0x07);   /* FIFO on, cleared */
	outb(COM1 + UART_MCR, 0x03);   /* DTR, RTS */
}

void serial_putc(char c)
{
	/* Bounded wait: a UART that never reports THRE must not hang the guest. */
	for (int i = 0; i < 100000; i++) {
		if (inb(COM1 + UART_LSR) & LSR_THRE)
			break;
		cpu_relax();
	}
	outb(COM1 + UART_THR, (uint8_t)c);
	if (serial_gap)
		gap_mark(serial_gap);
}

void serial_lock(void)
{
	while (__atomic_exchange_n(&serial_lock_word, 1, __ATOMIC_ACQUIRE))
		while (serial_lock_word)
			cpu_relax();
}

void serial_unlock(void)
{
	__atomic_store_n(&serial_lock_word, 0, __ATOMIC_RELEASE);
}
