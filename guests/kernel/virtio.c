/* hv-guest: virtio 1.x over modern virtio-pci, polled at CPL3 (see virtio.h). */
#include "virtio.h"

#include "lib.h"
#include "mem.h"
#include "print.h"
#include "time.h"

static inline void mmio_w8(volatile uint8_t *base, uint32_t off, uint8_t v)
{
	*(volatile uint8_t *)(base + off) = v;
}

static inline void mmio_w16(volatile uint8_t *base, uint32_t off, uint16_t v)
{
	*(volatile uint16_t *)(base + off) = v;
}

static inline void mmio_w32(volatile uint8_t *base, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(base + off) = v;
}

static inline uint8_t mmio_r8(volatile uint8_t *base, uint32_t off)
{
	return *(volatile uint8_t *)(base + off);
}

static inline uint16_t mmio_r16(volatile uint8_t *base, uint32_t off)
{
	return *(volatile uint16_t *)(base + off);
}

static inline uint32_t mmio_r32(volatile uint8_t *base, uint32_t off)
{
	return *(volatile uint32_t *)(base + off);
}

/* ---- discovery ---- */

int virtio_probe(struct virtio_dev *d, uint16_t pci_device, int index, const char *name)
{
	/* Ring memory from an earlier probe of this structure is kept and reused. */
	struct {
		volatile struct vring_desc *desc;
		uint16_t alloc_size;
	} keep[VIRTIO_MAX_QUEUES];
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		keep[i].desc = d->vq[i].desc;
		keep[i].alloc_size = d->vq[i].alloc_size;
	}
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		d->vq[i].desc = keep[i].desc;
		d->vq[i].alloc_size = keep[i].alloc_size;
	}
	d->name = name;
	if (pci_find(VIRTIO_VENDOR, pci_device, index, &d->pci) < 0)
		return -1;
	/* INTx off as well: this driver polls, nothing should assert a line for it. */
	pci_enable(&d->pci, PCI_CMD_INTX_DISABLE);
	int slot = d->pci.slot;
	for (int p = pci_next_cap(slot, PCI_CAP_ID_VNDR, 0); p;
	     p = pci_next_cap(slot, PCI_CAP_ID_VNDR, p)) {
		/* struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id,
		 * padding[2], offset u32, length u32; notify adds notify_off_multiplier. */
		uint8_t type = pci_read8(slot, p + 3);
		uint8_t bar = pci_read8(slot, p + 4);
		uint32_t off = pci_read32(slot, p + 8);
		uint32_t len = pci_read32(slot, p + 12);
		if (bar >= PCI_NUM_BARS || !d->pci.bar[bar] ||
		    (uint64_t)off + len > d->pci.bar_size[bar])
			continue; /* not a structure we can map: look for another of its type */
		volatile uint8_t *addr = (volatile uint8_t *)(uintptr_t)(d->pci.bar[bar] + off);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON:
			if (!d->common && len >= 0x38)
				d->common = addr;
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			if (!d->notify_base) {
				d->notify_base = addr;
				d->notify_mult = pci_read32(slot, p + 16);
			}
			break;
		case VIRTIO_PCI_CAP_ISR:
			if (!d->isr)
				d->isr = addr;
			break;
		case VIRTIO_PCI_CAP_DEVICE:
			if (!d->devcfg) {
				d->devcfg = addr;
				d->devcfg_len = len;
			}
			break;
		default:
			break;
		}
	}
	if (!d->common || !d->notify_base) {
		kprintf("%s: device at 00:%02x.0 lacks a usable %s capability\n", name, slot,
			d->common ? "notify" : "common config");
		return -2;
	}
	d->num_queues = mmio_r16(d->common, VCOMMON_NUMQ);
	return 0;
}

/* ---- status and features ---- */

uint8_t virtio_status(struct virtio_dev *d)
{
	return mmio_r8(d->common, VCOMMON_STATUS);
}

void virtio_set_status(struct virtio_dev *d, uint8_t s)
{
	mmio_w8(d->common, VCOMMON_STATUS, s);
}

void virtio_reset(struct virtio_dev *d)
{
	virtio_set_status(d, 0);
	/* The device may finish the reset later; it reads 0 once it has. */
	for (int i = 0; i < 100000 && virtio_status(d) != 0; i++)
		cpu_relax();
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		d->vq[i].size = 0;
}

