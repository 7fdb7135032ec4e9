/* virtio-net: MAC parsing and derivation, --net/--disk spec parsing, TAP open errors, and
 * (as root, inside a private network namespace) a real TAP: transmit, receive, receive
 * with no buffers posted, the announce handshake over the control queue. No KVM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "devices/virtio_devices.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/layout.h"
#include "hv/parse.h"
#include "virtio_driver.h"

#define ETH_TEST 0x88b5 /* IEEE local experimental ethertype */
#define SLOT 8
#define QSZ 16
#define RXBUF 2048

static bool have_netns; /* root and a private network namespace: real TAP tests run */

static void test_parse_mac(void **state)
{
	uint8_t m[6];

	assert_int_equal(parse_mac("52:54:00:12:34:56", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }), 6);
	assert_int_equal(parse_mac("02-AB-cd-EF-00-01", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 0x02, 0xab, 0xcd, 0xef, 0x00, 0x01 }), 6);
	static const char *bad[] = {
		"", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5g", "5254:00:12:34:56:",
		"52 54 00 12 34 56", "01:00:5e:00:00:01" /* multicast */, "ff:ff:ff:ff:ff:ff",
		"00:00:00:00:00:00", "52:54:00:12:34:56 ", "+2:54:00:12:34:56",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_mac(bad[i], m) == 0)
			fail_msg("'%s' was accepted", bad[i]);
	char text[18];
	format_mac((uint8_t[]){ 0x52, 0x54, 0, 0xa, 0xb, 0xc }, text);
	assert_string_equal(text, "52:54:00:0a:0b:0c");
}

static void test_default_mac(void **state)
{
	const char *u1 = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", *u2 = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1";
	uint8_t a[6], b[6], c[6], d[6];

	virtio_net_default_mac(u1, 0, a);
	virtio_net_default_mac(u1, 0, b);
	virtio_net_default_mac(u1, 1, c);
	virtio_net_default_mac(u2, 0, d);
	assert_memory_equal(a, b, 6); /* stable */
	assert_memory_not_equal(a, c, 6);
	assert_memory_not_equal(a, d, 6);
	assert_int_equal(a[0], 0x52);
	assert_int_equal(a[1], 0x54);
	assert_int_equal(a[2], 0x00);
	assert_int_equal(a[0] & 1, 0); /* unicast */
	assert_int_equal(a[0] & 2, 2); /* locally administered */
	char text[18];
	format_mac(a, text);
	assert_int_equal(parse_mac(text, b), 0);
	assert_memory_equal(a, b, 6);
}

static void test_parse_specs(void **state)
{
	struct nic_spec n;
	struct disk_spec d;

	assert_int_equal(virtio_devices_parse_net("tap=tap0", &n), 0);
	assert_string_equal(n.tap, "tap0");
	assert_false(n.has_mac);
	assert_int_equal(virtio_devices_parse_net("tap=hv1,mac=52:54:00:aa:bb:cc", &n), 0);
	assert_string_equal(n.tap, "hv1");
	assert_true(n.has_mac);
	assert_int_equal(n.mac[5], 0xcc);
	assert_int_equal(virtio_devices_parse_net("mac=52:54:00:aa:bb:cc,tap=x", &n), 0);
	assert_string_equal(n.tap, "x");
	assert_int_equal(virtio_devices_parse_net("", &n), -1);
	assert_int_equal(virtio_devices_parse_net("tap=", &n), -1);
	assert_int_equal(virtio_devices_parse_net("mac=52:54:00:aa:bb:cc", &n), -1);
	assert_int_equal(virtio_devices_parse_net("tap=x,mac=zz", &n), -1);
	assert_int_equal(virtio_devices_parse_net("tap=x,vhost=on", &n), -1);
	assert_int_equal(virtio_devices_parse_net("tap=averyveryverylongname", &n), -1);
	assert_int_equal(virtio_devices_parse_net("tap0", &n), -1);

	assert_int_equal(virtio_devices_parse_disk("/tmp/a.img", &d), 0);
	assert_string_equal(d.path, "/tmp/a.img");
	assert_false(d.ro);
	assert_int_equal(virtio_devices_parse_disk("/tmp/a.img,ro", &d), 0);
	assert_string_equal(d.path, "/tmp/a.img");
	assert_true(d.ro);
	assert_int_equal(virtio_devices_parse_disk("/tmp/a,b.img,rw", &d), 0);
	assert_string_equal(d.path, "/tmp/a,b.img");
	assert_false(d.ro);
	assert_int_equal(virtio_devices_parse_disk("/tmp/x,ro,ro", &d), 0);
	assert_string_equal(d.path, "/tmp/x,ro");
	assert_int_equal(virtio_devices_parse_disk(",ro", &d), -1);
	assert_int_equal(virtio_devices_parse_disk("", &d), -1);
}

