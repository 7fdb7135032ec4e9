/* hv-guest: a TCP echo service for netecho, just enough TCP for a client to keep a
 * connection open across a live migration: a few connections, in-order data echoed back,
 * duplicates and gaps answered with an ACK, the echo retransmitted until acknowledged,
 * FIN and RST. No options, no window scaling, no congestion control. */
#ifndef HVG_TCP_ECHO_H
#define HVG_TCP_ECHO_H

#include <stdint.h>

#include "virtio_net.h"

#define IPPROTO_TCP 6

struct tcp_echo_stats {
	uint64_t segs_in, bytes_echoed, retransmits, conns, resets;
};

/* Serves `port` at `ip` (host order) on `nic`. */
void tcp_echo_init(struct vnet *nic, uint32_t ip, uint16_t port);
/* A TCP segment addressed to us: `f` the whole frame (for the peer's MAC), `l4` the TCP
 * header and data (l4len bytes), `src` the sender's address. Returns 0 if it was not for
 * the service (another port, a bad checksum). */
int tcp_echo_input(const uint8_t *f, const uint8_t *l4, uint32_t l4len, uint32_t src);
/* Retransmits what is due; call often. */
void tcp_echo_poll(void);
const struct tcp_echo_stats *tcp_echo_stats(void);
/* Connections open now. */
int tcp_echo_open(void);

#endif
