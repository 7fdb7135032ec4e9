/* libFuzzer target for device-state restore: the DEVICE_STATE records of a migration stream
 * (serial registers; for each disk and NIC the virtio-pci transport with its PCI function and
 * queues, then the device's own state) fed to what a destination runs on them:
 * wire_parse_device_state, device_state_rx_add, device_state_rx_apply, and through it
 * each device's state ops (hv/dev_state.h): the sections of hv/state_enc.h, decoded by
 * serial.c, pci.c, virtq.c, virtio_pci.c (virtio_pci_decode, check_state), virtio_blk.c and
 * virtio_net.c. The destination is a fake VM (no KVM) set
 * up as `hvctl receive` sets one up: a serial port, disk0 on an in-memory image and net0 on a
 * socketpair standing in for its TAP (fuzz_network.h), devices paused until the state is in.
 *
 * Input: guest RAM first (the rings a restored queue points at arrive in the same stream),
 * then the records:
 *   u8 chunks, each: u16 offset into the ring area, u16 length, bytes
 *   then until the end: u16 length, a DEVICE_STATE payload (u16 name length, u16 version,
 *   name, blob)
 * A state that is accepted is then used, so that accepted-but-inconsistent state is caught
 * too: the devices resume, a frame arrives, every queue is served, the destination announces
 * the NIC, the guest reads config space, BARs, MSI-X and the serial port, and each device's
 * state must save and be accepted again.
 *
 * FUZZ_DEVSTATE_SEEDS=DIR: write seeds made by the real save path (device_state_send,
 * decoded with wire_decode) into DIR, and exit: a machine fresh from creation, and one whose
 * driver has brought every device up and left requests in flight. */
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/virtio_devices.h"
#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/layout.h"
#include "hv/machine.h"
#include "hv/state_enc.h"
#include "migrate/device_state.h"
#include "migrate/wire.h"
#include "tests/fuzz/fuzz_guest.h"
#include "tests/fuzz/fuzz_network.h"

#define MEM (4 * MiB)
#define RING_AREA 0x100000ull
#define DISK_RING RING_AREA                    /* disk0's queue */
#define NIC_RING (RING_AREA + FUZZ_QUEUE_SPAN) /* net0's three queues */
#define RING_SPAN (4 * FUZZ_QUEUE_SPAN)
#define QSIZE 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* A machine with the devices of a migrating one, and the network behind its NIC. */
struct rig {
	struct machine m;
	struct serial *com1;
	struct virtio_devices *pci;
	struct fuzz_network net;
};

static struct virtio_blk *disk(struct rig *r)
{
	return r->pci->disks[0];
}

static struct virtio_net *nic(struct rig *r)
{
	return r->pci->nics[0];
}

static void rig_create(struct rig *r)
{
	struct virtio_devices *d = calloc(1, sizeof(*d));

	memset(r, 0, sizeof(*r));
	if (!d || fake_vm_init(&r->m.vm, MEM, &fuzz_ram) < 0)
		abort();
	r->com1 = serial_create(&r->m.vm, -1, -1);
	d->pci = pci_bus_create(&r->m.vm);
	if (!r->com1 || !d->pci)
		abort();
	d->disks[0] = virtio_blk_create(d->pci, VIRTIO_DISK_SLOT(0), fuzz_disk_image(), false);
	if (!d->disks[0])
		abort();
	d->ndisks = 1;
	fuzz_network_start(&r->net);
	d->nics[0] = virtio_net_create_fd(d->pci, VIRTIO_NIC_SLOT(0), "fuzz0", r->net.tap, mac);
	if (!d->nics[0])
		abort();
	d->nnics = 1;
	r->pci = d;
	/* Registered as devices/board.c registers them. */
	if (dev_registry_add(&r->m.devs, "com1", &serial_state_ops, r->com1) < 0 ||
	    dev_registry_add(&r->m.devs, "disk0", &virtio_blk_state_ops, d->disks[0]) < 0 ||
	    dev_registry_add(&r->m.devs, "net0", &virtio_net_state_ops, d->nics[0]) < 0)
		abort();
	/* As incoming.c does: quiet until the guest runs. */
	dev_registry_pause(&r->m.devs);
}

