/* What a guest does to a virtio-pci device, shared by the device fuzz targets (devices, net,
 * devstate): the input read as a program of operations, the guest's config cycles, MMIO and
 * RAM writes, a well-behaved driver's bring-up, the check that whatever the guest did
 * still saves and restores, the RAM and disk image behind the fake VM, and the writer of
 * seed programs. */
#ifndef TESTS_FUZZ_FUZZ_GUEST_H
#define TESTS_FUZZ_FUZZ_GUEST_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio_pci.h"
#include "hv/log.h"
#include "tests/unit/virtio_driver.h"

/* Queue q of a bring-up lives at ram + q * FUZZ_QUEUE_SPAN: descriptors, avail ring at
 * +0x1000, used ring at +0x2000, then room for buffers. */
#define FUZZ_QUEUE_SPAN 0x4000ull
#define FUZZ_AVAIL_OFF 0x1000
#define FUZZ_USED_OFF 0x2000
#define FUZZ_BUF_OFF 0x3000

/* Operations 0 .. FUZZ_GUEST_OPS - 1 of a device program; a target numbers its own after. */
enum {
	FUZZ_CONF1_WRITE, /* slot, offset, width, u32 value */
	FUZZ_CONF1_READ,  /* slot, offset, width */
	FUZZ_MMIO_WRITE,  /* u16 offset into the device's 64 KiB window, width 1-8, u64 value */
	FUZZ_MMIO_READ,   /* u16 offset, width */
	FUZZ_RAM_WRITE,   /* u16 offset into the ring area, length, bytes */
	FUZZ_GUEST_OPS
};

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

/* Little-endian, zeros once the input is used up. */
static inline uint64_t fuzz_take(struct fuzz_input *in, int bytes)
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

/* The next `len` bytes, or fewer if the input ends first: *n says how many. */
static inline const uint8_t *fuzz_take_bytes(struct fuzz_input *in, size_t len, size_t *n)
{
	const uint8_t *p = in->p;

	*n = len < in->left ? len : in->left;
	in->p += *n;
	in->left -= *n;
	return p;
}

/* One guest operation on the device at `slot`, operands from `in`; RAM writes land in
 * [ram, ram + span). Notify-area writes are dropped: the target serves the queues on its
 * own thread, so that a run does not depend on when an I/O thread wakes up. */
static inline void fuzz_guest_op(struct vm *vm, struct fuzz_input *in, int op, int slot,
				 uint64_t ram, uint64_t span)
{
	static const uint32_t widths[4] = { 1, 2, 4, 8 };
	uint64_t window = PCI_SLOT_MMIO(slot);

	switch (op) {
	case FUZZ_CONF1_WRITE: {
		int s = (int)(fuzz_take(in, 1) % 4), off = (int)fuzz_take(in, 1);
		int len = (int)widths[fuzz_take(in, 1) % 3];
		uint32_t v = (uint32_t)fuzz_take(in, 4);
		conf1_write(vm, s, off & ~(len - 1), len, v);
		break;
	}
	case FUZZ_CONF1_READ: {
		int s = (int)(fuzz_take(in, 1) % 4), off = (int)fuzz_take(in, 1);
		int len = (int)widths[fuzz_take(in, 1) % 3];
		conf1_read(vm, s, off & ~(len - 1), len);
		break;
	}
	case FUZZ_MMIO_WRITE: {
		uint64_t off = fuzz_take(in, 2);
		uint32_t len = widths[fuzz_take(in, 1) % 4];
		uint64_t v = fuzz_take(in, 8);
		if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_BAR_SIZE)
			break;
		bus_write(&vm->mmio, window + off, len, v);
		break;
	}
	case FUZZ_MMIO_READ: {
		uint64_t off = fuzz_take(in, 2);
		bus_read(&vm->mmio, window + off, widths[fuzz_take(in, 1) % 4]);
		break;
	}
	case FUZZ_RAM_WRITE: {
		uint64_t off = fuzz_take(in, 2) % span;
		size_t len;
		const uint8_t *p = fuzz_take_bytes(in, (size_t)fuzz_take(in, 1), &len);
		guest_mem_write(&vm->mem, ram + off, p, len);
		break;
	}
	}
}

/* A well-behaved driver's set-up of queues 0 .. nq - 1 with `qsize` entries each, rings as
 * FUZZ_QUEUE_SPAN says, queue q on MSI-X vector q + 1; `want` picks among the offered
 * features. The fuzzer reaches queue processing at once instead of having to find the
 * whole sequence of register writes. */
