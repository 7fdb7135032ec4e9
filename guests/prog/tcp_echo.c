/* hv-guest: netecho's TCP echo service (tcp_echo.h). */
#include "tcp_echo.h"

#include <stdbool.h>

#include "inet.h"
#include "lib.h"
#include "time.h"

#define CONNS 4
#define BUF 4096  /* echo bytes not yet acknowledged, per connection */
#define MSS 1400  /* payload per segment we send */
#define WINDOW 4096
#define TCP_HLEN 20
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

enum state { FREE, SYN_RCVD, ESTABLISHED, LAST_ACK };

struct conn {
	enum state st;
	uint8_t mac[6];         /* the peer's, from its frames */
	uint32_t ip;            /* the peer's */
	uint16_t port;          /* the peer's */
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	uint8_t buf[BUF];       /* bytes from snd_una (the SYN or FIN not included) */
	uint32_t len;
	uint64_t sent_at;       /* ticks: the last (re)transmission */
	uint64_t rto;           /* ticks until a retransmission; doubles up to 2 s */
};

static struct vnet *nic;
static uint32_t my_ip;
static uint16_t my_port;
static uint16_t ip_id = 0x4000;
static struct conn conns[CONNS];
static struct tcp_echo_stats stats;

void tcp_echo_init(struct vnet *n, uint32_t ip, uint16_t port)
{
	nic = n;
	my_ip = ip;
	my_port = port;
}

const struct tcp_echo_stats *tcp_echo_stats(void)
{
	return &stats;
}

int tcp_echo_open(void)
{
	int n = 0;

	for (int i = 0; i < CONNS; i++)
		n += conns[i].st != FREE;
	return n;
}

/* Sends one segment to the peer of c (or, c NULL, to mac/ip/port: a reset). */
static void send_seg(const uint8_t *mac, uint32_t ip, uint16_t port, uint32_t seq, uint32_t ack,
		     uint8_t flags, const uint8_t *data, uint32_t len)
{
	uint8_t *o = vnet_tx_buf(nic);
	if (!o)
		return; /* all buffers in flight: TCP retransmits */
	uint8_t *h = o + ETH_HLEN, *t = h + IP_HLEN;
	uint16_t tot = (uint16_t)(IP_HLEN + TCP_HLEN + len);

	memcpy(o, mac, 6);
	memcpy(o + 6, nic->mac, 6);
	put16(o + 12, ETH_P_IP);
	h[0] = 0x45;
	h[1] = 0;
	put16(h + 2, tot);
	put16(h + 4, ip_id++);
	put16(h + 6, 0x4000);
	h[8] = 64;
	h[9] = IPPROTO_TCP;
	put16(h + 10, 0);
	put32(h + 12, my_ip);
	put32(h + 16, ip);
	put16(h + 10, inet_csum(h, IP_HLEN, 0));
	put16(t, my_port);
	put16(t + 2, port);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (TCP_HLEN / 4) << 4;
	t[13] = flags;
	put16(t + 14, WINDOW);
	put16(t + 16, 0);
	put16(t + 18, 0);
	if (len)
		memcpy(t + TCP_HLEN, data, len);
	put16(t + 16, inet_csum(t, TCP_HLEN + len, inet_pseudo(my_ip, ip, IPPROTO_TCP, (uint16_t)(TCP_HLEN + len))));
	vnet_tx_send(nic, o, ETH_HLEN + tot, 1);
}

/* Everything not yet acknowledged, from snd_una: the SYN, the data, the FIN. */
static void transmit(struct conn *c)
{
	c->sent_at = ticks;
	if (c->st == SYN_RCVD) {
		send_seg(c->mac, c->ip, c->port, c->iss, c->rcv_nxt, F_SYN | F_ACK, NULL, 0);
		return;
	}
	uint32_t off = 0;
	do {
		uint32_t n = c->len - off < MSS ? c->len - off : MSS;
		bool last = off + n == c->len;
		uint8_t flags = F_ACK | (n ? F_PSH : 0) | (last && c->st == LAST_ACK ? F_FIN : 0);
		send_seg(c->mac, c->ip, c->port, c->snd_una + off, c->rcv_nxt, flags, c->buf + off, n);
		off += n;
	} while (off < c->len);
}

static void ack_only(struct conn *c)
{
	send_seg(c->mac, c->ip, c->port, c->snd_nxt, c->rcv_nxt, F_ACK, NULL, 0);
}

/* seq a before b, modulo 2^32 */
static bool before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static struct conn *find(uint32_t ip, uint16_t port)
{
	for (int i = 0; i < CONNS; i++)
		if (conns[i].st != FREE && conns[i].ip == ip && conns[i].port == port)
			return &conns[i];
	return NULL;
}

