/* PCI: a host bridge on the conf1 ports (0xCF8 address, 0xCFC-0xCFF data) with one bus.
 * Device 00:00.0 is the host bridge; devices sit at slots 1..31, function 0 only.
 * Each device has a 256-byte config space with 32-bit memory BARs (sizing by writing all
 * ones, placement wherever the guest programs them while memory decoding is on), a
 * capability list, INTx (pin A on IRQ 10 or 11) and optionally MSI-X (table and PBA in a
 * BAR of their own, each vector an irqfd routed with KVM_SET_GSI_ROUTING).
 * There is no firmware, so the VMM places every BAR itself before the guest starts and
 * turns memory decoding on; see docs/devices.md for the layout.
 *
 * Threads: config cycles come from vCPU threads (serialised by the bus lock), MSI-X table
 * accesses from vCPU threads, interrupts from device I/O threads; all of that is safe.
 * Creating and destroying devices and save/restore happen with the vCPUs not running.
 * Without KVM (vm->vm_fd < 0, unit tests) everything works except that interrupts reach
 * only the eventfds and pci_bus_irq_level(), not a guest. */
#ifndef DEVICES_PCI_H
#define DEVICES_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/bus.h"

struct vm;
struct pci_bus;
struct pci_device;

#define PCI_CONF1_ADDR_PORT 0xcf8
#define PCI_CONF1_DATA_PORT 0xcfc
#define PCI_MAX_SLOTS 32
#define PCI_CFG_SIZE 256
#define PCI_NUM_BARS 6
#define PCI_MSIX_MAX_VECTORS 16
#define PCI_MSIX_BAR_SIZE 0x1000  /* MSI-X BAR: table at 0, PBA at PCI_MSIX_BAR_PBA */
#define PCI_MSIX_BAR_PBA 0x800
#define PCI_INTX_IRQ(slot) ((slot) % 2 ? 10 : 11) /* odd slots IRQ 10, even slots IRQ 11 */
#define PCI_FIRST_MSI_GSI 24       /* GSIs 0-23 stay the irqchip's (PIC, IOAPIC pins) */

/* Where the VMM places a slot's BARs at power-on: a 64 KiB window per slot, from the
 * bottom of the 32-bit MMIO hole. BARs are laid out in it in index order, each aligned
 * to its size. */
#define PCI_MMIO_BASE 0xC0000000ULL
#define PCI_SLOT_WINDOW 0x10000ULL
#define PCI_SLOT_MMIO(slot) (PCI_MMIO_BASE + (uint64_t)(slot) * PCI_SLOT_WINDOW)

/* A 32-bit non-prefetchable memory BAR: size a power of two, 4 KiB to 64 KiB; size 0 =
 * unused. The handler gets offsets relative to the BAR. */
struct pci_bar_desc {
	uint32_t size;
	bus_handler_fn fn;
	void *opaque;
	const char *name;
};

struct pci_device_desc {
	const char *name;
	uint16_t vendor_id, device_id, subsys_vendor_id, subsys_id;
	uint8_t revision;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	struct pci_bar_desc bar[PCI_NUM_BARS];
	int msix_vectors;    /* 0 = no MSI-X; else 1..PCI_MSIX_MAX_VECTORS */
	int msix_bar;        /* the BAR pci creates for the MSI-X table/PBA; unused in bar[] */
	bool intx;           /* interrupt pin A, line PCI_INTX_IRQ(slot) */
	/* Called when a BAR starts or stops being decoded at `addr` (e.g. to move
	 * ioeventfds). Runs on the thread that changed it, with no PCI lock a vCPU's MMIO
	 * handler could need held; it must not touch the PIO bus. May be NULL. */
	void (*bar_map)(void *opaque, int bar, uint64_t addr, bool mapped);
	void *opaque;
};

struct pci_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

/* Everything migration saves for one PCI function. The BAR mappings, GSI routes and the
 * INTx line are derived from it on restore. */
struct pci_device_state {
	uint8_t config[PCI_CFG_SIZE];
	struct pci_msix_entry msix[PCI_MSIX_MAX_VECTORS];
	uint32_t msix_pba; /* pending bit per vector */
	uint8_t intx_level;
};

/* Registers the conf1 ports on vm->pio and the host bridge at slot 0. NULL on failure
 * (with one hv_error line). */
struct pci_bus *pci_bus_create(struct vm *vm);
/* Destroys the remaining devices, then the bus. */
void pci_bus_destroy(struct pci_bus *bus);
struct pci_device *pci_bus_device(struct pci_bus *bus, int slot);
struct vm *pci_bus_vm(struct pci_bus *bus);
/* Level of the wired-OR INTx line `irq` as the VMM drives it (tests). */
int pci_bus_irq_level(struct pci_bus *bus, int irq);

/* Config cycles as conf1 issues them; `offset` + `len` stay inside one dword. Reads of
 * an empty slot return all ones. */
uint32_t pci_config_read(struct pci_bus *bus, int slot, int offset, int len);
void pci_config_write(struct pci_bus *bus, int slot, int offset, int len, uint32_t value);

/* Puts a device at `slot` (1..31) with its BARs at their power-on addresses and memory
 * decoding on. NULL on failure (hv_error said why). */
struct pci_device *pci_device_create(struct pci_bus *bus, int slot, const struct pci_device_desc *d);
void pci_device_destroy(struct pci_device *d);
/* Appends a capability (cap[0] = its ID; cap[1], the next pointer, is filled in);
 * `len` is a multiple of 4 at most 64. Returns its config offset, or -1 if full.
 * Only before the guest runs. */
int pci_device_add_cap(struct pci_device *d, const void *cap, int len);
int pci_device_slot(const struct pci_device *d);
/* Current address of a BAR and whether it is being decoded. */
uint64_t pci_device_bar_addr(struct pci_device *d, int bar, bool *mapped);

/* Interrupts, from any thread. pci_msix_notify honours the function and vector masks
 * (a masked vector becomes pending in the PBA and fires on unmask); it returns false
 * if MSI-X is disabled, so that the caller can fall back to INTx. */
bool pci_msix_enabled(struct pci_device *d);
bool pci_msix_notify(struct pci_device *d, int vector);
int pci_msix_vectors(const struct pci_device *d);
/* The eventfd behind a vector (its irqfd); tests read it to see deliveries. */
int pci_msix_eventfd(const struct pci_device *d, int vector);
/* Asserts (1) or deasserts (0) the device's INTx pin; the command register's
 * INTx-disable bit and the other devices on the same line are taken into account. */
void pci_intx_set(struct pci_device *d, int level);

/* Save/restore (vCPUs not running). set_state refuses (-EINVAL, with a reason in hv_error)
 * a state whose read-only identity (IDs, class, BAR sizes, capabilities) differs from
 * this device's, then re-maps BARs, re-routes MSI-X and re-drives INTx. */
void pci_device_get_state(struct pci_device *d, struct pci_device_state *st);
/* The state as one state_enc.h section body (config space, MSI-X table and PBA, INTx), and
 * back: decode reads a section (0, or -1 with one line in err) and checks form only;
 * pci_device_set_state checks it against the device. */
struct state_out;
struct state_sec;
void pci_device_state_encode(const struct pci_device_state *st, struct state_out *o);
int pci_device_state_decode(struct pci_device_state *st, struct state_sec *s, char *err,
			    size_t errlen);
int pci_device_set_state(struct pci_device *d, const struct pci_device_state *st);

#endif
