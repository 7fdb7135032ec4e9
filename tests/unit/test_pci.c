/* PCI host bridge and config space (devices/pci.c), driven through the conf1 ports as a
 * guest would: host bridge identity, empty slots, BAR sizing and moves, memory decoding,
 * the capability list, MSI-X table, masking and PBA, INTx, save/restore. No KVM. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "fake_vm.h"
#include "hv/layout.h"

struct bar_dev {
	int reads, writes;
	uint64_t last_off;
	int maps, unmaps;
	uint64_t mapped_at;
	bool mapped;
};

static void bar_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct bar_dev *b = opaque;

	b->last_off = off;
	if (is_write) {
		b->writes++;
	} else {
		b->reads++;
		memset(data, 0xab, len);
	}
}

static void bar_map(void *opaque, int bar, uint64_t addr, bool mapped)
{
	struct bar_dev *b = opaque;

	if (bar != 0)
		return;
	if (mapped) {
		b->maps++;
		b->mapped_at = addr;
	} else {
		b->unmaps++;
	}
	b->mapped = mapped;
}

struct fixture {
	struct vm *vm;
	struct pci_bus *bus;
	struct pci_device *dev;
	struct bar_dev bar;
};

#define SLOT 3

static struct pci_device *make_dev(struct fixture *f, int slot, struct bar_dev *bd)
{
	struct pci_device_desc d = {
		.name = "testdev",
		.vendor_id = 0x1234,
		.device_id = 0x5678,
		.subsys_vendor_id = 0x1af4,
		.subsys_id = 0x1100,
		.revision = 1,
		.class_code = 0x020000,
		.bar[0] = { 0x4000, bar_io, bd, "bar0" },
		.msix_vectors = 3,
		.msix_bar = 1,
		.intx = true,
		.bar_map = bar_map,
		.opaque = bd,
	};
	return pci_device_create(f->bus, slot, &d);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->vm = fake_vm_create(64 * MiB);
	if (!f->vm)
		return -1;
	f->bus = pci_bus_create(f->vm);
	if (!f->bus)
		return -1;
	f->dev = make_dev(f, SLOT, &f->bar);
	if (!f->dev)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pci_bus_destroy(f->bus);
	fake_vm_destroy(f->vm);
	free(f);
	return 0;
}

static void test_host_bridge(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;

	/* The conf1 probe Linux does: write 0x80000000, read it back. */
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u);
	assert_int_equal(bus_read(&vm->pio, 0xcf8, 4), 0x80000000u);
	assert_int_equal(conf1_read(vm, 0, PCI_VENDOR_ID, 4), 0x29c08086u);
	assert_int_equal(conf1_read(vm, 0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
	assert_int_equal(conf1_read(vm, 0, PCI_HEADER_TYPE, 1), 0);
	/* Word and byte reads at every offset of the data port. */
	assert_int_equal(conf1_read(vm, 0, PCI_DEVICE_ID, 2), 0x29c0);
	assert_int_equal(conf1_read(vm, 0, 1, 1), 0x80);
	assert_int_equal(conf1_read(vm, 0, 3, 1), 0x29);
	/* Read-only: vendor ID writes are ignored. */
	conf1_write(vm, 0, PCI_VENDOR_ID, 4, 0);
	assert_int_equal(conf1_read(vm, 0, PCI_VENDOR_ID, 4), 0x29c08086u);
}

static void test_empty_and_disabled(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;

	assert_int_equal(conf1_read(vm, 7, PCI_VENDOR_ID, 4), 0xffffffffu);
	assert_int_equal(conf1_read(vm, 31, PCI_VENDOR_ID, 2), 0xffff);
	/* Enable bit clear. */
	bus_write(&vm->pio, 0xcf8, 4, (uint32_t)SLOT << 11);
	assert_int_equal(bus_read(&vm->pio, 0xcfc, 4), 0xffffffffu);
	/* Function 1, bus 1. */
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u | SLOT << 11 | 1 << 8);
	assert_int_equal(bus_read(&vm->pio, 0xcfc, 4), 0xffffffffu);
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u | 1 << 16 | SLOT << 11);
	assert_int_equal(bus_read(&vm->pio, 0xcfc, 4), 0xffffffffu);
	/* Only whole dwords reach the address register. */
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u | SLOT << 11);
	bus_write(&vm->pio, 0xcfb, 1, 0x01);
	bus_write(&vm->pio, 0xcf8, 2, 0);
	assert_int_equal(bus_read(&vm->pio, 0xcf8, 4), 0x80000000u | SLOT << 11);
	/* A dword read starting at 0xcfe straddles the port range: unclaimed. */
	uint8_t data[4];
	assert_false(bus_dispatch(&vm->pio, 0xcfe, data, 4, false));
	/* Reserved address bits are dropped. */
	bus_write(&vm->pio, 0xcf8, 4, 0xffffffffu);
	assert_int_equal(bus_read(&vm->pio, 0xcf8, 4), 0x80fffffcu);
}

