/* hv-guest: prog=netbench. Sends UDP datagrams as fast as the NIC takes them.
 *
 * Parameters: dst=A.B.C.D (required), port=N (destination port, default 9), size=N (UDP
 * payload bytes, 8-1472, default 1024), secs=N (default 2), ip=A.B.C.D (our address,
 * default dst's host number + 1 in the same /24), sport=N (source port, default 40000),
 * nic=N. The destination MAC comes from ARP (3 s at most); ARP requests for our address
 * are answered meanwhile. Each payload starts with a 64-bit little-endian sequence number;
 * the UDP checksum is 0 (none, allowed for IPv4).
 * Output: `netbench: tick=<t> sent=<n>` every second, then
 * `netbench: pps=<packets/s> mbs=<payload MB/s> sent=<n> size=<payload bytes>`
 * (MB = 10^6 bytes; a packet counts as sent when the device has taken it). */
#include "cmdline.h"
#include "inet.h"
#include "layout.h"
#include "lib.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"
#include "virtio_net.h"

static const char *me = "netbench";
static struct vnet nic;
static uint32_t my_ip;

/* Drains received frames: answers ARP for us; if `want_ip` is non-zero and an ARP reply
 * from it arrives, stores its MAC and returns 1. */
static int poll_rx(uint32_t want_ip, uint8_t *mac_out)
{
	uint8_t *f;
	uint32_t len;
	uint16_t h;
	int got = 0;

	while (vnet_rx(&nic, &f, &len, &h)) {
		uint8_t reply[64];
		uint32_t r = arp_answer(f, len, nic.mac, my_ip, reply);
		if (r)
			vnet_send(&nic, reply, r);
		else if (want_ip && len >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP &&
			 get16(f + ETH_HLEN + 6) == 2 && get32(f + ETH_HLEN + 14) == want_ip) {
			memcpy(mac_out, f + ETH_HLEN + 8, 6);
			got = 1;
		}
		vnet_rx_release(&nic, h);
	}
	return got;
}

