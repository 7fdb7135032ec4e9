/* A minimal virtio-pci driver for unit tests: it finds the device through the conf1
 * ports and its capability list, negotiates, sets up split queues in guest RAM and
 * submits chains, all through the fake VM's buses exactly as a guest would. */
#ifndef TESTS_UNIT_VIRTIO_DRIVER_H
#define TESTS_UNIT_VIRTIO_DRIVER_H

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <time.h>

#include "fake_vm.h"

#define VDRV_MAX_Q 4

struct vdrv_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

struct vdrv_queue {
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t avail_idx, next_desc;
};

struct vdrv {
	struct vm *vm;
	int slot;
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint64_t msix_table;
	int msix_cap;
	struct vdrv_queue q[VDRV_MAX_Q];
	uint64_t next_buf; /* bump allocator in guest RAM */
};

static inline uint64_t vdrv_bar(struct vdrv *d, int bar)
{
	return conf1_read(d->vm, d->slot, PCI_BASE_ADDRESS_0 + 4 * bar, 4) & ~0xfull;
}

/* Walks the capability list; 0 if every virtio structure was found. */
static inline int vdrv_init(struct vdrv *d, struct vm *vm, int slot)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->slot = slot;
	d->next_buf = 0x100000;
	int found = 0;
	for (int p = conf1_read(vm, slot, PCI_CAPABILITY_LIST, 1); p; p = conf1_read(vm, slot, p + 1, 1)) {
		int id = conf1_read(vm, slot, p, 1);
		if (id == PCI_CAP_ID_MSIX) {
			d->msix_cap = p;
			uint32_t t = conf1_read(vm, slot, p + PCI_MSIX_TABLE, 4);
			d->msix_table = vdrv_bar(d, t & 7) + (t & ~7u);
			continue;
		}
		if (id != PCI_CAP_ID_VNDR)
			continue;
		int type = conf1_read(vm, slot, p + 3, 1);
		uint64_t addr = vdrv_bar(d, conf1_read(vm, slot, p + 4, 1)) + conf1_read(vm, slot, p + 8, 4);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG: d->common = addr; found |= 1; break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			d->notify = addr;
			d->notify_mult = conf1_read(vm, slot, p + 16, 4);
			found |= 2;
			break;
		case VIRTIO_PCI_CAP_ISR_CFG: d->isr = addr; found |= 4; break;
		case VIRTIO_PCI_CAP_DEVICE_CFG: d->devcfg = addr; found |= 8; break;
		}
	}
	return found == 15 && d->msix_cap ? 0 : -1;
}

static inline uint64_t vdrv_rd(struct vdrv *d, int off, int len)
{
	return bus_read(&d->vm->mmio, d->common + (uint64_t)off, (uint32_t)len);
}

static inline void vdrv_wr(struct vdrv *d, int off, int len, uint64_t v)
{
	bus_write(&d->vm->mmio, d->common + (uint64_t)off, (uint32_t)len, v);
}