static void test_identity(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;

	assert_int_equal(conf1_read(vm, SLOT, PCI_VENDOR_ID, 4), 0x56781234u);
	assert_int_equal(conf1_read(vm, SLOT, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4u);
	assert_int_equal(conf1_read(vm, SLOT, PCI_CLASS_REVISION, 4), 0x02000001u);
	assert_true(conf1_read(vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_true(conf1_read(vm, SLOT, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(conf1_read(vm, SLOT, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(conf1_read(vm, SLOT, PCI_INTERRUPT_LINE, 1), PCI_INTX_IRQ(SLOT));
	assert_int_equal(PCI_INTX_IRQ(1), 10);
	assert_int_equal(PCI_INTX_IRQ(2), 11);
	/* Unused BARs and the ROM BAR read as zero and stay so. */
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_2, 4, 0xffffffffu);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_2, 4), 0);
	conf1_write(vm, SLOT, PCI_ROM_ADDRESS, 4, 0xffffffffu);
	assert_int_equal(conf1_read(vm, SLOT, PCI_ROM_ADDRESS, 4), 0);
}

static void test_bar_initial_placement(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint64_t base = PCI_SLOT_MMIO(SLOT);

	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_0, 4), base);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_1, 4), base + 0x4000);
	assert_true(f->bar.mapped);
	assert_int_equal(f->bar.mapped_at, base);
	assert_int_equal(bus_read(&vm->mmio, base + 0x10, 4), 0xabababab);
	assert_int_equal(f->bar.last_off, 0x10);
	assert_int_equal(bus_read(&vm->mmio, base + 0x3ffc, 4), 0xabababab);
	bool mapped;
	assert_int_equal(pci_device_bar_addr(f->dev, 0, &mapped), base);
	assert_true(mapped);
	assert_true(base >= MMIO_HOLE_START && base < IOAPIC_ADDR);
}

static void test_bar_sizing(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint32_t orig = conf1_read(vm, SLOT, PCI_BASE_ADDRESS_0, 4);

	/* As Linux does it: decoding off, all ones, read the mask, restore, decoding on. */
	conf1_write(vm, SLOT, PCI_COMMAND, 2, 0);
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, 0xffffffffu);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_0, 4), 0xffffc000u);
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_1, 4, 0xffffffffu);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_1, 4), 0xfffff000u);
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, orig);
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_1, 4, orig + 0x4000);
	conf1_write(vm, SLOT, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_0, 4), orig);
	assert_int_equal(bus_read(&vm->mmio, orig, 4), 0xabababab);
	/* Low bits are the type: a 32-bit non-prefetchable memory BAR. */
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, orig | 0xfff);
	assert_int_equal(conf1_read(vm, SLOT, PCI_BASE_ADDRESS_0, 4), orig);
}

static void test_bar_move_and_decode(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint64_t old = PCI_SLOT_MMIO(SLOT), moved = 0xd0000000;
	uint8_t data[4];

	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, (uint32_t)moved);
	assert_false(bus_dispatch(&vm->mmio, old, data, 4, false));
	assert_true(bus_dispatch(&vm->mmio, moved + 4, data, 4, false));
	assert_int_equal(f->bar.mapped_at, moved);
	assert_int_equal(f->bar.unmaps, 1);
	assert_int_equal(f->bar.maps, 2);

	/* Memory decoding off: gone; on: back at the programmed address. */
	conf1_write(vm, SLOT, PCI_COMMAND, 2, 0);
	assert_false(bus_dispatch(&vm->mmio, moved, data, 4, false));
	assert_false(f->bar.mapped);
	/* The MSI-X BAR goes too. */
	assert_false(bus_dispatch(&vm->mmio, old + 0x4000, data, 4, false));
	conf1_write(vm, SLOT, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(bus_dispatch(&vm->mmio, moved, data, 4, false));
	assert_true(bus_dispatch(&vm->mmio, old + 0x4000, data, 4, false));

	/* A byte-wide write to the BAR's top byte moves it as well. */
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0 + 3, 1, 0xd1);
	assert_true(bus_dispatch(&vm->mmio, 0xd1000000, data, 4, false));
	assert_false(bus_dispatch(&vm->mmio, moved, data, 4, false));

	/* An address inside RAM is not decoded (RAM would shadow it). */
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, 0x100000);
	assert_false(f->bar.mapped);
	assert_false(bus_dispatch(&vm->mmio, 0x100000, data, 4, false));
	/* Address 0 means unassigned. */
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, 0);
	assert_false(f->bar.mapped);
	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, (uint32_t)old);
	assert_true(f->bar.mapped);
	assert_true(bus_dispatch(&vm->mmio, old, data, 4, false));
}