int prog_netbench(void)
{
	char a[16], b[16];
	uint64_t nic_index = param_uint(me, "nic", 0);
	uint32_t dst = param_ip(me, "dst", 0);
	uint64_t port = param_uint(me, "port", 9);
	uint64_t sport = param_uint(me, "sport", 40000);
	uint64_t size = param_uint(me, "size", 1024);
	uint64_t secs = param_uint(me, "secs", 2);

	if (!dst) {
		kprintf("%s: bad parameter dst: give the receiver's address, e.g. dst=10.88.0.1\n", me);
		return EXIT_BADPARAM;
	}
	my_ip = param_ip(me, "ip", (dst & ~0xffu) | (((dst & 0xff) + 1) & 0xff));
	if (!port || port > 65535 || !sport || sport > 65535) {
		kprintf("%s: bad parameter port/sport: 1 to 65535\n", me);
		return EXIT_BADPARAM;
	}
	if (size < 8 || size > VNET_MAX_FRAME - ETH_HLEN - IP_HLEN - UDP_HLEN || size > 1472) {
		kprintf("%s: bad parameter size=%lu: 8 to 1472 payload bytes\n", me, size);
		return EXIT_BADPARAM;
	}
	if (!secs) {
		kprintf("%s: bad parameter secs=0: give a duration\n", me);
		return EXIT_BADPARAM;
	}
	int rc = vnet_init(&nic, (int)nic_index);
	if (rc == -1) {
		kprintf("%s: no virtio-net NIC %lu (attach one with hvctl run --net tap=IF)\n", me,
			nic_index);
		return EXIT_BADPARAM;
	}
	if (rc < 0)
		return EXIT_DEVICE;
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}

	/* Resolve the destination's MAC. */
	uint8_t dmac[6], arp[64];
	int resolved = 0;
	uint64_t t0 = ticks;
	for (uint64_t next = t0; !resolved && ticks - t0 < 3 * timer_hz;) {
		if (ticks >= next) {
			vnet_send(&nic, arp, arp_build(arp, 1, nic.mac, my_ip, NULL, dst));
			next = ticks + timer_hz / 5;
		}
		resolved = poll_rx(dst, dmac);
		cpu_relax();
	}
	if (!resolved) {
		kprintf("%s: no ARP reply from %s within 3 s\n", me, inet_fmt(dst, a));
		return EXIT_DEVICE;
	}
	kprintf("%s: ip=%s dst=%s port=%lu size=%lu secs=%lu dst_mac=%02x:%02x:%02x:%02x:%02x:%02x\n",
		me, inet_fmt(my_ip, a), inet_fmt(dst, b), port, size, secs, dmac[0], dmac[1], dmac[2],
		dmac[3], dmac[4], dmac[5]);

	/* The frame template: everything but the IP id/checksum and the sequence number. */
	uint8_t tmpl[ETH_HLEN + IP_HLEN + UDP_HLEN];
	uint32_t flen = (uint32_t)(sizeof(tmpl) + size);
	memcpy(tmpl, dmac, 6);
	memcpy(tmpl + 6, nic.mac, 6);
	put16(tmpl + 12, ETH_P_IP);
	uint8_t *ip = tmpl + ETH_HLEN, *udp = ip + IP_HLEN;
	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HLEN + UDP_HLEN + size));
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	put32(ip + 12, my_ip);
	put32(ip + 16, dst);
	put16(udp, (uint16_t)sport);
	put16(udp + 2, (uint16_t)port);
	put16(udp + 4, (uint16_t)(UDP_HLEN + size));
	put16(udp + 6, 0);
	/* Partial checksum of the fixed header words; the id is added per packet. */
	uint32_t base_sum = 0;
	for (int i = 0; i < IP_HLEN; i += 2)
		base_sum += get16(ip + i);

	kprintf("READY\n");
	uint64_t seq = 0, start_tsc = rdtsc(), start = ticks, end = start + secs * timer_hz;
	uint64_t next_beat = start + timer_hz;
	struct virtq *txq = &nic.dev.vq[1];
	uint64_t kicks0 = txq->kicks, supp0 = txq->kicks_suppressed;
	vnet_tx_reclaim(&nic);
	uint64_t tx0 = nic.tx_packets; /* the ARP frames sent so far do not count */
	int batch = 0;
	while (ticks < end) {
		uint8_t *o = vnet_tx_buf(&nic);
		if (!o) {
			vnet_tx_kick(&nic);
			batch = 0;
			poll_rx(0, NULL);
			cpu_relax();
			continue;
		}
		memcpy(o, tmpl, sizeof(tmpl));
		uint8_t *oip = o + ETH_HLEN;
		uint16_t id = (uint16_t)seq;
		put16(oip + 4, id);
		uint32_t s = base_sum + id;
		while (s >> 16)
			s = (s & 0xffff) + (s >> 16);
		put16(oip + 10, (uint16_t)~s);
		uint8_t *payload = o + sizeof(tmpl);
		memcpy(payload, &seq, 8);
		memset(payload + 8, (uint8_t)seq, size - 8);
		seq++;
		vnet_tx_send(&nic, o, flen, ++batch >= 32);
		if (batch >= 32)
			batch = 0;
		if ((seq & 255) == 0) {
			poll_rx(0, NULL);
			if (ticks >= next_beat) {
				kprintf("%s: tick=%lu sent=%lu\n", me, ticks, nic.tx_packets - tx0);
				next_beat += timer_hz;
			}
		}
	}
	vnet_tx_kick(&nic);
	/* Let the device take what is queued (bounded). */
	for (uint64_t t = ticks; vnet_tx_reclaim(&nic) && ticks - t < timer_hz;)
		cpu_relax();
	uint64_t us = tsc_to_us(rdtsc() - start_tsc);
	uint64_t sent = nic.tx_packets - tx0;
	uint64_t pps = us ? sent * 1000000 / us : 0;
	kprintf("%s: kicks=%lu suppressed=%lu queued=%lu\n", me, txq->kicks - kicks0,
		txq->kicks_suppressed - supp0, seq);
	kprintf("%s: pps=%lu mbs=%lu sent=%lu size=%lu\n", me, pps, us ? sent * size / us : 0, sent,
		size);
	return EXIT_OK;
}