static void test_tap_open_errors(void **state)
{
	assert_int_equal(virtio_net_tap_open("averyveryverylongname", VIRTIO_NET_TUN_PATH), -1);
	assert_int_equal(virtio_net_tap_open("a/b", VIRTIO_NET_TUN_PATH), -1);
	assert_int_equal(virtio_net_tap_open("a b", VIRTIO_NET_TUN_PATH), -1);
	assert_int_equal(virtio_net_tap_open("", VIRTIO_NET_TUN_PATH), -1);
	assert_int_equal(virtio_net_tap_open("..", VIRTIO_NET_TUN_PATH), -1);
	/* No tun device node (as in a container without /dev/net/tun). */
	assert_int_equal(virtio_net_tap_open("hvt0", "/nonexistent/tun"), -1);
	/* A device node that is not the tun device. */
	assert_int_equal(virtio_net_tap_open("hvt0", "/dev/null"), -1);
	if (have_netns) /* an interface that exists but is not a TAP */
		assert_int_equal(virtio_net_tap_open("lo", VIRTIO_NET_TUN_PATH), -1);
}

/* ---- a real TAP, inside the test's own network namespace ---- */

struct fixture {
	struct vm *vm;
	struct pci_bus *bus;
	struct virtio_net *net;
	struct vdrv d;
	char ifname[16];
	int pkt; /* AF_PACKET socket on the TAP interface */
	int ifindex;
	uint8_t mac[6];
	uint64_t rxbuf[QSZ];
	int rx_posted;
};

static int setup_tap(void **state)
{
	if (!have_netns) {
		*state = NULL;
		return 0;
	}
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->ifname, sizeof(f->ifname), "hvt%d", (int)getpid() % 100000);
	memcpy(f->mac, (uint8_t[]){ 0x52, 0x54, 0x00, 0x01, 0x02, 0x03 }, 6);
	f->vm = fake_vm_create(32 * MiB);
	f->bus = pci_bus_create(f->vm);
	f->net = virtio_net_create(f->bus, SLOT, f->ifname, f->mac);
	if (!f->net)
		return -1;
	f->ifindex = (int)if_nametoindex(f->ifname);
	f->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_TEST));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST),
				   .sll_ifindex = f->ifindex };
	if (f->ifindex <= 0 || f->pkt < 0 || bind(f->pkt, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown_tap(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	virtio_net_destroy(f->net);
	pci_bus_destroy(f->bus);
	fake_vm_destroy(f->vm);
	close(f->pkt);
	free(f);
	return 0;
}

static void net_up(struct fixture *f, uint64_t features)
{
	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	assert_true(vdrv_negotiate(&f->d, features));
	vdrv_enable_msix(&f->d, 4);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	vdrv_setup_queue(&f->d, VIRTIO_NET_RXQ, QSZ, 1);
	vdrv_setup_queue(&f->d, VIRTIO_NET_TXQ, QSZ, 2);
	vdrv_setup_queue(&f->d, VIRTIO_NET_CTRLQ, QSZ, 3);
	vdrv_driver_ok(&f->d);
}

static void post_rx(struct fixture *f, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t b = vdrv_alloc(&f->d, RXBUF, 4096);
		memset(vdrv_ptr(&f->d, b, RXBUF), 0xcc, RXBUF);
		struct vdrv_seg seg = { b, RXBUF, true };
		uint16_t head = vdrv_add(&f->d, VIRTIO_NET_RXQ, &seg, 1);
		f->rxbuf[head] = b;
		f->rx_posted++;
	}
	vdrv_kick(&f->d, VIRTIO_NET_RXQ);
}

static size_t make_frame(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6], const char *payload)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = ETH_TEST >> 8;
	buf[13] = ETH_TEST & 0xff;
	size_t n = strlen(payload);
	memcpy(buf + 14, payload, n);
	/* Pad to the Ethernet minimum. */
	size_t len = 14 + n < 60 ? 60 : 14 + n;
	memset(buf + 14 + n, 0, len - 14 - n);
	return len;
}