static void test_bar_overlap(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	struct bar_dev other = { 0 };
	struct pci_device *d2 = make_dev(f, 5, &other);
	uint8_t data[4];

	assert_non_null(d2);
	assert_true(other.mapped);
	/* Move the second device's BAR0 onto the first's: refused, the first keeps it. */
	conf1_write(vm, 5, PCI_BASE_ADDRESS_0, 4, (uint32_t)PCI_SLOT_MMIO(SLOT));
	assert_false(other.mapped);
	f->bar.reads = 0;
	assert_true(bus_dispatch(&vm->mmio, PCI_SLOT_MMIO(SLOT), data, 4, false));
	assert_int_equal(f->bar.reads, 1);
	assert_int_equal(other.reads, 0);
	/* Moving it to a free place maps it again. */
	conf1_write(vm, 5, PCI_BASE_ADDRESS_0, 4, 0xd8000000);
	assert_true(other.mapped);
	/* The same slot cannot be taken twice. */
	assert_null(make_dev(f, 5, &other));
	pci_device_destroy(d2);
	assert_false(bus_dispatch(&vm->mmio, 0xd8000000, data, 4, false));
	assert_int_equal(conf1_read(vm, 5, PCI_VENDOR_ID, 4), 0xffffffffu);
}

static void test_capability_walk(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint8_t vcap[16] = { PCI_CAP_ID_VNDR, 0xee /* overwritten */, 16, 7 };

	int off = pci_device_add_cap(f->dev, vcap, sizeof(vcap));
	assert_true(off >= 0x40);
	int ids[8], n = 0;
	int p = conf1_read(vm, SLOT, PCI_CAPABILITY_LIST, 1);
	while (p && n < 8) {
		assert_true(p >= 0x40 && p % 4 == 0);
		ids[n++] = conf1_read(vm, SLOT, p, 1);
		p = conf1_read(vm, SLOT, p + 1, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[1], PCI_CAP_ID_VNDR);
	assert_int_equal(conf1_read(vm, SLOT, off + 3, 1), 7);
	/* A capability that does not fit is refused. */
	uint8_t big[64] = { PCI_CAP_ID_VNDR };
	int added = 0;
	while (pci_device_add_cap(f->dev, big, sizeof(big)) >= 0)
		added++;
	assert_true(added <= 3);
	assert_int_equal(pci_device_add_cap(f->dev, big, 6), -1); /* not a multiple of 4 */
}

static int msix_cap(struct vm *vm)
{
	for (int p = conf1_read(vm, SLOT, PCI_CAPABILITY_LIST, 1); p; p = conf1_read(vm, SLOT, p + 1, 1))
		if (conf1_read(vm, SLOT, p, 1) == PCI_CAP_ID_MSIX)
			return p;
	return -1;
}

static void test_msix_capability(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	int cap = msix_cap(vm);

	assert_true(cap > 0);
	uint16_t ctl = (uint16_t)conf1_read(vm, SLOT, cap + PCI_MSIX_FLAGS, 2);
	assert_int_equal(ctl & PCI_MSIX_FLAGS_QSIZE, 2); /* 3 vectors */
	assert_int_equal(ctl & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL), 0);
	assert_int_equal(conf1_read(vm, SLOT, cap + PCI_MSIX_TABLE, 4), 1);      /* BAR1 + 0 */
	assert_int_equal(conf1_read(vm, SLOT, cap + PCI_MSIX_PBA, 4), 0x801);   /* BAR1 + 0x800 */
	/* Only enable and mask-all are writable. */
	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, 0xffff);
	ctl = (uint16_t)conf1_read(vm, SLOT, cap + PCI_MSIX_FLAGS, 2);
	assert_int_equal(ctl, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 2);
	assert_true(pci_msix_enabled(f->dev));
	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, 0);
	assert_false(pci_msix_enabled(f->dev));
}

