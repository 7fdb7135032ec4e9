/* Every device with state, through its state ops (hv/dev_state.h), one generic test for all
 * (as crosvm's Suspendable tests): a device brought up by a driver saves a blob that loads
 * into a fresh twin on another VM and saves back byte for byte; every cut, appended byte,
 * repeated or foreign section is refused with a line and leaves the twin as it was; one
 * device's state is refused by a device of another type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_devices.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/layout.h"
#include "hv/state_enc.h"
#include "virtio_driver.h"

#define DISK_SLOT VIRTIO_DISK_SLOT(0)
#define NIC_SLOT VIRTIO_NIC_SLOT(0)

/* One "host": a fake VM with a serial port, a disk and a NIC, all registered. */
struct host {
	struct vm *vm;
	struct pci_bus *bus;
	struct serial *serial;
	struct virtio_blk *blk;
	struct virtio_net *net;
	int wire; /* the other end of the NIC's "TAP" */
	struct dev_registry devs;
};

struct fixture {
	char image[64];
	struct host src, dst;
};

static void host_up(struct host *h, const char *image, uint8_t last_mac_byte)
{
	int sv[2];
	uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, last_mac_byte };

	h->vm = fake_vm_create(16 * MiB);
	assert_non_null(h->vm);
	h->bus = pci_bus_create(h->vm);
	h->serial = serial_create(h->vm, -1, -1);
	h->blk = virtio_blk_create(h->bus, DISK_SLOT, image, false);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	h->net = virtio_net_create_fd(h->bus, NIC_SLOT, "hvtest0", sv[0], mac);
	h->wire = sv[1];
	assert_true(h->bus && h->serial && h->blk && h->net);
	assert_int_equal(dev_registry_add(&h->devs, "com1", &serial_state_ops, h->serial), 0);
	assert_int_equal(dev_registry_add(&h->devs, "disk0", &virtio_blk_state_ops, h->blk), 0);
	assert_int_equal(dev_registry_add(&h->devs, "net0", &virtio_net_state_ops, h->net), 0);
}

static void host_down(struct host *h)
{
	virtio_net_destroy(h->net);
	virtio_blk_destroy(h->blk);
	pci_bus_destroy(h->bus);
	serial_destroy(h->serial);
	fake_vm_destroy(h->vm);
	close(h->wire);
}

/* What a guest leaves in the devices: a configured UART, two virtio devices negotiated,
 * with MSI-X and their queues live. */
static void drive(struct host *h)
{
	struct vdrv d;

	bus_write(&h->vm->pio, 0x3f8 + 3, 1, 0x03); /* 8N1 */
	bus_write(&h->vm->pio, 0x3f8 + 1, 1, 0x01); /* receive interrupt on */
	bus_write(&h->vm->pio, 0x3f8 + 7, 1, 0x5a); /* scratch */
	const int slots[] = { DISK_SLOT, NIC_SLOT }, queues[] = { 1, 3 };
	for (int k = 0; k < 2; k++) {
		assert_int_equal(vdrv_init(&d, h->vm, slots[k]), 0);
		assert_true(vdrv_negotiate(&d, vdrv_device_features(&d) & (1ull << VIRTIO_F_VERSION_1 |
									    1ull << VIRTIO_RING_F_EVENT_IDX)));
		vdrv_enable_msix(&d, queues[k] + 1);
		for (int q = 0; q < queues[k]; q++)
			vdrv_setup_queue(&d, q, 64, (uint16_t)(q + 1));
		vdrv_driver_ok(&d);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->image, sizeof(f->image), "/tmp/hv-devstate-%d.img", (int)getpid());
	FILE *img = fopen(f->image, "w");
	if (!img || ftruncate(fileno(img), 1 << 20) < 0)
		return -1;
	fclose(img);
	host_up(&f->src, f->image, 0x01);
	host_up(&f->dst, f->image, 0x02);
	drive(&f->src);
	dev_registry_pause(&f->src.devs);
	dev_registry_pause(&f->dst.devs);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	host_down(&f->src);
	host_down(&f->dst);
	unlink(f->image);
	free(f);
	return 0;
}

