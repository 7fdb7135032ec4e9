/* hv-guest: PCI configuration mechanism #1 at CPL3 (see pci.h). */
#include "pci.h"

#include "cmdline.h"
#include "lib.h"
#include "print.h"

#define CONF1_ADDR 0xcf8
#define CONF1_DATA 0xcfc

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outb_(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb_(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void select(int slot, int off)
{
	outl(CONF1_ADDR, 0x80000000u | (uint32_t)(slot & 31) << 11 | ((uint32_t)off & 0xfc));
}

uint32_t pci_read32(int slot, int off)
{
	select(slot, off);
	return inl(CONF1_DATA);
}

uint16_t pci_read16(int slot, int off)
{
	select(slot, off);
	return inw((uint16_t)(CONF1_DATA + (off & 2)));
}

uint8_t pci_read8(int slot, int off)
{
	select(slot, off);
	return inb_((uint16_t)(CONF1_DATA + (off & 3)));
}

void pci_write32(int slot, int off, uint32_t v)
{
	select(slot, off);
	outl(CONF1_DATA, v);
}

void pci_write16(int slot, int off, uint16_t v)
{
	select(slot, off);
	outw((uint16_t)(CONF1_DATA + (off & 2)), v);
}

void pci_write8(int slot, int off, uint8_t v)
{
	select(slot, off);
	outb_((uint16_t)(CONF1_DATA + (off & 3)), v);
}

static void read_bars(struct pci_dev *d)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t v = pci_read32(d->slot, PCI_BAR0 + 4 * i);
		/* Memory BARs only (bit 0 clear); a 64-bit BAR takes the next one as well. */
		if (v & 1) {
			d->bar[i] = 0;
			continue;
		}
		d->bar[i] = v & ~0xfu;
		if ((v & 6) == 4 && i + 1 < PCI_NUM_BARS) {
			d->bar[i] |= (uint64_t)pci_read32(d->slot, PCI_BAR0 + 4 * (i + 1)) << 32;
			i++;
		}
	}
}

int pci_find(uint16_t vendor, uint16_t device, int index, struct pci_dev *d)
{
	for (int slot = 0; slot < PCI_MAX_SLOT; slot++) {
		uint32_t id = pci_read32(slot, PCI_VENDOR_ID);
		if ((id & 0xffff) == 0xffff)
			continue;
		if ((id & 0xffff) != vendor || (id >> 16) != device)
			continue;
		if (index-- > 0)
			continue;
		memset(d, 0, sizeof(*d));
		d->slot = slot;
		d->vendor = vendor;
		d->device = device;
		d->class_rev = pci_read32(slot, PCI_REVISION);
		read_bars(d);
		return 0;
	}
	return -1;
}

/* Command-line key pci=reassign: place every BAR ourselves, as if the VMM had left them
 * unassigned (exercises the placement path and the VMM's BAR moves). */
static int reassign_all(void)
{
	static int v = -1;
	char val[16];

	if (v < 0)
		v = cmdline_get("pci", val, sizeof(val)) && strcmp(val, "reassign") == 0;
	return v;
}

void pci_enable(struct pci_dev *d, uint16_t extra_cmd)
{
	int s = d->slot;
	int reassign = reassign_all();
	uint16_t cmd = pci_read16(s, PCI_COMMAND);
	uint64_t next = PCI_GUEST_MMIO_BASE + (uint64_t)s * PCI_GUEST_SLOT_WINDOW;

	/* Size the BARs with decoding off so that the all-ones probe decodes nowhere. */
	pci_write16(s, PCI_COMMAND, (uint16_t)(cmd & ~PCI_CMD_MEMORY));
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		int off = PCI_BAR0 + 4 * i;
		uint32_t orig = pci_read32(s, off);
		if (orig & 1)
			continue; /* I/O BAR: not used */
		pci_write32(s, off, 0xffffffffu);
		uint32_t mask = pci_read32(s, off) & ~0xfu;
		pci_write32(s, off, orig);
		int is64 = (orig & 6) == 4;
		if (!mask) {
			if (is64)
				i++;
			continue;
		}
		uint32_t size = ~mask + 1;
		d->bar_size[i] = size;
		uint64_t addr = orig & ~0xfu;
		if (is64 && i + 1 < PCI_NUM_BARS)
			addr |= (uint64_t)pci_read32(s, off + 4) << 32;
		if (!addr || reassign) {
			addr = ALIGN_UP(next, size);
			next = addr + size;
			pci_write32(s, off, (uint32_t)addr | (orig & 0xf));
			if (is64)
				pci_write32(s, off + 4, 0);
			d->bars_assigned++;
		}
		d->bar[i] = addr;
		if (is64)
			i++;
	}
	pci_write16(s, PCI_COMMAND, (uint16_t)(cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER | extra_cmd));
}

int pci_next_cap(int slot, int id, int from)
{
	if (!(pci_read16(slot, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	int p = from ? pci_read8(slot, from + 1) : pci_read8(slot, PCI_CAP_PTR);
	/* At most 48 capabilities fit in 256 bytes: a looping list ends too. */
	for (int n = 0; p >= 0x40 && n < 48; n++) {
		p &= 0xfc;
		if (pci_read8(slot, p) == id)
			return p;
		p = pci_read8(slot, p + 1);
	}
	return 0;
}

void pci_print(void)
{
	for (int slot = 0; slot < PCI_MAX_SLOT; slot++) {
		uint32_t id = pci_read32(slot, PCI_VENDOR_ID);
		if ((id & 0xffff) == 0xffff)
			continue;
		kprintf("pci: 00:%02x.0 %04x:%04x class %06x\n", slot, id & 0xffff, id >> 16,
			pci_read32(slot, PCI_REVISION) >> 8);
	}
}
