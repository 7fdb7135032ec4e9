/* virtio-net: guest packets go to a TAP, TAP packets come to the guest. See virtio_net.h. */
#include "devices/virtio_net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/parse.h"
#include "hv/state_enc.h"

#define NET_CONFIG_SIZE (offsetof(struct virtio_net_config, mtu) + 2)
#define RX_BATCH 64 /* packets between interrupt decisions */

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header");

struct virtio_net {
	struct virtio_pci *vp;
	int tap_fd;
	char ifname[IFNAMSIZ];
	pthread_mutex_t cfg_lock; /* mac, status, guest_ip, the announcement schedule */
	uint8_t mac[6];
	uint16_t status;
	uint32_t guest_ip; /* IPv4 (network order) the guest sends from; 0 until seen */
	/* Host-side announcements still to send, the gap before the next one, its growth. */
	unsigned ann_left, ann_gap_ms, ann_step_ms;
	uint64_t ann_frames; /* frames announced so far (RARP and gratuitous ARP) */
	int ann_timer;       /* timerfd on the TX thread: the next round */
	int stop_fd;
	pthread_t rx_thread, tx_thread;
	bool rx_started, tx_started;
	bool tx_error_logged;
	bool tap_broken; /* reads fail for good (the interface was deleted): stop polling it */
	struct virtq_chain rx_chain, tx_chain, ctrl_chain; /* each under its queue's lock */
};

/* ---- MAC addresses ---- */

void virtio_net_default_mac(const char *uuid, int index, uint8_t mac[6])
{
	uuid_t id;
	uint32_t h = 2166136261u; /* FNV-1a */

	if (uuid_parse(uuid, id) == 0) {
		for (int i = 0; i < 16; i++)
			h = (h ^ id[i]) * 16777619u;
	} else {
		for (const char *p = uuid; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
	}
	h = (h ^ (uint32_t)index) * 16777619u;
	/* 0x52: unicast, locally administered (the QEMU/KVM convention). */
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

/* ---- the TAP ---- */

static bool ifname_ok(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) || !isprint((unsigned char)*p))
			return false;
	return true;
}

static void bring_up(const char *ifname)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			hv_debug("cannot bring TAP %s up: %s", ifname, strerror(errno));
	}
	close(s);
}

int virtio_net_tap_open(const char *ifname, const char *tun_path)
{
	size_t len = strlen(ifname);

	if (len >= IFNAMSIZ) {
		hv_error("TAP name '%s' is too long: at most %d characters", ifname, IFNAMSIZ - 1);
		return -1;
	}
	if (!ifname_ok(ifname)) {
		hv_error("TAP name '%s' is not a valid interface name; use e.g. --net tap=tap0", ifname);
		return -1;
	}
	int fd = open(tun_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT || err == ENODEV || err == ENXIO)
			hv_error("%s does not exist: load the tun module (modprobe tun) to use --net tap=%s",
				 tun_path, ifname);
		else if (err == EACCES || err == EPERM)
			hv_error("cannot open %s: permission denied; run hvctl as root or with CAP_NET_ADMIN for --net tap=%s",
				 tun_path, ifname);
		else
			hv_error("cannot open %s for --net tap=%s: %s", tun_path, ifname, strerror(err));
		return -1;
	}
	bool existed = if_nametoindex(ifname) != 0;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, len);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = errno;
		if (err == EPERM && existed)
			hv_error("cannot attach to TAP '%s': permission denied; run as root or recreate it for this user (ip tuntap add dev %s mode tap user $USER)",
				 ifname, ifname);
		else if (err == EPERM)
			hv_error("cannot create TAP '%s': permission denied (needs CAP_NET_ADMIN); run as root or create it first (ip tuntap add dev %s mode tap user $USER)",
				 ifname, ifname);
		else if (err == EBUSY)
			hv_error("TAP '%s' is already in use by another process; give each VM its own TAP", ifname);
		else if (err == ENOTTY || err == EBADFD)
			hv_error("%s is not the TUN/TAP control device (it should be character device 10,200)",
				 tun_path);
		else if (err == EINVAL && existed)
			hv_error("network interface '%s' exists but is not a TAP device; choose another name for --net tap=",
				 ifname);
		else
			hv_error("cannot create TAP '%s': %s", ifname, strerror(err));
		close(fd);
		return -1;
	}
	int hdr = VIRTIO_NET_HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		hv_error("TAP '%s' does not accept a %d-byte virtio-net header: %s", ifname, hdr,
			 strerror(errno));
		close(fd);
		return -1;
	}
	/* No offloads: the kernel hands us only complete, checksummed frames. */
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		hv_debug("TAP %s: TUNSETOFFLOAD failed: %s", ifname, strerror(errno));
	bring_up(ifname);
	return fd;
}

