/* hv-guest: just enough Ethernet/ARP/IPv4/ICMP/UDP for netecho and netbench. */
#ifndef HVG_INET_H
#define HVG_INET_H

#include <stdint.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IP_HLEN 20
#define UDP_HLEN 8
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* Parses "A.B.C.D" into a host-order address: 0, or -1 if malformed. */
int inet_parse(const char *s, uint32_t *ip);
/* Reads parameter `key` as an IPv4 address (default `dflt`); a bad value prints a line
 * and exits EXIT_BADPARAM. */
uint32_t param_ip(const char *prog, const char *key, uint32_t dflt);
/* "A.B.C.D" into buf (at least 16 bytes). */
char *inet_fmt(uint32_t ip, char *buf);

/* Internet checksum: the ones' complement sum of `len` bytes plus `sum` (a partial sum,
 * e.g. a pseudo header), folded and complemented. */
uint16_t inet_csum(const void *data, uint32_t len, uint32_t sum);
/* The partial sum of a UDP/TCP pseudo header. */
uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

/* Builds an ARP packet (Ethernet header included) in `f`; returns its length (42). */
uint32_t arp_build(uint8_t *f, uint16_t oper, const uint8_t *src_mac, uint32_t src_ip,
		   const uint8_t *dst_mac, uint32_t dst_ip);
/* If `f` is an ARP request for `ip`, builds the reply in `out` and returns its length;
 * else 0. */
uint32_t arp_answer(const uint8_t *f, uint32_t len, const uint8_t *mac, uint32_t ip, uint8_t *out);

#endif