static void host_send(struct fixture *f, const char *payload)
{
	uint8_t frame[128];
	uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x99 };
	size_t len = make_frame(frame, f->mac, src, payload);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST),
				   .sll_ifindex = f->ifindex, .sll_halen = 6 };
	memcpy(sll.sll_addr, f->mac, 6);
	assert_int_equal(sendto(f->pkt, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll)), (ssize_t)len);
}

/* Waits for a received frame carrying `payload` in the used ring from `from` on. */
static bool guest_received(struct fixture *f, uint16_t *from, const char *payload)
{
	for (int t = 0; t < 2000; t++) {
		uint16_t used = vdrv_used_idx(&f->d, VIRTIO_NET_RXQ);
		for (; *from != used; (*from)++) {
			uint32_t id, len;
			vdrv_used_elem(&f->d, VIRTIO_NET_RXQ, *from, &id, &len);
			uint8_t *b = vdrv_ptr(&f->d, f->rxbuf[id], RXBUF);
			struct virtio_net_hdr_v1 *h = (void *)b;
			assert_int_equal(h->num_buffers, 1);
			assert_true(len >= VIRTIO_NET_HDR_LEN + 14 && len <= RXBUF);
			if (len >= VIRTIO_NET_HDR_LEN + 14 + strlen(payload) &&
			    !memcmp(b + VIRTIO_NET_HDR_LEN + 14, payload, strlen(payload))) {
				assert_memory_equal(b + VIRTIO_NET_HDR_LEN, f->mac, 6);
				(*from)++;
				return true;
			}
		}
		usleep(1000);
	}
	return false;
}

static void test_config_space(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	assert_int_equal(conf1_read(f->vm, SLOT, PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(conf1_read(f->vm, SLOT, PCI_CLASS_REVISION, 4) >> 8, 0x020000);
	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	uint64_t feat = vdrv_device_features(&f->d);
	assert_true(feat & (1ull << VIRTIO_NET_F_MAC));
	assert_true(feat & (1ull << VIRTIO_NET_F_STATUS));
	assert_true(feat & (1ull << VIRTIO_NET_F_CTRL_VQ));
	assert_true(feat & (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE));
	assert_false(feat & (1ull << VIRTIO_NET_F_CSUM));
	assert_false(feat & (1ull << VIRTIO_NET_F_MRG_RXBUF));
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	for (int i = 0; i < 6; i++)
		assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + (uint64_t)i, 1), f->mac[i]);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + offsetof(struct virtio_net_config, status), 2),
			 VIRTIO_NET_S_LINK_UP);
	/* The MAC is not writable through config space. */
	bus_write(&f->vm->mmio, f->d.devcfg, 4, 0);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg, 1), f->mac[0]);
}

static void test_transmit(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[128], got[256];

	if (!f)
		skip();
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC));
	/* Header and frame in separate descriptors; the header carries junk that must not
	 * reach the TAP (no offloads were negotiated). */
	uint64_t hdr = vdrv_alloc(&f->d, VIRTIO_NET_HDR_LEN, 16);
	uint64_t buf = vdrv_alloc(&f->d, 128, 16);
	memset(vdrv_ptr(&f->d, hdr, VIRTIO_NET_HDR_LEN), 0xff, VIRTIO_NET_HDR_LEN);
	uint8_t dst[6] = { 0x02, 0, 0, 0, 0, 0x99 };
	size_t len = make_frame(frame, dst, f->mac, "hello-from-guest");
	memcpy(vdrv_ptr(&f->d, buf, len), frame, len);
	struct vdrv_seg segs[] = { { hdr, VIRTIO_NET_HDR_LEN, false }, { buf, (uint32_t)len, false } };
	vdrv_add(&f->d, VIRTIO_NET_TXQ, segs, 2);
	vdrv_kick(&f->d, VIRTIO_NET_TXQ);
	assert_true(vdrv_wait_used(&f->d, VIRTIO_NET_TXQ, 1));
	assert_true(eventfd_wait(pci_msix_eventfd(virtio_pci_pci(virtio_net_transport(f->net)), 2), 1000));
	struct timeval tv = { 2, 0 };
	setsockopt(f->pkt, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n;
	do {
		n = recv(f->pkt, got, sizeof(got), 0);
	} while (n > 0 && memcmp(got + 14, "hello-from-guest", 16));
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(got, frame, len);
	/* A packet shorter than the header is a driver bug: NEEDS_RESET. */
	struct vdrv_seg shortseg = { hdr, 4, false };
	vdrv_add(&f->d, VIRTIO_NET_TXQ, &shortseg, 1);
	vdrv_kick(&f->d, VIRTIO_NET_TXQ);
	assert_true(vdrv_wait_used(&f->d, VIRTIO_NET_TXQ, 2));
	assert_true(virtio_pci_needs_reset(virtio_net_transport(f->net)));
}

