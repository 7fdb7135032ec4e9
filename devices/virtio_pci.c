/* Modern virtio-pci transport. See virtio_pci.h.
 *
 * Locks, outermost first: vp->lock (common config, status; vCPU threads only), q->lock
 * (one per queue; the device's I/O thread holds it while processing), vp->isr_lock (ISR
 * byte and the INTx level), then the PCI device's own lock (MSI-X). */
#include "devices/virtio_pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/state_enc.h"
#include "hv/vm.h"

#define TRANSPORT_FEATURES                                                                   \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |                  \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC))

struct virtio_pci {
	const struct virtio_dev_ops *ops;
	void *dev;
	struct vm *vm;
	struct pci_device *pci;
	char name[48];
	uint64_t offered;
	int nq, nvectors;

	pthread_mutex_t lock;
	uint64_t driver_features;  /* written under lock, atomic: I/O threads read it */
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	uint8_t status;
	bool driver_ok;
	uint16_t msix_config;      /* atomic: I/O threads read it */
	uint8_t config_generation; /* atomic */
	int needs_reset;           /* atomic */
	unsigned errors_reported;  /* atomic; caps what a guest can make us print */

	pthread_mutex_t isr_lock;
	uint8_t isr;

	struct virtq vq[VIRTIO_PCI_MAX_QUEUES];
	int notify_fd[VIRTIO_PCI_MAX_QUEUES];
	bool ioeventfd_on;
	uint64_t ioeventfd_base;
	bool ioeventfd_warned;
};

#define VIRTIO_PCI_ERRORS_REPORTED 10

static void set16(uint8_t *p, int off, uint16_t v)
{
	p[off] = (uint8_t)v;
	p[off + 1] = (uint8_t)(v >> 8);
}

static void set32(uint8_t *p, int off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *data, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

/* ---- interrupts ---- */

static void raise_irq(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	bool config = isr_bit == VIRTIO_PCI_ISR_CONFIG;

	/* With MSI-X on, the vector (or none) is the whole story; the config bit of the ISR
	 * is still set, as the spec asks. Without MSI-X: ISR bit and INTx. */
	if (config) {
		pthread_mutex_lock(&vp->isr_lock);
		vp->isr |= isr_bit;
		pthread_mutex_unlock(&vp->isr_lock);
	}
	if (pci_msix_notify(vp->pci, vector))
		return;
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr |= isr_bit;
	pci_intx_set(vp->pci, 1);
	pthread_mutex_unlock(&vp->isr_lock);
}

void virtio_pci_notify_used(struct virtio_pci *vp, struct virtq *q)
{
	if (virtq_needs_interrupt(q))
		raise_irq(vp, q->s.msix_vector, 1);
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	__atomic_fetch_add(&vp->config_generation, 1, __ATOMIC_ACQ_REL);
	raise_irq(vp, __atomic_load_n(&vp->msix_config, __ATOMIC_ACQUIRE), VIRTIO_PCI_ISR_CONFIG);
}

void virtio_pci_device_error(struct virtio_pci *vp, const char *why)
{
	if (__atomic_exchange_n(&vp->needs_reset, 1, __ATOMIC_ACQ_REL))
		return;
	/* A driver that resets and breaks the device again in a loop must not flood the log. */
	unsigned n = __atomic_add_fetch(&vp->errors_reported, 1, __ATOMIC_ACQ_REL);
	if (n <= VIRTIO_PCI_ERRORS_REPORTED)
		hv_warn("%s: %s; the device needs a reset by its driver%s", vp->name, why,
			n == VIRTIO_PCI_ERRORS_REPORTED ? " (further errors of this device are not reported)" : "");
	virtio_pci_config_changed(vp);
}

bool virtio_pci_needs_reset(struct virtio_pci *vp)
{
	return __atomic_load_n(&vp->needs_reset, __ATOMIC_ACQUIRE);
}

static void queue_error(void *opaque, struct virtq *q, const char *why)
{
	struct virtio_pci *vp = opaque;
	char msg[128];

	snprintf(msg, sizeof(msg), "queue %d: %s", q->index, why);
	virtio_pci_device_error(vp, msg);
}

/* ---- queues ---- */

void virtio_pci_kick_queue(struct virtio_pci *vp, int queue)
{
	uint64_t one = 1;

	if (queue >= 0 && queue < vp->nq && write(vp->notify_fd[queue], &one, sizeof(one)) < 0)
		hv_debug("%s: queue %d kick failed", vp->name, queue);
}

/* Starts queue i if it is enabled and the driver is ready; vp->lock held. True if started. */
static bool start_queue_locked(struct virtio_pci *vp, int i)
{
	struct virtq *q = &vp->vq[i];
	bool started = false;

	pthread_mutex_lock(&q->lock);
	if (q->s.enabled && vp->driver_ok && !q->ready)
		started = virtq_start(q, vp->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX),
				      vp->driver_features & (1ull << VIRTIO_RING_F_INDIRECT_DESC)) == 0;
	pthread_mutex_unlock(&q->lock);
	return started;
}

