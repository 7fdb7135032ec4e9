/* hv-guest: Ethernet/ARP/IPv4 helpers (see inet.h). */
#include "inet.h"

#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "print.h"
#include "sys.h"

int inet_parse(const char *s, uint32_t *ip)
{
	uint32_t v = 0;

	for (int part = 0; part < 4; part++) {
		uint32_t n = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (uint32_t)(*s++ - '0');
			if (++digits > 3 || n > 255)
				return -1;
		}
		if (!digits)
			return -1;
		v = v << 8 | n;
		if (part < 3 && *s++ != '.')
			return -1;
	}
	if (*s)
		return -1;
	*ip = v;
	return 0;
}

uint32_t param_ip(const char *prog, const char *key, uint32_t dflt)
{
	char val[32];
	uint32_t ip;

	if (!cmdline_get(key, val, sizeof(val)))
		return dflt;
	if (inet_parse(val, &ip) < 0) {
		kprintf("%s: bad parameter %s=%s: not an IPv4 address A.B.C.D\n", prog, key, val);
		guest_exit(EXIT_BADPARAM);
	}
	return ip;
}

char *inet_fmt(uint32_t ip, char *buf)
{
	ksnprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
	return buf;
}

uint16_t inet_csum(const void *data, uint32_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

uint32_t arp_build(uint8_t *f, uint16_t oper, const uint8_t *src_mac, uint32_t src_ip,
		   const uint8_t *dst_mac, uint32_t dst_ip)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6];

	memcpy(f, dst_mac ? dst_mac : bcast, 6);
	memcpy(f + 6, src_mac, 6);
	put16(f + 12, ETH_P_ARP);
	uint8_t *a = f + ETH_HLEN;
	put16(a, 1);          /* hardware: Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, oper);
	memcpy(a + 8, src_mac, 6);
	put32(a + 14, src_ip);
	memcpy(a + 18, dst_mac ? dst_mac : zero, 6);
	put32(a + 24, dst_ip);
	return ETH_HLEN + 28;
}

uint32_t arp_answer(const uint8_t *f, uint32_t len, const uint8_t *mac, uint32_t ip, uint8_t *out)
{
	const uint8_t *a = f + ETH_HLEN;

	if (len < ETH_HLEN + 28 || get16(f + 12) != ETH_P_ARP)
		return 0;
	if (get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != 6 || a[5] != 4 ||
	    get16(a + 6) != 1 || get32(a + 24) != ip)
		return 0;
	return arp_build(out, 2, mac, ip, a + 8, get32(a + 14));
}
