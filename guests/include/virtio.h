/* hv-guest: a virtio 1.x driver core over the modern virtio-pci transport, for CPL3.
 *
 * Everything is polled: queues are set up with VRING_AVAIL_F_NO_INTERRUPT and MSI-X stays
 * off (interrupts cost ~40 us each on PVM). The driver kicks a queue through its notify
 * address (one 16-bit MMIO store, taken by the VMM's ioeventfd) only when the device has
 * not set VRING_USED_F_NO_NOTIFY, and finds completions by reading the used ring.
 * Guest memory is identity-mapped, so buffer pointers are guest-physical addresses. */
#ifndef HVG_VIRTIO_H
#define HVG_VIRTIO_H

#include <stdint.h>

#include "pci.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_DEV_NET 0x1041 /* 0x1040 + device type 1 */
#define VIRTIO_DEV_BLK 0x1042 /* 0x1040 + device type 2 */

/* Device status bits. */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER 0x02
#define VIRTIO_S_DRIVER_OK 0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* Transport feature bits. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* virtio-pci capability types (cfg_type). */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4

/* struct virtio_pci_common_cfg offsets. */
#define VCOMMON_DFSELECT 0x00
#define VCOMMON_DF 0x04
#define VCOMMON_GFSELECT 0x08
#define VCOMMON_GF 0x0c
#define VCOMMON_MSIX 0x10
#define VCOMMON_NUMQ 0x12
#define VCOMMON_STATUS 0x14
#define VCOMMON_CFGGEN 0x15
#define VCOMMON_Q_SELECT 0x16
#define VCOMMON_Q_SIZE 0x18
#define VCOMMON_Q_MSIX 0x1a
#define VCOMMON_Q_ENABLE 0x1c
#define VCOMMON_Q_NOFF 0x1e
#define VCOMMON_Q_DESC 0x20
#define VCOMMON_Q_AVAIL 0x28
#define VCOMMON_Q_USED 0x30

/* Split ring (virtio 1.x 2.7). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* [size], then avail_event */
};

#define VQ_MAX_SIZE 256
#define VIRTIO_MAX_QUEUES 4

struct virtq {
	int index;
	uint16_t size;             /* 0: not set up */
	uint16_t alloc_size;       /* ring memory allocated for this many entries */
	volatile struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
	volatile uint16_t *notify; /* notify address of this queue */
	uint16_t avail_idx;        /* next avail index we publish */
	uint16_t last_used;        /* next used entry we consume */
	uint16_t free_head, num_free;
	uint16_t next[VQ_MAX_SIZE];   /* private copy of the chain links / free list */
	uint16_t chain_len[VQ_MAX_SIZE];
	uint64_t token[VQ_MAX_SIZE];  /* caller's cookie per chain head */
	uint8_t busy[VQ_MAX_SIZE];    /* chain head in flight */
	uint64_t kicks, kicks_suppressed;
};

struct virtio_dev {
	struct pci_dev pci;
	const char *name;              /* "virtio-blk" / "virtio-net" */
	volatile uint8_t *common;
	volatile uint8_t *isr;
	volatile uint8_t *devcfg;
	uint32_t devcfg_len;
	volatile uint8_t *notify_base;
	uint32_t notify_mult;
	uint16_t num_queues;
	uint64_t offered;              /* device features */
	uint64_t features;             /* negotiated */
	struct virtq vq[VIRTIO_MAX_QUEUES];
};

/* A buffer of a chain: device-readable (out) or device-writable (in). */
struct vq_buf {
	void *addr;
	uint32_t len;
};

/* Finds the index-th virtio device with this PCI device ID, enables it on the bus and
 * maps its common/notify/ISR/device structures from the vendor capabilities.
 * 0, -1 if there is no such device, -2 if its capabilities are unusable (printed). */
int virtio_probe(struct virtio_dev *d, uint16_t pci_device, int index, const char *name);

/* Reset, ACKNOWLEDGE, DRIVER, feature negotiation (offered & wanted; VERSION_1 required),
 * FEATURES_OK. 0, or -1 (printed) if the device refused. */
int virtio_begin(struct virtio_dev *d, uint64_t wanted);
/* Sets up queue qi with min(size, device maximum) entries (a power of two), its rings
 * in guest RAM (allocated once, reused after a reset) and enables it. 0 or -1. */
int virtio_setup_vq(struct virtio_dev *d, int qi, uint16_t size);
void virtio_driver_ok(struct virtio_dev *d);
/* Writes status 0 and waits until the device reads back 0. */
void virtio_reset(struct virtio_dev *d);
uint8_t virtio_status(struct virtio_dev *d);
void virtio_set_status(struct virtio_dev *d, uint8_t s);

/* Device-specific config, read with the width of the field. 64-bit reads retry until
 * the config generation is stable. */
uint8_t virtio_cfg8(struct virtio_dev *d, uint32_t off);
uint16_t virtio_cfg16(struct virtio_dev *d, uint32_t off);
uint32_t virtio_cfg32(struct virtio_dev *d, uint32_t off);
uint64_t virtio_cfg64(struct virtio_dev *d, uint32_t off);

/* Common-config register access (for the hostile-guest test program). */
void virtio_common_write16(struct virtio_dev *d, uint32_t off, uint16_t v);
void virtio_common_write32(struct virtio_dev *d, uint32_t off, uint32_t v);
uint16_t virtio_common_read16(struct virtio_dev *d, uint32_t off);

/* Queue operations (single-threaded per queue). */
/* Adds a chain of n_out readable then n_in writable buffers and makes it available
 * (visible to the device after vq_kick). 0, or -1 if there are not enough free
 * descriptors. */
int vq_add(struct virtq *q, const struct vq_buf *out, int n_out, const struct vq_buf *in,
	   int n_in, uint64_t token);
/* Publishes the avail index and notifies the device unless it asked not to be. */
void vq_kick(struct virtq *q);
/* Notifies unconditionally. */
void vq_notify(struct virtq *q);
/* Takes one completed chain: 1 (token, bytes written), 0 if none, -1 if the device
 * returned an id we never gave it (printed once). */
int vq_get(struct virtq *q, uint64_t *token, uint32_t *len);
static inline int vq_has_used(const struct virtq *q)
{
	return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) != q->last_used;
}
static inline int vq_free(const struct virtq *q)
{
	return q->num_free;
}

/* Raw ring access for the hostile-guest test: write descriptor i as given, put `head`
 * in the next avail slot, or set the published avail index to anything. */
void vq_raw_desc(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next);
void vq_raw_avail(struct virtq *q, uint16_t head);
void vq_raw_avail_idx(struct virtq *q, uint16_t idx);

/* Exit status for "the device failed or misbehaved" (I/O error, NEEDS_RESET, timeout). */
#define EXIT_DEVICE 7

#endif
