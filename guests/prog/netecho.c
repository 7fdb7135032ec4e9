/* hv-guest: prog=netecho. A tiny IPv4 host on the first virtio-net NIC: answers ARP
 * requests for its address, ICMP echo requests (ping), echoes every UDP datagram sent
 * to its port back to the sender, and echoes TCP on the same port (tcp_echo.h).
 *
 * Parameters: ip=A.B.C.D (required), port=N (UDP echo port, default 7), secs=N (exit 0
 * after N seconds; 0 = forever), nic=N (which virtio-net NIC, default 0), announce=0|1
 * (default 1: negotiate VIRTIO_NET_F_GUEST_ANNOUNCE; when the device asks, e.g. after a
 * live migration, send a gratuitous ARP and acknowledge), ws=SIZE (also keep a memory
 * working set of SIZE dirty, memtouch's self-verifying pages, one page between polls of the
 * NIC; default 0 = none).
 * Output: every second `netecho: arp=<a> icmp=<i> udp=<u> other=<o> announce=<n> tcp=<s>
 * tcp_open=<c> mem_gen=<g> maxgap_us=<us>` (requests answered; other = frames ignored;
 * announcements made; TCP segments received, connections open; the working set's generation;
 * the longest the guest did not run since the last line: a migration's switchover). */
#include "cmdline.h"
#include "inet.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "tcp_echo.h"
#include "time.h"
#include "touch.h"
#include "virtio_net.h"

static const char *me = "netecho";
static struct vnet nic;
static uint32_t my_ip;
static uint16_t my_port;
static uint16_t ip_id;
static uint64_t n_arp, n_icmp, n_udp, n_other, n_txdrop, n_announce;
static struct touch mt; /* ws=: npages 0 when off */
static struct gap running; /* the longest the loop did not run: the guest's own stall */

static uint8_t *tx_buf(void)
{
	uint8_t *b = vnet_tx_buf(&nic);
	if (!b)
		n_txdrop++;
	return b;
}

/* Ethernet + IPv4 header of a reply to frame `f` (source MAC and address of f). */
static void ip_reply_hdr(uint8_t *o, const uint8_t *f, uint8_t proto, uint16_t ip_len)
{
	const uint8_t *ip = f + ETH_HLEN;
	uint8_t *h = o + ETH_HLEN;

	memcpy(o, f + 6, 6);
	memcpy(o + 6, nic.mac, 6);
	put16(o + 12, ETH_P_IP);
	h[0] = 0x45;
	h[1] = 0;
	put16(h + 2, ip_len);
	put16(h + 4, ip_id++);
	put16(h + 6, 0x4000); /* don't fragment */
	h[8] = 64;
	h[9] = proto;
	put16(h + 10, 0);
	put32(h + 12, my_ip);
	memcpy(h + 16, ip + 12, 4);
	put16(h + 10, inet_csum(h, IP_HLEN, 0));
}

