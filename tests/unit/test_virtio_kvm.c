/* The KVM side of virtio-pci on a real VM (skipped without /dev/kvm): a guest store to
 * the notify address must reach the device through the ioeventfd (no MMIO exit), the
 * request is served on the I/O thread, and the completion arrives in the vCPU's local
 * APIC as the vector programmed in the MSI-X table (KVM_SET_GSI_ROUTING + irqfd); a
 * masked vector must not arrive. Also: a BAR move takes the ioeventfd along. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "hv/boot.h"
#include "hv/layout.h"
#include "hv/vm.h"
#include "virtio_driver.h"

#define SLOT 1
#define CODE_GPA 0x50000 /* below the driver's rings and buffers (from 1 MiB) */
#define APIC_SVR 0xf0
#define APIC_IRR 0x200

struct fixture {
	struct vm vm;
	struct pci_bus *bus;
	struct virtio_blk *blk;
	struct vdrv d;
	char image[64];
	int mmio_exits;
};

static int setup(void **state)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		*state = NULL;
		return 0;
	}
	struct fixture *f = calloc(1, sizeof(*f));
	if (vm_create(&f->vm, "virtio-kvm-test", 64 * MiB, NULL, 1, CPU_MODEL_HOST) < 0) {
		free(f);
		*state = NULL;
		return 0; /* no usable KVM here: the tests skip */
	}
	snprintf(f->image, sizeof(f->image), "/tmp/hv-kvm-blk-XXXXXX");
	int fd = mkstemp(f->image);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	f->bus = pci_bus_create(&f->vm);
	f->blk = virtio_blk_create(f->bus, SLOT, f->image, false);
	if (!f->bus || !f->blk)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	virtio_blk_destroy(f->blk);
	pci_bus_destroy(f->bus);
	vm_destroy(&f->vm);
	unlink(f->image);
	free(f);
	return 0;
}

/* Guest code: a 16-bit store of 0 to `notify`, then `out 0x80, al` to come back to us. */
static void write_guest(struct fixture *f, uint32_t notify)
{
	uint8_t code[] = { 0x66, 0xc7, 0x05, 0, 0, 0, 0, 0x00, 0x00, /* mov word [notify], 0 */
			   0xe6, 0x80,                                 /* out 0x80, al */
			   0xf4 };                                     /* hlt */
	memcpy(code + 3, &notify, 4);
	assert_int_equal(guest_mem_write(&f->vm.mem, CODE_GPA, code, sizeof(code)), 0);
	struct boot_entry e = { .mode = BOOT_PVH32, .entry = CODE_GPA, .info_addr = 0 };
	assert_int_equal(vm_setup_boot(&f->vm, &e), 0);
}

/* Runs the vCPU until the `out` to port 0x80. */
static void run_guest(struct fixture *f)
{
	struct vcpu *v = &f->vm.vcpus[0];

	for (int i = 0; i < 100; i++) {
		assert_int_equal(ioctl(v->fd, KVM_RUN, 0), 0);
		if (v->run->exit_reason == KVM_EXIT_IO && v->run->io.port == 0x80)
			return;
		if (v->run->exit_reason == KVM_EXIT_MMIO) {
			f->mmio_exits++;
			bus_dispatch(&f->vm.mmio, v->run->mmio.phys_addr, v->run->mmio.data,
				     v->run->mmio.len, v->run->mmio.is_write);
			continue;
		}
		fail_msg("unexpected exit %u", v->run->exit_reason);
	}
	fail_msg("guest did not reach its out instruction");
}

static void lapic_enable(struct fixture *f)
{
	struct kvm_lapic_state l;

	assert_int_equal(ioctl(f->vm.vcpus[0].fd, KVM_GET_LAPIC, &l), 0);
	uint32_t svr;
	memcpy(&svr, &l.regs[APIC_SVR], 4);
	svr |= 0x100 | 0xff; /* software enable, spurious vector 0xff */
	memcpy(&l.regs[APIC_SVR], &svr, 4);
	assert_int_equal(ioctl(f->vm.vcpus[0].fd, KVM_SET_LAPIC, &l), 0);
}

