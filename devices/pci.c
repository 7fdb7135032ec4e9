/* PCI host bridge (conf1), config space, BAR placement, INTx and MSI-X. See pci.h.
 *
 * Locks, outermost first: bus->lock (conf1 address, config cycles, BAR mapping state),
 * dev->lock (config bytes, MSI-X table, INTx), bus->irq_lock (GSI routes, INTx line
 * counts). BARs are moved on vm->mmio with dev->lock released, because a vCPU inside a
 * BAR handler (holding the MMIO bus lock shared) may be waiting for dev->lock. */
#include "devices/pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hv/layout.h"
#include "hv/log.h"
#include "hv/state_enc.h"
#include "hv/vm.h"

#define HOST_BRIDGE_VENDOR 0x8086
#define HOST_BRIDGE_DEVICE 0x29c0 /* the Q35 DRAM controller: any sane host bridge */
#define CLASS_BRIDGE_HOST 0x060000
#define CAP_START 0x40
#define CONF1_ENABLE 0x80000000u
#define CONF1_ADDR_MASK 0x80fffffcu /* enable, bus, device, function, dword register */
#define IRQCHIP_GSIS 24
#define MAX_MSI_GSIS (PCI_MAX_SLOTS * PCI_MSIX_MAX_VECTORS)

_Static_assert(sizeof(struct pci_msix_entry) == PCI_MSIX_ENTRY_SIZE, "MSI-X entry layout");

struct pci_bar {
	struct pci_bar_desc desc;
	uint64_t addr; /* where it is decoded, if mapped; guarded by bus->lock */
	bool mapped;
};

struct pci_device {
	struct pci_bus *bus;
	int slot;
	char name[32];
	pthread_mutex_t lock;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
	int cap_end, last_cap;
	struct pci_bar bar[PCI_NUM_BARS];
	void (*bar_map)(void *opaque, int bar, uint64_t addr, bool mapped);
	void *opaque;

	int msix_vectors, msix_bar, msix_cap;
	struct pci_msix_entry msix[PCI_MSIX_MAX_VECTORS];
	uint32_t pba;
	int msix_fd[PCI_MSIX_MAX_VECTORS];
	int gsi[PCI_MSIX_MAX_VECTORS];
	bool irqfd_assigned[PCI_MSIX_MAX_VECTORS];

	bool intx;
	int intx_irq;
	int intx_level;  /* what the device asks for */
	int intx_driven; /* what it contributes to the shared line */
};

struct msi_route {
	bool valid;
	uint32_t addr_lo, addr_hi, data;
};

struct pci_bus {
	struct vm *vm;
	pthread_mutex_t lock;
	uint32_t conf1_addr;
	struct pci_device *slots[PCI_MAX_SLOTS];
	bool ports_registered;

	pthread_mutex_t irq_lock;
	int next_gsi;
	struct msi_route routes[MAX_MSI_GSIS]; /* index gsi - PCI_FIRST_MSI_GSI */
	bool routes_warned;
	int intx_count[IRQCHIP_GSIS];
	int intx_line[IRQCHIP_GSIS];
};

static bool have_kvm(const struct pci_bus *b)
{
	return b->vm->vm_fd >= 0;
}

static uint16_t cfg16(const struct pci_device *d, int off)
{
	return (uint16_t)(d->cfg[off] | d->cfg[off + 1] << 8);
}

static uint32_t cfg32(const struct pci_device *d, int off)
{
	return (uint32_t)d->cfg[off] | (uint32_t)d->cfg[off + 1] << 8 |
	       (uint32_t)d->cfg[off + 2] << 16 | (uint32_t)d->cfg[off + 3] << 24;
}

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

/* ---- interrupt routing ---- */

/* KVM_SET_GSI_ROUTING replaces the whole table, so the default irqchip routes (GSI 0-15 to
 * the PICs and the IOAPIC, 16-23 to the IOAPIC) go in again, followed by the MSI routes. */