static inline uint8_t vdrv_status(struct vdrv *d)
{
	return (uint8_t)vdrv_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline uint64_t vdrv_device_features(struct vdrv *d)
{
	vdrv_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t lo = vdrv_rd(d, VIRTIO_PCI_COMMON_DF, 4);
	vdrv_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	uint64_t hi = vdrv_rd(d, VIRTIO_PCI_COMMON_DF, 4);
	return lo | hi << 32;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; true if the device accepted. */
static inline bool vdrv_negotiate(struct vdrv *d, uint64_t features)
{
	vdrv_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	vdrv_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	vdrv_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	vdrv_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	vdrv_wr(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	vdrv_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	vdrv_wr(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	vdrv_wr(d, VIRTIO_PCI_COMMON_STATUS, 1,
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	return vdrv_status(d) & VIRTIO_CONFIG_S_FEATURES_OK;
}

/* MSI-X on, every vector unmasked with a distinct message. */
static inline void vdrv_enable_msix(struct vdrv *d, int vectors)
{
	for (int v = 0; v < vectors; v++) {
		bus_write(&d->vm->mmio, d->msix_table + 16ull * v, 4, 0xfee00000);
		bus_write(&d->vm->mmio, d->msix_table + 16ull * v + 8, 4, 0x40 + (uint64_t)v);
		bus_write(&d->vm->mmio, d->msix_table + 16ull * v + 12, 4, 0);
	}
	conf1_write(d->vm, d->slot, d->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

static inline uint64_t vdrv_alloc(struct vdrv *d, uint64_t len, uint64_t align)
{
	uint64_t a = (d->next_buf + align - 1) & ~(align - 1);
	d->next_buf = a + len;
	return a;
}

static inline void *vdrv_ptr(struct vdrv *d, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&d->vm->mem, gpa, len);
}

/* Sets up queue `qi` with `size` entries and MSI-X vector `vector`, and enables it. */
static inline void vdrv_setup_queue(struct vdrv *d, int qi, uint16_t size, uint16_t vector)
{
	struct vdrv_queue *q = &d->q[qi];

	memset(q, 0, sizeof(*q));
	q->size = size;
	q->desc = vdrv_alloc(d, 16ull * size, 4096);
	q->avail = vdrv_alloc(d, 6 + 2ull * size, 4096);
	q->used = vdrv_alloc(d, 6 + 8ull * size, 4096);
	memset(vdrv_ptr(d, q->desc, 16ull * size), 0, 16ull * size);
	memset(vdrv_ptr(d, q->avail, 6 + 2ull * size), 0, 6 + 2ull * size);
	memset(vdrv_ptr(d, q->used, 6 + 8ull * size), 0, 6 + 8ull * size);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, (uint64_t)qi);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)q->desc);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, q->desc >> 32);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, q->avail);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)q->used);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, q->used >> 32);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	vdrv_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static inline void vdrv_driver_ok(struct vdrv *d)
{
	uint8_t s = vdrv_status(d);

	vdrv_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, s | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Writes a chain into the descriptor table and publishes it (no kick). Returns the head. */
static inline uint16_t vdrv_add(struct vdrv *d, int qi, const struct vdrv_seg *segs, int n)
{
	struct vdrv_queue *q = &d->q[qi];
	uint16_t head = q->next_desc;

	for (int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % q->size);
		uint8_t *desc = vdrv_ptr(d, q->desc + 16ull * idx, 16);
		uint16_t flags = (uint16_t)((segs[i].write ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0));
		uint16_t next = (uint16_t)((idx + 1) % q->size);
		memcpy(desc, &segs[i].gpa, 8);
		memcpy(desc + 8, &segs[i].len, 4);
		memcpy(desc + 12, &flags, 2);
		memcpy(desc + 14, &next, 2);
	}
	q->next_desc = (uint16_t)((head + n) % q->size);
	uint16_t *avail = vdrv_ptr(d, q->avail, 6 + 2ull * q->size);
	uint16_t *used = vdrv_ptr(d, q->used, 4);
	avail[2 + q->avail_idx % q->size] = head;
	/* With EVENT_IDX: interrupt me at the next completion (used_event). */
	avail[2 + q->size] = __atomic_load_n(&used[1], __ATOMIC_ACQUIRE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail_idx++;
	__atomic_store_n(&avail[1], q->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static inline void vdrv_kick(struct vdrv *d, int qi)
{
	bus_write(&d->vm->mmio, d->notify + (uint64_t)qi * d->notify_mult, 2, (uint64_t)qi);
}

static inline uint16_t vdrv_used_idx(struct vdrv *d, int qi)
{
	uint16_t *used = vdrv_ptr(d, d->q[qi].used, 4);

	return __atomic_load_n(&used[1], __ATOMIC_ACQUIRE);
}

static inline void vdrv_used_elem(struct vdrv *d, int qi, uint16_t i, uint32_t *id, uint32_t *len)
{
	struct vdrv_queue *q = &d->q[qi];
	uint32_t *e = vdrv_ptr(d, q->used + 4 + 8ull * (i % q->size), 8);

	*id = e[0];
	*len = e[1];
}

/* Waits (up to 2 s) until the used index reaches `idx`. */
static inline bool vdrv_wait_used(struct vdrv *d, int qi, uint16_t idx)
{
	for (int i = 0; i < 2000; i++) {
		if (vdrv_used_idx(d, qi) == idx)
			return true;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

#endif
