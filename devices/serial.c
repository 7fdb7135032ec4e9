#include "devices/serial.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/state_enc.h"
#include "hv/vm.h"

#define UART_RBR 0 /* read; THR on write; DLL when DLAB */
#define UART_IER 1 /* DLM when DLAB */
#define UART_IIR 2 /* read; FCR on write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct serial {
	struct vm *vm;
	pthread_mutex_t lock;
	struct serial_regs r;
	int out_fd, in_fd;
	int stop_pipe[2];
	pthread_t rx_thread;
	int rx_thread_started;
	uint64_t tx_count;
	int irq_level;
};

/* Recomputes IIR and drives the IRQ line; call with the lock held. */
static void update_irq(struct serial *s)
{
	uint8_t iir = IIR_NO_INT;

	if ((s->r.ier & IER_RDI) && s->r.rx_len)
		iir = IIR_RDI;
	else if ((s->r.ier & IER_THRI) && s->r.thr_empty_irq)
		iir = IIR_THRI;
	s->r.iir_fcr = iir | ((s->r.fcr & 1) ? IIR_FIFO_ENABLED : 0);
	int level = !(iir & IIR_NO_INT);
	if (level != s->irq_level) {
		s->irq_level = level;
		vm_irq_line(s->vm, SERIAL_COM1_IRQ, level);
	}
}

static void rx_push_locked(struct serial *s, uint8_t c)
{
	if (s->r.rx_len == SERIAL_RX_FIFO)
		return; /* overrun: the byte is lost, as on hardware */
	s->r.rx[(s->r.rx_head + s->r.rx_len) % SERIAL_RX_FIFO] = c;
	s->r.rx_len++;
	s->r.lsr |= LSR_DR;
}

static uint8_t rx_pop_locked(struct serial *s)
{
	if (!s->r.rx_len)
		return 0;
	uint8_t c = s->r.rx[s->r.rx_head];
	s->r.rx_head = (uint8_t)((s->r.rx_head + 1) % SERIAL_RX_FIFO);
	s->r.rx_len--;
	if (!s->r.rx_len)
		s->r.lsr &= (uint8_t)~LSR_DR;
	return c;
}

static void transmit_locked(struct serial *s, uint8_t c)
{
	s->tx_count++;
	if (s->r.mcr & MCR_LOOP) {
		rx_push_locked(s, c);
	} else if (s->out_fd >= 0) {
		/* A full PTY with nobody reading must not stall the vCPU: drop instead. */
		if (write(s->out_fd, &c, 1) < 0 && errno != EAGAIN)
			s->out_fd = -1;
	}
	s->r.thr_empty_irq = 1;
}

static uint8_t loopback_msr(uint8_t mcr)
{
	uint8_t msr = 0;

	if (mcr & MCR_DTR)
		msr |= MSR_DSR;
	if (mcr & MCR_RTS)
		msr |= MSR_CTS;
	if (mcr & MCR_OUT1)
		msr |= MSR_RI;
	if (mcr & MCR_OUT2)
		msr |= MSR_DCD;
	return msr;
}