static void rig_destroy(struct rig *r)
{
	virtio_devices_destroy(r->pci);
	fuzz_network_stop(&r->net);
	serial_destroy(r->com1);
	fake_vm_fini(&r->m.vm);
}

/* ---- one input ---- */

static void load_ram(struct vm *vm, struct fuzz_input *in)
{
	for (int n = (int)fuzz_take(in, 1); n > 0 && in->left; n--) {
		uint64_t off = fuzz_take(in, 2) % RING_SPAN;
		size_t len;
		const uint8_t *p = fuzz_take_bytes(in, (size_t)fuzz_take(in, 2), &len);
		guest_mem_write(&vm->mem, RING_AREA + off, p, len);
	}
}

/* What incoming.c does with the records: the first refusal ends it. True if accepted. */
static bool receive(struct machine *m, struct fuzz_input *in)
{
	struct device_state_rx *rx = device_state_rx_new(m);
	struct wire_device_state d;
	char err[256];
	bool ok = rx != NULL;

	while (ok && in->left) {
		size_t len;
		const uint8_t *p = fuzz_take_bytes(in, (size_t)fuzz_take(in, 2), &len);
		ok = wire_parse_device_state(p, len, &d, err, sizeof(err)) == 0 &&
		     device_state_rx_add(rx, d.name, d.version, d.data, d.len, err, sizeof(err)) == 0;
	}
	ok = ok && device_state_rx_apply(rx, err, sizeof(err)) >= 0;
	device_state_rx_free(rx);
	return ok;
}

/* A guest's first look after the switchover: config space, the registers behind BAR0 for
 * every queue, ISR, device config, the MSI-X table and PBA, wherever the state put them. */
static void guest_looks(struct vm *vm, struct virtio_pci *vp, int slot)
{
	struct pci_device *pci = virtio_pci_pci(vp);
	bool mapped;

	for (int off = 0; off < PCI_CFG_SIZE; off += 4)
		conf1_read(vm, slot, off, 4);
	uint64_t bar = pci_device_bar_addr(pci, VIRTIO_PCI_BAR, &mapped);
	if (mapped) {
		for (int q = 0; q <= VIRTIO_PCI_MAX_QUEUES; q++) {
			bus_write(&vm->mmio, bar + VIRTIO_PCI_COMMON_Q_SELECT, 2, (uint64_t)q);
			for (int off = 0; off < VIRTIO_PCI_COMMON_LEN; off += 2)
				bus_read(&vm->mmio, bar + (uint64_t)off, 2);
		}
		bus_read(&vm->mmio, bar + VIRTIO_PCI_ISR_OFF, 1);
		for (int off = 0; off < 64; off += 4)
			bus_read(&vm->mmio, bar + VIRTIO_PCI_DEVCFG_OFF + (uint64_t)off, 4);
	}
	bar = pci_device_bar_addr(pci, VIRTIO_PCI_MSIX_BAR, &mapped);
	if (mapped) {
		for (int off = 0; off < 16 * pci_msix_vectors(pci); off += 4)
			bus_read(&vm->mmio, bar + (uint64_t)off, 4);
		bus_read(&vm->mmio, bar + PCI_MSIX_BAR_PBA, 4);
	}
}