static void save(struct dev_entry *e, struct state_out *o)
{
	state_out_init(o);
	assert_int_equal(e->ops->save(e->dev, o), 0);
	assert_true(o->len > 0);
}

/* Loading `len` bytes of p must fail with a line, and leave the device as `before`. */
static void refused(struct dev_entry *e, const uint8_t *p, size_t len, const struct state_out *before,
		    const char *what)
{
	char err[1024] = "";
	struct state_out now;

	if (e->ops->load(e->dev, p, len, err, sizeof(err)) == 0)
		fail_msg("%s: %s accepted %s (%zu bytes)", e->name, e->ops->type, what, len);
	if (strlen(err) < 10 || strchr(err, '\n'))
		fail_msg("%s: %s: not one line: '%s'", e->name, what, err);
	save(e, &now);
	if (now.len != before->len || memcmp(now.buf, before->buf, now.len))
		fail_msg("%s: %s changed the device", e->name, what);
	state_out_free(&now);
}

static void test_every_device_round_trips_byte_for_byte(void **state)
{
	struct fixture *f = *state;
	char err[1024];

	assert_int_equal(f->src.devs.n, f->dst.devs.n);
	for (int i = 0; i < f->src.devs.n; i++) {
		struct dev_entry *s = &f->src.devs.e[i], *d = &f->dst.devs.e[i];
		struct state_out a, b, pristine;
		save(s, &a);
		save(d, &pristine);
		/* The sizes docs/migration-protocol.md (3.5) gives. */
		static const size_t doc_len[] = { 85, 646, 729 };
		assert_int_equal(a.len, doc_len[i]);
		assert_false(a.len == pristine.len && !memcmp(a.buf, pristine.buf, a.len));
		err[0] = '\0';
		if (d->ops->load(d->dev, a.buf, a.len, err, sizeof(err)) < 0)
			fail_msg("%s: own state refused: %s", s->name, err);
		save(d, &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.buf, b.buf, a.len);
		state_out_free(&a);
		state_out_free(&b);
		state_out_free(&pristine);
	}
}

static void test_every_malformed_blob_is_refused_and_changes_nothing(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->src.devs.n; i++) {
		struct dev_entry *s = &f->src.devs.e[i], *d = &f->dst.devs.e[i];
		struct state_out a, before;
		save(s, &a);
		save(d, &before);
		for (size_t n = 0; n < a.len; n++)
			refused(d, a.buf, n, &before, "a cut blob");
		uint8_t *more = malloc(a.len + 64);
		memcpy(more, a.buf, a.len);
		more[a.len] = 0;
		refused(d, more, a.len + 1, &before, "a trailing byte");
		/* The first section once more at the end. */
		uint32_t first = 8 + (uint32_t)a.buf[4] + ((uint32_t)a.buf[5] << 8);
		assert_true(first <= 64 || first <= a.len);
		uint8_t *twice = malloc(a.len + first);
		memcpy(twice, a.buf, a.len);
		memcpy(twice + a.len, a.buf, first);
		refused(d, twice, a.len + first, &before, "a repeated section");
		/* A section this device does not have. */
		memcpy(more, a.buf, a.len);
		memcpy(more + a.len, (const uint8_t[]){ 62, 0, 0, 0, 0, 0, 0, 0 }, 8);
		refused(d, more, a.len + 8, &before, "a foreign section");
		/* The first section missing. */
		refused(d, a.buf + first, a.len - first, &before, "a blob without its first section");
		free(twice);
		free(more);
		state_out_free(&a);
		state_out_free(&before);
	}
}

static void test_a_device_refuses_another_types_state(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->src.devs.n; i++)
		for (int j = 0; j < f->dst.devs.n; j++) {
			if (i == j)
				continue;
			struct dev_entry *s = &f->src.devs.e[i], *d = &f->dst.devs.e[j];
			struct state_out a, before;
			save(s, &a);
			save(d, &before);
			refused(d, a.buf, a.len, &before, s->ops->type);
			state_out_free(&a);
			state_out_free(&before);
		}
}