static void test_receive(void **state)
{
	struct fixture *f = *state;
	uint16_t seen = 0;

	if (!f)
		skip();
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) |
			  (1ull << VIRTIO_RING_F_EVENT_IDX));
	post_rx(f, 8);
	host_send(f, "hello-to-guest-1");
	assert_true(guest_received(f, &seen, "hello-to-guest-1"));
	host_send(f, "hello-to-guest-2");
	assert_true(guest_received(f, &seen, "hello-to-guest-2"));
	assert_false(virtio_pci_needs_reset(virtio_net_transport(f->net)));
}

static void test_receive_waits_for_buffers(void **state)
{
	struct fixture *f = *state;
	uint16_t seen = 0;

	if (!f)
		skip();
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC));
	/* No buffers: the frame waits in the TAP's queue, nothing is touched. */
	host_send(f, "early-frame");
	usleep(50000);
	assert_int_equal(vdrv_used_idx(&f->d, VIRTIO_NET_RXQ), 0);
	assert_false(virtio_pci_needs_reset(virtio_net_transport(f->net)));
	/* Buffers arrive: so does the frame. */
	post_rx(f, 4);
	assert_true(guest_received(f, &seen, "early-frame"));
	/* Use up every buffer, then one more frame waits until a buffer is posted again. */
	while (f->rx_posted - seen > 0) {
		char p[32];
		snprintf(p, sizeof(p), "fill-%d", seen);
		host_send(f, p);
		assert_true(guest_received(f, &seen, p));
	}
	host_send(f, "late-frame");
	usleep(50000);
	assert_int_equal(vdrv_used_idx(&f->d, VIRTIO_NET_RXQ), seen);
	post_rx(f, 1);
	assert_true(guest_received(f, &seen, "late-frame"));
}

static uint8_t ctrl(struct fixture *f, uint8_t class, uint8_t cmd)
{
	uint64_t h = vdrv_alloc(&f->d, 2, 2), ack = vdrv_alloc(&f->d, 1, 1);
	uint8_t *hp = vdrv_ptr(&f->d, h, 2);
	hp[0] = class;
	hp[1] = cmd;
	*(uint8_t *)vdrv_ptr(&f->d, ack, 1) = 0xee;
	struct vdrv_seg segs[] = { { h, 2, false }, { ack, 1, true } };
	uint16_t want = (uint16_t)(vdrv_used_idx(&f->d, VIRTIO_NET_CTRLQ) + 1);
	vdrv_add(&f->d, VIRTIO_NET_CTRLQ, segs, 2);
	vdrv_kick(&f->d, VIRTIO_NET_CTRLQ);
	assert_true(vdrv_wait_used(&f->d, VIRTIO_NET_CTRLQ, want));
	return *(uint8_t *)vdrv_ptr(&f->d, ack, 1);
}

static void test_announce(void **state)
{
	struct fixture *f = *state;
	uint64_t status = offsetof(struct virtio_net_config, status);

	if (!f)
		skip();
	/* Not negotiated: announce says so and changes nothing. */
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_STATUS));
	assert_false(virtio_net_announce(f->net));
	f->d.next_buf = 0x100000;
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_STATUS) |
			  (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE));
	int cfg_irq = pci_msix_eventfd(virtio_pci_pci(virtio_net_transport(f->net)), 0);
	uint8_t gen = (uint8_t)vdrv_rd(&f->d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	assert_true(virtio_net_announce(f->net));
	assert_true(eventfd_wait(cfg_irq, 1000));
	assert_int_not_equal((uint8_t)vdrv_rd(&f->d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), gen);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + status, 2),
			 VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	/* The guest acknowledges over the control queue. */
	assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK), VIRTIO_NET_OK);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + status, 2), VIRTIO_NET_S_LINK_UP);
	/* Anything else is refused. */
	assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC), VIRTIO_NET_ERR);

	/* State: MAC and status travel. */
	struct virtio_net_state st;
	virtio_net_get_state(f->net, &st);
	assert_memory_equal(st.mac, f->mac, 6);
	st.mac[5] ^= 0xff;
	assert_int_equal(virtio_net_set_state(f->net, &st), 0);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + 5, 1), f->mac[5] ^ 0xff);
	/* A host-side announcement frame goes out of the TAP. */
	uint8_t frame[64];
	uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	size_t len = make_frame(frame, bcast, st.mac, "rarp");
	assert_int_equal(virtio_net_send_to_host(f->net, frame, len), 0);
}

