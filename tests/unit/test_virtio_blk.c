/* virtio-blk over the virtio-pci transport, driven like a guest driver would through the
 * conf1 ports and BAR0 (no KVM): discovery, negotiation, requests against a temp image,
 * range and malformed-request handling, NEEDS_RESET and reset, INTx fallback, save and
 * restore into a second machine, image open errors, and the copy of a disk that travels
 * with its guest (changed-block tracking, migrate/disk_copy.c's sender and writer). */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/layout.h"
#include "migrate/disk_copy.h"
#include "migrate/disk_move.h"
#include "virtio_driver.h"

#define SLOT 1
#define SECTORS 2048
#define QSZ 16
#define BASE_FEATURES                                                                          \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX) | \
	 (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

struct fixture {
	char dir[64];
	char image[128];
	struct vm *vm;
	struct pci_bus *bus;
	struct virtio_blk *blk;
	struct vdrv d;
	uint64_t hdr, status, data;
};

static void make_image(const char *path, uint64_t sectors)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint8_t sec[512];

	assert_true(fd >= 0);
	for (uint64_t s = 0; s < sectors; s++) {
		for (int i = 0; i < 512; i++)
			sec[i] = (uint8_t)(s * 7 + (uint64_t)i);
		assert_int_equal(pwrite(fd, sec, 512, (off_t)(s * 512)), 512);
	}
	close(fd);
}

static void read_image(struct fixture *f, uint64_t sector, void *buf, size_t len)
{
	int fd = open(f->image, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)(sector * 512)), (ssize_t)len);
	close(fd);
}

/* Brings the device to DRIVER_OK with MSI-X: vector 0 config, vector 1 the queue. */
static void bring_up(struct fixture *f, uint64_t features, bool msix)
{
	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	assert_true(vdrv_negotiate(&f->d, features));
	if (msix) {
		vdrv_enable_msix(&f->d, 2);
		vdrv_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	}
	vdrv_setup_queue(&f->d, 0, QSZ, msix ? 1 : VIRTIO_MSI_NO_VECTOR);
	vdrv_driver_ok(&f->d);
	f->hdr = vdrv_alloc(&f->d, 16, 16);
	f->status = vdrv_alloc(&f->d, 1, 1);
	f->data = vdrv_alloc(&f->d, 64 * 1024, 4096);
}