static void handle_ipv4(const uint8_t *f, uint32_t len)
{
	const uint8_t *ip = f + ETH_HLEN;
	uint32_t avail = len - ETH_HLEN;

	if (avail < IP_HLEN || (ip[0] >> 4) != 4)
		goto other;
	uint32_t ihl = (ip[0] & 15) * 4u, tot = get16(ip + 2);
	if (ihl < IP_HLEN || tot < ihl || tot > avail || inet_csum(ip, ihl, 0) != 0)
		goto other;
	if (get32(ip + 16) != my_ip || (get16(ip + 6) & 0x3fff))
		goto other; /* not for us, or a fragment */
	const uint8_t *l4 = ip + ihl;
	uint32_t l4len = tot - ihl;
	uint32_t src = get32(ip + 12);

	if (ip[9] == IPPROTO_ICMP) {
		if (l4len < 8 || l4[0] != 8 || l4[1] != 0 || inet_csum(l4, l4len, 0) != 0)
			goto other;
		uint8_t *o = tx_buf();
		if (!o)
			return;
		ip_reply_hdr(o, f, IPPROTO_ICMP, (uint16_t)(IP_HLEN + l4len));
		uint8_t *icmp = o + ETH_HLEN + IP_HLEN;
		memcpy(icmp, l4, l4len);
		icmp[0] = 0; /* echo reply */
		put16(icmp + 2, 0);
		put16(icmp + 2, inet_csum(icmp, l4len, 0));
		vnet_tx_send(&nic, o, ETH_HLEN + IP_HLEN + l4len, 1);
		n_icmp++;
		return;
	}
	if (ip[9] == IPPROTO_UDP) {
		if (l4len < UDP_HLEN)
			goto other;
		uint32_t ulen = get16(l4 + 4);
		if (ulen < UDP_HLEN || ulen > l4len || get16(l4 + 2) != my_port)
			goto other;
		if (get16(l4 + 6)) {
			uint32_t ps = inet_pseudo(src, my_ip, IPPROTO_UDP, (uint16_t)ulen);
			if (inet_csum(l4, ulen, ps) != 0)
				goto other;
		}
		if (ETH_HLEN + IP_HLEN + ulen > VNET_MAX_FRAME)
			goto other;
		uint8_t *o = tx_buf();
		if (!o)
			return;
		ip_reply_hdr(o, f, IPPROTO_UDP, (uint16_t)(IP_HLEN + ulen));
		uint8_t *u = o + ETH_HLEN + IP_HLEN;
		put16(u, my_port);
		memcpy(u + 2, l4, 2); /* back to the sender's port */
		put16(u + 4, (uint16_t)ulen);
		put16(u + 6, 0);
		memcpy(u + UDP_HLEN, l4 + UDP_HLEN, ulen - UDP_HLEN);
		uint16_t c = inet_csum(u, ulen, inet_pseudo(my_ip, src, IPPROTO_UDP, (uint16_t)ulen));
		put16(u + 6, c ? c : 0xffff);
		vnet_tx_send(&nic, o, ETH_HLEN + IP_HLEN + ulen, 1);
		n_udp++;
		return;
	}
	if (ip[9] == IPPROTO_TCP && tcp_echo_input(f, l4, l4len, src))
		return;
other:
	n_other++;
}

static void handle(const uint8_t *f, uint32_t len)
{
	if (len < ETH_HLEN) {
		n_other++;
		return;
	}
	uint16_t type = get16(f + 12);
	if (type == ETH_P_ARP) {
		uint8_t reply[64];
		uint32_t r = arp_answer(f, len, nic.mac, my_ip, reply);
		if (r && vnet_send(&nic, reply, r) == 0)
			n_arp++;
		else if (!r)
			n_other++;
		return;
	}
	if (type == ETH_P_IP) {
		handle_ipv4(f, len);
		return;
	}
	n_other++;
}