/* The guest sends one frame (header and frame in one descriptor) and the device takes it. */
static void guest_send(struct fixture *f, const uint8_t *frame, size_t len, uint16_t *sent)
{
	uint64_t b = vdrv_alloc(&f->d, VIRTIO_NET_HDR_LEN + len, 16);
	memset(vdrv_ptr(&f->d, b, VIRTIO_NET_HDR_LEN), 0, VIRTIO_NET_HDR_LEN);
	memcpy(vdrv_ptr(&f->d, b + VIRTIO_NET_HDR_LEN, len), frame, len);
	struct vdrv_seg seg = { b, (uint32_t)(VIRTIO_NET_HDR_LEN + len), false };
	vdrv_add(&f->d, VIRTIO_NET_TXQ, &seg, 1);
	vdrv_kick(&f->d, VIRTIO_NET_TXQ);
	assert_true(vdrv_wait_used(&f->d, VIRTIO_NET_TXQ, ++*sent));
}

/* An ARP request from the guest's MAC: "who has target? tell sender". */
static size_t guest_arp(uint8_t *f, const uint8_t mac[6], const char *sender, const char *target)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x08, f[13] = 0x06, f[15] = 1, f[16] = 0x08, f[18] = 6, f[19] = 4, f[21] = 1;
	memcpy(f + 22, mac, 6);
	assert_int_equal(inet_pton(AF_INET, sender, f + 28), 1);
	assert_int_equal(inet_pton(AF_INET, target, f + 38), 1);
	return 60;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Announcement frames leaving the TAP within `ms`: RARP ones and gratuitous ARPs for
 * `ip`, with the arrival time of each (at most 16). */
struct seen {
	int rarp, garp, other;
	uint64_t at[16];
	int n;
};

static void capture(int sock, const uint8_t mac[6], uint32_t ip, unsigned ms, int want, struct seen *s)
{
	uint8_t fr[256];
	uint64_t end = now_ms() + ms;

	memset(s, 0, sizeof(*s));
	while (now_ms() < end && s->rarp + s->garp < want) {
		struct timeval tv = { 0, 20000 };
		setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = recv(sock, fr, sizeof(fr), 0);
		if (n < 42 || memcmp(fr + 6, mac, 6))
			continue;
		bool rarp = fr[12] == 0x80 && fr[13] == 0x35 && fr[21] == 3 && !memcmp(fr + 22, mac, 6) &&
			    !memcmp(fr + 32, mac, 6);
		bool garp = fr[12] == 0x08 && fr[13] == 0x06 && fr[21] == 1 && !memcmp(fr + 22, mac, 6) &&
			    !memcmp(fr + 28, &ip, 4) && !memcmp(fr + 38, &ip, 4);
		if (rarp && s->n < 16)
			s->at[s->n++] = now_ms();
		s->rarp += rarp;
		s->garp += garp;
		s->other += !rarp && !garp && fr[12] != 0x08; /* the guest's own ARP is not one */
	}
}

/* After a migration the device tells the network where the guest is: RARP from its MAC
 * and a gratuitous ARP for the address it learned from the guest's traffic, in rounds with
 * growing gaps, and a request to the guest's driver; each of these can be switched off;
 * a device being paused (the guest leaving again) announces nothing more. */