/* ---- receive ---- */

bool virtio_net_process_rx(struct virtio_net *n)
{
	struct virtq *q = virtio_pci_queue(n->vp, VIRTIO_NET_RXQ);
	struct virtq_chain *c = &n->rx_chain;
	bool poll_tap = false;
	int batch = 0;

	pthread_mutex_lock(&q->lock);
	virtq_disable_notify(q);
	while (virtq_active(q)) {
		int r = virtq_pop(q, c);
		if (r < 0)
			break;
		if (r == 0) {
			/* No buffers: sleep until the guest posts some (it will notify). */
			if (virtq_enable_notify(q)) {
				virtq_disable_notify(q);
				continue;
			}
			break;
		}
		if (c->in_len < VIRTIO_NET_HDR_LEN) {
			virtq_push(q, c, 0);
			virtq_fail(q, "receive buffer smaller than the virtio-net header");
			break;
		}
		ssize_t len = n->tap_broken ? -1 : readv(n->tap_fd, &c->iov[c->n_out], c->n_in);
		if (len < 0) {
			int err = n->tap_broken ? EIO : errno;
			virtq_unpop(q);
			if (err == EINTR)
				continue;
			if (err == EAGAIN) {
				poll_tap = true;
			} else if (!n->tap_broken) {
				/* Polling a dead TAP would spin: receive stops, transmit drops. */
				n->tap_broken = true;
				hv_warn("virtio-net: reading TAP %s failed: %s; the NIC receives nothing more",
					n->ifname, strerror(err));
			}
			break;
		}
		if (len >= VIRTIO_NET_HDR_LEN) {
			uint16_t one = 1; /* num_buffers: one buffer per packet without MRG_RXBUF */
			virtq_iov_write(&c->iov[c->n_out], c->n_in,
					offsetof(struct virtio_net_hdr_v1, num_buffers), &one, sizeof(one));
		}
		virtq_push(q, c, (uint32_t)len);
		if (++batch == RX_BATCH) {
			virtio_pci_notify_used(n->vp, q);
			batch = 0;
		}
	}
	if (batch)
		virtio_pci_notify_used(n->vp, q);
	pthread_mutex_unlock(&q->lock);
	return poll_tap;
}

static void drain(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		hv_debug("virtio-net: eventfd read failed: %s", strerror(errno));
}

static void *rx_thread(void *arg)
{
	struct virtio_net *n = arg;
	struct pollfd pfd[3] = {
		{ .fd = virtio_pci_queue_eventfd(n->vp, VIRTIO_NET_RXQ), .events = POLLIN },
		{ .fd = n->stop_fd, .events = POLLIN },
		{ .fd = n->tap_fd, .events = POLLIN },
	};
	bool poll_tap = false;

	pthread_setname_np(pthread_self(), "virtio-net-rx");
	for (;;) {
		if (poll(pfd, poll_tap ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN)
			drain(pfd[0].fd);
		poll_tap = virtio_net_process_rx(n);
	}
	return NULL;
}

/* ---- transmit ---- */

static void tap_write(struct virtio_net *n, struct iovec *iov, int cnt)
{
	for (int tries = 0; tries < 100; tries++) {
		ssize_t r = writev(n->tap_fd, iov, cnt);
		if (r >= 0)
			return;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd p = { .fd = n->tap_fd, .events = POLLOUT };
			poll(&p, 1, 10);
			continue;
		}
		/* The TAP is down, or the frame is malformed: it is dropped, as a wire would. */
		if (!n->tx_error_logged) {
			n->tx_error_logged = true;
			hv_debug("virtio-net %s: dropping a frame: %s", n->ifname, strerror(errno));
		}
		return;
	}
}

/* A unicast IPv4 address a host may announce: not 0.0.0.0/8, loopback, multicast or
 * broadcast (network order in, as on the wire). */
static bool unicast_ipv4(uint32_t ip_be)
{
	uint32_t a = ntohl(ip_be);

	return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 28) < 14;
}

/* The guest's IPv4 address, from what it sends with its own MAC: an ARP's sender, or an
 * IPv4 packet's source. Only a hint for announcements (gratuitous ARP): guest memory may
 * change under the read, which is why it is only ever a unicast address. */