static inline void fuzz_bring_up(struct vm *vm, int slot, int nq, uint16_t qsize, uint64_t want,
				 uint64_t ram)
{
	struct vdrv d;

	if (vdrv_init(&d, vm, slot) < 0)
		return; /* the input moved or disabled the BARs: fine */
	vdrv_negotiate(&d, (want & vdrv_device_features(&d)) | (1ull << VIRTIO_F_VERSION_1));
	vdrv_enable_msix(&d, nq + 1);
	for (int q = 0; q < nq; q++) {
		uint64_t base = ram + (uint64_t)q * FUZZ_QUEUE_SPAN;
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, (uint64_t)q);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2, qsize);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, base);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, base + FUZZ_AVAIL_OFF);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, base + FUZZ_USED_OFF);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_MSIX, 2, (uint64_t)q + 1);
		vdrv_wr(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	}
	vdrv_driver_ok(&d);
}

/* A migration in the middle of whatever the guest did: the state this device saves must be
 * one that a destination accepts (else a guest could make itself impossible to migrate, or
 * the destination's checks refuse what a correct source sends). Restored into the same
 * device, paused as a destination is; aborts, i.e. reports a crash, if it is refused. */
static inline void fuzz_check_migratable(struct virtio_pci *vp)
{
	struct virtio_pci_state *st = malloc(sizeof(*st));

	if (!st)
		abort();
	virtio_pci_pause(vp);
	virtio_pci_get_state(vp, st);
	if (virtio_pci_set_state(vp, st) < 0) {
		fprintf(stderr, "fuzz: the device's own saved state is refused: %s\n", hv_last_error());
		abort();
	}
	virtio_pci_resume(vp);
	free(st);
}

/* ---- what backs the devices ---- */

/* Guest RAM of the fake VMs: memfd, 4 KiB pages of which only the touched ones are zeroed
 * (anon's 2 MiB huge pages made a fresh VM per input cost a third more). */
static const struct guest_mem_spec fuzz_ram = { .backend = GUEST_MEM_MEMFD };

/* A 64 KiB disk image in memory, made once per process and zeroed at every call (what one
 * input wrote must not change the next one's run): its path. */
static inline const char *fuzz_disk_image(void)
{
	static char path[64];
	static int fd = -1;

	if (fd < 0) {
		fd = memfd_create("fuzz-disk", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, 64 * 1024) < 0)
		abort();
	return path;
}

/* ---- seed programs ---- */

struct fuzz_seed {
	uint8_t buf[2048];
	size_t len;
};

static inline void fuzz_seed_put(struct fuzz_seed *s, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes && s->len < sizeof(s->buf); i++)
		s->buf[s->len++] = (uint8_t)(v >> (8 * i));
}

/* A FUZZ_RAM_WRITE of `len` bytes at offset `off` of the ring area. */
static inline void fuzz_seed_ram(struct fuzz_seed *s, uint16_t off, const void *p, uint8_t len)
{
	fuzz_seed_put(s, FUZZ_RAM_WRITE, 1);
	fuzz_seed_put(s, off, 2);
	fuzz_seed_put(s, len, 1);
	for (int i = 0; i < len; i++)
		fuzz_seed_put(s, ((const uint8_t *)p)[i], 1);
}

/* Descriptor i of the table at offset `table` of the ring area. */
static inline void fuzz_seed_desc(struct fuzz_seed *s, uint16_t table, int i, uint64_t addr,
				  uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t d[16];

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	fuzz_seed_ram(s, (uint16_t)(table + 16 * i), d, 16);
}

/* Makes chains `heads` (n of them) available in the avail ring at offset `avail`. */
static inline void fuzz_seed_avail(struct fuzz_seed *s, uint16_t avail, const uint16_t *heads, int n)
{
	uint16_t ring[2 + 16] = { 0, (uint16_t)n };

	for (int i = 0; i < n && i < 16; i++)
		ring[2 + i] = heads[i];
	fuzz_seed_ram(s, avail, ring, (uint8_t)(4 + 2 * n));
}

/* Writes `len` bytes to `path`, or exits non-zero. */
static inline void fuzz_write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "fuzz: cannot write seed %s\n", path);
		exit(1);
	}
}

#endif