static void serial_write(struct serial *s, uint64_t reg, uint8_t v)
{
	bool dlab = s->r.lcr & LCR_DLAB;

	switch (reg) {
	case UART_RBR:
		if (dlab)
			s->r.dll = v;
		else
			transmit_locked(s, v);
		break;
	case UART_IER:
		if (dlab) {
			s->r.dlm = v;
		} else {
			/* Enabling THRI with an empty transmitter raises the interrupt at once. */
			if (!(s->r.ier & IER_THRI) && (v & IER_THRI))
				s->r.thr_empty_irq = 1;
			s->r.ier = v & 0x0f;
		}
		break;
	case UART_IIR:
		s->r.fcr = v & 0xc9;
		if (v & 0x02) { /* clear receive FIFO */
			s->r.rx_len = 0;
			s->r.lsr &= (uint8_t)~LSR_DR;
		}
		break;
	case UART_LCR:
		s->r.lcr = v;
		break;
	case UART_MCR:
		s->r.mcr = v & 0x1f;
		s->r.msr = (s->r.mcr & MCR_LOOP) ? loopback_msr(s->r.mcr)
						 : (MSR_DCD | MSR_DSR | MSR_CTS);
		break;
	case UART_SCR:
		s->r.scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static uint8_t serial_read(struct serial *s, uint64_t reg)
{
	bool dlab = s->r.lcr & LCR_DLAB;

	switch (reg) {
	case UART_RBR:
		return dlab ? s->r.dll : rx_pop_locked(s);
	case UART_IER:
		return dlab ? s->r.dlm : s->r.ier;
	case UART_IIR: {
		uint8_t iir = s->r.iir_fcr;
		/* Reading IIR acknowledges a THRE interrupt. */
		if ((iir & 0x0f) == IIR_THRI)
			s->r.thr_empty_irq = 0;
		return iir;
	}
	case UART_LCR:
		return s->r.lcr;
	case UART_MCR:
		return s->r.mcr;
	case UART_LSR:
		/* The host side never backs up: the transmitter is always empty. */
		return s->r.lsr | LSR_THRE | LSR_TEMT;
	case UART_MSR:
		return s->r.msr;
	case UART_SCR:
		return s->r.scr;
	}
	return 0xff;
}

static void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* Wider accesses act on the first register only, as 8-bit ISA hardware would. */
	if (is_write) {
		serial_write(s, offset, data[0]);
	} else {
		data[0] = serial_read(s, offset);
		for (uint32_t i = 1; i < len; i++)
			data[i] = 0xff;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void *rx_thread(void *arg)
{
	struct serial *s = arg;
	struct pollfd pfd[2] = { { .fd = s->in_fd, .events = POLLIN },
				 { .fd = s->stop_pipe[0], .events = POLLIN } };
	uint8_t buf[SERIAL_RX_FIFO];

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		/* Take only what fits in the FIFO; the rest waits in the fd (flow control). */
		pthread_mutex_lock(&s->lock);
		size_t room = SERIAL_RX_FIFO - s->r.rx_len;
		pthread_mutex_unlock(&s->lock);
		if (room == 0) {
			poll(NULL, 0, 5);
			continue;
		}
		ssize_t n = read(s->in_fd, buf, room);
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			/* EOF or a PTY without a reader on the other side: wait, don't spin. */
			if (poll(&pfd[1], 1, 200) > 0)
				break;
			continue;
		}
		pthread_mutex_lock(&s->lock);
		for (ssize_t i = 0; i < n; i++)
			rx_push_locked(s, buf[i]);
		update_irq(s);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

struct serial *serial_create(struct vm *vm, int out_fd, int in_fd)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->vm = vm;
	s->out_fd = out_fd;
	s->in_fd = in_fd;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->r.lsr = LSR_THRE | LSR_TEMT;
	s->r.msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->r.iir_fcr = IIR_NO_INT;
	if (bus_register(&vm->pio, SERIAL_COM1_BASE, 8, serial_io, s, "serial") < 0) {
		hv_error("serial: port range 0x3f8 is already taken");
		free(s);
		return NULL;
	}
	if (in_fd >= 0) {
		if (pipe2(s->stop_pipe, O_CLOEXEC) < 0 ||
		    pthread_create(&s->rx_thread, NULL, rx_thread, s) != 0) {
			hv_error("serial: cannot start the console input thread");
			serial_destroy(s);
			return NULL;
		}
		s->rx_thread_started = 1;
	}
	return s;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	if (s->rx_thread_started) {
		if (write(s->stop_pipe[1], "x", 1) < 0)
			hv_debug("serial: stop pipe write failed");
		pthread_join(s->rx_thread, NULL);
	}
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	bus_unregister(&s->vm->pio, SERIAL_COM1_BASE);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void serial_get_regs(struct serial *s, struct serial_regs *r)
{
	pthread_mutex_lock(&s->lock);
	*r = s->r;
	pthread_mutex_unlock(&s->lock);
}

void serial_set_regs(struct serial *s, const struct serial_regs *r)
{
	pthread_mutex_lock(&s->lock);
	s->r = *r;
	if (s->r.rx_len > SERIAL_RX_FIFO)
		s->r.rx_len = SERIAL_RX_FIFO;
	s->r.rx_head %= SERIAL_RX_FIFO;
	s->irq_level = -1; /* force the line to be driven */
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

uint64_t serial_tx_count(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->tx_count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- saved state (dev_state.h) ---- */

/* One section: the ten registers, the pending THRE interrupt, then the receive FIFO
 * (u8 length, u8 head, SERIAL_RX_FIFO bytes). */
enum { SERIAL_SEC_REGS = 1 };

static int serial_save(void *dev, struct state_out *o)
{
	struct serial_regs r;

	serial_get_regs(dev, &r);
	state_out_begin(o, SERIAL_SEC_REGS);
	const uint8_t regs[] = { r.ier, r.iir_fcr, r.lcr, r.mcr, r.lsr, r.msr, r.scr, r.dll, r.dlm,
				 r.fcr, r.thr_empty_irq, r.rx_len, r.rx_head };
	state_out_bytes(o, regs, sizeof(regs));
	state_out_bytes(o, r.rx, SERIAL_RX_FIFO);
	state_out_end(o);
	return state_out_error(o);
}

static int serial_load(void *dev, const void *blob, size_t len, char *err, size_t errlen)
{
	struct serial_regs r = { 0 };
	struct state_in in;
	struct state_sec s;
	int got;

	state_in_init(&in, blob, len);
	while ((got = state_in_next(&in, &s, err, errlen)) > 0) {
		if (s.id != SERIAL_SEC_REGS) {
			snprintf(err, errlen, "section %u is not part of a serial port's state", s.id);
			return -1;
		}
		uint8_t *fields[] = { &r.ier, &r.iir_fcr, &r.lcr, &r.mcr, &r.lsr, &r.msr, &r.scr,
				      &r.dll, &r.dlm, &r.fcr, &r.thr_empty_irq, &r.rx_len, &r.rx_head };
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			*fields[i] = state_sec_u8(&s);
		state_sec_bytes(&s, r.rx, SERIAL_RX_FIFO);
		if (state_sec_end(&s, "serial port", err, errlen) < 0)
			return -1;
	}
	if (got < 0)
		return -1;
	if (state_in_missing(&in, 1ull << SERIAL_SEC_REGS)) {
		snprintf(err, errlen, "the serial port's registers are missing");
		return -1;
	}
	if (r.rx_len > SERIAL_RX_FIFO || r.rx_head >= SERIAL_RX_FIFO) {
		snprintf(err, errlen, "serial port: receive FIFO of %u bytes at %u, the FIFO holds %d",
			 r.rx_len, r.rx_head, SERIAL_RX_FIFO);
		return -1;
	}
	serial_set_regs(dev, &r);
	return 0;
}

const struct dev_state_ops serial_state_ops = {
	.type = "serial",
	.version = 2,
	.save = serial_save,
	.load = serial_load,
};