static void queue_started(struct virtio_pci *vp, int i)
{
	if (vp->ops->queue_ready)
		vp->ops->queue_ready(vp->dev, i);
	virtio_pci_kick_queue(vp, i);
}

static void reset_queues_locked(struct virtio_pci *vp)
{
	for (int i = 0; i < vp->nq; i++) {
		struct virtq *q = &vp->vq[i];
		/* Waits for an I/O thread in the middle of a batch on this queue. */
		pthread_mutex_lock(&q->lock);
		virtq_reset(q);
		q->s.size = VIRTQ_MAX_SIZE;
		pthread_mutex_unlock(&q->lock);
	}
}

static void reset_locked(struct virtio_pci *vp)
{
	reset_queues_locked(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp->dev);
	__atomic_store_n(&vp->driver_features, 0, __ATOMIC_RELEASE);
	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	vp->status = 0;
	vp->driver_ok = false;
	__atomic_store_n(&vp->msix_config, VIRTQ_NO_VECTOR, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->needs_reset, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr = 0;
	pci_intx_set(vp->pci, 0);
	pthread_mutex_unlock(&vp->isr_lock);
}

/* ---- common configuration ---- */

static bool features_acceptable(const struct virtio_pci *vp, uint64_t features)
{
	return !(features & ~vp->offered) && (features & (1ull << VIRTIO_F_VERSION_1));
}

static void write_status_locked(struct virtio_pci *vp, uint8_t v)
{
	if (v == 0) {
		reset_locked(vp);
		return;
	}
	uint8_t old = vp->status;
	/* Only a reset clears status bits (a driver never does, virtio 1.x 2.1.2): so the
	 * features stay frozen from FEATURES_OK on, and the status a migration saves says
	 * what the device does (a started device keeps DRIVER_OK). */
	v |= old;
	/* FEATURES_OK is only accepted for a feature set we can honour; the driver reads the
	 * status back and gives up if the bit did not stick. */
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_acceptable(vp, vp->driver_features)) {
		hv_debug("%s: refusing FEATURES_OK for features 0x%llx", vp->name,
			 (unsigned long long)vp->driver_features);
		v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* DRIVER_OK needs FEATURES_OK first (virtio 1.x 3.1.1). */
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK))
		v &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
	vp->status = v & (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !vp->driver_ok) {
		vp->driver_ok = true;
		bool started[VIRTIO_PCI_MAX_QUEUES] = { false };
		for (int i = 0; i < vp->nq; i++)
			started[i] = start_queue_locked(vp, i);
		for (int i = 0; i < vp->nq; i++)
			if (started[i])
				queue_started(vp, i);
	}
}

static struct virtq *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_select < vp->nq ? &vp->vq[vp->queue_select] : NULL;
}

static uint16_t valid_vector(const struct virtio_pci *vp, uint16_t v)
{
	return v < vp->nvectors ? v : VIRTQ_NO_VECTOR;
}