int tcp_echo_input(const uint8_t *f, const uint8_t *l4, uint32_t l4len, uint32_t src)
{
	if (l4len < TCP_HLEN || get16(l4 + 2) != my_port)
		return 0;
	uint32_t doff = (uint32_t)(l4[12] >> 4) * 4;
	if (doff < TCP_HLEN || doff > l4len || inet_csum(l4, l4len, inet_pseudo(src, my_ip, IPPROTO_TCP, (uint16_t)l4len)))
		return 0;
	stats.segs_in++;
	uint16_t port = get16(l4);
	uint32_t seq = get32(l4 + 4), ack = get32(l4 + 8);
	uint8_t flags = l4[13];
	const uint8_t *data = l4 + doff;
	uint32_t len = l4len - doff;
	struct conn *c = find(src, port);

	if (flags & F_RST) {
		if (c && !before(seq, c->rcv_nxt) && before(seq, c->rcv_nxt + WINDOW)) {
			c->st = FREE;
			stats.resets++;
		}
		return 1;
	}
	if (!c) {
		if ((flags & (F_SYN | F_ACK)) != F_SYN) {
			/* Nothing here for it: a reset (RFC 793's rules for a closed port). */
			if (flags & F_ACK)
				send_seg(f + 6, src, port, ack, 0, F_RST, NULL, 0);
			else
				send_seg(f + 6, src, port, 0, seq + len + ((flags & F_FIN) != 0), F_RST | F_ACK, NULL, 0);
			return 1;
		}
		for (int i = 0; i < CONNS && !c; i++)
			if (conns[i].st == FREE)
				c = &conns[i];
		if (!c)
			return 1; /* full: the SYN is ignored, the client tries again */
		memset(c, 0, sizeof(*c));
		c->st = SYN_RCVD;
		memcpy(c->mac, f + 6, 6);
		c->ip = src;
		c->port = port;
		c->iss = (uint32_t)(rdtsc() >> 4);
		c->snd_una = c->iss;
		c->snd_nxt = c->iss + 1;
		c->rcv_nxt = seq + 1;
		c->rto = timer_hz / 5;
		stats.conns++;
		transmit(c);
		return 1;
	}
	memcpy(c->mac, f + 6, 6); /* the peer's MAC may change (a router's failover) */
	if (flags & F_SYN) {
		/* The SYN again (our SYN-ACK was lost): answer it again. */
		if (c->st == SYN_RCVD && seq + 1 == c->rcv_nxt)
			transmit(c);
		else
			ack_only(c);
		return 1;
	}
	if (!(flags & F_ACK))
		return 1;
	/* What the peer acknowledges: our SYN, echoed bytes, our FIN. */
	if (before(c->snd_una, ack) && !before(c->snd_nxt, ack)) {
		uint32_t n = ack - c->snd_una;
		if (c->st == SYN_RCVD) {
			c->st = ESTABLISHED;
			n--;
			c->snd_una++;
		}
		if (c->st == LAST_ACK && ack == c->snd_nxt) {
			c->st = FREE;
			return 1;
		}
		if (n > c->len)
			n = c->len;
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
		c->snd_una += n;
		c->rto = timer_hz / 5;
		c->sent_at = ticks;
	}
	if (c->st != ESTABLISHED)
		return 1;
	bool fin = flags & F_FIN;
	if (!len && !fin)
		return 1;
	if (seq != c->rcv_nxt || len > BUF - c->len) {
		/* Out of order, a duplicate, or no room: say what we expect; the peer resends. */
		ack_only(c);
		return 1;
	}
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	c->rcv_nxt += len;
	stats.bytes_echoed += len;
	if (fin) {
		c->rcv_nxt++;
		c->st = LAST_ACK;
	}
	/* Send what is new: the echo (and our FIN), each byte once here; transmit() resends. */
	uint32_t off = c->snd_nxt - c->snd_una;
	while (off < c->len || (fin && c->snd_nxt == c->snd_una + c->len)) {
		uint32_t n = c->len - off < MSS ? c->len - off : MSS;
		bool last = off + n == c->len;
		uint8_t fl = F_ACK | (n ? F_PSH : 0) | (last && fin ? F_FIN : 0);
		send_seg(c->mac, c->ip, c->port, c->snd_una + off, c->rcv_nxt, fl, c->buf + off, n);
		off += n;
		c->snd_nxt = c->snd_una + off + (last && fin);
		if (last)
			break;
	}
	c->sent_at = ticks;
	return 1;
}

void tcp_echo_poll(void)
{
	uint64_t now = ticks;

	for (int i = 0; i < CONNS; i++) {
		struct conn *c = &conns[i];
		if (c->st == FREE || c->snd_una == c->snd_nxt || now - c->sent_at < c->rto)
			continue;
		stats.retransmits++;
		transmit(c);
		c->rto = c->rto * 2 < 2 * timer_hz ? c->rto * 2 : 2 * timer_hz;
	}
}
