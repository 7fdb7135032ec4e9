/* hv-guest: virtio-net driver (see virtio_net.h). */
#include "virtio_net.h"

#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "time.h"

#define RXQ 0
#define TXQ 1
#define CTRLQ 2
#define CTRL_ANNOUNCE 3     /* VIRTIO_NET_CTRL_ANNOUNCE */
#define CTRL_ANNOUNCE_ACK 0 /* VIRTIO_NET_CTRL_ANNOUNCE_ACK */
#define QSIZE 256

/* virtio_net_config offsets. */
#define CFG_MAC 0
#define CFG_STATUS 6

static void post_rx(struct vnet *n, uint16_t i)
{
	struct vq_buf in = { n->rxbuf + (uint64_t)i * VNET_BUF_SIZE, VNET_BUF_SIZE };

	vq_add(&n->dev.vq[RXQ], NULL, 0, &in, 1, i);
}

int vnet_init(struct vnet *n, int index)
{
	uint8_t *rx = n->rxbuf, *tx = n->txbuf;

	/* Keep the device structure (its ring memory) and the buffers across re-inits. */
	n->rx_pending = 0;
	n->rx_packets = n->tx_packets = n->rx_bad = 0;
	int r = virtio_probe(&n->dev, VIRTIO_DEV_NET, index, "virtio-net");
	if (r < 0)
		return r;
	uint64_t want = 1ULL << VNET_F_MAC | 1ULL << VNET_F_STATUS;
	if (n->want_announce)
		want |= 1ULL << VNET_F_CTRL_VQ | 1ULL << VNET_F_GUEST_ANNOUNCE;
	if (virtio_begin(&n->dev, want) < 0)
		return -2;
	/* GUEST_ANNOUNCE works through the control queue: both or neither. */
	n->announce = (n->dev.features & (1ULL << VNET_F_CTRL_VQ)) &&
		      (n->dev.features & (1ULL << VNET_F_GUEST_ANNOUNCE));
	if (n->dev.features & (1ULL << VNET_F_MAC)) {
		for (int i = 0; i < 6; i++)
			n->mac[i] = virtio_cfg8(&n->dev, CFG_MAC + (uint32_t)i);
	} else {
		/* No MAC from the device: a fixed locally administered one. */
		static const uint8_t dflt[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
		memcpy(n->mac, dflt, 6);
	}
	n->status = (n->dev.features & (1ULL << VNET_F_STATUS)) ? virtio_cfg16(&n->dev, CFG_STATUS)
								 : VNET_S_LINK_UP;
	if (virtio_setup_vq(&n->dev, RXQ, QSIZE) < 0 || virtio_setup_vq(&n->dev, TXQ, QSIZE) < 0)
		return -2;
	if (n->announce && virtio_setup_vq(&n->dev, CTRLQ, 16) < 0)
		return -2;
	n->rxq_size = n->dev.vq[RXQ].size;
	n->txq_size = n->dev.vq[TXQ].size;
	/* Buffers survive a re-init (the allocator never frees). */
	n->rxbuf = rx ? rx : (uint8_t *)(uintptr_t)mem_alloc((uint64_t)VQ_MAX_SIZE * VNET_BUF_SIZE, PAGE_SIZE);
	n->txbuf = tx ? tx : (uint8_t *)(uintptr_t)mem_alloc((uint64_t)VQ_MAX_SIZE * VNET_BUF_SIZE, PAGE_SIZE);
	if (n->announce && !n->ctrl)
		n->ctrl = (uint8_t *)(uintptr_t)mem_alloc(64, 64);
	if (!n->rxbuf || !n->txbuf || (n->announce && !n->ctrl)) {
		kprintf("virtio-net: out of memory for buffers\n");
		return -2;
	}
	for (uint16_t i = 0; i < n->rxq_size; i++)
		post_rx(n, i);
	for (int i = 0; i < n->txq_size; i++)
		n->tx_free[i] = (uint16_t)(n->txq_size - 1 - i);
	n->tx_nfree = n->txq_size;
	virtio_driver_ok(&n->dev);
	vq_kick(&n->dev.vq[RXQ]);
	if (virtio_status(&n->dev) & VIRTIO_S_NEEDS_RESET) {
		kprintf("virtio-net: device needs a reset right after DRIVER_OK\n");
		return -2;
	}
	return 0;
}

int vnet_rx(struct vnet *n, uint8_t **frame, uint32_t *len, uint16_t *handle)
{
	struct virtq *q = &n->dev.vq[RXQ];
	uint64_t tok;
	uint32_t l;

	for (;;) {
		int r = vq_get(q, &tok, &l);
		if (r <= 0)
			return 0;
		uint16_t i = (uint16_t)tok;
		if (l <= VNET_HDR_LEN || l > VNET_BUF_SIZE) {
			n->rx_bad++;
			vnet_rx_release(n, i);
			continue;
		}
		*frame = n->rxbuf + (uint64_t)i * VNET_BUF_SIZE + VNET_HDR_LEN;
		*len = l - VNET_HDR_LEN;
		*handle = i;
		n->rx_packets++;
		return 1;
	}
}

void vnet_rx_release(struct vnet *n, uint16_t handle)
{
	post_rx(n, handle);
	/* vq_kick notifies only if the device ran dry and asked to be told. */
	if (++n->rx_pending >= 16 || !vq_has_used(&n->dev.vq[RXQ])) {
		vq_kick(&n->dev.vq[RXQ]);
		n->rx_pending = 0;
	}
}

int vnet_tx_reclaim(struct vnet *n)
{
	uint64_t tok;

	while (vq_get(&n->dev.vq[TXQ], &tok, NULL) > 0) {
		n->tx_free[n->tx_nfree++] = (uint16_t)tok;
		n->tx_packets++;
	}
	return n->txq_size - n->tx_nfree;
}

uint8_t *vnet_tx_buf(struct vnet *n)
{
	if (!n->tx_nfree)
		vnet_tx_reclaim(n);
	if (!n->tx_nfree)
		return NULL;
	uint16_t i = n->tx_free[n->tx_nfree - 1];
	return n->txbuf + (uint64_t)i * VNET_BUF_SIZE + VNET_HDR_LEN;
}

void vnet_tx_send(struct vnet *n, uint8_t *frame, uint32_t len, int kick)
{
	uint16_t i = n->tx_free[--n->tx_nfree];
	uint8_t *buf = n->txbuf + (uint64_t)i * VNET_BUF_SIZE;

	(void)frame; /* it is buf + VNET_HDR_LEN, from vnet_tx_buf */
	memset(buf, 0, VNET_HDR_LEN);
	struct vq_buf out = { buf, VNET_HDR_LEN + len };
	vq_add(&n->dev.vq[TXQ], &out, 1, NULL, 0, i);
	if (kick)
		vq_kick(&n->dev.vq[TXQ]);
}

void vnet_tx_kick(struct vnet *n)
{
	vq_kick(&n->dev.vq[TXQ]);
}

int vnet_send(struct vnet *n, const void *frame, uint32_t len)
{
	uint64_t t0 = ticks;
	uint8_t *b;

	if (len > VNET_MAX_FRAME)
		return -1;
	while (!(b = vnet_tx_buf(n))) {
		if (ticks - t0 > timer_hz)
			return -1;
		cpu_relax();
	}
	memcpy(b, frame, len);
	vnet_tx_send(n, b, len, 1);
	return 0;
}

int vnet_announce_pending(struct vnet *n)
{
	return n->announce && (virtio_cfg16(&n->dev, CFG_STATUS) & VNET_S_ANNOUNCE);
}

int vnet_announce_ack(struct vnet *n)
{
	struct virtq *q = &n->dev.vq[CTRLQ];
	uint64_t t0 = ticks;
	uint8_t *hdr = n->ctrl, *ack = n->ctrl + 32;

	if (!n->announce)
		return -1;
	hdr[0] = CTRL_ANNOUNCE;
	hdr[1] = CTRL_ANNOUNCE_ACK;
	*(volatile uint8_t *)ack = 0xff;
	struct vq_buf out = { hdr, 2 }, in = { ack, 1 };
	if (vq_add(q, &out, 1, &in, 1, 0) < 0)
		return -1;
	vq_kick(q);
	while (!vq_has_used(q)) {
		if (ticks - t0 > timer_hz)
			return -1;
		cpu_relax();
	}
	vq_get(q, NULL, NULL);
	return *(volatile uint8_t *)ack == 0 ? 0 : -1; /* VIRTIO_NET_OK */
}