static void learn_guest_ip(struct virtio_net *n, const struct virtq_chain *c)
{
	uint8_t f[42];
	size_t len = c->out_len - VIRTIO_NET_HDR_LEN;
	uint32_t ip = 0;

	if (len < 34)
		return;
	virtq_iov_read(c->iov, c->n_out, VIRTIO_NET_HDR_LEN, f, len < sizeof(f) ? len : sizeof(f));
	if (memcmp(f + 6, n->mac, 6))
		return;
	if (f[12] == 0x08 && f[13] == 0x06 && len >= 42 && f[14] == 0 && f[15] == 1 && f[16] == 0x08 &&
	    f[17] == 0 && f[18] == 6 && f[19] == 4 && !memcmp(f + 22, n->mac, 6))
		memcpy(&ip, f + 28, 4); /* ARP: the sender's protocol address */
	else if (f[12] == 0x08 && f[13] == 0x00 && (f[14] >> 4) == 4)
		memcpy(&ip, f + 26, 4); /* IPv4: the source address */
	if (ip == n->guest_ip || !unicast_ipv4(ip))
		return;
	pthread_mutex_lock(&n->cfg_lock);
	n->guest_ip = ip;
	pthread_mutex_unlock(&n->cfg_lock);
}

void virtio_net_process_tx(struct virtio_net *n)
{
	struct virtq *q = virtio_pci_queue(n->vp, VIRTIO_NET_TXQ);
	struct virtq_chain *c = &n->tx_chain;
	struct iovec iov[VIRTQ_MAX_SEGS + 1];
	static const struct virtio_net_hdr_v1 zero_hdr;

	pthread_mutex_lock(&q->lock);
	while (virtq_active(q)) {
		int r;
		virtq_disable_notify(q);
		while ((r = virtq_pop(q, c)) == 1) {
			if (c->out_len < VIRTIO_NET_HDR_LEN) {
				virtq_push(q, c, 0);
				virtq_fail(q, "transmit packet shorter than the virtio-net header");
				r = -1;
				break;
			}
			/* No offloads were offered: whatever the guest put in the header is
			 * ignored, the TAP gets a clean one. */
			iov[0] = (struct iovec){ (void *)&zero_hdr, sizeof(zero_hdr) };
			int k = virtq_iov_slice(c->iov, c->n_out, VIRTIO_NET_HDR_LEN,
						c->out_len - VIRTIO_NET_HDR_LEN, &iov[1], VIRTQ_MAX_SEGS);
			learn_guest_ip(n, c);
			tap_write(n, iov, k + 1);
			virtq_push(q, c, 0);
		}
		virtio_pci_notify_used(n->vp, q);
		if (r < 0 || !virtq_enable_notify(q))
			break;
	}
	pthread_mutex_unlock(&q->lock);
}

/* ---- control queue ---- */

static uint8_t ctrl_command(struct virtio_net *n, uint8_t class, uint8_t cmd)
{
	if (class == VIRTIO_NET_CTRL_ANNOUNCE && cmd == VIRTIO_NET_CTRL_ANNOUNCE_ACK) {
		pthread_mutex_lock(&n->cfg_lock);
		n->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
		pthread_mutex_unlock(&n->cfg_lock);
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

void virtio_net_process_ctrl(struct virtio_net *n)
{
	struct virtq *q = virtio_pci_queue(n->vp, VIRTIO_NET_CTRLQ);
	struct virtq_chain *c = &n->ctrl_chain;
	struct virtio_net_ctrl_hdr hdr;

	pthread_mutex_lock(&q->lock);
	while (virtq_active(q)) {
		int r;
		virtq_disable_notify(q);
		while ((r = virtq_pop(q, c)) == 1) {
			if (c->out_len < sizeof(hdr) || c->in_len < 1) {
				virtq_push(q, c, 0);
				virtq_fail(q, "control command without header or ack byte");
				r = -1;
				break;
			}
			virtq_iov_read(c->iov, c->n_out, 0, &hdr, sizeof(hdr));
			uint8_t ack = ctrl_command(n, hdr.class, hdr.cmd);
			virtq_iov_write(&c->iov[c->n_out], c->n_in, c->in_len - 1, &ack, 1);
			virtq_push(q, c, 1);
		}
		virtio_pci_notify_used(n->vp, q);
		if (r < 0 || !virtq_enable_notify(q))
			break;
	}
	pthread_mutex_unlock(&q->lock);
}

/* ---- announcements ---- */

static void arm_ms(int timer, unsigned ms)
{
	struct itimerspec t = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 } };

	if (timerfd_settime(timer, 0, &t, NULL) < 0)
		hv_debug("virtio-net: cannot arm the announcement timer: %s", strerror(errno));
}

