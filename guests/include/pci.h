/* hv-guest: PCI configuration access through the conf1 ports (0xCF8 address, 0xCFC data),
 * from CPL3 through the TSS I/O bitmap (each access is a VM exit). Bus 0 only, function 0
 * of each slot. */
#ifndef HVG_PCI_H
#define HVG_PCI_H

#include <stdint.h>

#define PCI_MAX_SLOT 32
#define PCI_NUM_BARS 6

/* Config space offsets and bits (PCI 3.0). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* Where the guest places a BAR that the VMM left unassigned (0): a 64 KiB window per
 * slot, BARs in index order aligned to their size. Above any RAM below 4 GiB that hv
 * gives (RAM stops at 3 GiB), inside the 3-4 GiB uncached identity mapping. */
#define PCI_GUEST_MMIO_BASE 0xE0000000UL
#define PCI_GUEST_SLOT_WINDOW 0x10000UL

struct pci_dev {
	int slot;
	uint16_t vendor, device;
	uint32_t class_rev;          /* class << 8 | revision */
	uint64_t bar[PCI_NUM_BARS];  /* memory BAR addresses (after pci_enable), 0 if none */
	uint32_t bar_size[PCI_NUM_BARS];
	int bars_assigned;           /* how many BARs the guest had to place itself */
};

uint32_t pci_read32(int slot, int off);
uint16_t pci_read16(int slot, int off);
uint8_t pci_read8(int slot, int off);
void pci_write32(int slot, int off, uint32_t v);
void pci_write16(int slot, int off, uint16_t v);
void pci_write8(int slot, int off, uint8_t v);

/* The index-th device (counting from 0, in slot order) with this vendor and device ID:
 * fills d (identity, BARs as currently programmed) and returns 0, or -1 if there is none. */
int pci_find(uint16_t vendor, uint16_t device, int index, struct pci_dev *d);
/* Sizes the memory BARs, places any that are unassigned (all of them with the command
 * line key pci=reassign), and turns on memory decoding and bus mastering (plus
 * `extra_cmd` bits, e.g. PCI_CMD_INTX_DISABLE). */
void pci_enable(struct pci_dev *d, uint16_t extra_cmd);
/* The first capability with ID `id` at or after config offset `from` in the list
 * (pass 0 to start at the head); 0 if none. */
int pci_next_cap(int slot, int id, int from);
/* One line per device on bus 0 (used by programs to show what they found). */
void pci_print(void);

#endif