/* A NIC's state names the guest's address for gratuitous ARP: only a unicast one, or none,
 * is taken. */
static void test_a_nic_refuses_a_guest_address_that_is_not_unicast(void **state)
{
	struct fixture *f = *state;
	struct dev_entry *s = dev_registry_find(&f->src.devs, "net0"), *d = dev_registry_find(&f->dst.devs, "net0");
	struct state_out a, before;
	char err[256];
	static const uint8_t bad[][4] = { { 224, 0, 0, 1 }, { 255, 255, 255, 255 }, { 127, 0, 0, 1 }, { 0, 1, 2, 3 } };

	save(s, &a);
	save(d, &before);
	/* Section 17, the last: its 4 bytes end the blob. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(a.buf + a.len - 4, bad[i], 4);
		refused(d, a.buf, a.len, &before, "a guest address that is not unicast");
	}
	memcpy(a.buf + a.len - 4, (const uint8_t[]){ 10, 1, 2, 3 }, 4);
	assert_int_equal(d->ops->load(d->dev, a.buf, a.len, err, sizeof(err)), 0);
	struct virtio_net_state st;
	virtio_net_get_state(f->dst.net, &st);
	assert_memory_equal(&st.guest_ip, ((const uint8_t[]){ 10, 1, 2, 3 }), 4);
	state_out_free(&a);
	state_out_free(&before);
}

static void put(const char *path, uint64_t off, const void *p, size_t n)
{
	FILE *img = fopen(path, "r+");
	assert_non_null(img);
	assert_int_equal(pwrite(fileno(img), p, n, (off_t)off), (ssize_t)n);
	fclose(img);
}

/* Shared storage, a stale copy, a snapshot restored after the guest wrote on: the state
 * names the disk's content, and an image with the same size but other content is refused
 * (here: written at its start, in its middle, in its last block); the very image again is
 * accepted. The check samples the image (its start, 64 blocks, its end): these writes each
 * cover a sample. */
static void test_a_disk_with_other_content_is_refused(void **state)
{
	struct fixture *f = *state;
	struct dev_entry *s = dev_registry_find(&f->src.devs, "disk0");
	struct dev_entry *d = dev_registry_find(&f->dst.devs, "disk0");
	/* In the middle, 20 KiB: more than the 16 KiB between two samples of a 1 MiB disk. */
	const uint64_t where[] = { 0, 500 * 1024, (1 << 20) - 20 * 1024 };
	uint8_t junk[20 * 1024], zero[20 * 1024] = { 0 };
	char err[1024];
	struct state_out a;

	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(s->ops->flush(s->dev, err, sizeof(err)), 0);
	save(s, &a);
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		put(f->image, where[i], junk, sizeof(junk));
		err[0] = 0;
		assert_int_equal(d->ops->load(d->dev, a.buf, a.len, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not the disk the state was saved with"));
		put(f->image, where[i], zero, sizeof(zero));
	}
	if (d->ops->load(d->dev, a.buf, a.len, err, sizeof(err)) < 0)
		fail_msg("the same image refused: %s", err);
	state_out_free(&a);
}

static void test_registry_names_are_unique(void **state)
{
	struct fixture *f = *state;
	struct dev_registry r = { .n = 0 };

	assert_int_equal(dev_registry_add(&r, "disk0", &virtio_blk_state_ops, f->src.blk), 0);
	assert_int_equal(dev_registry_add(&r, "disk0", &virtio_blk_state_ops, f->src.blk), -1);
	assert_int_equal(dev_registry_add(&r, "a-name-far-too-long", &serial_state_ops, f->src.serial), -1);
	assert_ptr_equal(dev_registry_find(&r, "disk0")->dev, f->src.blk);
	assert_null(dev_registry_find(&r, "disk1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_device_round_trips_byte_for_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_malformed_blob_is_refused_and_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_device_refuses_another_types_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_nic_refuses_a_guest_address_that_is_not_unicast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_disk_with_other_content_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_names_are_unique, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