static void common_image_locked(struct virtio_pci *vp, uint8_t *img)
{
	memset(img, 0, VIRTIO_PCI_COMMON_LEN);
	set32(img, VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect);
	set32(img, VIRTIO_PCI_COMMON_DF,
	      vp->dfselect < 2 ? (uint32_t)(vp->offered >> (32 * vp->dfselect)) : 0);
	set32(img, VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect);
	set32(img, VIRTIO_PCI_COMMON_GF,
	      vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect)) : 0);
	set16(img, VIRTIO_PCI_COMMON_MSIX, __atomic_load_n(&vp->msix_config, __ATOMIC_ACQUIRE));
	set16(img, VIRTIO_PCI_COMMON_NUMQ, (uint16_t)vp->nq);
	img[VIRTIO_PCI_COMMON_STATUS] =
		vp->status | (virtio_pci_needs_reset(vp) ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
	img[VIRTIO_PCI_COMMON_CFGGENERATION] =
		__atomic_load_n(&vp->config_generation, __ATOMIC_ACQUIRE);
	set16(img, VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select);
	struct virtq *q = selected_queue(vp);
	if (!q)
		return;
	/* These fields are written only by this transport, under vp->lock. */
	set16(img, VIRTIO_PCI_COMMON_Q_SIZE, q->s.size);
	set16(img, VIRTIO_PCI_COMMON_Q_MSIX, q->s.msix_vector);
	set16(img, VIRTIO_PCI_COMMON_Q_ENABLE, q->s.enabled);
	set16(img, VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select);
	set32(img, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)q->s.desc_addr);
	set32(img, VIRTIO_PCI_COMMON_Q_DESCHI, (uint32_t)(q->s.desc_addr >> 32));
	set32(img, VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)q->s.avail_addr);
	set32(img, VIRTIO_PCI_COMMON_Q_AVAILHI, (uint32_t)(q->s.avail_addr >> 32));
	set32(img, VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)q->s.used_addr);
	set32(img, VIRTIO_PCI_COMMON_Q_USEDHI, (uint32_t)(q->s.used_addr >> 32));
}

static void set_half(uint64_t *addr, bool high, uint32_t v)
{
	*addr = high ? (*addr & 0xffffffffull) | (uint64_t)v << 32
		     : (*addr & ~0xffffffffull) | v;
}

static void write_queue_field_locked(struct virtio_pci *vp, uint64_t off, uint32_t len, uint64_t v)
{
	struct virtq *q = selected_queue(vp);
	int qi = vp->queue_select;

	if (!q)
		return;
	if (off == VIRTIO_PCI_COMMON_Q_MSIX && len == 2) {
		pthread_mutex_lock(&q->lock);
		q->s.msix_vector = valid_vector(vp, (uint16_t)v);
		pthread_mutex_unlock(&q->lock);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_ENABLE && len == 2) {
		/* Writing 0 is not allowed to the driver (it resets instead); ignore it. */
		if (v != 1 || q->s.enabled)
			return;
		pthread_mutex_lock(&q->lock);
		q->s.enabled = 1;
		pthread_mutex_unlock(&q->lock);
		if (start_queue_locked(vp, qi))
			queue_started(vp, qi);
		return;
	}
	if (q->s.enabled)
		return; /* the rest is fixed while the queue is enabled */
	uint64_t *addr = NULL;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* Only a size a split queue can have sticks: a guest that wrote any other could
		 * not be migrated (check_state refuses it on the destination). */
		if (len == 2 && v && v <= VIRTQ_MAX_SIZE && !(v & (v - 1)))
			q->s.size = (uint16_t)v;
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		addr = &q->s.desc_addr;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		addr = &q->s.avail_addr;
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		addr = &q->s.used_addr;
		break;
	default:
		return;
	}
	bool high = (off - VIRTIO_PCI_COMMON_Q_DESCLO) % 8 == 4;
	if (len == 4)
		set_half(addr, high, (uint32_t)v);
	else if (len == 8 && !high)
		*addr = v;
}

static void common_write_locked(struct virtio_pci *vp, uint64_t off, uint32_t len, uint64_t v)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		if (len == 4)
			vp->dfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		if (len == 4)
			vp->gfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		if (len == 4 && vp->gfselect < 2 && !(vp->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			uint64_t f = vp->driver_features;
			set_half(&f, vp->gfselect == 1, (uint32_t)v);
			__atomic_store_n(&vp->driver_features, f, __ATOMIC_RELEASE);
		}
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		if (len == 2)
			__atomic_store_n(&vp->msix_config, valid_vector(vp, (uint16_t)v), __ATOMIC_RELEASE);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		if (len == 1)
			write_status_locked(vp, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		if (len == 2)
			vp->queue_select = (uint16_t)v;
		return;
	default:
		write_queue_field_locked(vp, off, len, v);
	}
}

static void common_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	uint8_t img[VIRTIO_PCI_COMMON_LEN];

	pthread_mutex_lock(&vp->lock);
	if (is_write) {
		common_write_locked(vp, off, len, get_le(data, len));
	} else {
		common_image_locked(vp, img);
		for (uint32_t i = 0; i < len; i++)
			data[i] = off + i < VIRTIO_PCI_COMMON_LEN ? img[off + i] : 0;
	}
	pthread_mutex_unlock(&vp->lock);
}