/* An ARP-shaped frame from the NIC's MAC to everyone: RARP "who am I" (what switches learn
 * from, QEMU's announce-self), or a gratuitous ARP request for ip (what hosts and routers
 * update their ARP caches from). */
static void announce_frame(uint8_t f[60], const uint8_t mac[6], bool rarp, uint32_t ip)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = rarp ? 0x80 : 0x08;               /* ethertype RARP (0x8035) or ARP (0x0806) */
	f[13] = rarp ? 0x35 : 0x06;
	f[14] = 0, f[15] = 1;                     /* hardware: Ethernet */
	f[16] = 0x08, f[17] = 0x00;               /* protocol: IPv4 */
	f[18] = 6, f[19] = 4;                     /* address lengths */
	f[20] = 0, f[21] = rarp ? 3 : 1;          /* op: reverse request, or request */
	memcpy(f + 22, mac, 6);                   /* sender */
	if (rarp) {
		memcpy(f + 32, mac, 6);           /* target: the same MAC */
	} else {
		memcpy(f + 28, &ip, 4);           /* sender and target: the guest's address */
		memcpy(f + 38, &ip, 4);
	}
}

/* One round: RARP, and a gratuitous ARP once the guest's address is known; then the timer
 * for the next, the gap growing each time. */
static void announce_round(struct virtio_net *n)
{
	uint8_t mac[6], f[60];
	uint32_t ip;

	pthread_mutex_lock(&n->cfg_lock);
	if (!n->ann_left) {
		pthread_mutex_unlock(&n->cfg_lock);
		return;
	}
	n->ann_left--;
	memcpy(mac, n->mac, 6);
	ip = n->guest_ip;
	unsigned gap = n->ann_gap_ms;
	bool more = n->ann_left > 0;
	n->ann_gap_ms = gap + n->ann_step_ms < DEV_ANNOUNCE_MAX_GAP_MS ? gap + n->ann_step_ms : DEV_ANNOUNCE_MAX_GAP_MS;
	pthread_mutex_unlock(&n->cfg_lock);

	announce_frame(f, mac, true, 0);
	uint64_t sent = virtio_net_send_to_host(n, f, sizeof(f)) == 0;
	if (ip) {
		announce_frame(f, mac, false, ip);
		sent += virtio_net_send_to_host(n, f, sizeof(f)) == 0;
	}
	pthread_mutex_lock(&n->cfg_lock);
	n->ann_frames += sent;
	pthread_mutex_unlock(&n->cfg_lock);
	if (more)
		arm_ms(n->ann_timer, gap);
}

static void *tx_thread(void *arg)
{
	struct virtio_net *n = arg;
	struct pollfd pfd[4] = {
		{ .fd = virtio_pci_queue_eventfd(n->vp, VIRTIO_NET_TXQ), .events = POLLIN },
		{ .fd = virtio_pci_queue_eventfd(n->vp, VIRTIO_NET_CTRLQ), .events = POLLIN },
		{ .fd = n->stop_fd, .events = POLLIN },
		{ .fd = n->ann_timer, .events = POLLIN },
	};

	pthread_setname_np(pthread_self(), "virtio-net-tx");
	for (;;) {
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[2].revents)
			break;
		if (pfd[0].revents & POLLIN) {
			drain(pfd[0].fd);
			virtio_net_process_tx(n);
		}
		if (pfd[1].revents & POLLIN) {
			drain(pfd[1].fd);
			virtio_net_process_ctrl(n);
		}
		if (pfd[3].revents & POLLIN) {
			drain(pfd[3].fd);
			announce_round(n);
		}
	}
	return NULL;
}

/* ---- device ---- */

static void net_get_config(void *dev, uint32_t offset, void *data, uint32_t len)
{
	struct virtio_net *n = dev;
	struct virtio_net_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(cfg.mac, n->mac, 6);
	cfg.status = n->status;
	pthread_mutex_unlock(&n->cfg_lock);
	cfg.max_virtqueue_pairs = 1;
	cfg.mtu = 1500;
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;

	pthread_mutex_lock(&n->cfg_lock);
	n->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
	pthread_mutex_unlock(&n->cfg_lock);
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net",
	.type = VIRTIO_ID_NET,
	.class_code = 0x020000, /* Ethernet controller */
	.features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) |
		    (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE),
	.num_queues = 3,
	.config_size = NET_CONFIG_SIZE,
	.get_config = net_get_config,
	.reset = net_reset,
};