int virtio_begin(struct virtio_dev *d, uint64_t wanted)
{
	virtio_reset(d);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	mmio_w32(d->common, VCOMMON_DFSELECT, 0);
	uint64_t lo = mmio_r32(d->common, VCOMMON_DF);
	mmio_w32(d->common, VCOMMON_DFSELECT, 1);
	uint64_t hi = mmio_r32(d->common, VCOMMON_DF);
	d->offered = hi << 32 | lo;
	if (!(d->offered & (1ULL << VIRTIO_F_VERSION_1))) {
		kprintf("%s: device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)\n", d->name,
			d->offered);
		virtio_set_status(d, VIRTIO_S_FAILED);
		return -1;
	}
	d->features = d->offered & (wanted | 1ULL << VIRTIO_F_VERSION_1);
	mmio_w32(d->common, VCOMMON_GFSELECT, 0);
	mmio_w32(d->common, VCOMMON_GF, (uint32_t)d->features);
	mmio_w32(d->common, VCOMMON_GFSELECT, 1);
	mmio_w32(d->common, VCOMMON_GF, (uint32_t)(d->features >> 32));
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	if (!(virtio_status(d) & VIRTIO_S_FEATURES_OK)) {
		kprintf("%s: device refused features 0x%lx\n", d->name, d->features);
		virtio_set_status(d, VIRTIO_S_FAILED);
		return -1;
	}
	return 0;
}

void virtio_driver_ok(struct virtio_dev *d)
{
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK |
				     VIRTIO_S_DRIVER_OK);
}

/* ---- config space ---- */

uint8_t virtio_cfg8(struct virtio_dev *d, uint32_t off)
{
	return off + 1 <= d->devcfg_len ? mmio_r8(d->devcfg, off) : 0;
}

uint16_t virtio_cfg16(struct virtio_dev *d, uint32_t off)
{
	return off + 2 <= d->devcfg_len ? mmio_r16(d->devcfg, off) : 0;
}

uint32_t virtio_cfg32(struct virtio_dev *d, uint32_t off)
{
	return off + 4 <= d->devcfg_len ? mmio_r32(d->devcfg, off) : 0;
}

uint64_t virtio_cfg64(struct virtio_dev *d, uint32_t off)
{
	uint64_t v;
	uint8_t gen;

	if (off + 8 > d->devcfg_len)
		return 0;
	do {
		gen = mmio_r8(d->common, VCOMMON_CFGGEN);
		v = (uint64_t)mmio_r32(d->devcfg, off + 4) << 32 | mmio_r32(d->devcfg, off);
	} while (gen != mmio_r8(d->common, VCOMMON_CFGGEN));
	return v;
}

void virtio_common_write16(struct virtio_dev *d, uint32_t off, uint16_t v)
{
	mmio_w16(d->common, off, v);
}

void virtio_common_write32(struct virtio_dev *d, uint32_t off, uint32_t v)
{
	mmio_w32(d->common, off, v);
}

uint16_t virtio_common_read16(struct virtio_dev *d, uint32_t off)
{
	return mmio_r16(d->common, off);
}

/* ---- queues ---- */

static uint64_t ring_bytes(uint16_t n, uint64_t *avail_off, uint64_t *used_off)
{
	*avail_off = ALIGN_UP(16ULL * n, PAGE_SIZE);
	*used_off = *avail_off + ALIGN_UP(6 + 2ULL * n, PAGE_SIZE);
	return *used_off + ALIGN_UP(6 + 8ULL * n, PAGE_SIZE);
}

static void vq_reset_state(struct virtq *q)
{
	q->avail_idx = q->last_used = 0;
	q->free_head = 0;
	q->num_free = q->size;
	for (uint16_t i = 0; i < q->size; i++) {
		q->next[i] = (uint16_t)(i + 1);
		q->busy[i] = 0;
	}
	q->kicks = q->kicks_suppressed = 0;
}

