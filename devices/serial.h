/* 16550A UART at 0x3f8 / IRQ 4: the guest console. Output goes to out_fd, input comes
 * from in_fd (read by a thread of its own). Its registers are a plain struct for save/restore. */
#ifndef DEVICES_SERIAL_H
#define DEVICES_SERIAL_H

#include <stdint.h>

struct vm;
struct serial;

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_RX_FIFO 64

struct serial_regs {
	uint8_t ier, iir_fcr, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t thr_empty_irq; /* a THRE interrupt is pending */
	uint8_t rx_len, rx_head;
	uint8_t rx[SERIAL_RX_FIFO];
};

/* out_fd < 0 discards output; in_fd < 0 means no input. The fds stay owned by the caller. */
struct serial *serial_create(struct vm *vm, int out_fd, int in_fd);
void serial_destroy(struct serial *s);
void serial_get_regs(struct serial *s, struct serial_regs *r);
void serial_set_regs(struct serial *s, const struct serial_regs *r);
/* Its state ops (dev_state.h; `dev` is the struct serial). */
extern const struct dev_state_ops serial_state_ops;
/* Bytes the guest wrote so far (benchmarks and tests read it). */
uint64_t serial_tx_count(struct serial *s);

#endif