struct virtio_net *virtio_net_create(struct pci_bus *bus, int slot, const char *ifname,
				     const uint8_t mac[6])
{
	int fd = virtio_net_tap_open(ifname, VIRTIO_NET_TUN_PATH);

	return fd < 0 ? NULL : virtio_net_create_fd(bus, slot, ifname, fd, mac);
}

struct virtio_net *virtio_net_create_fd(struct pci_bus *bus, int slot, const char *ifname, int fd,
					const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));

	if (!n) {
		hv_error("virtio-net: out of memory");
		close(fd);
		return NULL;
	}
	n->tap_fd = fd;
	n->stop_fd = -1;
	n->ann_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	pthread_mutex_init(&n->cfg_lock, NULL);
	memcpy(n->mac, mac, 6);
	n->status = VIRTIO_NET_S_LINK_UP;
	snprintf(n->ifname, sizeof(n->ifname), "%s", ifname);
	n->vp = virtio_pci_create(bus, slot, &net_ops, n, 0);
	if (!n->vp)
		goto fail;
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0 || n->ann_timer < 0 || pthread_create(&n->rx_thread, NULL, rx_thread, n) != 0) {
		hv_error("virtio-net: cannot start the I/O threads for TAP %s", ifname);
		goto fail;
	}
	n->rx_started = true;
	if (pthread_create(&n->tx_thread, NULL, tx_thread, n) != 0) {
		hv_error("virtio-net: cannot start the I/O threads for TAP %s", ifname);
		goto fail;
	}
	n->tx_started = true;
	return n;
fail:
	virtio_net_destroy(n);
	return NULL;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	if (n->rx_started || n->tx_started) {
		uint64_t one = 1;
		if (write(n->stop_fd, &one, sizeof(one)) < 0)
			hv_debug("virtio-net: stop write failed");
	}
	if (n->rx_started)
		pthread_join(n->rx_thread, NULL);
	if (n->tx_started)
		pthread_join(n->tx_thread, NULL);
	virtio_pci_destroy(n->vp);
	if (n->stop_fd >= 0)
		close(n->stop_fd);
	if (n->ann_timer >= 0)
		close(n->ann_timer);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	pthread_mutex_destroy(&n->cfg_lock);
	free(n);
}

struct virtio_pci *virtio_net_transport(struct virtio_net *n)
{
	return n->vp;
}

void virtio_net_get_mac(const struct virtio_net *n, uint8_t mac[6])
{
	memcpy(mac, n->mac, 6);
}

bool virtio_net_announce(struct virtio_net *n)
{
	if (!(virtio_pci_driver_features(n->vp) & (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE)))
		return false;
	pthread_mutex_lock(&n->cfg_lock);
	n->status |= VIRTIO_NET_S_ANNOUNCE;
	pthread_mutex_unlock(&n->cfg_lock);
	virtio_pci_config_changed(n->vp);
	return true;
}

int virtio_net_send_to_host(struct virtio_net *n, const void *frame, size_t len)
{
	static const struct virtio_net_hdr_v1 zero_hdr;
	struct iovec iov[2] = { { (void *)&zero_hdr, sizeof(zero_hdr) }, { (void *)frame, len } };

	return writev(n->tap_fd, iov, 2) < 0 ? -errno : 0;
}

void virtio_net_get_state(struct virtio_net *n, struct virtio_net_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(st->mac, n->mac, 6);
	st->status = n->status;
	st->guest_ip = n->guest_ip;
	pthread_mutex_unlock(&n->cfg_lock);
}

uint64_t virtio_net_announced(struct virtio_net *n)
{
	pthread_mutex_lock(&n->cfg_lock);
	uint64_t v = n->ann_frames;
	pthread_mutex_unlock(&n->cfg_lock);
	return v;
}