int virtio_setup_vq(struct virtio_dev *d, int qi, uint16_t size)
{
	struct virtq *q = &d->vq[qi];
	uint64_t avail_off, used_off;

	if (qi >= VIRTIO_MAX_QUEUES || qi >= d->num_queues)
		return -1;
	mmio_w16(d->common, VCOMMON_Q_SELECT, (uint16_t)qi);
	uint16_t max = mmio_r16(d->common, VCOMMON_Q_SIZE);
	if (size > max)
		size = max;
	if (size > VQ_MAX_SIZE)
		size = VQ_MAX_SIZE;
	while (size & (size - 1))
		size &= (uint16_t)(size - 1);
	if (!size) {
		kprintf("%s: queue %d is not available\n", d->name, qi);
		return -1;
	}
	uint64_t bytes = ring_bytes(size, &avail_off, &used_off);
	if (!q->desc || q->alloc_size < size) {
		uint64_t base = mem_alloc(bytes, PAGE_SIZE);
		if (!base) {
			kprintf("%s: out of memory for queue %d\n", d->name, qi);
			return -1;
		}
		q->desc = (volatile struct vring_desc *)(uintptr_t)base;
		q->alloc_size = size;
	}
	uint64_t base = (uint64_t)(uintptr_t)q->desc;
	memset((void *)(uintptr_t)base, 0, bytes);
	q->avail = (volatile struct vring_avail *)(uintptr_t)(base + avail_off);
	q->used = (volatile struct vring_used *)(uintptr_t)(base + used_off);
	q->index = qi;
	q->size = size;
	vq_reset_state(q);
	/* Polling driver: no interrupts, please. */
	q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;

	mmio_w16(d->common, VCOMMON_Q_SIZE, size);
	mmio_w16(d->common, VCOMMON_Q_MSIX, 0xffff);
	mmio_w32(d->common, VCOMMON_Q_DESC, (uint32_t)base);
	mmio_w32(d->common, VCOMMON_Q_DESC + 4, (uint32_t)(base >> 32));
	mmio_w32(d->common, VCOMMON_Q_AVAIL, (uint32_t)(base + avail_off));
	mmio_w32(d->common, VCOMMON_Q_AVAIL + 4, (uint32_t)((base + avail_off) >> 32));
	mmio_w32(d->common, VCOMMON_Q_USED, (uint32_t)(base + used_off));
	mmio_w32(d->common, VCOMMON_Q_USED + 4, (uint32_t)((base + used_off) >> 32));
	uint16_t noff = mmio_r16(d->common, VCOMMON_Q_NOFF);
	q->notify = (volatile uint16_t *)(d->notify_base + (uint64_t)noff * d->notify_mult);
	mmio_w16(d->common, VCOMMON_Q_ENABLE, 1);
	return 0;
}

int vq_add(struct virtq *q, const struct vq_buf *out, int n_out, const struct vq_buf *in,
	   int n_in, uint64_t token)
{
	int n = n_out + n_in;

	if (n <= 0 || n > q->num_free)
		return -1;
	uint16_t head = q->free_head, i = head, last = head;
	for (int k = 0; k < n; k++) {
		const struct vq_buf *b = k < n_out ? &out[k] : &in[k - n_out];
		volatile struct vring_desc *dd = &q->desc[i];
		dd->addr = (uint64_t)(uintptr_t)b->addr;
		dd->len = b->len;
		dd->flags = (uint16_t)((k >= n_out ? VRING_DESC_F_WRITE : 0) |
				       (k + 1 < n ? VRING_DESC_F_NEXT : 0));
		dd->next = q->next[i];
		last = i;
		i = q->next[i];
	}
	(void)last;
	q->free_head = i;
	q->num_free = (uint16_t)(q->num_free - n);
	q->chain_len[head] = (uint16_t)n;
	q->token[head] = token;
	q->busy[head] = 1;
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	q->avail_idx++;
	return 0;
}

void vq_notify(struct virtq *q)
{
	*q->notify = (uint16_t)q->index;
	q->kicks++;
}

void vq_kick(struct virtq *q)
{
	if (q->avail->idx == q->avail_idx)
		return; /* nothing new */
	/* The ring entries must be visible before the index that publishes them. */
	__atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
	/* ... and the index before we look at the device's suppression flag. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->used->flags & VRING_USED_F_NO_NOTIFY) {
		q->kicks_suppressed++;
		return;
	}
	vq_notify(q);
}

int vq_get(struct virtq *q, uint64_t *token, uint32_t *len)
{
	if (!vq_has_used(q))
		return 0;
	volatile struct vring_used_elem *e = &q->used->ring[q->last_used & (q->size - 1)];
	uint32_t id = e->id, l = e->len;
	if (id >= q->size || !q->busy[id]) {
		static int warned;
		if (!warned++)
			kprintf("virtio: queue %d: device returned unknown descriptor id %u\n", q->index,
				id);
		q->last_used++;
		return -1;
	}
	q->last_used++;
	q->busy[id] = 0;
	/* Return the chain to the free list: its private links are still in next[]. */
	uint16_t tail = (uint16_t)id;
	for (int k = 1; k < q->chain_len[id]; k++)
		tail = q->next[tail];
	q->next[tail] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free = (uint16_t)(q->num_free + q->chain_len[id]);
	if (token)
		*token = q->token[id];
	if (len)
		*len = l;
	return 1;
}

/* ---- raw access (hostile-guest test) ---- */

void vq_raw_desc(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	volatile struct vring_desc *dd = &q->desc[i & (q->size - 1)];
	dd->addr = addr;
	dd->len = len;
	dd->flags = flags;
	dd->next = next;
}

void vq_raw_avail(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	q->avail_idx++;
	__atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
}

void vq_raw_avail_idx(struct virtq *q, uint16_t idx)
{
	q->avail_idx = idx;
	__atomic_store_n(&q->avail->idx, idx, __ATOMIC_RELEASE);
}