static void test_msix_table_and_masking(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint64_t tbl = PCI_SLOT_MMIO(SLOT) + 0x4000, pba = tbl + PCI_MSIX_BAR_PBA;
	int cap = msix_cap(vm);
	int fd1 = pci_msix_eventfd(f->dev, 1);

	/* Reset state: every vector masked, nothing pending. */
	for (int v = 0; v < 3; v++)
		assert_int_equal(bus_read(&vm->mmio, tbl + 16 * v + 12, 4), 1);
	assert_int_equal(bus_read(&vm->mmio, pba, 8), 0);
	/* MSI-X disabled: notify says so (the caller falls back to INTx). */
	assert_false(pci_msix_notify(f->dev, 1));

	/* Program vector 1 with 32-bit writes and one 64-bit write. */
	bus_write(&vm->mmio, tbl + 16, 8, 0x00000000fee01000ull);
	bus_write(&vm->mmio, tbl + 16 + 8, 4, 0x4041);
	assert_int_equal(bus_read(&vm->mmio, tbl + 16, 4), 0xfee01000u);
	assert_int_equal(bus_read(&vm->mmio, tbl + 20, 4), 0);
	assert_int_equal(bus_read(&vm->mmio, tbl + 24, 4), 0x4041);
	/* Vector control: only the mask bit is writable. */
	bus_write(&vm->mmio, tbl + 28, 4, 0xfffffffe);
	assert_int_equal(bus_read(&vm->mmio, tbl + 28, 4), 0);
	bus_write(&vm->mmio, tbl + 28, 4, 1);

	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	/* Masked vector: pending bit, no interrupt. */
	assert_true(pci_msix_notify(f->dev, 1));
	assert_false(eventfd_wait(fd1, 0));
	assert_int_equal(bus_read(&vm->mmio, pba, 4), 2);
	/* The PBA is read-only. */
	bus_write(&vm->mmio, pba, 4, 0);
	assert_int_equal(bus_read(&vm->mmio, pba, 4), 2);
	/* Unmask: the pending interrupt fires, the bit clears. */
	bus_write(&vm->mmio, tbl + 28, 4, 0);
	assert_true(eventfd_wait(fd1, 0));
	assert_int_equal(bus_read(&vm->mmio, pba, 4), 0);
	/* Unmasked: straight through. */
	assert_true(pci_msix_notify(f->dev, 1));
	assert_true(eventfd_wait(fd1, 0));
	/* Function mask holds everything back until lifted. */
	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_true(pci_msix_notify(f->dev, 1));
	assert_false(eventfd_wait(fd1, 0));
	assert_int_equal(bus_read(&vm->mmio, pba, 4), 2);
	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_true(eventfd_wait(fd1, 0));
	/* Out-of-range vectors are dropped quietly; other vectors stay silent. */
	assert_true(pci_msix_notify(f->dev, 7));
	assert_true(pci_msix_notify(f->dev, -1));
	assert_false(eventfd_wait(pci_msix_eventfd(f->dev, 0), 0));
	assert_int_equal(pci_msix_eventfd(f->dev, 3), -1);
	/* Beyond the table and PBA: reads are zero, writes are ignored. */
	assert_int_equal(bus_read(&vm->mmio, tbl + 0x100, 4), 0);
	bus_write(&vm->mmio, tbl + 0x100, 4, 0x1234);
	assert_int_equal(bus_read(&vm->mmio, pba + 8, 4), 0);
}