static void commit_routes_locked(struct pci_bus *b)
{
	if (!have_kvm(b))
		return;
	int n = 16 + IRQCHIP_GSIS;
	for (int i = 0; i < MAX_MSI_GSIS; i++)
		n += b->routes[i].valid;
	struct kvm_irq_routing *rt =
		calloc(1, sizeof(*rt) + (size_t)n * sizeof(struct kvm_irq_routing_entry));
	if (!rt) {
		hv_warn("pci: out of memory for the interrupt routing table");
		return;
	}
	int k = 0;
	for (uint32_t gsi = 0; gsi < IRQCHIP_GSIS; gsi++) {
		struct kvm_irq_routing_entry *e = &rt->entries[k++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = gsi;
		if (gsi < 16) {
			e = &rt->entries[k++];
			e->gsi = gsi;
			e->type = KVM_IRQ_ROUTING_IRQCHIP;
			e->u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			e->u.irqchip.pin = gsi % 8;
		}
	}
	for (int i = 0; i < MAX_MSI_GSIS; i++) {
		const struct msi_route *r = &b->routes[i];
		if (!r->valid)
			continue;
		struct kvm_irq_routing_entry *e = &rt->entries[k++];
		e->gsi = (uint32_t)(PCI_FIRST_MSI_GSI + i);
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = r->addr_lo;
		e->u.msi.address_hi = r->addr_hi;
		e->u.msi.data = r->data;
	}
	rt->nr = (uint32_t)k;
	if (ioctl(b->vm->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0 && !b->routes_warned) {
		b->routes_warned = true;
		hv_warn("pci: KVM_SET_GSI_ROUTING failed: %s; MSI-X interrupts will not arrive",
			strerror(errno));
	}
	free(rt);
}

/* Points `gsi` at the MSI message of entry `e`, if it is not already there. */
static void route_msi(struct pci_bus *b, int gsi, const struct pci_msix_entry *e)
{
	struct msi_route *r = &b->routes[gsi - PCI_FIRST_MSI_GSI];

	pthread_mutex_lock(&b->irq_lock);
	if (!r->valid || r->addr_lo != e->addr_lo || r->addr_hi != e->addr_hi || r->data != e->data) {
		*r = (struct msi_route){ true, e->addr_lo, e->addr_hi, e->data };
		commit_routes_locked(b);
	}
	pthread_mutex_unlock(&b->irq_lock);
}

static void unroute_msi(struct pci_bus *b, int gsi)
{
	pthread_mutex_lock(&b->irq_lock);
	if (b->routes[gsi - PCI_FIRST_MSI_GSI].valid) {
		b->routes[gsi - PCI_FIRST_MSI_GSI].valid = false;
		commit_routes_locked(b);
	}
	pthread_mutex_unlock(&b->irq_lock);
}

/* INTx lines are shared (wired-OR): the line is up while any device drives it. */
static void intx_line_change(struct pci_bus *b, int irq, int delta)
{
	pthread_mutex_lock(&b->irq_lock);
	b->intx_count[irq] += delta;
	int level = b->intx_count[irq] > 0;
	if (level != b->intx_line[irq]) {
		b->intx_line[irq] = level;
		if (have_kvm(b))
			vm_irq_line(b->vm, irq, level);
	}
	pthread_mutex_unlock(&b->irq_lock);
}

int pci_bus_irq_level(struct pci_bus *b, int irq)
{
	if (irq < 0 || irq >= IRQCHIP_GSIS)
		return 0;
	pthread_mutex_lock(&b->irq_lock);
	int level = b->intx_line[irq];
	pthread_mutex_unlock(&b->irq_lock);
	return level;
}

static void intx_update_locked(struct pci_device *d)
{
	if (!d->intx)
		return;
	uint16_t status = cfg16(d, PCI_STATUS);
	status = d->intx_level ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT;
	set16(d->cfg, PCI_STATUS, status);
	int want = d->intx_level && !(cfg16(d, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
	if (want != d->intx_driven) {
		d->intx_driven = want;
		intx_line_change(d->bus, d->intx_irq, want ? 1 : -1);
	}
}

void pci_intx_set(struct pci_device *d, int level)
{
	pthread_mutex_lock(&d->lock);
	d->intx_level = level ? 1 : 0;
	intx_update_locked(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- MSI-X ---- */

static uint16_t msix_control(const struct pci_device *d)
{
	return d->msix_cap ? cfg16(d, d->msix_cap + PCI_MSIX_FLAGS) : 0;
}

static bool vector_masked_locked(const struct pci_device *d, int v)
{
	uint16_t ctl = msix_control(d);

	return !(ctl & PCI_MSIX_FLAGS_ENABLE) || (ctl & PCI_MSIX_FLAGS_MASKALL) ||
	       (d->msix[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void msix_fire_locked(struct pci_device *d, int v)
{
	uint64_t one = 1;

	route_msi(d->bus, d->gsi[v], &d->msix[v]);
	if (write(d->msix_fd[v], &one, sizeof(one)) != sizeof(one))
		hv_debug("pci %s: MSI-X vector %d eventfd write failed", d->name, v);
}

/* After a mask was lifted: vectors that became pending while masked fire now. */
static void msix_deliver_pending_locked(struct pci_device *d)
{
	for (int v = 0; v < d->msix_vectors; v++) {
		if ((d->pba & (1u << v)) && !vector_masked_locked(d, v)) {
			d->pba &= ~(1u << v);
			msix_fire_locked(d, v);
		}
	}
}

bool pci_msix_enabled(struct pci_device *d)
{
	pthread_mutex_lock(&d->lock);
	bool on = msix_control(d) & PCI_MSIX_FLAGS_ENABLE;
	pthread_mutex_unlock(&d->lock);
	return on;
}

bool pci_msix_notify(struct pci_device *d, int vector)
{
	pthread_mutex_lock(&d->lock);
	if (!(msix_control(d) & PCI_MSIX_FLAGS_ENABLE)) {
		pthread_mutex_unlock(&d->lock);
		return false;
	}
	if (vector >= 0 && vector < d->msix_vectors) {
		if (vector_masked_locked(d, vector))
			d->pba |= 1u << vector;
		else
			msix_fire_locked(d, vector);
	}
	pthread_mutex_unlock(&d->lock);
	return true;
}

int pci_msix_vectors(const struct pci_device *d)
{
	return d->msix_vectors;
}

int pci_msix_eventfd(const struct pci_device *d, int vector)
{
	return vector >= 0 && vector < d->msix_vectors ? d->msix_fd[vector] : -1;
}

/* The MSI-X BAR: the table (16 bytes per vector) at 0, the PBA at PCI_MSIX_BAR_PBA.
 * Any width and alignment is accepted, byte by byte; only the vector-control mask bit of
 * an entry's last dword is writable there, the PBA is read-only. */
static void msix_mmio(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_device *d = opaque;
	uint64_t table_len = (uint64_t)d->msix_vectors * PCI_MSIX_ENTRY_SIZE;

	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o < table_len) {
			uint8_t *entry = (uint8_t *)&d->msix[o / PCI_MSIX_ENTRY_SIZE];
			unsigned b = (unsigned)(o % PCI_MSIX_ENTRY_SIZE);
			if (!is_write)
				data[i] = entry[b];
			else if (b < PCI_MSIX_ENTRY_VECTOR_CTRL)
				entry[b] = data[i];
			else if (b == PCI_MSIX_ENTRY_VECTOR_CTRL)
				entry[b] = data[i] & PCI_MSIX_ENTRY_CTRL_MASKBIT;
		} else if (o >= PCI_MSIX_BAR_PBA && o < PCI_MSIX_BAR_PBA + 8) {
			unsigned b = (unsigned)(o - PCI_MSIX_BAR_PBA);
			if (!is_write)
				data[i] = b < 4 ? (uint8_t)(d->pba >> (8 * b)) : 0;
		} else if (!is_write) {
			data[i] = 0;
		}
	}
	if (is_write)
		msix_deliver_pending_locked(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- config space ---- */

struct bar_target {
	bool want;
	uint64_t addr;
};

/* Where each BAR should be decoded after the config bytes changed; dev->lock held. */
static void bar_targets_locked(const struct pci_device *d, struct bar_target *t)
{
	bool mem_on = cfg16(d, PCI_COMMAND) & PCI_COMMAND_MEMORY;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t addr = cfg32(d, PCI_BASE_ADDRESS_0 + 4 * i) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
		t[i].addr = addr;
		/* An address inside low RAM would be shadowed by RAM: the BAR is not decoded. */
		t[i].want = d->bar[i].desc.size && mem_on && addr != 0 &&
			    addr >= d->bus->vm->mem.low_size;
	}
}

/* Moves BARs on vm->mmio to their targets; bus->lock held, dev->lock not held. */
static void apply_bar_targets(struct pci_device *d, const struct bar_target *t)
{
	struct bus *mmio = &d->bus->vm->mmio;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->desc.size || (b->mapped == t[i].want && (!b->mapped || b->addr == t[i].addr)))
			continue;
		if (b->mapped) {
			bus_unregister(mmio, b->addr);
			b->mapped = false;
			if (d->bar_map)
				d->bar_map(d->opaque, i, b->addr, false);
		}
		if (!t[i].want)
			continue;
		int r = bus_register(mmio, t[i].addr, b->desc.size, b->desc.fn, b->desc.opaque,
				     b->desc.name);
		if (r < 0) {
			hv_debug("pci %s: BAR%d at 0x%llx overlaps another region; not decoded",
				 d->name, i, (unsigned long long)t[i].addr);
			continue;
		}
		b->addr = t[i].addr;
		b->mapped = true;
		if (d->bar_map)
			d->bar_map(d->opaque, i, b->addr, true);
	}
}

static uint32_t config_read_dev(struct pci_device *d, int off, int len)
{
	uint32_t v = 0;

	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < len; i++)
		v |= (uint32_t)d->cfg[off + i] << (8 * i);
	pthread_mutex_unlock(&d->lock);
	return v;
}

/* bus->lock held. */
static void config_write_dev(struct pci_device *d, int off, int len, uint32_t value)
{
	struct bar_target t[PCI_NUM_BARS];

	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i];
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | ((value >> (8 * i)) & m));
	}
	/* Side effects: INTx disable, MSI-X enable / function mask. */
	intx_update_locked(d);
	if (d->msix_cap)
		msix_deliver_pending_locked(d);
	bar_targets_locked(d, t);
	pthread_mutex_unlock(&d->lock);
	apply_bar_targets(d, t);
}

static bool cfg_args_ok(int slot, int off, int len)
{
	return slot >= 0 && slot < PCI_MAX_SLOTS && off >= 0 && (len == 1 || len == 2 || len == 4) &&
	       (off & 3) + len <= 4 && off + len <= PCI_CFG_SIZE;
}

static uint32_t config_read_locked(struct pci_bus *b, int slot, int off, int len)
{
	if (!cfg_args_ok(slot, off, len) || !b->slots[slot])
		return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	return config_read_dev(b->slots[slot], off, len);
}

static void config_write_locked(struct pci_bus *b, int slot, int off, int len, uint32_t value)
{
	if (cfg_args_ok(slot, off, len) && b->slots[slot])
		config_write_dev(b->slots[slot], off, len, value);
}

uint32_t pci_config_read(struct pci_bus *b, int slot, int off, int len)
{
	pthread_mutex_lock(&b->lock);
	uint32_t v = config_read_locked(b, slot, off, len);
	pthread_mutex_unlock(&b->lock);
	return v;
}

void pci_config_write(struct pci_bus *b, int slot, int off, int len, uint32_t value)
{
	pthread_mutex_lock(&b->lock);
	config_write_locked(b, slot, off, len, value);
	pthread_mutex_unlock(&b->lock);
}

/* ---- conf1 ports ---- */

static uint32_t get_le(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *data, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len; i++)
		data[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0xff;
}

/* 0xCF8: only whole 32-bit accesses reach the address register (as on real chipsets). */
static void conf1_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *b = opaque;

	if (off != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (is_write)
		b->conf1_addr = get_le(data, 4) & CONF1_ADDR_MASK;
	else
		put_le(data, 4, b->conf1_addr);
	pthread_mutex_unlock(&b->lock);
}

/* 0xCFC-0xCFF: a config cycle for the function in the address register, at any width. */
static void conf1_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *b = opaque;

	pthread_mutex_lock(&b->lock);
	uint32_t a = b->conf1_addr;
	int busno = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	int reg = (int)(a & 0xfc) + (int)off;
	bool hit = (a & CONF1_ENABLE) && busno == 0 && fn == 0 && len <= 4;

	if (is_write) {
		if (hit)
			config_write_locked(b, slot, reg, (int)len, get_le(data, len));
	} else {
		uint32_t v = hit ? config_read_locked(b, slot, reg, (int)len) : 0xffffffffu;
		put_le(data, len, v);
	}
	pthread_mutex_unlock(&b->lock);
}

/* ---- devices ---- */

int pci_device_add_cap(struct pci_device *d, const void *cap, int len)
{
	if (len < 4 || len > 64 || len % 4 || d->cap_end + len > PCI_CFG_SIZE)
		return -1;
	int off = d->cap_end;
	memcpy(&d->cfg[off], cap, (size_t)len);
	d->cfg[off + 1] = 0;
	if (d->last_cap)
		d->cfg[d->last_cap + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	set16(d->cfg, PCI_STATUS, cfg16(d, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->last_cap = off;
	d->cap_end = off + len;
	return off;
}

int pci_device_slot(const struct pci_device *d)
{
	return d->slot;
}

uint64_t pci_device_bar_addr(struct pci_device *d, int bar, bool *mapped)
{
	if (bar < 0 || bar >= PCI_NUM_BARS) {
		if (mapped)
			*mapped = false;
		return 0;
	}
	pthread_mutex_lock(&d->bus->lock);
	uint64_t addr = d->bar[bar].mapped ? d->bar[bar].addr
					   : cfg32(d, PCI_BASE_ADDRESS_0 + 4 * bar) & ~0xfull;
	if (mapped)
		*mapped = d->bar[bar].mapped;
	pthread_mutex_unlock(&d->bus->lock);
	return addr;
}

static bool desc_ok(const struct pci_device_desc *desc, int slot)
{
	if (slot < 1 || slot >= PCI_MAX_SLOTS)
		return false;
	if (desc->msix_vectors < 0 || desc->msix_vectors > PCI_MSIX_MAX_VECTORS)
		return false;
	if (desc->msix_vectors &&
	    (desc->msix_bar < 0 || desc->msix_bar >= PCI_NUM_BARS || desc->bar[desc->msix_bar].size))
		return false;
	uint64_t total = desc->msix_vectors ? PCI_MSIX_BAR_SIZE : 0;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t s = desc->bar[i].size;
		if (!s)
			continue;
		if (s < 0x1000 || s > PCI_SLOT_WINDOW || (s & (s - 1)) || !desc->bar[i].fn)
			return false;
		total += s;
	}
	return total <= PCI_SLOT_WINDOW;
}

static struct pci_device *device_alloc(struct pci_bus *b, int slot, const struct pci_device_desc *desc)
{
	struct pci_device *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->bus = b;
	d->slot = slot;
	snprintf(d->name, sizeof(d->name), "%s", desc->name ? desc->name : "pci");
	pthread_mutex_init(&d->lock, NULL);
	d->cap_end = CAP_START;
	for (int v = 0; v < PCI_MSIX_MAX_VECTORS; v++)
		d->msix_fd[v] = -1;
	set16(d->cfg, PCI_VENDOR_ID, desc->vendor_id);
	set16(d->cfg, PCI_DEVICE_ID, desc->device_id);
	set32(d->cfg, PCI_CLASS_REVISION, desc->class_code << 8 | desc->revision);
	set16(d->cfg, PCI_SUBSYSTEM_VENDOR_ID, desc->subsys_vendor_id);
	set16(d->cfg, PCI_SUBSYSTEM_ID, desc->subsys_id);
	d->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	/* Writable: memory decode, bus master, SERR, INTx disable; cache line, latency. */
	set16(d->wmask, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
					     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->wmask[PCI_LATENCY_TIMER] = 0xff;
	return d;
}

static void device_free(struct pci_device *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int setup_msix(struct pci_device *d, const struct pci_device_desc *desc)
{
	struct pci_bus *b = d->bus;
	uint8_t cap[12] = { PCI_CAP_ID_MSIX };

	d->msix_vectors = desc->msix_vectors;
	d->msix_bar = desc->msix_bar;
	set16(cap, PCI_MSIX_FLAGS, (uint16_t)(desc->msix_vectors - 1));
	set32(cap, PCI_MSIX_TABLE, (uint32_t)desc->msix_bar);
	set32(cap, PCI_MSIX_PBA, PCI_MSIX_BAR_PBA | (uint32_t)desc->msix_bar);
	d->msix_cap = pci_device_add_cap(d, cap, sizeof(cap));
	d->wmask[d->msix_cap + PCI_MSIX_FLAGS + 1] =
		(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	d->bar[desc->msix_bar].desc = (struct pci_bar_desc){ PCI_MSIX_BAR_SIZE, msix_mmio, d, "msix" };
	for (int v = 0; v < d->msix_vectors; v++) {
		d->msix[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT; /* masked at reset */
		d->msix_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->msix_fd[v] < 0) {
			hv_error("pci %s: cannot create an eventfd: %s", d->name, strerror(errno));
			return -1;
		}
		pthread_mutex_lock(&b->irq_lock);
		d->gsi[v] = b->next_gsi++;
		pthread_mutex_unlock(&b->irq_lock);
		if (have_kvm(b)) {
			struct kvm_irqfd irqfd = { .fd = (uint32_t)d->msix_fd[v], .gsi = (uint32_t)d->gsi[v] };
			if (ioctl(b->vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
				hv_error("pci %s: KVM_IRQFD failed: %s", d->name, strerror(errno));
				return -1;
			}
			d->irqfd_assigned[v] = true;
		}
	}
	return 0;
}

static void teardown_msix(struct pci_device *d)
{
	struct pci_bus *b = d->bus;

	for (int v = 0; v < d->msix_vectors; v++) {
		if (d->irqfd_assigned[v]) {
			struct kvm_irqfd irqfd = { .fd = (uint32_t)d->msix_fd[v],
						   .gsi = (uint32_t)d->gsi[v],
						   .flags = KVM_IRQFD_FLAG_DEASSIGN };
			ioctl(b->vm->vm_fd, KVM_IRQFD, &irqfd);
			d->irqfd_assigned[v] = false;
		}
		if (d->gsi[v] >= PCI_FIRST_MSI_GSI)
			unroute_msi(b, d->gsi[v]);
		if (d->msix_fd[v] >= 0)
			close(d->msix_fd[v]);
		d->msix_fd[v] = -1;
	}
}

struct pci_device *pci_device_create(struct pci_bus *b, int slot, const struct pci_device_desc *desc)
{
	const char *name = desc->name ? desc->name : "device";

	if (!desc_ok(desc, slot)) {
		hv_error("pci: invalid description for %s at slot %d", name, slot);
		return NULL;
	}
	if (b->slots[slot]) {
		hv_error("pci: slot %d is already taken; cannot add %s", slot, name);
		return NULL;
	}
	struct pci_device *d = device_alloc(b, slot, desc);
	if (!d) {
		hv_error("pci: out of memory for %s", name);
		return NULL;
	}
	d->bar_map = desc->bar_map;
	d->opaque = desc->opaque;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		d->bar[i].desc = desc->bar[i];
	if (desc->msix_vectors && setup_msix(d, desc) < 0) {
		teardown_msix(d);
		device_free(d);
		return NULL;
	}
	if (desc->intx) {
		d->intx = true;
		d->intx_irq = PCI_INTX_IRQ(slot);
		d->cfg[PCI_INTERRUPT_PIN] = 1;
		d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->intx_irq;
		d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	}
	/* Power-on placement, as firmware would do it: BARs in index order, each aligned to
	 * its size, inside the slot's window; memory decoding on. */
	uint64_t addr = PCI_SLOT_MMIO(slot);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t size = d->bar[i].desc.size;
		if (!size)
			continue;
		addr = (addr + size - 1) & ~((uint64_t)size - 1);
		set32(d->cfg, PCI_BASE_ADDRESS_0 + 4 * i, (uint32_t)addr | PCI_BASE_ADDRESS_MEM_TYPE_32);
		set32(d->wmask, PCI_BASE_ADDRESS_0 + 4 * i, ~(size - 1) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK);
		addr += size;
	}
	set16(d->cfg, PCI_COMMAND, PCI_COMMAND_MEMORY);

	struct bar_target t[PCI_NUM_BARS];
	pthread_mutex_lock(&b->lock);
	b->slots[slot] = d;
	pthread_mutex_lock(&d->lock);
	bar_targets_locked(d, t);
	pthread_mutex_unlock(&d->lock);
	apply_bar_targets(d, t);
	pthread_mutex_unlock(&b->lock);
	return d;
}

void pci_device_destroy(struct pci_device *d)
{
	if (!d)
		return;
	struct pci_bus *b = d->bus;
	struct bar_target off[PCI_NUM_BARS] = { { false, 0 } };

	pthread_mutex_lock(&b->lock);
	apply_bar_targets(d, off);
	if (b->slots[d->slot] == d)
		b->slots[d->slot] = NULL;
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_lock(&d->lock);
	d->intx_level = 0;
	intx_update_locked(d);
	pthread_mutex_unlock(&d->lock);
	teardown_msix(d);
	device_free(d);
}

struct pci_device *pci_bus_device(struct pci_bus *b, int slot)
{
	if (slot < 0 || slot >= PCI_MAX_SLOTS)
		return NULL;
	pthread_mutex_lock(&b->lock);
	struct pci_device *d = b->slots[slot];
	pthread_mutex_unlock(&b->lock);
	return d;
}

struct vm *pci_bus_vm(struct pci_bus *b)
{
	return b->vm;
}

/* ---- save / restore ---- */

void pci_device_get_state(struct pci_device *d, struct pci_device_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&d->lock);
	memcpy(st->config, d->cfg, sizeof(st->config));
	memcpy(st->msix, d->msix, sizeof(d->msix));
	st->msix_pba = d->pba;
	st->intx_level = (uint8_t)d->intx_level;
	pthread_mutex_unlock(&d->lock);
}

void pci_device_state_encode(const struct pci_device_state *st, struct state_out *o)
{
	state_out_bytes(o, st->config, PCI_CFG_SIZE);
	state_out_u16(o, PCI_MSIX_MAX_VECTORS);
	for (int v = 0; v < PCI_MSIX_MAX_VECTORS; v++) {
		state_out_u32(o, st->msix[v].addr_lo);
		state_out_u32(o, st->msix[v].addr_hi);
		state_out_u32(o, st->msix[v].data);
		state_out_u32(o, st->msix[v].ctrl);
	}
	state_out_u32(o, st->msix_pba);
	state_out_u8(o, st->intx_level);
}

int pci_device_state_decode(struct pci_device_state *st, struct state_sec *s, char *err,
			    size_t errlen)
{
	memset(st, 0, sizeof(*st));
	state_sec_bytes(s, st->config, PCI_CFG_SIZE);
	unsigned n = state_sec_u16(s);
	if (n > PCI_MSIX_MAX_VECTORS) {
		snprintf(err, errlen, "PCI state has %u MSI-X vectors, at most %d exist", n,
			 PCI_MSIX_MAX_VECTORS);
		return -1;
	}
	for (unsigned v = 0; v < n; v++) {
		st->msix[v].addr_lo = state_sec_u32(s);
		st->msix[v].addr_hi = state_sec_u32(s);
		st->msix[v].data = state_sec_u32(s);
		st->msix[v].ctrl = state_sec_u32(s);
	}
	st->msix_pba = state_sec_u32(s);
	st->intx_level = state_sec_u8(s);
	return state_sec_end(s, "PCI function", err, errlen);
}

int pci_device_set_state(struct pci_device *d, const struct pci_device_state *st)
{
	struct bar_target t[PCI_NUM_BARS];
	struct pci_bus *b = d->bus;

	pthread_mutex_lock(&b->lock);
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t fixed = (uint8_t)~d->wmask[i];
		if (i == PCI_STATUS)
			fixed &= (uint8_t)~PCI_STATUS_INTERRUPT; /* follows the INTx level */
		if ((st->config[i] ^ d->cfg[i]) & fixed) {
			pthread_mutex_unlock(&d->lock);
			pthread_mutex_unlock(&b->lock);
			hv_error("pci %s: saved config space differs from this device at offset 0x%x "
				 "(0x%02x, here 0x%02x); the two sides run different devices",
				 d->name, i, st->config[i], d->cfg[i]);
			return -EINVAL;
		}
	}
	for (int i = 0; i < PCI_CFG_SIZE; i++)
		d->cfg[i] = (uint8_t)((d->cfg[i] & ~d->wmask[i]) | (st->config[i] & d->wmask[i]));
	for (int v = 0; v < d->msix_vectors; v++) {
		d->msix[v] = st->msix[v];
		d->msix[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	d->pba = d->msix_vectors ? st->msix_pba & (uint32_t)((1ull << d->msix_vectors) - 1) : 0;
	d->intx_level = st->intx_level ? 1 : 0;
	intx_update_locked(d);
	if (d->msix_cap)
		msix_deliver_pending_locked(d);
	bar_targets_locked(d, t);
	pthread_mutex_unlock(&d->lock);
	apply_bar_targets(d, t);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* ---- the bus ---- */

struct pci_bus *pci_bus_create(struct vm *vm)
{
	struct pci_bus *b = calloc(1, sizeof(*b));

	if (!b) {
		hv_error("pci: out of memory");
		return NULL;
	}
	b->vm = vm;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->irq_lock, NULL);
	b->next_gsi = PCI_FIRST_MSI_GSI;
	if (bus_register(&vm->pio, PCI_CONF1_ADDR_PORT, 4, conf1_addr_io, b, "pci-conf1-addr") < 0 ||
	    bus_register(&vm->pio, PCI_CONF1_DATA_PORT, 4, conf1_data_io, b, "pci-conf1-data") < 0) {
		hv_error("pci: ports 0xcf8-0xcff are already taken");
		bus_unregister(&vm->pio, PCI_CONF1_ADDR_PORT);
		pthread_mutex_destroy(&b->lock);
		pthread_mutex_destroy(&b->irq_lock);
		free(b);
		return NULL;
	}
	b->ports_registered = true;
	const struct pci_device_desc host = {
		.name = "host-bridge",
		.vendor_id = HOST_BRIDGE_VENDOR,
		.device_id = HOST_BRIDGE_DEVICE,
		.class_code = CLASS_BRIDGE_HOST,
	};
	struct pci_device *d = device_alloc(b, 0, &host);
	if (!d) {
		hv_error("pci: out of memory");
		pci_bus_destroy(b);
		return NULL;
	}
	set16(d->cfg, PCI_COMMAND, PCI_COMMAND_MEMORY);
	b->slots[0] = d;
	return b;
}

void pci_bus_destroy(struct pci_bus *b)
{
	if (!b)
		return;
	for (int s = PCI_MAX_SLOTS - 1; s >= 1; s--)
		pci_device_destroy(b->slots[s]);
	if (b->slots[0])
		device_free(b->slots[0]);
	if (b->ports_registered) {
		bus_unregister(&b->vm->pio, PCI_CONF1_ADDR_PORT);
		bus_unregister(&b->vm->pio, PCI_CONF1_DATA_PORT);
	}
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->irq_lock);
	free(b);
}
