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
 * Notify-area writes are left out so that the device's own I/O thread stays idle and runs
 * are deterministic. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "hv/layout.h"
#include "tests/unit/virtio_driver.h"

#define SLOT 1
#define RING_AREA 0x100000ull /* where the bring-up puts the rings; RAM writes land here */
#define MEM (4 * MiB)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* pci.c drives INTx through this only with a real KVM VM; the fake VM has none. */
int vm_irq_line(struct vm *vm, int irq, int level)
{
	(void)vm;
	(void)irq;
	(void)level;
	return 0;
}

static char image_path[64];

static void make_image(void)
{
	if (image_path[0])
		return;
	int fd = memfd_create("fuzz-disk", 0);
	if (fd < 0 || ftruncate(fd, 64 * 1024) < 0)
		abort();
	snprintf(image_path, sizeof(image_path), "/proc/self/fd/%d", fd);
}

struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++) {
		uint8_t b = 0;
		if (in->left) {
			b = *in->p++;
			in->left--;
		}
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

/* A well-behaved driver's set-up with rings at RING_AREA, so that the fuzzer reaches queue
 * processing at once; `want` picks among the offered features. */
static void bring_up(struct vm *vm, uint16_t qsize, uint64_t want)
{
	struct vdrv d;

	if (vdrv_init(&d, vm, SLOT) < 0)
		return; /* the input moved or disabled the BARs: fine */
	vdrv_negotiate(&d, (want & vdrv_device_features(&d)) | (1ull << VIRTIO_F_VERSION_1));
	vdrv_enable_msix(&d, 2);
	d.next_buf = RING_AREA;
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2, qsize);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, RING_AREA);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, RING_AREA + 0x1000);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, RING_AREA + 0x2000);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	vdrv_driver_ok(&d);
}

/* ---- a seed: bring-up, one IN request, processing ---- */

struct seed {
	uint8_t buf[512];
	size_t len;
};

static void put(struct seed *s, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes && s->len < sizeof(s->buf); i++)
		s->buf[s->len++] = (uint8_t)(v >> (8 * i));
}

static void put_ram(struct seed *s, uint16_t off, const void *p, uint8_t len)
{
	put(s, 4, 1);
	put(s, off, 2);
	put(s, len, 1);
	for (int i = 0; i < len; i++)
		put(s, ((const uint8_t *)p)[i], 1);
}

static void put_desc(struct seed *s, int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t d[16];

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	put_ram(s, (uint16_t)(16 * i), d, 16);
}

/* FUZZ_DEVICES_SEED=FILE: write a seed input that reaches request processing, and exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("FUZZ_DEVICES_SEED");
	struct seed s = { .len = 0 };

	(void)argc;
	(void)argv;
	if (!path)
		return 0;
	put(&s, 5, 1);
	put(&s, 1 | 4 << 1, 1); /* bring up with 16 entries */
	put(&s, ~0ull, 8);      /* every offered feature */
	put_desc(&s, 0, RING_AREA + 0x3000, 16, 1, 1);
	put_desc(&s, 1, RING_AREA + 0x3100, 512, 3, 2);
	put_desc(&s, 2, RING_AREA + 0x3400, 1, 2, 0);
	uint16_t avail[3] = { 0, 1, 0 };
	put_ram(&s, 0x1000, avail, sizeof(avail));
	uint8_t hdr[16] = { 0 };
	put_ram(&s, 0x3000, hdr, sizeof(hdr));
	put(&s, 5, 1);
	put(&s, 0, 1);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s.buf, 1, s.len, f) != s.len || fclose(f) != 0)
		exit(1);
	exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	make_image();
	struct vm *vm = fake_vm_create(MEM);
	if (!vm)
		return 0;
	struct pci_bus *bus = pci_bus_create(vm);
	struct virtio_blk *blk = bus ? virtio_blk_create(bus, SLOT, image_path, false) : NULL;
	if (!blk) {
		pci_bus_destroy(bus);
		fake_vm_destroy(vm);
		return 0;
	}
	struct input in = { data, size };
	uint64_t window = PCI_SLOT_MMIO(SLOT);
	for (int ops = 0; in.left && ops < 256; ops++) {
		uint8_t op = (uint8_t)take(&in, 1) % 6;
		static const uint32_t widths[4] = { 1, 2, 4, 8 };
		switch (op) {
		case 0: {
			int slot = (int)(take(&in, 1) % 4), off = (int)take(&in, 1);
			int len = (int)widths[take(&in, 1) % 3];
			uint32_t v = (uint32_t)take(&in, 4);
			conf1_write(vm, slot, off & ~(len - 1), len, v);
			break;
		}
		case 1: {
			int slot = (int)(take(&in, 1) % 4), off = (int)take(&in, 1);
			int len = (int)widths[take(&in, 1) % 3];
			conf1_read(vm, slot, off & ~(len - 1), len);
			break;
		}
		case 2: {
			uint64_t off = take(&in, 2);
			uint32_t len = widths[take(&in, 1) % 4];
			uint64_t v = take(&in, 8);
			if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_BAR_SIZE)
				break; /* no kicks: keep the I/O thread out of it */
			bus_write(&vm->mmio, window + off, len, v);
			break;
		}
		case 3: {
			uint64_t off = take(&in, 2);
			bus_read(&vm->mmio, window + off, widths[take(&in, 1) % 4]);
			break;
		}
		case 4: {
			uint64_t off = take(&in, 2) % 0x4000;
			size_t len = (size_t)take(&in, 1);
			if (len > in.left)
				len = in.left;
			guest_mem_write(&vm->mem, RING_AREA + off, in.p, len);
			in.p += len;
			in.left -= len;
			break;
		}
		case 5: {
			uint8_t flags = (uint8_t)take(&in, 1);
			if (flags & 1)
				bring_up(vm, (uint16_t)(1u << (flags >> 1) % 10), take(&in, 8));
			virtio_blk_process(blk);
			break;
		}
		}
	}
	virtio_blk_destroy(blk);
	pci_bus_destroy(bus);
	fake_vm_destroy(vm);
	return 0;
}