int virtio_net_set_state(struct virtio_net *n, const struct virtio_net_state *st)
{
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(n->mac, st->mac, 6);
	n->status = st->status & (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	n->guest_ip = unicast_ipv4(st->guest_ip) ? st->guest_ip : 0;
	pthread_mutex_unlock(&n->cfg_lock);
	return 0;
}

/* ---- saved state (dev_state.h) ---- */

enum {
	NET_SEC_NIC = VIRTIO_PCI_SEC_DEVICE, /* 6 bytes MAC, u16 status */
	NET_SEC_ADDR,                        /* u32: the guest's IPv4 address, network order; 0 none */
};

static int net_save(void *dev, struct state_out *o)
{
	struct virtio_net *n = dev;
	struct virtio_net_state st;

	virtio_pci_save(n->vp, o);
	virtio_net_get_state(n, &st);
	state_out_begin(o, NET_SEC_NIC);
	state_out_bytes(o, st.mac, sizeof(st.mac));
	state_out_u16(o, st.status);
	state_out_end(o);
	state_out_begin(o, NET_SEC_ADDR);
	state_out_bytes(o, &st.guest_ip, sizeof(st.guest_ip));
	state_out_end(o);
	return state_out_error(o);
}

static int net_decode_own(void *ctx, struct state_sec *s, char *err, size_t errlen)
{
	struct virtio_net_state *st = ctx;

	if (s->id == NET_SEC_ADDR) {
		state_sec_bytes(s, &st->guest_ip, sizeof(st->guest_ip));
		if (state_sec_end(s, "virtio-net address", err, errlen) < 0)
			return -1;
		if (st->guest_ip && !unicast_ipv4(st->guest_ip)) {
			snprintf(err, errlen, "virtio-net address: the saved guest address is not a unicast IPv4 address");
			return -1;
		}
		return 0;
	}
	state_sec_bytes(s, st->mac, sizeof(st->mac));
	st->status = state_sec_u16(s);
	if (state_sec_end(s, "virtio-net NIC", err, errlen) < 0)
		return -1;
	if (st->mac[0] & 1) {
		snprintf(err, errlen, "virtio-net NIC: saved MAC is a multicast address");
		return -1;
	}
	return 0;
}

static int net_load(void *dev, const void *blob, size_t len, char *err, size_t errlen)
{
	struct virtio_net *n = dev;
	struct virtio_pci_state *tr = malloc(sizeof(*tr));
	struct virtio_net_state st = { 0 };
	int r = -1;

	if (!tr) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (virtio_pci_decode(n->vp, blob, len, tr, net_decode_own, &st, 1ull << NET_SEC_NIC | 1ull << NET_SEC_ADDR, err,
			      errlen) < 0)
		goto out;
	/* The transport first: it validates before it applies; the NIC's part cannot fail. */
	hv_clear_error();
	if (virtio_pci_set_state(n->vp, tr) < 0 || virtio_net_set_state(n, &st) < 0) {
		snprintf(err, errlen, "%s", hv_last_error());
		goto out;
	}
	r = 0;
out:
	free(tr);
	return r;
}

static void net_describe(void *dev, struct dev_desc *d)
{
	struct virtio_net *n = dev;
	uint8_t mac[6];
	char text[18];

	d->str(d, "tap", n->ifname);
	virtio_net_get_mac(n, mac);
	format_mac(mac, text);
	d->str(d, "mac", text);
}

/* After a migration or a restore: the first round of host-side announcements now (the
 * others on the TX thread's timer), and the request to the guest's driver. */
static void net_announce(void *dev, const struct dev_announce *a)
{
	struct virtio_net *n = dev;

	pthread_mutex_lock(&n->cfg_lock);
	n->ann_left = a->rounds < DEV_ANNOUNCE_MAX_ROUNDS ? a->rounds : DEV_ANNOUNCE_MAX_ROUNDS;
	n->ann_gap_ms = DEV_ANNOUNCE_FIRST_GAP_MS;
	n->ann_step_ms = a->step_ms < DEV_ANNOUNCE_MAX_STEP_MS ? a->step_ms : DEV_ANNOUNCE_MAX_STEP_MS;
	pthread_mutex_unlock(&n->cfg_lock);
	announce_round(n);
	if (a->guest)
		virtio_net_announce(n);
}

static void net_pause(void *dev)
{
	struct virtio_net *n = dev;

	/* A guest on its way out announces nothing more from here. */
	pthread_mutex_lock(&n->cfg_lock);
	n->ann_left = 0;
	pthread_mutex_unlock(&n->cfg_lock);
	virtio_pci_pause(n->vp);
}

static void net_resume(void *dev)
{
	virtio_pci_resume(((struct virtio_net *)dev)->vp);
}

const struct dev_state_ops virtio_net_state_ops = {
	.type = "virtio-net",
	.version = 3, /* 3: the guest's address */
	.save = net_save,
	.load = net_load,
	.describe = net_describe,
	.pause = net_pause,
	.resume = net_resume,
	.announce = net_announce,
};