static void test_intx(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	struct bar_dev other = { 0 };
	int irq = PCI_INTX_IRQ(SLOT);
	/* Slot 5 shares the line with slot 3. */
	struct pci_device *d2 = make_dev(f, 5, &other);

	assert_int_equal(PCI_INTX_IRQ(5), irq);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);
	pci_intx_set(f->dev, 1);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 1);
	assert_true(conf1_read(vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_intx_set(d2, 1);
	pci_intx_set(f->dev, 0);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 1); /* wired-OR: d2 still drives it */
	assert_false(conf1_read(vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_intx_set(d2, 0);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);
	/* INTx disable in the command register masks the pin but not the status bit. */
	conf1_write(vm, SLOT, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	pci_intx_set(f->dev, 1);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);
	assert_true(conf1_read(vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	conf1_write(vm, SLOT, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 1);
	/* The line register is writable (firmware's scratch), the pin is not. */
	conf1_write(vm, SLOT, PCI_INTERRUPT_LINE, 2, 0x0505);
	assert_int_equal(conf1_read(vm, SLOT, PCI_INTERRUPT_LINE, 1), 5);
	assert_int_equal(conf1_read(vm, SLOT, PCI_INTERRUPT_PIN, 1), 1);
	/* Destroying a device that drives the line lowers its share. */
	pci_intx_set(d2, 1);
	pci_intx_set(f->dev, 0);
	pci_device_destroy(d2);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);
}

static void test_state_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;
	uint64_t tbl = PCI_SLOT_MMIO(SLOT) + 0x4000;
	int cap = msix_cap(vm);
	struct pci_device_state st;

	conf1_write(vm, SLOT, PCI_BASE_ADDRESS_0, 4, 0xd0000000);
	bus_write(&vm->mmio, tbl + 16, 4, 0xfee00000);
	bus_write(&vm->mmio, tbl + 24, 4, 0x31);
	conf1_write(vm, SLOT, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_true(pci_msix_notify(f->dev, 1)); /* masked: pending */
	pci_device_get_state(f->dev, &st);
	assert_int_equal(st.msix_pba, 2);
	assert_int_equal(st.msix[1].data, 0x31);

	/* A second, fresh machine with the same device takes the state over. */
	struct fixture g = { 0 };
	g.vm = fake_vm_create(64 * MiB);
	g.bus = pci_bus_create(g.vm);
	g.dev = make_dev(&g, SLOT, &g.bar);
	assert_non_null(g.dev);
	assert_int_equal(pci_device_set_state(g.dev, &st), 0);
	assert_int_equal(conf1_read(g.vm, SLOT, PCI_BASE_ADDRESS_0, 4), 0xd0000000);
	assert_true(g.bar.mapped);
	assert_int_equal(g.bar.mapped_at, 0xd0000000);
	assert_true(pci_msix_enabled(g.dev));
	assert_int_equal(bus_read(&g.vm->mmio, tbl + 24, 4), 0x31);
	assert_int_equal(bus_read(&g.vm->mmio, tbl + PCI_MSIX_BAR_PBA, 4), 2);
	/* Unmasking on the destination delivers what was pending on the source. */
	bus_write(&g.vm->mmio, tbl + 28, 4, 0);
	assert_true(eventfd_wait(pci_msix_eventfd(g.dev, 1), 0));

	/* A state from a different device is refused. */
	struct pci_device_state bad = st;
	bad.config[PCI_DEVICE_ID] ^= 1;
	assert_int_equal(pci_device_set_state(g.dev, &bad), -EINVAL);
	bad = st;
	bad.config[PCI_BASE_ADDRESS_0 + 1] |= 0x10; /* a read-only size bit */
	assert_int_equal(pci_device_set_state(g.dev, &bad), -EINVAL);
	pci_bus_destroy(g.bus);
	fake_vm_destroy(g.vm);
}

static void test_bad_descriptions(void **state)
{
	struct fixture *f = *state;
	struct bar_dev bd = { 0 };
	struct pci_device_desc d = { .name = "bad", .bar[0] = { 0x3000, bar_io, &bd, "x" } };

	assert_null(pci_device_create(f->bus, 6, &d)); /* not a power of two */
	d.bar[0].size = 0x4000;
	assert_null(pci_device_create(f->bus, 0, &d)); /* the host bridge's slot */
	assert_null(pci_device_create(f->bus, 32, &d));
	d.msix_vectors = 2;
	d.msix_bar = 0; /* already used */
	assert_null(pci_device_create(f->bus, 6, &d));
	d.msix_vectors = PCI_MSIX_MAX_VECTORS + 1;
	d.msix_bar = 1;
	assert_null(pci_device_create(f->bus, 6, &d));
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_host_bridge),
		T(test_empty_and_disabled),
		T(test_identity),
		T(test_bar_initial_placement),
		T(test_bar_sizing),
		T(test_bar_move_and_decode),
		T(test_bar_overlap),
		T(test_capability_walk),
		T(test_msix_capability),
		T(test_msix_table_and_masking),
		T(test_intx),
		T(test_state_roundtrip),
		T(test_bad_descriptions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