static bool lapic_irr(struct fixture *f, int vector)
{
	struct kvm_lapic_state l;
	uint32_t word;

	assert_int_equal(ioctl(f->vm.vcpus[0].fd, KVM_GET_LAPIC, &l), 0);
	memcpy(&word, &l.regs[APIC_IRR + 0x10 * (vector / 32)], 4);
	return word & (1u << (vector % 32));
}

/* Bring-up, with a read request published but not kicked. */
static void prepare(struct fixture *f, bool mask_queue_vector)
{
	assert_int_equal(vdrv_init(&f->d, &f->vm, SLOT), 0);
	assert_true(vdrv_negotiate(&f->d, 1ull << VIRTIO_F_VERSION_1));
	vdrv_enable_msix(&f->d, 2); /* vector 0 -> 0x40, vector 1 -> 0x41, APIC ID 0 */
	if (mask_queue_vector)
		bus_write(&f->vm.mmio, f->d.msix_table + 16 + 12, 4, 1);
	vdrv_setup_queue(&f->d, 0, 16, 1);
	vdrv_driver_ok(&f->d);
	uint64_t hdr = vdrv_alloc(&f->d, 16, 16), data = vdrv_alloc(&f->d, 512, 512),
		 st = vdrv_alloc(&f->d, 1, 1);
	struct virtio_blk_outhdr *h = vdrv_ptr(&f->d, hdr, 16);
	h->type = VIRTIO_BLK_T_IN;
	h->sector = 1;
	struct vdrv_seg segs[] = { { hdr, 16, false }, { data, 512, true }, { st, 1, true } };
	vdrv_add(&f->d, 0, segs, 3);
	lapic_enable(f);
}

static void test_kick_and_msi(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	prepare(f, false);
	assert_false(lapic_irr(f, 0x41));
	write_guest(f, (uint32_t)f->d.notify);
	run_guest(f);
	assert_int_equal(f->mmio_exits, 0); /* the kick went through the ioeventfd */
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	for (int i = 0; i < 1000 && !lapic_irr(f, 0x41); i++)
		usleep(1000);
	assert_true(lapic_irr(f, 0x41));
	assert_false(lapic_irr(f, 0x40));
}

static void test_masked_vector_stays_pending(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	prepare(f, true);
	write_guest(f, (uint32_t)f->d.notify);
	run_guest(f);
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	usleep(20000);
	assert_false(lapic_irr(f, 0x41));
	/* Pending in the PBA; unmasking delivers it. */
	uint64_t pba = f->d.msix_table + PCI_MSIX_BAR_PBA;
	for (int i = 0; i < 1000 && !(bus_read(&f->vm.mmio, pba, 4) & 2); i++)
		usleep(1000);
	assert_int_equal(bus_read(&f->vm.mmio, pba, 4), 2);
	bus_write(&f->vm.mmio, f->d.msix_table + 16 + 12, 4, 0);
	for (int i = 0; i < 1000 && !lapic_irr(f, 0x41); i++)
		usleep(1000);
	assert_true(lapic_irr(f, 0x41));
}

static void test_bar_move_moves_ioeventfd(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	/* The guest moves BAR0 (as an OS that reassigns resources would). */
	conf1_write(&f->vm, SLOT, PCI_BASE_ADDRESS_0, 4, 0xd0000000);
	prepare(f, false);
	assert_int_equal(f->d.notify, 0xd0000000ull + VIRTIO_PCI_NOTIFY_OFF);
	write_guest(f, (uint32_t)f->d.notify);
	run_guest(f);
	assert_int_equal(f->mmio_exits, 0);
	assert_true(vdrv_wait_used(&f->d, 0, 1));
	/* The old notify address is dead: a store there is no longer taken by an ioeventfd but
	 * exits to us, and nothing is mapped there any more. */
	uint64_t old_notify = PCI_SLOT_MMIO(SLOT) + VIRTIO_PCI_NOTIFY_OFF;
	uint8_t probe[2];
	assert_false(bus_dispatch(&f->vm.mmio, old_notify, probe, 2, false));
	write_guest(f, (uint32_t)old_notify);
	run_guest(f);
	assert_int_equal(f->mmio_exits, 1);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_kick_and_msi),
		T(test_masked_vector_stays_pending),
		T(test_bar_move_moves_ioeventfd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
