/* virtio-net on a TAP device, over virtio-pci.
 * Queues: 0 receive, 1 transmit, 2 control (only VIRTIO_NET_CTRL_ANNOUNCE_ACK is served).
 * Features: MAC, STATUS (link up), CTRL_VQ, GUEST_ANNOUNCE; no offloads, no mergeable
 * buffers: every packet has the 12-byte struct virtio_net_hdr_v1 in front (all zero from
 * the guest, num_buffers = 1 towards it). The TAP is opened with IFF_VNET_HDR and a
 * 12-byte header, created if missing and brought up; addresses are the user's business.
 * RX and TX run on two I/O threads; RX polls the TAP only while the guest has posted
 * receive buffers, so a guest that stops receiving leaves packets queued in the kernel. */
#ifndef DEVICES_VIRTIO_NET_H
#define DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pci_bus;
struct virtio_net;
struct virtio_pci;

#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_CTRLQ 2
#define VIRTIO_NET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */
#define VIRTIO_NET_TUN_PATH "/dev/net/tun"

/* Device state for migration beyond the transport's. */
struct virtio_net_state {
	uint8_t mac[6];
	uint16_t status;   /* VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE */
	uint32_t guest_ip; /* the IPv4 address the guest sends from (network order), 0: none seen */
};

/* Attaches to (or creates) TAP `ifname` and puts the device at `slot` with `mac`. NULL on
 * failure, with one hv_error line naming the cause and the fix. */
struct virtio_net *virtio_net_create(struct pci_bus *bus, int slot, const char *ifname,
				     const uint8_t mac[6]);
/* The same on a TAP already open in vnet-header mode (virtio_net_tap_open), or on any fd
 * with its one-frame-per-read semantics (the fuzzer's SOCK_DGRAM socketpair). The device
 * owns `fd` from here on, also when this fails. */
struct virtio_net *virtio_net_create_fd(struct pci_bus *bus, int slot, const char *ifname, int fd,
					const uint8_t mac[6]);
void virtio_net_destroy(struct virtio_net *n);
struct virtio_pci *virtio_net_transport(struct virtio_net *n);
void virtio_net_get_mac(const struct virtio_net *n, uint8_t mac[6]);

/* Opens `tun_path` (normally VIRTIO_NET_TUN_PATH) and attaches to or creates TAP
 * `ifname` in vnet-header mode, non-blocking. The fd, or -1 with one hv_error line. */
int virtio_net_tap_open(const char *ifname, const char *tun_path);

/* The MAC a NIC gets when none is given: 52:54:00 and three bytes hashed from the VM
 * UUID and the NIC's index, so it stays the same for the life of the VM. */
void virtio_net_default_mac(const char *uuid, int index, uint8_t mac[6]);

/* After a migration: asks the guest to announce itself (gratuitous ARP / NA) if its driver
 * negotiated VIRTIO_NET_F_GUEST_ANNOUNCE; returns whether it did. */
bool virtio_net_announce(struct virtio_net *n);
/* Sends an Ethernet frame out of the TAP as if the guest had sent it (host-side RARP
 * announcement). 0 or -errno. */
/* Frames announced from the host so far (RARP and gratuitous ARP, dev_state.h's
 * announce). */
uint64_t virtio_net_announced(struct virtio_net *n);
int virtio_net_send_to_host(struct virtio_net *n, const void *frame, size_t len);

/* Queue processing, as the I/O threads do it (unit tests call these directly).
 * process_rx returns true if it stopped because the TAP had nothing more to read (so the
 * TAP should be polled), false if the guest has no receive buffers (or the queue is off). */
bool virtio_net_process_rx(struct virtio_net *n);
void virtio_net_process_tx(struct virtio_net *n);
void virtio_net_process_ctrl(struct virtio_net *n);

void virtio_net_get_state(struct virtio_net *n, struct virtio_net_state *st);
/* Takes over the MAC, the status and the guest's address of the saved device. */
int virtio_net_set_state(struct virtio_net *n, const struct virtio_net_state *st);
/* Its state ops (dev_state.h; `dev` is the struct virtio_net): the transport's sections and
 * two of its own (MAC and status; the guest's address, for gratuitous ARP). */
extern const struct dev_state_ops virtio_net_state_ops;

#endif
