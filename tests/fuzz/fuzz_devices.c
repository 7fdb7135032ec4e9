/* libFuzzer target for the guest-facing device code: PCI config cycles (conf1), MMIO to the
 * virtio-pci BARs (common config, ISR, device config, MSI-X table/PBA), arbitrary bytes in
 * guest RAM where the rings and buffers live, and queue processing by virtio-blk. Each input
 * is a program of operations run against a fresh fake VM (no KVM) with one virtio-blk disk
 * on an in-memory image. Whatever the guest does, the VMM must not read or write outside
 * guest RAM or its own objects (ASan), nor hit undefined behaviour (UBSan).
 *
 * Operations (first byte % 6):
 *   0 conf1 write   slot, offset, width, u32 value
 *   1 conf1 read    slot, offset, width
 *   2 MMIO write    u16 offset into the device's 64 KiB window, width 1-8, u64 value
 *   3 MMIO read     u16 offset, width
 *   4 RAM write     u16 offset into the ring area, length, bytes
 *   5 process       bring the device up first if the input asks (flag byte), then serve
 *                   the queue on this thread
 * Notify-area writes are left out so that the device's own I/O thread runs only on the
 * kicks the transport makes itself (a queue starting): runs are nearly repeatable, and the
 * races that remain are real ones (the reset deadlock of regress-discard-during-reset). At
 * the end the device saves its state and restores it: whatever the guest did, that must be
 * accepted (fuzz_check_migratable). Operations 0-4 are fuzz_guest.h's, shared with the net
 * target. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "hv/layout.h"
#include "tests/fuzz/fuzz_guest.h"

#define SLOT 1
#define RING_AREA 0x100000ull /* where the bring-up puts the rings; RAM writes land here */
#define MEM (4 * MiB)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* FUZZ_DEVICES_SEED=FILE: write a seed input that reaches request processing, and exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("FUZZ_DEVICES_SEED");
	struct fuzz_seed s = { .len = 0 };

	(void)argc;
	(void)argv;
	if (!path)
		return 0;
	fuzz_seed_put(&s, 5, 1);
	fuzz_seed_put(&s, 1 | 4 << 1, 1); /* bring up with 16 entries */
	fuzz_seed_put(&s, ~0ull, 8);      /* every offered feature */
	fuzz_seed_desc(&s, 0, 0, RING_AREA + FUZZ_BUF_OFF, 16, 1, 1);
	fuzz_seed_desc(&s, 0, 1, RING_AREA + FUZZ_BUF_OFF + 0x100, 512, 3, 2);
	fuzz_seed_desc(&s, 0, 2, RING_AREA + FUZZ_BUF_OFF + 0x400, 1, 2, 0);
	fuzz_seed_avail(&s, FUZZ_AVAIL_OFF, (const uint16_t[]){ 0 }, 1);
	uint8_t hdr[16] = { 0 };
	fuzz_seed_ram(&s, FUZZ_BUF_OFF, hdr, sizeof(hdr));
	fuzz_seed_put(&s, 5, 1);
	fuzz_seed_put(&s, 0, 1);
	fuzz_write_file(path, s.buf, s.len);
	exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm *vm = fake_vm_create_spec(MEM, &fuzz_ram);
	if (!vm)
		return 0;
	struct pci_bus *bus = pci_bus_create(vm);
	struct virtio_blk *blk = bus ? virtio_blk_create(bus, SLOT, fuzz_disk_image(), false) : NULL;
	if (!blk) {
		pci_bus_destroy(bus);
		fake_vm_destroy(vm);
		return 0;
	}
	struct fuzz_input in = { data, size };
	for (int ops = 0; in.left && ops < 256; ops++) {
		int op = (int)(fuzz_take(&in, 1) % 6);
		if (op < FUZZ_GUEST_OPS) {
			fuzz_guest_op(vm, &in, op, SLOT, RING_AREA, FUZZ_QUEUE_SPAN);
			continue;
		}
		uint8_t flags = (uint8_t)fuzz_take(&in, 1);
		if (flags & 1)
			fuzz_bring_up(vm, SLOT, 1, (uint16_t)(1u << (flags >> 1) % 10), fuzz_take(&in, 8),
				      RING_AREA);
		virtio_blk_process(blk);
	}
	fuzz_check_migratable(virtio_blk_transport(blk));
	virtio_blk_destroy(blk);
	pci_bus_destroy(bus);
	fake_vm_destroy(vm);
	return 0;
}
