/* hv-guest: virtio-net driver (polled, see virtio.h). Queue 0 receives, queue 1
 * transmits; no offloads, no mergeable buffers, so every packet carries the 12-byte
 * struct virtio_net_hdr_v1 in front (all zero on transmit). */
#ifndef HVG_VIRTIO_NET_H
#define HVG_VIRTIO_NET_H

#include <stdint.h>

#include "virtio.h"

#define VNET_HDR_LEN 12
#define VNET_BUF_SIZE 2048 /* per RX/TX buffer: header + a 1514-byte frame fit */
#define VNET_MAX_FRAME (VNET_BUF_SIZE - VNET_HDR_LEN)
#define VNET_F_MAC 5
#define VNET_F_STATUS 16
#define VNET_F_CTRL_VQ 17
#define VNET_F_GUEST_ANNOUNCE 21
#define VNET_S_LINK_UP 1
#define VNET_S_ANNOUNCE 2

struct vnet {
	struct virtio_dev dev;
	uint8_t mac[6];
	uint16_t status;
	uint8_t *rxbuf, *txbuf; /* one VNET_BUF_SIZE buffer per queue entry */
	uint16_t rxq_size, txq_size;
	uint16_t tx_free[VQ_MAX_SIZE];
	int tx_nfree;
	int rx_pending;        /* buffers released but not yet kicked */
	uint64_t rx_packets, tx_packets, rx_bad;
	int want_announce;     /* set before vnet_init: negotiate CTRL_VQ + GUEST_ANNOUNCE */
	int announce;          /* negotiated: queue 2 is the control queue */
	uint8_t *ctrl;         /* control command buffer */
};

/* Finds and starts the index-th virtio-net device with all receive buffers posted.
 * 0, -1 if there is none, -2 if it could not be started (printed). */
int vnet_init(struct vnet *n, int index);

/* One received frame (Ethernet header first, virtio header stripped): 1 with *frame,
 * *len and *handle, 0 if none. The buffer stays ours until vnet_rx_release(handle). */
int vnet_rx(struct vnet *n, uint8_t **frame, uint32_t *len, uint16_t *handle);
/* Gives a receive buffer back to the device (kicked at once if the device is waiting). */
void vnet_rx_release(struct vnet *n, uint16_t handle);

/* A transmit buffer for a frame of up to VNET_MAX_FRAME bytes, reclaiming completed
 * ones first; NULL if all are in flight. Fill it, then vnet_tx_send. */
uint8_t *vnet_tx_buf(struct vnet *n);
/* Queues the frame just built in the buffer from vnet_tx_buf; kicks if `kick`. */
void vnet_tx_send(struct vnet *n, uint8_t *frame, uint32_t len, int kick);
void vnet_tx_kick(struct vnet *n);
/* Reclaims completed transmit buffers; returns how many are in flight. */
int vnet_tx_reclaim(struct vnet *n);
/* Copies and sends one frame, waiting (bounded) for a free buffer. 0 or -1. */
int vnet_send(struct vnet *n, const void *frame, uint32_t len);

/* VIRTIO_NET_F_GUEST_ANNOUNCE (after a live migration the device asks the driver to
 * announce itself): 1 if the device config has VIRTIO_NET_S_ANNOUNCE set (one MMIO read).
 * The driver then sends its gratuitous ARP and acknowledges with vnet_announce_ack
 * (VIRTIO_NET_CTRL_ANNOUNCE_ACK on the control queue): 0, or -1 if the device said no or
 * did not answer within 1 s. */
int vnet_announce_pending(struct vnet *n);
int vnet_announce_ack(struct vnet *n);

#endif