/* ---- ISR, device config, notify ---- */

static void isr_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write)
		return;
	memset(data, 0, len);
	if (off != 0)
		return;
	/* Reading the ISR acknowledges it and lowers INTx. */
	pthread_mutex_lock(&vp->isr_lock);
	data[0] = vp->isr;
	vp->isr = 0;
	pci_intx_set(vp->pci, 0);
	pthread_mutex_unlock(&vp->isr_lock);
}

static void devcfg_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	uint32_t size = vp->ops->config_size;

	if (off >= size || len > size - off) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	if (!is_write && vp->ops->get_config)
		vp->ops->get_config(vp->dev, (uint32_t)off, data, len);
	else if (!is_write)
		memset(data, 0, len);
	else if (vp->ops->set_config)
		vp->ops->set_config(vp->dev, (uint32_t)off, data, len);
	pthread_mutex_unlock(&vp->lock);
}

/* Reached only when KVM did not take the write through the ioeventfd (no KVM, or an
 * access of another width): the same eventfd gets the notification. */
static void notify_io(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (off % VIRTIO_PCI_NOTIFY_MULT == 0)
		virtio_pci_kick_queue(vp, (int)(off / VIRTIO_PCI_NOTIFY_MULT));
}

static void bar0_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_pci *vp = opaque;

	if (off < VIRTIO_PCI_ISR_OFF)
		common_io(vp, off - VIRTIO_PCI_COMMON_OFF, data, len, is_write);
	else if (off < VIRTIO_PCI_DEVCFG_OFF)
		isr_io(vp, off - VIRTIO_PCI_ISR_OFF, data, len, is_write);
	else if (off < VIRTIO_PCI_NOTIFY_OFF)
		devcfg_io(vp, off - VIRTIO_PCI_DEVCFG_OFF, data, len, is_write);
	else
		notify_io(vp, off - VIRTIO_PCI_NOTIFY_OFF, data, len, is_write);
}

/* BAR0 moved: the ioeventfds follow its notify area. */
static void set_ioeventfds(struct virtio_pci *vp, uint64_t base, bool assign)
{
	if (vp->vm->vm_fd < 0)
		return;
	for (int i = 0; i < vp->nq; i++) {
		struct kvm_ioeventfd io = {
			.addr = base + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)i * VIRTIO_PCI_NOTIFY_MULT,
			.len = 2,
			.fd = vp->notify_fd[i],
			.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
		};
		if (ioctl(vp->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 && !vp->ioeventfd_warned) {
			vp->ioeventfd_warned = true;
			hv_warn("%s: KVM_IOEVENTFD failed: %s; queue notifications take the slow path",
				vp->name, strerror(errno));
		}
	}
}

static void bar_map(void *opaque, int bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *vp = opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	if (vp->ioeventfd_on)
		set_ioeventfds(vp, vp->ioeventfd_base, false);
	vp->ioeventfd_on = mapped;
	vp->ioeventfd_base = addr;
	if (mapped)
		set_ioeventfds(vp, addr, true);
}

/* ---- creation ---- */

static int add_virtio_cap(struct pci_device *pci, uint8_t type, uint32_t off, uint32_t len,
			  const uint32_t *extra)
{
	uint8_t cap[20] = { PCI_CAP_ID_VNDR };
	int cap_len = extra ? 20 : 16;

	cap[2] = (uint8_t)cap_len;
	cap[3] = type;
	cap[4] = VIRTIO_PCI_BAR;
	set32(cap, 8, off);
	set32(cap, 12, len);
	if (extra)
		set32(cap, 16, *extra);
	return pci_device_add_cap(pci, cap, cap_len);
}