static int setup_common(void **state, bool ro)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-blk-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->image, sizeof(f->image), "%s/disk0.img", f->dir);
	make_image(f->image, SECTORS);
	f->vm = fake_vm_create(32 * MiB);
	f->bus = pci_bus_create(f->vm);
	f->blk = virtio_blk_create(f->bus, SLOT, f->image, ro);
	if (!f->blk)
		return -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_ro(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[160];

	virtio_blk_destroy(f->blk);
	pci_bus_destroy(f->bus);
	fake_vm_destroy(f->vm);
	unlink(f->image);
	snprintf(path, sizeof(path), "%s/empty.img", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ro.img", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* One request: header, optional data segment, status byte. Returns the status. */
static uint8_t request(struct fixture *f, uint32_t type, uint64_t sector, uint64_t data_gpa,
		       uint32_t data_len, bool data_write, uint32_t *used_len)
{
	struct virtio_blk_outhdr *h = vdrv_ptr(&f->d, f->hdr, 16);
	uint8_t *st = vdrv_ptr(&f->d, f->status, 1);
	struct vdrv_seg segs[3];
	int n = 0;

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	*st = 0xee;
	segs[n++] = (struct vdrv_seg){ f->hdr, 16, false };
	if (data_len)
		segs[n++] = (struct vdrv_seg){ data_gpa, data_len, data_write };
	segs[n++] = (struct vdrv_seg){ f->status, 1, true };
	uint16_t want = (uint16_t)(vdrv_used_idx(&f->d, 0) + 1);
	uint16_t head = vdrv_add(&f->d, 0, segs, n);
	vdrv_kick(&f->d, 0);
	assert_true(vdrv_wait_used(&f->d, 0, want));
	uint32_t id, len;
	vdrv_used_elem(&f->d, 0, (uint16_t)(want - 1), &id, &len);
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
	return *st;
}

static void test_discovery(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = f->vm;

	assert_int_equal(conf1_read(vm, SLOT, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(conf1_read(vm, SLOT, PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(conf1_read(vm, SLOT, PCI_REVISION_ID, 1), 1);
	assert_int_equal(conf1_read(vm, SLOT, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(conf1_read(vm, SLOT, PCI_CLASS_REVISION, 4) >> 8, 0x018000);
	assert_int_equal(vdrv_init(&f->d, vm, SLOT), 0);
	/* The documented layout. */
	uint64_t bar0 = PCI_SLOT_MMIO(SLOT);
	assert_int_equal(f->d.common, bar0 + VIRTIO_PCI_COMMON_OFF);
	assert_int_equal(f->d.isr, bar0 + VIRTIO_PCI_ISR_OFF);
	assert_int_equal(f->d.devcfg, bar0 + VIRTIO_PCI_DEVCFG_OFF);
	assert_int_equal(f->d.notify, bar0 + VIRTIO_PCI_NOTIFY_OFF);
	assert_int_equal(f->d.notify_mult, VIRTIO_PCI_NOTIFY_MULT);
	assert_int_equal(f->d.msix_table, bar0 + VIRTIO_PCI_BAR_SIZE);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	uint64_t feat = vdrv_device_features(&f->d);
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << VIRTIO_RING_F_EVENT_IDX));
	assert_true(feat & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(feat & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(feat & (1ull << VIRTIO_BLK_F_SEG_MAX));
	assert_true(feat & (1ull << VIRTIO_BLK_F_SIZE_MAX));
	assert_true(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(feat & (1ull << VIRTIO_BLK_F_RO));
	/* Config space: capacity, seg_max, blk_size; reads past the end are zero. */
	assert_int_equal(bus_read(&vm->mmio, f->d.devcfg + offsetof(struct virtio_blk_config, capacity), 8),
			 SECTORS);
	assert_int_equal(bus_read(&vm->mmio, f->d.devcfg + offsetof(struct virtio_blk_config, seg_max), 4), 254);
	assert_int_equal(bus_read(&vm->mmio, f->d.devcfg + offsetof(struct virtio_blk_config, blk_size), 4), 512);
	assert_int_equal(bus_read(&vm->mmio, f->d.devcfg + 0x800, 4), 0);
	/* Queue defaults: size 256, no vector, disabled, notify offset = index. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	/* A queue that does not exist reads as size 0. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 5);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
}

static void test_negotiation(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	/* Without VERSION_1 (a legacy driver): refused. */
	assert_false(vdrv_negotiate(&f->d, 1ull << VIRTIO_BLK_F_FLUSH));
	/* A feature that was not offered: refused. */
	assert_false(vdrv_negotiate(&f->d, (1ull << VIRTIO_F_VERSION_1) | (1ull << 50)));
	/* DRIVER_OK without FEATURES_OK does not stick. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
							   VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(vdrv_status(&f->d) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(vdrv_negotiate(&f->d, BASE_FEATURES));
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)BASE_FEATURES);
	/* After FEATURES_OK the driver features are frozen. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_GF, 4, 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)BASE_FEATURES);
	assert_int_equal(virtio_pci_driver_features(virtio_blk_transport(f->blk)), BASE_FEATURES);
	/* Invalid vectors read back as NO_VECTOR. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, 7);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, 1);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_MSIX, 2), 1);
	/* Reset clears it all. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(vdrv_status(&f->d), 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_GF, 4), 0);
}

static void test_write_then_read(void **state)
{
	struct fixture *f = *state;
	int irq = pci_msix_eventfd(virtio_pci_pci(virtio_blk_transport(f->blk)), 1);
	uint32_t len;

	bring_up(f, BASE_FEATURES, true);
	uint8_t *buf = vdrv_ptr(&f->d, f->data, 4096);
	for (int i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 10, f->data, 4096, false, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_true(eventfd_wait(irq, 1000));
	uint8_t file[4096];
	read_image(f, 10, file, sizeof(file));
	assert_memory_equal(file, buf, 4096);

	/* Read it back into another buffer; the VMM's writes are in the dirty bitmap. */
	uint64_t rd = vdrv_alloc(&f->d, 4096, 4096);
	uint64_t words = (guest_mem_pages(&f->vm->mem) + 63) / 64;
	for (uint64_t w = 0; w < words; w++)
		guest_mem_take_dirty_word(&f->vm->mem, w);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 10, rd, 4096, true, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 4097);
	assert_memory_equal(vdrv_ptr(&f->d, rd, 4096), buf, 4096);
	uint64_t page = rd / PAGE_SIZE;
	assert_true(f->vm->mem.vmm_dirty[page / 64] & (1ull << (page % 64)));
	page = f->status / PAGE_SIZE;
	assert_true(f->vm->mem.vmm_dirty[page / 64] & (1ull << (page % 64)));
	page = f->d.q[0].used / PAGE_SIZE;
	assert_true(f->vm->mem.vmm_dirty[page / 64] & (1ull << (page % 64)));

	/* A read of untouched sectors returns the image's own pattern; the last sector too. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, SECTORS - 1, rd, 512, true, NULL), VIRTIO_BLK_S_OK);
	read_image(f, SECTORS - 1, file, 512);
	assert_memory_equal(vdrv_ptr(&f->d, rd, 512), file, 512);
}

static void test_scattered_request(void **state)
{
	struct fixture *f = *state;

	bring_up(f, BASE_FEATURES, true);
	/* One IN request over three buffers of odd sizes (a sector split 100/300/112). */
	uint64_t a = vdrv_alloc(&f->d, 100, 1), b = vdrv_alloc(&f->d, 300, 1), c = vdrv_alloc(&f->d, 112, 1);
	struct virtio_blk_outhdr *h = vdrv_ptr(&f->d, f->hdr, 16);
	h->type = VIRTIO_BLK_T_IN;
	h->sector = 5;
	struct vdrv_seg segs[] = { { f->hdr, 16, false }, { a, 100, true }, { b, 300, true },
				   { c, 112, true }, { f->status, 1, true } };
	vdrv_add(&f->d, 0, segs, 5);
	vdrv_kick(&f->d, 0);
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	assert_int_equal(*(uint8_t *)vdrv_ptr(&f->d, f->status, 1), VIRTIO_BLK_S_OK);
	uint8_t file[512];
	read_image(f, 5, file, 512);
	assert_memory_equal(vdrv_ptr(&f->d, a, 100), file, 100);
	assert_memory_equal(vdrv_ptr(&f->d, b, 300), file + 100, 300);
	assert_memory_equal(vdrv_ptr(&f->d, c, 112), file + 400, 112);
}

static void test_batch_with_event_idx(void **state)
{
	struct fixture *f = *state;

	bring_up(f, BASE_FEATURES | (1ull << VIRTIO_RING_F_EVENT_IDX), true);
	/* Five reads (15 descriptors of 16) published at once, one kick. */
	enum { N = 5 };
	uint64_t bufs[N];
	uint64_t st = vdrv_alloc(&f->d, 8, 8);
	for (int i = 0; i < N; i++) {
		uint64_t h = vdrv_alloc(&f->d, 16, 16);
		struct virtio_blk_outhdr *hp = vdrv_ptr(&f->d, h, 16);
		hp->type = VIRTIO_BLK_T_IN;
		hp->sector = (uint64_t)i * 3;
		bufs[i] = vdrv_alloc(&f->d, 512, 512);
		struct vdrv_seg segs[] = { { h, 16, false }, { bufs[i], 512, true }, { st + i, 1, true } };
		vdrv_add(&f->d, 0, segs, 3);
	}
	vdrv_kick(&f->d, 0);
	assert_true(vdrv_wait_used(&f->d, 0, N));
	for (int i = 0; i < N; i++) {
		uint8_t file[512];
		read_image(f, (uint64_t)i * 3, file, 512);
		assert_memory_equal(vdrv_ptr(&f->d, bufs[i], 512), file, 512);
		assert_int_equal(*(uint8_t *)vdrv_ptr(&f->d, st + i, 1), VIRTIO_BLK_S_OK);
	}
	/* The device asked to be notified at the next avail entry. */
	uint16_t *avail_event = vdrv_ptr(&f->d, f->d.q[0].used + 4 + 8 * QSZ, 2);
	assert_int_equal(*avail_event, N);
}

static void test_flush_and_get_id(void **state)
{
	struct fixture *f = *state;
	uint32_t len;

	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	memset(vdrv_ptr(&f->d, f->data, 20), 0x55, 20);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, f->data, 20, true, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 21); /* the whole 20-byte ID field, zero-padded, and the status */
	assert_memory_equal(vdrv_ptr(&f->d, f->data, 9), "disk0.img", 9);
	assert_int_equal(*(uint8_t *)vdrv_ptr(&f->d, f->data + 9, 1), 0);
}

static void test_range_errors(void **state)
{
	struct fixture *f = *state;
	uint8_t before[1024], after[1024];

	bring_up(f, BASE_FEATURES, true);
	read_image(f, SECTORS - 2, before, sizeof(before));
	/* Past the end, by one sector. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, SECTORS - 1, f->data, 1024, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, SECTORS - 1, f->data, 1024, false, NULL), VIRTIO_BLK_S_IOERR);
	/* Sector numbers whose byte offset overflows. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX, f->data, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, f->data, 100, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, f->data, 513, true, NULL), VIRTIO_BLK_S_IOERR);
	read_image(f, SECTORS - 2, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before));
	struct stat st;
	assert_int_equal(stat(f->image, &st), 0);
	assert_int_equal(st.st_size, SECTORS * 512);
	/* Unknown and legacy request types. */
	assert_int_equal(request(f, VIRTIO_BLK_T_SCSI_CMD, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_BARRIER | VIRTIO_BLK_T_OUT, 0, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	assert_false(virtio_pci_needs_reset(virtio_blk_transport(f->blk)));
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_discard_write_zeroes *seg;
	uint8_t file[2048], zero[2048] = { 0 };

	bring_up(f, BASE_FEATURES, true);
	seg = vdrv_ptr(&f->d, f->data, 32);
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 100, .num_sectors = 4 };
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_OK);
	read_image(f, 100, file, 2048);
	assert_memory_equal(file, zero, 2048);
	read_image(f, 104, file, 512);
	assert_int_not_equal(file[1], 0);
	/* Two ranges, with unmap. */
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 200, .num_sectors = 1,
							    .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	seg[1] = (struct virtio_blk_discard_write_zeroes){ .sector = 300, .num_sectors = 1 };
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 32, false, NULL), VIRTIO_BLK_S_OK);
	read_image(f, 300, file, 512);
	assert_memory_equal(file, zero, 512);
	/* Discard is accepted (a hint). */
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 8 };
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_OK);
	/* Out of range, unknown flags, malformed length. */
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = SECTORS - 1, .num_sectors = 2 };
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1, .flags = 1 };
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 24, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, 0, 0, false, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_discard_not_negotiated(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_discard_write_zeroes *seg;

	bring_up(f, (1ull << VIRTIO_F_VERSION_1), true);
	seg = vdrv_ptr(&f->d, f->data, 16);
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1 };
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t before[512], after[512];

	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	uint64_t feat = vdrv_device_features(&f->d);
	assert_true(feat & (1ull << VIRTIO_BLK_F_RO));
	assert_false(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(feat & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	bring_up(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_FLUSH), true);
	read_image(f, 0, before, 512);
	memset(vdrv_ptr(&f->d, f->data, 512), 0x77, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, f->data, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	read_image(f, 0, after, 512);
	assert_memory_equal(before, after, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(vdrv_ptr(&f->d, f->data, 512), before, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

/* Brings the device up and posts a read whose data buffer lies in the MMIO hole. */
static void post_read_into_mmio_hole(struct fixture *f)
{
	bring_up(f, BASE_FEATURES, true);
	struct virtio_blk_outhdr *h = vdrv_ptr(&f->d, f->hdr, 16);
	h->type = VIRTIO_BLK_T_IN;
	h->sector = 0;
	struct vdrv_seg segs[] = { { f->hdr, 16, false }, { MMIO_HOLE_START, 512, true },
				   { f->status, 1, true } };
	vdrv_add(&f->d, 0, segs, 3);
	vdrv_kick(&f->d, 0);
}

static void test_bad_descriptor_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	int cfg_irq = pci_msix_eventfd(virtio_pci_pci(vp), 0);

	post_read_into_mmio_hole(f);
	assert_true(eventfd_wait(cfg_irq, 2000)); /* config-change interrupt */
	assert_true(vdrv_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(virtio_pci_needs_reset(vp));
	assert_int_equal(vdrv_used_idx(&f->d, 0), 0);
	/* Further kicks do nothing. */
	vdrv_kick(&f->d, 0);
	/* The driver resets and starts over: everything works again. */
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(vdrv_status(&f->d), 0);
	assert_false(virtio_pci_needs_reset(vp));
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	f->d.next_buf = 0x100000;
	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
}

/* A driver that breaks the device, resets it and breaks it again, over and over: hv keeps
 * serving the resets but stops printing after 10 warnings (a guest must not be able to
 * flood the host's log). */
static void test_repeated_errors_are_reported_a_few_times(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	char log[] = "/tmp/hv-test-warn.XXXXXX";
	int logfd = mkstemp(log), saved = dup(2);

	assert_true(logfd >= 0 && saved >= 0);
	unlink(log);
	fflush(stderr);
	dup2(logfd, 2);
	for (int i = 0; i < 30; i++) {
		f->d.next_buf = 0x100000;
		post_read_into_mmio_hole(f);
		for (int t = 0; t < 2000 && !virtio_pci_needs_reset(vp); t++)
			usleep(1000);
		assert_true(virtio_pci_needs_reset(vp));
		vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char buf[8192] = { 0 };
	ssize_t n = pread(logfd, buf, sizeof(buf) - 1, 0);
	close(logfd);
	assert_true(n > 0);
	int lines = 0;
	for (char *p = buf; (p = strstr(p, "needs a reset")); p++)
		lines++;
	assert_int_equal(lines, 10);
	assert_non_null(strstr(buf, "further errors of this device are not reported"));
	/* The device still works after all that. */
	f->d.next_buf = 0x100000;
	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_malformed_request(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);

	bring_up(f, BASE_FEATURES, true);
	/* A header but no status byte. */
	struct vdrv_seg segs[] = { { f->hdr, 16, false } };
	vdrv_add(&f->d, 0, segs, 1);
	vdrv_kick(&f->d, 0);
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	assert_true(virtio_pci_needs_reset(vp));
	assert_true(vdrv_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_short_header(void **state)
{
	struct fixture *f = *state;

	bring_up(f, BASE_FEATURES, true);
	struct vdrv_seg segs[] = { { f->hdr, 8, false }, { f->status, 1, true } };
	vdrv_add(&f->d, 0, segs, 2);
	vdrv_kick(&f->d, 0);
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	assert_true(virtio_pci_needs_reset(virtio_blk_transport(f->blk)));
}

static void test_intx_fallback(void **state)
{
	struct fixture *f = *state;
	int irq = PCI_INTX_IRQ(SLOT);

	bring_up(f, BASE_FEATURES, false);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	/* The interrupt is raised after the used index is published: wait for it. */
	for (int i = 0; i < 1000 && !pci_bus_irq_level(f->bus, irq); i++)
		usleep(1000);
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 1);
	assert_int_equal(bus_read(&f->vm->mmio, f->d.isr, 1), 1); /* queue interrupt */
	assert_int_equal(pci_bus_irq_level(f->bus, irq), 0);      /* reading acknowledged it */
	assert_int_equal(bus_read(&f->vm->mmio, f->d.isr, 1), 0);
}

static void test_config_vector_none(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	struct pci_device *pci = virtio_pci_pci(vp);

	bring_up(f, BASE_FEATURES, true);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
	virtio_pci_config_changed(vp);
	assert_false(eventfd_wait(pci_msix_eventfd(pci, 0), 0));
	assert_false(eventfd_wait(pci_msix_eventfd(pci, 1), 0));
	/* The ISR config bit is set even with MSI-X (virtio 1.x 4.1.4.5). */
	assert_int_equal(bus_read(&f->vm->mmio, f->d.isr, 1), 2);
	uint8_t gen = (uint8_t)vdrv_rd(&f->d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	virtio_pci_config_changed(vp);
	assert_int_equal((uint8_t)vdrv_rd(&f->d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
}

static void test_save_restore(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	struct virtio_pci_state st;
	struct virtio_blk_state bst;

	bring_up(f, BASE_FEATURES | (1ull << VIRTIO_RING_F_EVENT_IDX), true);
	for (int i = 0; i < 3; i++)
		assert_int_equal(request(f, VIRTIO_BLK_T_IN, (uint64_t)i, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	virtio_pci_pause(vp);
	virtio_pci_get_state(vp, &st);
	virtio_blk_get_state(f->blk, &bst);
	assert_int_equal(st.vq[0].last_avail_idx, 3);
	assert_int_equal(st.vq[0].used_idx, 3);
	assert_int_equal(st.vq[0].size, QSZ);
	assert_true(st.status & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(bst.capacity, SECTORS);

	/* The "destination": a new machine with a copy of guest RAM and the same image. */
	struct vm *vm2 = fake_vm_create(32 * MiB);
	memcpy(vm2->mem.host, f->vm->mem.host, vm2->mem.size);
	struct pci_bus *bus2 = pci_bus_create(vm2);
	struct virtio_blk *blk2 = virtio_blk_create(bus2, SLOT, f->image, false);
	assert_non_null(blk2);
	struct virtio_pci *vp2 = virtio_blk_transport(blk2);
	virtio_pci_pause(vp2);
	assert_int_equal(virtio_blk_set_state(blk2, &bst), 0);
	assert_int_equal(virtio_pci_set_state(vp2, &st), 0);
	virtio_pci_resume(vp2);
	struct virtio_pci_state st2;
	virtio_pci_get_state(vp2, &st2);
	assert_memory_equal(&st2.vq[0], &st.vq[0], sizeof(st.vq[0]));
	assert_int_equal(st2.driver_features, st.driver_features);

	/* The guest driver goes on where it was, on the destination. */
	struct vdrv saved = f->d;
	f->d.vm = vm2;
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 7, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	uint8_t file[512];
	read_image(f, 7, file, 512);
	assert_memory_equal(vdrv_ptr(&f->d, f->data, 512), file, 512);
	assert_true(eventfd_wait(pci_msix_eventfd(virtio_pci_pci(vp2), 1), 1000));
	f->d = saved;

	/* Refusals: another disk size, features that were never offered. */
	struct virtio_blk_state other = bst;
	other.capacity++;
	assert_int_equal(virtio_blk_set_state(blk2, &other), -EINVAL);
	struct virtio_pci_state bad = st;
	bad.driver_features |= 1ull << 50;
	assert_int_equal(virtio_pci_set_state(vp2, &bad), -EINVAL);
	bad = st;
	bad.vq[0].size = 12;
	assert_int_equal(virtio_pci_set_state(vp2, &bad), -EINVAL);
	virtio_blk_destroy(blk2);
	pci_bus_destroy(bus2);
	fake_vm_destroy(vm2);
	virtio_pci_resume(vp);
}

/* A queue size that no split queue can have does not stick (found by fuzz_devices: a guest
 * that wrote 512 and enabled the queue saved a state that every destination refused). */
static void test_bad_queue_size_still_migrates(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	struct virtio_pci_state st;

	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	static const uint16_t bad[] = { 512, 12, 0, 0xffff };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2, bad[i]);
		assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
	}
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
	assert_int_equal(vdrv_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 8);
	virtio_pci_pause(vp);
	virtio_pci_get_state(vp, &st);
	assert_int_equal(virtio_pci_set_state(vp, &st), 0);
	st.vq[0].size = 0; /* a queue of size 0 is refused, enabled or not */
	assert_int_equal(virtio_pci_set_state(vp, &st), -EINVAL);
	virtio_pci_resume(vp);
}

/* Features that were never offered, written but not accepted, still migrate; status bits
 * stay until reset (found by fuzz_net: a guest that wrote an unoffered feature bit without
 * FEATURES_OK saved a state that every destination refused). */
static void test_unaccepted_features_still_migrate(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = virtio_blk_transport(f->blk);
	struct virtio_pci_state st;

	assert_int_equal(vdrv_init(&f->d, f->vm, SLOT), 0);
	assert_false(vdrv_negotiate(&f->d, (1ull << VIRTIO_F_VERSION_1) | (1ull << 50)));
	virtio_pci_pause(vp);
	virtio_pci_get_state(vp, &st);
	assert_int_equal(virtio_pci_set_state(vp, &st), 0);
	/* Accepted ones must be acceptable, and DRIVER_OK needs FEATURES_OK. */
	st.status |= VIRTIO_CONFIG_S_FEATURES_OK;
	assert_int_equal(virtio_pci_set_state(vp, &st), -EINVAL);
	st.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(virtio_pci_set_state(vp, &st), -EINVAL);
	virtio_pci_resume(vp);
	/* A status write that leaves out bits does not clear them. */
	assert_true(vdrv_negotiate(&f->d, BASE_FEATURES));
	vdrv_driver_ok(&f->d);
	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_int_equal(vdrv_status(&f->d), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void *reset_device(void *arg)
{
	struct fixture *f = arg;

	vdrv_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	return NULL;
}

/* An I/O thread in the middle of a request (queue lock held) asks for the driver features
 * while a vCPU resets the device (transport lock held, waiting for the queue lock): no
 * deadlock (found by fuzz_devices: DISCARD requests and a reset at the same time hung both
 * threads for good). */
static void test_features_while_reset_waits(void **state)
{
	struct fixture *f = *state;
	struct virtq *q = virtio_pci_queue(virtio_blk_transport(f->blk), VIRTIO_BLK_QUEUE);
	pthread_t t;

	bring_up(f, BASE_FEATURES, true);
	alarm(10); /* a deadlock ends the test instead of hanging it */
	pthread_mutex_lock(&q->lock);
	assert_int_equal(pthread_create(&t, NULL, reset_device, f), 0);
	usleep(50 * 1000); /* the reset is now waiting for the queue lock */
	assert_int_equal(virtio_pci_driver_features(virtio_blk_transport(f->blk)), BASE_FEATURES);
	pthread_mutex_unlock(&q->lock);
	pthread_join(t, NULL);
	alarm(0);
	assert_int_equal(vdrv_status(&f->d), 0);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char path[160];

	assert_null(virtio_blk_create(f->bus, 2, "/nonexistent/disk.img", false));
	assert_null(virtio_blk_create(f->bus, 2, f->dir, false)); /* a directory */
	snprintf(path, sizeof(path), "%s/empty.img", f->dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	assert_null(virtio_blk_create(f->bus, 2, path, false));
	snprintf(path, sizeof(path), "%s/ro.img", f->dir);
	make_image(path, 8);
	chmod(path, 0444);
	assert_null(virtio_blk_create(f->bus, 2, path, false));
	struct virtio_blk *ro = virtio_blk_create(f->bus, 2, path, true);
	assert_non_null(ro);
	assert_int_equal(virtio_blk_capacity(ro), 8);
	virtio_blk_destroy(ro);
	/* The slot is free again after destroy. */
	assert_int_equal(conf1_read(f->vm, 2, PCI_VENDOR_ID, 4), 0xffffffffu);
}

/* ---- a disk that travels (--storage copy) ---- */

#define BLOCKS (SECTORS * 512 / DEV_TRACK_BLOCK)

static uint64_t take(struct fixture *f)
{
	uint64_t bits[1] = { 0 };

	virtio_blk_state_ops.track_take(f->blk, bits);
	return bits[0];
}

/* Writes are tracked by 64 KiB block, once they completed: OUT, WRITE_ZEROES; a read is
 * not; a take forgets what it took; nothing is tracked before the start or after the stop. */
static void test_changed_blocks_are_tracked(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_discard_write_zeroes *seg;
	uint64_t size;
	int fd;

	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, f->data, 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_blk_state_ops.track_start(f->blk, &size, &fd), 0);
	assert_int_equal(size, SECTORS * 512);
	assert_true(fd >= 0);
	assert_int_equal(take(f), 0);
	/* Sector 300 is byte 153600: block 2. 127 sectors from 255: blocks 1 and 2. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 300, f->data, 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(take(f), 1ull << 2);
	assert_int_equal(take(f), 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 255, f->data, 2 * 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 1500, f->data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	seg = vdrv_ptr(&f->d, f->data, 16);
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = SECTORS - 8, .num_sectors = 8 };
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(take(f), 1ull << 1 | 1ull << 2 | 1ull << (BLOCKS - 1));
	/* A write that fails (outside the disk) changes nothing. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, SECTORS, f->data, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(take(f), 0);
	virtio_blk_state_ops.track_stop(f->blk);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, f->data, 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(take(f), 0);
	close(fd);
}

/* The migration's sink: each block a DISK_DATA record on conn. */
static int wire_sink(void *opaque, int disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
	return wire_send_disk_data(opaque, (uint8_t)disk, data ? 0 : WIRE_DISK_ZERO, offset, data, len);
}

/* Every DISK_DATA record in buf[0..len), through the real decoder and the writer. */
static void apply_stream(struct disk_copy_dst *dst, struct wire_decoder *dec, const uint8_t *buf, size_t len)
{
	struct wire_record rec;
	char err[256];

	for (size_t pos = 0, used; pos < len; pos += used) {
		assert_int_equal(wire_decode(dec, buf + pos, len - pos, &rec, &used), 0);
		assert_int_equal(rec.hdr.type, WIRE_DISK_DATA);
		if (disk_copy_apply(dst, rec.payload, rec.len, err, sizeof(err)) < 0)
			fail_msg("record refused: %s", err);
	}
}

static uint8_t *stream_bytes(int fd, size_t *len)
{
	off_t n = lseek(fd, 0, SEEK_END);
	uint8_t *p = malloc((size_t)n + 1);

	assert_non_null(p);
	assert_int_equal(pread(fd, p, (size_t)n, 0), n);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	*len = (size_t)n;
	return p;
}

static void assert_same_file(const char *a, const char *b)
{
	uint8_t x[SECTORS * 512 / 16], y[sizeof(x)];
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);

	assert_true(fa >= 0 && fb >= 0);
	for (off_t off = 0; off < SECTORS * 512; off += (off_t)sizeof(x)) {
		assert_int_equal(pread(fa, x, sizeof(x), off), sizeof(x));
		assert_int_equal(pread(fb, y, sizeof(y), off), sizeof(y));
		if (memcmp(x, y, sizeof(x)))
			fail_msg("the copy differs in bytes %lld..%lld", (long long)off, (long long)off + (long long)sizeof(x));
	}
	close(fa);
	close(fb);
}

/* Round 0 sends the data blocks only (a hole and an all-zero block are skipped, and the copy
 * stays sparse there); what the guest writes and zeroes afterwards follows in the next
 * round; the copy is then identical to the image. */
static void test_disk_copy_is_identical_and_sparse(void **state)
{
	struct fixture *f = *state;
	struct dev_registry reg = { .n = 0 };
	struct disk_copy_src src = { .n = 0 };
	struct wire_conn conn;
	char copy[160];
	static const uint8_t zero[DEV_TRACK_BLOCK];
	size_t len;
	struct stat st;

	bring_up(f, BASE_FEATURES, true);
	int img = open(f->image, O_RDWR);
	assert_true(img >= 0);
	/* Blocks 4-7 a hole, block 10 written with zeros. */
	assert_int_equal(fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * DEV_TRACK_BLOCK,
				   4 * DEV_TRACK_BLOCK), 0);
	assert_int_equal(pwrite(img, zero, sizeof(zero), 10 * DEV_TRACK_BLOCK), (ssize_t)sizeof(zero));
	close(img);
	assert_int_equal(dev_registry_add(&reg, "disk0", &virtio_blk_state_ops, f->blk), 0);
	int sfd = memfd_create("stream", 0);
	wire_conn_init_fd(&conn, sfd);
	src.sink = wire_sink;
	src.sink_opaque = &conn;
	assert_int_equal(disk_copy_src_start(&src, &reg, NULL), 0);
	assert_int_equal(src.n, 1);

	snprintf(copy, sizeof(copy), "%s/copy.img", f->dir);
	int out = open(copy, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(out >= 0);
	assert_int_equal(ftruncate(out, SECTORS * 512), 0);
	struct disk_copy_dst dst = { .n = 1, .fd = { out }, .size = { SECTORS * 512 } };
	struct wire_decoder dec;

	wire_decoder_init(&dec);
	/* Round 0's amount, for the progress: the data extents, the hole left out. */
	assert_int_equal(disk_copy_extent_bytes(&src), (BLOCKS - 4) * DEV_TRACK_BLOCK);
	assert_int_equal(disk_copy_send_all(&src), 0);
	assert_int_equal(src.blocks_sent, BLOCKS - 5);
	assert_int_equal(src.zero_blocks, 1);
	assert_int_equal(src.scanned_bytes, (BLOCKS - 4) * DEV_TRACK_BLOCK);
	uint8_t *buf = stream_bytes(sfd, &len);
	apply_stream(&dst, &dec, buf, len);
	free(buf);
	assert_int_equal(fstat(out, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 <= (BLOCKS - 5) * DEV_TRACK_BLOCK);
	assert_same_file(f->image, copy);

	/* The guest writes into the hole and zeroes a data block: both follow. */
	uint8_t *p = vdrv_ptr(&f->d, f->data, 4096);
	memset(p, 0xa5, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 5 * DEV_TRACK_BLOCK / 512 + 3, f->data, 4096, false, NULL),
			 VIRTIO_BLK_S_OK);
	struct virtio_blk_discard_write_zeroes *seg = vdrv_ptr(&f->d, f->data, 16);
	seg[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = DEV_TRACK_BLOCK / 512 };
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(disk_copy_collect(&src), 2);
	assert_int_equal(disk_copy_send_dirty(&src), 0);
	assert_int_equal(src.scanned_bytes, (BLOCKS - 2) * DEV_TRACK_BLOCK);
	assert_int_equal(disk_copy_collect(&src), 0);
	buf = stream_bytes(sfd, &len);
	apply_stream(&dst, &dec, buf, len);
	free(buf);
	assert_same_file(f->image, copy);
	assert_int_equal(disk_copy_sync(&dst, (char[64]){ 0 }, 64), 0);
	disk_copy_src_stop(&src);
	close(sfd);
	close(out);
	unlink(copy);
}

/* The writer takes nothing from the stream on trust: each bad record is refused with one
 * line, and the image is not touched. */
static void test_disk_copy_refuses_bad_records(void **state)
{
	struct fixture *f = *state;
	uint8_t rec[WIRE_DISK_DATA_HDR + 1024] = { 0 };
	char err[256], copy[160];
	struct stat st;

	snprintf(copy, sizeof(copy), "%s/copy.img", f->dir);
	int out = open(copy, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(out >= 0);
	assert_int_equal(ftruncate(out, 65536), 0);
	struct disk_copy_dst dst = { .n = 1, .fd = { out }, .size = { 65536 } };
	const struct {
		uint8_t disk, flags;
		uint16_t reserved;
		uint32_t len;
		uint64_t off;
		size_t payload;
		const char *what;
	} bad[] = {
		{ 1, 0, 0, 512, 0, 512, "disk 1" },
		{ 0, 0, 0, 512, 65536, 512, "at byte 65536 of disk 0, which has 65536" },
		{ 0, 0, 0, 1024, 65024, 1024, "at byte 65024" },
		{ 0, 0, 0, 512, ~0ull - 511, 512, "at byte 18446744073709551104" },
		{ 0, 0, 0, 100, 0, 100, "not 1 to" },
		{ 0, 0, 0, 512, 100, 512, "not 1 to" },
		{ 0, 0, 0, 0, 0, 0, "not 1 to" },
		{ 0, 2, 0, 512, 0, 512, "unknown flags" },
		{ 0, 0, 1, 512, 0, 512, "reserved" },
		{ 0, WIRE_DISK_ZERO, 0, 512, 0, 512, "carries 512" },
		{ 0, 0, 0, 1024, 0, 512, "carries 512" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(rec, 0x77, sizeof(rec));
		rec[0] = bad[i].disk;
		rec[1] = bad[i].flags;
		wire_put_u16(rec + 2, bad[i].reserved);
		wire_put_u32(rec + 4, bad[i].len);
		wire_put_u64(rec + 8, bad[i].off);
		err[0] = 0;
		if (disk_copy_apply(&dst, rec, WIRE_DISK_DATA_HDR + bad[i].payload, err, sizeof(err)) == 0)
			fail_msg("record %zu (%s) accepted", i, bad[i].what);
		if (!strstr(err, bad[i].what) || strchr(err, '\n'))
			fail_msg("record %zu: '%s' does not say '%s' on one line", i, err, bad[i].what);
	}
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal(st.st_blocks, 0);
	close(out);
	unlink(copy);
}

/* ---- hvctl move-disk ---- */

/* A guest that keeps writing: sector i of the disk gets the byte (seq + i) until stopped;
 * what every sector must hold in the end is kept in `want`. */
struct writer {
	struct fixture *f;
	atomic_bool stop;
	unsigned writes;
	uint8_t want[SECTORS];
};

static void *keep_writing(void *arg)
{
	struct writer *w = arg;
	uint8_t *p = vdrv_ptr(&w->f->d, w->f->data, 512);

	for (unsigned seq = 1; !atomic_load(&w->stop); seq++) {
		uint64_t sector = (seq * 2654435761u) % SECTORS;
		uint8_t v = (uint8_t)(seq + sector) | 1;
		memset(p, v, 512);
		if (request(w->f, VIRTIO_BLK_T_OUT, sector, w->f->data, 512, false, NULL) != VIRTIO_BLK_S_OK)
			return NULL;
		w->want[sector] = v;
		w->writes++;
	}
	return NULL;
}

static void check_image(const char *path, const struct writer *w)
{
	uint8_t sec[512];
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	for (uint64_t s = 0; s < SECTORS; s++) {
		assert_int_equal(pread(fd, sec, 512, (off_t)(s * 512)), 512);
		if (w->want[s] && (sec[0] != w->want[s] || sec[511] != w->want[s]))
			fail_msg("%s: sector %llu holds %u, the guest last wrote %u", path, (unsigned long long)s, sec[0],
				 w->want[s]);
	}
	close(fd);
}

static int count_progress;
static unsigned rounds_seen_complete;

/* Every report's round progress is within its round; some show a round complete. */
static void count(void *opaque, const struct disk_move_stats *st)
{
	(void)opaque;
	count_progress++;
	assert_true(st->round_done_bytes <= st->round_bytes);
	if (st->round_bytes && st->round_done_bytes == st->round_bytes)
		rounds_seen_complete++;
}

/* The disk moves under a guest that writes all the time: no write is lost (the new image
 * has every one, those before, during and after the switch), the device uses the new image
 * afterwards and leaves the old one alone, and the guest saw no error. */
static void test_move_disk_under_writes(void **state)
{
	struct fixture *f = *state;
	struct dev_registry reg = { .n = 0 };
	struct writer *w = calloc(1, sizeof(*w));
	struct disk_move_stats st;
	atomic_bool cancel = false;
	char moved[160];
	pthread_t t;

	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(dev_registry_add(&reg, "disk0", &virtio_blk_state_ops, f->blk), 0);
	snprintf(moved, sizeof(moved), "%s/moved.img", f->dir);
	w->f = f;
	assert_int_equal(pthread_create(&t, NULL, keep_writing, w), 0);
	while (w->writes < 200)
		usleep(1000);
	if (disk_move(&reg, "disk0", moved, &cancel, count, NULL, &st) < 0)
		fail_msg("the move failed: %s", st.error);
	assert_string_equal(st.phase, "done");
	assert_true(rounds_seen_complete > 0);
	assert_string_equal(st.old_path, f->image);
	assert_string_equal(st.new_path, moved);
	unsigned at_switch = w->writes;
	/* The old image no longer changes; the guest writes on, into the new one. */
	uint8_t before[SECTORS * 512 / 8];
	int old = open(f->image, O_RDONLY);
	assert_int_equal(pread(old, before, sizeof(before), 0), (ssize_t)sizeof(before));
	while (w->writes < at_switch + 200)
		usleep(1000);
	atomic_store(&w->stop, true);
	pthread_join(t, NULL);
	uint8_t after[sizeof(before)];
	assert_int_equal(pread(old, after, sizeof(after), 0), (ssize_t)sizeof(after));
	close(old);
	assert_memory_equal(before, after, sizeof(before));
	check_image(moved, w);
	struct stat sb;
	assert_int_equal(stat(moved, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(count_progress > 0);
	unlink(moved);
	free(w);
}

/* Refused with one line, and nothing left behind: an existing file, a disk the VM does not
 * have, a relative path, a missing directory, a cancel (the new image removed, the disk
 * where it was and still working). */
static void test_move_disk_refusals(void **state)
{
	struct fixture *f = *state;
	struct dev_registry reg = { .n = 0 };
	struct disk_move_stats st;
	atomic_bool cancel = false;
	char path[160];

	bring_up(f, BASE_FEATURES, true);
	assert_int_equal(dev_registry_add(&reg, "disk0", &virtio_blk_state_ops, f->blk), 0);
	assert_int_equal(disk_move(&reg, "disk0", f->image, &cancel, NULL, NULL, &st), -1);
	assert_non_null(strstr(st.error, "exists; move-disk never replaces a file"));
	assert_int_equal(disk_move(&reg, "disk1", "/tmp/x.img", &cancel, NULL, NULL, &st), -1);
	assert_non_null(strstr(st.error, "this VM has no disk 'disk1'"));
	assert_int_equal(disk_move(&reg, "disk0", "x.img", &cancel, NULL, NULL, &st), -1);
	assert_non_null(strstr(st.error, "is not absolute"));
	assert_int_equal(disk_move(&reg, "disk0", "/nonexistent/x.img", &cancel, NULL, NULL, &st), -1);
	assert_non_null(strstr(st.error, "cannot create '/nonexistent/x.img'"));
	snprintf(path, sizeof(path), "%s/cancelled.img", f->dir);
	atomic_store(&cancel, true);
	assert_int_equal(disk_move(&reg, "disk0", path, &cancel, NULL, NULL, &st), -1);
	assert_string_equal(st.error, "cancelled");
	assert_string_equal(st.phase, "failed");
	assert_int_equal(access(path, F_OK), -1);
	for (size_t i = 0; i < sizeof(st.error) && st.error[i]; i++)
		assert_true(st.error[i] != '\n');
	/* The disk is where it was and works. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 7, f->data, 512, false, NULL), VIRTIO_BLK_S_OK);
	uint64_t bits[1] = { 0 };
	virtio_blk_state_ops.track_take(f->blk, bits);
	assert_int_equal(bits[0], 0); /* and no tracking is left on */
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_discovery),
		T(test_negotiation),
		T(test_write_then_read),
		T(test_scattered_request),
		T(test_batch_with_event_idx),
		T(test_flush_and_get_id),
		T(test_range_errors),
		T(test_discard_and_write_zeroes),
		T(test_discard_not_negotiated),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
		T(test_bad_descriptor_needs_reset),
		T(test_repeated_errors_are_reported_a_few_times),
		T(test_malformed_request),
		T(test_short_header),
		T(test_intx_fallback),
		T(test_config_vector_none),
		T(test_save_restore),
		T(test_bad_queue_size_still_migrates),
		T(test_unaccepted_features_still_migrate),
		T(test_features_while_reset_waits),
		T(test_open_errors),
		T(test_changed_blocks_are_tracked),
		T(test_disk_copy_is_identical_and_sparse),
		T(test_disk_copy_refuses_bad_records),
		T(test_move_disk_under_writes),
		T(test_move_disk_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