static void test_announce_rounds(void **state)
{
	struct fixture *f = *state;
	uint64_t status = offsetof(struct virtio_net_config, status);
	uint8_t frame[64];
	uint16_t sent = 0;
	uint32_t ip;
	struct seen s;

	if (!f)
		skip();
	int all = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = f->ifindex };
	assert_true(all >= 0);
	assert_int_equal(bind(all, (struct sockaddr *)&sll, sizeof(sll)), 0);
	net_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_STATUS) |
			  (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE));

	/* Nothing learned from another MAC's frame, a broadcast or a multicast sender. */
	uint8_t other[6] = { 0x02, 0, 0, 0, 0, 0x42 };
	guest_send(f, frame, guest_arp(frame, other, "10.9.9.9", "10.9.9.1"), &sent);
	guest_send(f, frame, guest_arp(frame, f->mac, "255.255.255.255", "10.9.9.1"), &sent);
	guest_send(f, frame, guest_arp(frame, f->mac, "224.0.0.5", "10.9.9.1"), &sent);
	struct virtio_net_state st;
	virtio_net_get_state(f->net, &st);
	assert_int_equal(st.guest_ip, 0);
	/* The guest's own ARP names its address. */
	guest_send(f, frame, guest_arp(frame, f->mac, "10.1.2.3", "10.1.2.1"), &sent);
	virtio_net_get_state(f->net, &st);
	assert_int_equal(inet_pton(AF_INET, "10.1.2.3", &ip), 1);
	assert_int_equal(st.guest_ip, ip);

	/* Three rounds, 20 ms more gap each: at 0, 50 and 120 ms. */
	uint64_t t0 = now_ms();
	virtio_net_state_ops.announce(f->net, &(struct dev_announce){ .rounds = 3, .step_ms = 20, .guest = true });
	capture(all, f->mac, ip, 3000, 6, &s);
	assert_int_equal(s.rarp, 3);
	assert_int_equal(s.garp, 3);
	assert_int_equal(s.other, 0);
	for (int i = 0; i < 100 && virtio_net_announced(f->net) < 6; i++)
		usleep(10000); /* counted just after the frames go */
	assert_int_equal(virtio_net_announced(f->net), 6);
	assert_true(s.at[1] - t0 >= 50);
	assert_true(s.at[2] - s.at[1] >= 65); /* 70 ms, less the clock's rounding */
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + status, 2), VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK), VIRTIO_NET_OK);
	capture(all, f->mac, ip, 300, 1, &s);
	assert_int_equal(s.rarp + s.garp, 0); /* three rounds were asked for, no more */

	/* Switched off: no frame, and the guest is not asked. */
	virtio_net_state_ops.announce(f->net, &(struct dev_announce){ .rounds = 0, .guest = false });
	capture(all, f->mac, ip, 300, 1, &s);
	assert_int_equal(s.rarp + s.garp, 0);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.devcfg + status, 2), VIRTIO_NET_S_LINK_UP);

	/* Leaving again: the rounds stop with the device's pause. */
	virtio_net_state_ops.announce(f->net, &(struct dev_announce){ .rounds = 5, .step_ms = 10, .guest = false });
	virtio_net_state_ops.pause(f->net);
	capture(all, f->mac, ip, 400, 10, &s);
	assert_int_equal(s.rarp, 1); /* the first round, sent at once; the other four never */
	assert_int_equal(s.garp, 1);
	virtio_net_state_ops.resume(f->net);
	close(all);
}

static void test_tap_busy(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	/* Only one open of a (single-queue) TAP at a time. */
	assert_int_equal(virtio_net_tap_open(f->ifname, VIRTIO_NET_TUN_PATH), -1);
}

int main(void)
{
	/* Real TAP tests need root; they run in a network namespace of their own, so no
	 * frame reaches the host's networks and the TAP vanishes with the process. */
	if (geteuid() == 0 && access(VIRTIO_NET_TUN_PATH, R_OK | W_OK) == 0 && unshare(CLONE_NEWNET) == 0)
		have_netns = true;
	else
		fprintf(stderr, "test_virtio_net: not root or no %s: TAP tests are skipped\n",
			VIRTIO_NET_TUN_PATH);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mac),
		cmocka_unit_test(test_default_mac),
		cmocka_unit_test(test_parse_specs),
		cmocka_unit_test(test_tap_open_errors),
		cmocka_unit_test_setup_teardown(test_config_space, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_transmit, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_receive, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_receive_waits_for_buffers, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_announce, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_announce_rounds, setup_tap, teardown_tap),
		cmocka_unit_test_setup_teardown(test_tap_busy, setup_tap, teardown_tap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