struct virtio_pci *virtio_pci_create(struct pci_bus *bus, int slot, const struct virtio_dev_ops *ops,
				     void *dev, uint64_t extra_features)
{
	struct virtio_pci *vp = calloc(1, sizeof(*vp));

	if (!vp) {
		hv_error("%s: out of memory", ops->name);
		return NULL;
	}
	if (ops->num_queues < 1 || ops->num_queues > VIRTIO_PCI_MAX_QUEUES ||
	    ops->config_size > VIRTIO_PCI_DEVCFG_MAX) {
		hv_error("%s: invalid device description", ops->name);
		free(vp);
		return NULL;
	}
	vp->ops = ops;
	vp->dev = dev;
	vp->vm = pci_bus_vm(bus);
	snprintf(vp->name, sizeof(vp->name), "%s at 00:%02x.0", ops->name, slot);
	vp->offered = ops->features | extra_features | TRANSPORT_FEATURES;
	vp->nq = ops->num_queues;
	vp->nvectors = vp->nq + 1;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->isr_lock, NULL);
	vp->msix_config = VIRTQ_NO_VECTOR;
	for (int i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++)
		vp->notify_fd[i] = -1;
	for (int i = 0; i < vp->nq; i++) {
		virtq_init(&vp->vq[i], &vp->vm->mem, i, queue_error, vp);
		vp->vq[i].s.size = VIRTQ_MAX_SIZE;
		vp->notify_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->notify_fd[i] < 0) {
			hv_error("%s: cannot create an eventfd: %s", vp->name, strerror(errno));
			virtio_pci_destroy(vp);
			return NULL;
		}
	}
	struct pci_device_desc desc = {
		.name = ops->name,
		.vendor_id = VIRTIO_PCI_VENDOR,
		.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->type),
		.subsys_vendor_id = VIRTIO_PCI_VENDOR,
		.subsys_id = VIRTIO_PCI_SUBSYS_ID,
		.revision = VIRTIO_PCI_REVISION,
		.class_code = ops->class_code,
		.bar[VIRTIO_PCI_BAR] = { VIRTIO_PCI_BAR_SIZE, bar0_io, vp, ops->name },
		.msix_vectors = vp->nvectors,
		.msix_bar = VIRTIO_PCI_MSIX_BAR,
		.intx = true,
		.bar_map = bar_map,
		.opaque = vp,
	};
	vp->pci = pci_device_create(bus, slot, &desc);
	if (!vp->pci) {
		virtio_pci_destroy(vp);
		return NULL;
	}
	uint32_t mult = VIRTIO_PCI_NOTIFY_MULT;
	if (add_virtio_cap(vp->pci, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			   VIRTIO_PCI_COMMON_LEN, NULL) < 0 ||
	    add_virtio_cap(vp->pci, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
			   (uint32_t)vp->nq * VIRTIO_PCI_NOTIFY_MULT, &mult) < 0 ||
	    add_virtio_cap(vp->pci, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN,
			   NULL) < 0 ||
	    (ops->config_size && add_virtio_cap(vp->pci, VIRTIO_PCI_CAP_DEVICE_CFG,
						VIRTIO_PCI_DEVCFG_OFF, ops->config_size, NULL) < 0)) {
		hv_error("%s: PCI config space full", vp->name);
		virtio_pci_destroy(vp);
		return NULL;
	}
	return vp;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	if (vp->pci)
		pci_device_destroy(vp->pci); /* unmaps BAR0: the ioeventfds go with it */
	for (int i = 0; i < vp->nq; i++) {
		virtq_destroy(&vp->vq[i]);
		if (vp->notify_fd[i] >= 0)
			close(vp->notify_fd[i]);
	}
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->isr_lock);
	free(vp);
}

struct virtq *virtio_pci_queue(struct virtio_pci *vp, int queue)
{
	return queue >= 0 && queue < vp->nq ? &vp->vq[queue] : NULL;
}

int virtio_pci_queue_eventfd(struct virtio_pci *vp, int queue)
{
	return queue >= 0 && queue < vp->nq ? vp->notify_fd[queue] : -1;
}

struct pci_device *virtio_pci_pci(struct virtio_pci *vp)
{
	return vp->pci;
}

/* Without the lock: an I/O thread holding a queue lock asks (virtio-blk, for discard), and
 * a vCPU resetting the device holds the lock while it waits for that queue lock. */
uint64_t virtio_pci_driver_features(struct virtio_pci *vp)
{
	return __atomic_load_n(&vp->driver_features, __ATOMIC_ACQUIRE);
}

uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	uint8_t s = vp->status | (virtio_pci_needs_reset(vp) ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
	pthread_mutex_unlock(&vp->lock);
	return s;
}

/* ---- save / restore ---- */

void virtio_pci_pause(struct virtio_pci *vp)
{
	for (int i = 0; i < vp->nq; i++) {
		pthread_mutex_lock(&vp->vq[i].lock);
		vp->vq[i].paused = true;
		pthread_mutex_unlock(&vp->vq[i].lock);
	}
}

