/* The modern (virtio 1.x, non-transitional) virtio-pci transport.
 *
 * A device is a static ops table (kvmtool style) plus its own I/O thread(s):
 *
 *	static const struct virtio_dev_ops blk_ops = {
 *		.name = "virtio-blk", .type = VIRTIO_ID_BLOCK, .class_code = 0x018000,
 *		.features = 1ull << VIRTIO_BLK_F_FLUSH, .num_queues = 1,
 *		.config_size = sizeof(struct virtio_blk_config),
 *		.get_config = blk_get_config, .reset = blk_reset,
 *	};
 *	vp = virtio_pci_create(pci, slot, &blk_ops, blk, extra_features);
 *
 * The transport owns the PCI function (vendor 0x1af4, device 0x1040 + type), BAR0 with
 * the common/ISR/device/notify structures, MSI-X (BAR1, one vector per queue plus one for
 * config changes), feature negotiation and the status state machine, and one virtq plus
 * one notify eventfd per queue. The notify eventfds are KVM ioeventfds on the notify
 * addresses (moved with BAR0), so a guest kick never runs device code on a vCPU thread:
 * each device's I/O thread polls virtio_pci_queue_eventfd() and then processes the queue
 * with q->lock held, checking virtq_active(q) first.
 *
 * Status bits, once set, stay until the driver writes 0 (reset).
 * Queues start (virtq_start) when both the queue is enabled and DRIVER_OK is set, so a
 * device never sees buffers before DRIVER_OK. A bad descriptor (or a device calling
 * virtio_pci_device_error) sets DEVICE_NEEDS_RESET and raises a config interrupt. Writing
 * status 0 stops every queue under its lock (waiting for an I/O thread in the middle of a
 * batch), calls ops->reset and returns the transport to its reset state.
 *
 * Threads: the ops callbacks get_config/set_config/queue_ready/reset run on vCPU threads
 * (holding the transport lock; they must not wait for an I/O thread that waits for the
 * transport). I/O threads never take the transport lock. */
#ifndef DEVICES_VIRTIO_PCI_H
#define DEVICES_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "devices/virtq.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device type */
#define VIRTIO_PCI_SUBSYS_ID 0x1100
#define VIRTIO_PCI_REVISION 1
#define VIRTIO_PCI_MAX_QUEUES 8

/* BAR0 layout (16 KiB, 32-bit memory). MSI-X table/PBA are in BAR1 (4 KiB). */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_MSIX_BAR 1
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38 /* struct virtio_pci_common_cfg (no queue_reset) */
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_ISR_LEN 4
#define VIRTIO_PCI_DEVCFG_OFF 0x2000
#define VIRTIO_PCI_DEVCFG_MAX 0x1000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4 /* queue q is notified at NOTIFY_OFF + 4 q */

struct virtio_pci;

struct virtio_dev_ops {
	const char *name;
	uint16_t type;       /* VIRTIO_ID_* */
	uint32_t class_code; /* PCI class, e.g. 0x020000 for a NIC */
	uint64_t features;   /* device-specific features; the transport adds VIRTIO_F_VERSION_1,
			      * VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC */
	uint16_t num_queues; /* 1..VIRTIO_PCI_MAX_QUEUES */
	uint32_t config_size;
	/* Device config space; offset + len <= config_size is guaranteed. */
	void (*get_config)(void *dev, uint32_t offset, void *data, uint32_t len);
	void (*set_config)(void *dev, uint32_t offset, const void *data, uint32_t len);
	/* A queue started (enabled and DRIVER_OK); optional. Its eventfd is kicked as well. */
	void (*queue_ready)(void *dev, int queue);
	/* The driver reset the device; every queue is already stopped. Optional. */
	void (*reset)(void *dev);
};

/* Everything migration saves for the transport, the PCI function and the queues. */
struct virtio_pci_state {
	uint64_t device_features; /* what this device offers: must match on restore */
	uint64_t driver_features;
	uint32_t device_feature_select, driver_feature_select;
	uint16_t msix_config, queue_select, num_queues;
	uint8_t status, config_generation, isr, needs_reset;
	struct virtq_state vq[VIRTIO_PCI_MAX_QUEUES];
	struct pci_device_state pci;
};

/* Creates the PCI function at `slot`; `dev` is passed to the ops. NULL on failure (one
 * hv_error line). */
struct virtio_pci *virtio_pci_create(struct pci_bus *bus, int slot, const struct virtio_dev_ops *ops,
				     void *dev, uint64_t extra_features);
/* The device's I/O threads must have stopped. */
void virtio_pci_destroy(struct virtio_pci *vp);

struct virtq *virtio_pci_queue(struct virtio_pci *vp, int queue);
/* Readable (eventfd counter) when the driver notified `queue`. */
int virtio_pci_queue_eventfd(struct virtio_pci *vp, int queue);
/* Makes the device's I/O thread look at `queue` (as a driver notification would). */
void virtio_pci_kick_queue(struct virtio_pci *vp, int queue);
struct pci_device *virtio_pci_pci(struct virtio_pci *vp);
/* Features the driver accepted (valid once FEATURES_OK is set). Any thread, any lock held. */
uint64_t virtio_pci_driver_features(struct virtio_pci *vp);

/* With q->lock held, after pushing: interrupts the driver if it asked for it. */
void virtio_pci_notify_used(struct virtio_pci *vp, struct virtq *q);
/* The device config changed (e.g. link status): new generation, config interrupt. */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* The device hit an error it cannot recover from (malformed request): sets
 * DEVICE_NEEDS_RESET, logs one warning, raises a config interrupt. Any thread. */
void virtio_pci_device_error(struct virtio_pci *vp, const char *why);
bool virtio_pci_needs_reset(struct virtio_pci *vp);
uint8_t virtio_pci_status(struct virtio_pci *vp);

/* Quiesce for save/restore: after pause no I/O thread is processing a queue (they skip
 * paused queues); resume kicks every queue. */
void virtio_pci_pause(struct virtio_pci *vp);
void virtio_pci_resume(struct virtio_pci *vp);
/* Between pause and resume. set_state validates (same device, accepted features a subset
 * of the offer, DRIVER_OK only after FEATURES_OK, sane queues) and returns 0 or -EINVAL
 * with a hv_error line. Whatever a guest does, what get_state saves passes. */
void virtio_pci_get_state(struct virtio_pci *vp, struct virtio_pci_state *st);
int virtio_pci_set_state(struct virtio_pci *vp, const struct virtio_pci_state *st);

/* A virtio device's saved state (dev_state.h) is a state_enc.h blob: the transport's
 * sections (1: PCI function, 2: common configuration, 3 + i: queue i) and the device's own,
 * with ids from VIRTIO_PCI_SEC_DEVICE. */
#define VIRTIO_PCI_SEC_DEVICE 16
struct state_out;
struct state_sec;
/* Device paused: the transport's sections. */
void virtio_pci_save(struct virtio_pci *vp, struct state_out *o);
/* Decodes a whole blob: the transport's sections into *st, each of the device's own through
 * own(ctx, section) (0, or -1 with a line in err). Every transport section and every id in
 * own_needed (bit per id) must be there, nothing twice, nothing unknown. Applies nothing
 * (virtio_pci_set_state does, and checks *st against this device). 0, or -1 with one line
 * in err. */
int virtio_pci_decode(struct virtio_pci *vp, const void *blob, size_t len, struct virtio_pci_state *st,
		      int (*own)(void *ctx, struct state_sec *s, char *err, size_t errlen), void *ctx,
		      uint64_t own_needed, char *err, size_t errlen);

#endif