int prog_netecho(void)
{
	char ipbuf[16];
	uint64_t nic_index = param_uint(me, "nic", 0);
	uint64_t secs = param_uint(me, "secs", 0);
	uint64_t port = param_uint(me, "port", 7);

	my_ip = param_ip(me, "ip", 0);
	if (!my_ip) {
		kprintf("%s: bad parameter ip: give the guest's address, e.g. ip=10.88.0.2\n", me);
		return EXIT_BADPARAM;
	}
	if (!port || port > 65535) {
		kprintf("%s: bad parameter port=%lu: 1 to 65535\n", me, port);
		return EXIT_BADPARAM;
	}
	my_port = (uint16_t)port;
	tcp_echo_init(&nic, my_ip, my_port);
	nic.want_announce = param_uint(me, "announce", 1) != 0;
	uint64_t ws = param_size(me, "ws", 0);
	uint64_t base = ws >= PAGE_SIZE ? mem_alloc(ws / PAGE_SIZE * PAGE_SIZE, PAGE_SIZE) : 0;
	if (ws && !base) {
		kprintf("%s: bad parameter ws=%lu: 4 KiB to the %lu MiB of RAM that is free\n", me, ws,
			mem_free_bytes() / MiB);
		return EXIT_BADPARAM;
	}
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	if (ws)
		touch_init(&mt, base, ws / PAGE_SIZE, 0, 1, -1, 0);
	int rc = vnet_init(&nic, (int)nic_index);
	if (rc == -1) {
		kprintf("%s: no virtio-net NIC %lu (attach one with hvctl run --net tap=IF)\n", me,
			nic_index);
		return EXIT_BADPARAM;
	}
	if (rc < 0)
		return EXIT_DEVICE;
	const uint8_t *m = nic.mac;
	kprintf("%s: nic=00:%02x.0 mac=%02x:%02x:%02x:%02x:%02x:%02x link=%s ip=%s port=%u secs=%lu guest_announce=%d\n",
		me, nic.dev.pci.slot, m[0], m[1], m[2], m[3], m[4], m[5],
		(nic.status & VNET_S_LINK_UP) ? "up" : "down", inet_fmt(my_ip, ipbuf), my_port, secs,
		nic.announce);
	/* Announce ourselves (gratuitous ARP) so that the host's neighbour table is fresh. */
	uint8_t garp[64];
	vnet_send(&nic, garp, arp_build(garp, 1, nic.mac, my_ip, NULL, my_ip));
	kprintf("READY\n");

	uint64_t start = ticks, next = start + timer_hz, next_announce_check = start;
	gap_start(&running);
	serial_gap = &running;
	for (;;) {
		gap_mark(&running);
		uint8_t *f;
		uint32_t len;
		uint16_t h;
		while (vnet_rx(&nic, &f, &len, &h)) {
			handle(f, len);
			vnet_rx_release(&nic, h);
		}
		tcp_echo_poll();
		if (mt.npages)
			touch_step(&mt);
		uint64_t now = ticks;
		/* Every 100 ms: has the device asked us to announce ourselves (one MMIO read)? */
		if (nic.announce && now >= next_announce_check) {
			next_announce_check = now + timer_hz / 10;
			if (vnet_announce_pending(&nic)) {
				vnet_send(&nic, garp, arp_build(garp, 1, nic.mac, my_ip, NULL, my_ip));
				int ack = vnet_announce_ack(&nic);
				n_announce++;
				kprintf("%s: announce: gratuitous ARP sent, ack=%s\n", me, ack ? "FAIL" : "ok");
			}
		}
		if (now >= next) {
			kprintf("%s: arp=%lu icmp=%lu udp=%lu other=%lu announce=%lu tcp=%lu tcp_open=%d mem_gen=%lu maxgap_us=%lu\n",
				me, n_arp, n_icmp, n_udp, n_other, n_announce, tcp_echo_stats()->segs_in,
				tcp_echo_open(), mt.gen, tsc_to_us(gap_take(&running)));
			next += timer_hz;
			if (next <= now)
				next = now + timer_hz;
			if (virtio_status(&nic.dev) & VIRTIO_S_NEEDS_RESET) {
				kprintf("%s: the NIC needs a reset (device error)\n", me);
				return EXIT_DEVICE;
			}
		}
		if (secs && now - start >= secs * timer_hz)
			break;
		cpu_relax();
	}
	vnet_tx_reclaim(&nic);
	const struct tcp_echo_stats *ts = tcp_echo_stats();
	gap_take(&running);
	kprintf("%s: done arp=%lu icmp=%lu udp=%lu other=%lu announce=%lu rx=%lu tx=%lu txdrop=%lu tcp=%lu tcp_conns=%lu tcp_echoed=%lu tcp_retransmits=%lu worstgap_us=%lu\n",
		me, n_arp, n_icmp, n_udp, n_other, n_announce, nic.rx_packets, nic.tx_packets, n_txdrop,
		ts->segs_in, ts->conns, ts->bytes_echoed, ts->retransmits, tsc_to_us(running.max_all));
	return EXIT_OK;
}