void virtio_pci_resume(struct virtio_pci *vp)
{
	for (int i = 0; i < vp->nq; i++) {
		pthread_mutex_lock(&vp->vq[i].lock);
		vp->vq[i].paused = false;
		pthread_mutex_unlock(&vp->vq[i].lock);
		virtio_pci_kick_queue(vp, i);
	}
}

void virtio_pci_get_state(struct virtio_pci *vp, struct virtio_pci_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&vp->lock);
	st->device_features = vp->offered;
	st->driver_features = vp->driver_features;
	st->device_feature_select = vp->dfselect;
	st->driver_feature_select = vp->gfselect;
	st->msix_config = __atomic_load_n(&vp->msix_config, __ATOMIC_ACQUIRE);
	st->queue_select = vp->queue_select;
	st->num_queues = (uint16_t)vp->nq;
	st->status = vp->status;
	st->config_generation = __atomic_load_n(&vp->config_generation, __ATOMIC_ACQUIRE);
	st->needs_reset = (uint8_t)virtio_pci_needs_reset(vp);
	pthread_mutex_lock(&vp->isr_lock);
	st->isr = vp->isr;
	pthread_mutex_unlock(&vp->isr_lock);
	for (int i = 0; i < vp->nq; i++) {
		pthread_mutex_lock(&vp->vq[i].lock);
		virtq_get_state(&vp->vq[i], &st->vq[i]);
		pthread_mutex_unlock(&vp->vq[i].lock);
	}
	pthread_mutex_unlock(&vp->lock);
	pci_device_get_state(vp->pci, &st->pci);
}

static int check_state(const struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	if (st->num_queues != vp->nq || st->device_features != vp->offered) {
		hv_error("%s: saved state is of a different device (%u queues, features 0x%llx; "
			 "here %d queues, features 0x%llx)", vp->name, st->num_queues,
			 (unsigned long long)st->device_features, vp->nq,
			 (unsigned long long)vp->offered);
		return -EINVAL;
	}
	/* Until FEATURES_OK the driver's features are only what it wrote so far (anything);
	 * from then on they are what negotiation accepted, and DRIVER_OK needs them. */
	bool features_ok = st->status & VIRTIO_CONFIG_S_FEATURES_OK;
	if (features_ok && !features_acceptable(vp, st->driver_features)) {
		hv_error("%s: saved driver features 0x%llx were never acceptable for the offer 0x%llx",
			 vp->name, (unsigned long long)st->driver_features,
			 (unsigned long long)vp->offered);
		return -EINVAL;
	}
	if ((st->status & VIRTIO_CONFIG_S_DRIVER_OK) && !features_ok) {
		hv_error("%s: saved status 0x%x has DRIVER_OK without FEATURES_OK", vp->name, st->status);
		return -EINVAL;
	}
	for (int i = 0; i < vp->nq; i++) {
		uint16_t size = st->vq[i].size;
		if (!size || size > VIRTQ_MAX_SIZE || (size & (size - 1))) {
			hv_error("%s: saved queue %d has an invalid size %u", vp->name, i, size);
			return -EINVAL;
		}
	}
	return 0;
}