/* The restored machine runs a little, as it would after the switchover. */
static void drive(struct rig *r)
{
	struct vm *vm = &r->m.vm;
	uint8_t frame[VIRTIO_NET_HDR_LEN + 60] = { 0 };

	dev_registry_resume(&r->m.devs);
	memset(frame + VIRTIO_NET_HDR_LEN, 0xff, 6);
	fuzz_network_send(&r->net, frame, sizeof(frame));
	virtio_blk_process(disk(r));
	virtio_net_process_rx(nic(r));
	virtio_net_process_tx(nic(r));
	virtio_net_process_ctrl(nic(r));
	device_state_announce(&r->m, &DEV_ANNOUNCE_DEFAULT);
	guest_looks(vm, virtio_blk_transport(disk(r)), VIRTIO_DISK_SLOT(0));
	guest_looks(vm, virtio_net_transport(nic(r)), VIRTIO_NIC_SLOT(0));
	for (int port = 0; port < 8; port++)
		bus_read(&vm->pio, SERIAL_COM1_BASE + (uint64_t)port, 1);
	bus_write(&vm->pio, SERIAL_COM1_BASE, 1, 'x');
	/* What was accepted must migrate on: every device's state saves and loads again. */
	dev_registry_pause(&r->m.devs);
	for (int i = 0; i < r->m.devs.n; i++) {
		struct dev_entry *e = &r->m.devs.e[i];
		struct state_out o;
		char err[256];
		state_out_init(&o);
		if (e->ops->save(e->dev, &o) < 0 || e->ops->load(e->dev, o.buf, o.len, err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz: %s's own saved state is refused: %s\n", e->name, err);
			abort();
		}
		state_out_free(&o);
	}
	dev_registry_resume(&r->m.devs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rig r;
	struct fuzz_input in = { data, size };

	rig_create(&r);
	load_ram(&r.m.vm, &in);
	if (receive(&r.m, &in))
		drive(&r);
	rig_destroy(&r);
	return 0;
}

/* ---- seeds ---- */

struct seed {
	uint8_t *buf;
	size_t len, cap;
};

static void seed_put(struct seed *s, const void *p, size_t len)
{
	if (s->len + len > s->cap) {
		s->cap = 2 * (s->len + len);
		s->buf = realloc(s->buf, s->cap);
		if (!s->buf)
			abort();
	}
	memcpy(s->buf + s->len, p, len);
	s->len += len;
}

static void seed_u16(struct seed *s, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	seed_put(s, b, 2);
}

/* The ring area's non-zero runs as RAM chunks (runs closer than 32 bytes merged). */
static void seed_ram(struct seed *s, const struct vm *vm)
{
	const uint8_t *ram = guest_mem_ptr(&vm->mem, RING_AREA, RING_SPAN);
	size_t count_at = s->len;
	uint8_t n = 0;

	seed_put(s, &n, 1);
	for (size_t i = 0; i < RING_SPAN && n < 255;) {
		if (!ram[i]) {
			i++;
			continue;
		}
		size_t end = i, zeros = 0;
		while (end < RING_SPAN && zeros < 32 && end - i < 0xffff) {
			zeros = ram[end] ? 0 : zeros + 1;
			end++;
		}
		end -= zeros;
		seed_u16(s, (uint16_t)i);
		seed_u16(s, (uint16_t)(end - i));
		seed_put(s, ram + i, end - i);
		n++;
		i = end;
	}
	s->buf[count_at] = n;
}

/* The DEVICE_STATE records the source sends, through the real encoder and decoder. */
static void seed_records(struct seed *s, struct machine *m)
{
	struct wire_conn c;
	struct wire_decoder dec;
	struct wire_record rec;
	char err[320] = "";
	int fd = memfd_create("seed-stream", 0);

	wire_conn_init_fd(&c, fd);
	if (fd < 0 || device_state_send(&c, m, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_devstate: cannot make the seed records: %s%s\n", err, c.err);
		exit(1);
	}
	off_t len = lseek(fd, 0, SEEK_END);
	uint8_t *stream = malloc((size_t)len);
	if (!stream || pread(fd, stream, (size_t)len, 0) != len)
		exit(1);
	wire_decoder_init(&dec);
	for (size_t pos = 0, used; pos < (size_t)len; pos += used) {
		if (wire_decode(&dec, stream + pos, (size_t)len - pos, &rec, &used) < 0 ||
		    rec.hdr.type != WIRE_DEVICE_STATE)
			exit(1);
		seed_u16(s, (uint16_t)rec.len);
		seed_put(s, rec.payload, rec.len);
	}
	free(stream);
	close(fd);
}

static void seed_save(const char *dir, const char *name, struct rig *r)
{
	struct seed s = { 0 };
	char path[4096];

	seed_ram(&s, &r->m.vm);
	seed_records(&s, &r->m);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fuzz_write_file(path, s.buf, s.len);
	free(s.buf);
}

/* A chain made available on queue q of the device at `slot` (rings at `ring`), as a driver
 * posts it, without a kick. */
static void seed_post(struct vm *vm, int slot, uint64_t ring, int q, const struct vdrv_seg *segs,
		      int n)
{
	struct vdrv d;
	uint64_t base = ring + (uint64_t)q * FUZZ_QUEUE_SPAN;

	if (vdrv_init(&d, vm, slot) < 0)
		exit(1);
	d.q[q] = (struct vdrv_queue){ .size = QSIZE, .desc = base, .avail = base + FUZZ_AVAIL_OFF,
				      .used = base + FUZZ_USED_OFF };
	vdrv_add(&d, q, segs, n);
}

/* Every device up, a request on every queue still in flight, the UART set up with two bytes
 * waiting in its receive FIFO. */
static void seed_running(struct rig *r)
{
	struct vm *vm = &r->m.vm;
	uint64_t buf = DISK_RING + FUZZ_BUF_OFF;
	uint8_t cmd[2] = { VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK };
	uint8_t hdr[16] = { 0 }; /* VIRTIO_BLK_T_IN, sector 0 */

	virtio_devices_resume(r->pci);
	fuzz_bring_up(vm, VIRTIO_DISK_SLOT(0), 1, QSIZE, ~0ull, DISK_RING);
	fuzz_bring_up(vm, VIRTIO_NIC_SLOT(0), 3, QSIZE, ~0ull, NIC_RING);
	virtio_devices_pause(r->pci);
	guest_mem_write(&vm->mem, buf, hdr, sizeof(hdr));
	seed_post(vm, VIRTIO_DISK_SLOT(0), DISK_RING, 0,
		  (const struct vdrv_seg[]){ { buf, 16, false }, { buf + 0x100, 512, true },
					     { buf + 0x400, 1, true } }, 3);
	buf = NIC_RING + FUZZ_BUF_OFF;
	seed_post(vm, VIRTIO_NIC_SLOT(0), NIC_RING, VIRTIO_NET_RXQ,
		  (const struct vdrv_seg[]){ { buf, 1526, true } }, 1);
	buf += FUZZ_QUEUE_SPAN;
	seed_post(vm, VIRTIO_NIC_SLOT(0), NIC_RING, VIRTIO_NET_TXQ,
		  (const struct vdrv_seg[]){ { buf, VIRTIO_NET_HDR_LEN + 60, false } }, 1);
	buf += FUZZ_QUEUE_SPAN;
	guest_mem_write(&vm->mem, buf, cmd, sizeof(cmd));
	seed_post(vm, VIRTIO_NIC_SLOT(0), NIC_RING, VIRTIO_NET_CTRLQ,
		  (const struct vdrv_seg[]){ { buf, 2, false }, { buf + 0x10, 1, true } }, 2);
	virtio_net_announce(nic(r));
	static const uint8_t uart[][2] = {
		{ 3, 0x03 }, /* LCR: 8N1 */
		{ 1, 0x01 }, /* IER: receive interrupt */
		{ 4, 0x1b }, /* MCR: loopback, OUT2, RTS, DTR */
		{ 7, 0x5a }, /* scratch */
		{ 0, 'h' },  /* looped back into the receive FIFO */
		{ 0, 'i' },
	};
	for (size_t i = 0; i < sizeof(uart) / sizeof(uart[0]); i++)
		bus_write(&vm->pio, SERIAL_COM1_BASE + uart[i][0], 1, uart[i][1]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_DEVSTATE_SEEDS");
	static struct rig r;

	(void)argc;
	(void)argv;
	hv_quiet_errors(true); /* every refused state is an hv_error line */
	if (!dir)
		return 0;
	rig_create(&r);
	seed_save(dir, "fresh", &r);
	rig_destroy(&r);
	rig_create(&r);
	seed_running(&r);
	seed_save(dir, "running", &r);
	rig_destroy(&r);
	exit(0);
}