int virtio_pci_set_state(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	int r = check_state(vp, st);

	if (r < 0)
		return r;
	r = pci_device_set_state(vp->pci, &st->pci);
	if (r < 0)
		return r;
	pthread_mutex_lock(&vp->lock);
	reset_queues_locked(vp);
	__atomic_store_n(&vp->driver_features, st->driver_features, __ATOMIC_RELEASE);
	vp->dfselect = st->device_feature_select;
	vp->gfselect = st->driver_feature_select;
	__atomic_store_n(&vp->msix_config, valid_vector(vp, st->msix_config), __ATOMIC_RELEASE);
	vp->queue_select = st->queue_select;
	vp->status = st->status & (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	vp->driver_ok = vp->status & VIRTIO_CONFIG_S_DRIVER_OK;
	__atomic_store_n(&vp->config_generation, st->config_generation, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->needs_reset, st->needs_reset ? 1 : 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr = st->isr;
	pthread_mutex_unlock(&vp->isr_lock);
	for (int i = 0; i < vp->nq; i++) {
		struct virtq *q = &vp->vq[i];
		pthread_mutex_lock(&q->lock);
		q->s = st->vq[i];
		q->s.msix_vector = valid_vector(vp, q->s.msix_vector);
		q->s.enabled = q->s.enabled ? 1 : 0;
		pthread_mutex_unlock(&q->lock);
		/* A ring the guest broke before the save stays broken (needs reset). */
		start_queue_locked(vp, i);
	}
	pthread_mutex_unlock(&vp->lock);
	return 0;
}

/* ---- the transport's sections ---- */

enum { SEC_PCI = 1, SEC_COMMON = 2, SEC_QUEUE0 = 3 };
_Static_assert(SEC_QUEUE0 + VIRTIO_PCI_MAX_QUEUES <= VIRTIO_PCI_SEC_DEVICE,
	       "queue sections overlap the device's own");

void virtio_pci_save(struct virtio_pci *vp, struct state_out *o)
{
	struct virtio_pci_state *st = malloc(sizeof(*st));

	if (!st) {
		o->nomem = true;
		return;
	}
	virtio_pci_get_state(vp, st);
	state_out_begin(o, SEC_PCI);
	pci_device_state_encode(&st->pci, o);
	state_out_end(o);
	state_out_begin(o, SEC_COMMON);
	state_out_u64(o, st->device_features);
	state_out_u64(o, st->driver_features);
	state_out_u32(o, st->device_feature_select);
	state_out_u32(o, st->driver_feature_select);
	state_out_u16(o, st->msix_config);
	state_out_u16(o, st->queue_select);
	state_out_u16(o, st->num_queues);
	state_out_u8(o, st->status);
	state_out_u8(o, st->config_generation);
	state_out_u8(o, st->isr);
	state_out_u8(o, st->needs_reset);
	state_out_end(o);
	for (int i = 0; i < st->num_queues; i++) {
		state_out_begin(o, SEC_QUEUE0 + (unsigned)i);
		virtq_state_encode(&st->vq[i], o);
		state_out_end(o);
	}
	free(st);
}

static int decode_common(struct virtio_pci_state *st, struct state_sec *s, char *err, size_t errlen)
{
	st->device_features = state_sec_u64(s);
	st->driver_features = state_sec_u64(s);
	st->device_feature_select = state_sec_u32(s);
	st->driver_feature_select = state_sec_u32(s);
	st->msix_config = state_sec_u16(s);
	st->queue_select = state_sec_u16(s);
	st->num_queues = state_sec_u16(s);
	st->status = state_sec_u8(s);
	st->config_generation = state_sec_u8(s);
	st->isr = state_sec_u8(s);
	st->needs_reset = state_sec_u8(s);
	return state_sec_end(s, "virtio common configuration", err, errlen);
}

int virtio_pci_decode(struct virtio_pci *vp, const void *blob, size_t len, struct virtio_pci_state *st,
		      int (*own)(void *ctx, struct state_sec *s, char *err, size_t errlen), void *ctx,
		      uint64_t own_needed, char *err, size_t errlen)
{
	uint64_t needed = own_needed | 1ull << SEC_PCI | 1ull << SEC_COMMON;
	struct state_in in;
	struct state_sec s;
	int r;

	memset(st, 0, sizeof(*st));
	for (int i = 0; i < vp->nq; i++)
		needed |= 1ull << (SEC_QUEUE0 + i);
	state_in_init(&in, blob, len);
	while ((r = state_in_next(&in, &s, err, errlen)) > 0) {
		if (s.id == SEC_PCI)
			r = pci_device_state_decode(&st->pci, &s, err, errlen);
		else if (s.id == SEC_COMMON)
			r = decode_common(st, &s, err, errlen);
		else if (s.id >= SEC_QUEUE0 && s.id < SEC_QUEUE0 + (unsigned)vp->nq)
			r = virtq_state_decode(&st->vq[s.id - SEC_QUEUE0], &s, err, errlen);
		else if (s.id >= VIRTIO_PCI_SEC_DEVICE && (own_needed & (1ull << s.id)))
			r = own(ctx, &s, err, errlen);
		else {
			snprintf(err, errlen, "section %u is not part of this device's state (%d queues)",
				 s.id, vp->nq);
			r = -1;
		}
		if (r < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	unsigned lack = state_in_missing(&in, needed);
	if (lack) {
		snprintf(err, errlen, "section %u of the device's state is missing", lack);
		return -1;
	}
	return 0;
}
