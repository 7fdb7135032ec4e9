/* libFuzzer target for virtio-net: the guest's receive, transmit and control queues (rings,
 * descriptors, buffers), its config cycles and MMIO, and frames arriving from the network.
 * Each input is a program of operations run against a fresh fake VM (no KVM) with one NIC.
 * The NIC's TAP is one end of a socketpair (fuzz_network.h): the real virtio-net code runs
 * unchanged, its threads included, without root or a network, and every frame the guest
 * sends is checked on the other end.
 *
 * Operations (first byte % 8):
 *   0-4             fuzz_guest.h: conf1 write/read, MMIO write/read, RAM write (ring area)
 *   5 process       bring the NIC up first if the input asks (flag byte: bit 0, queue size
 *                   1 << (flags >> 1) % 10, then u64 features), then serve the receive,
 *                   transmit and control queues on this thread
 *   6 frame         u16 length, bytes: a frame from the network (virtio-net header first,
 *                   as a TAP gives it), for the next receive
 *   7 migrate       the NIC's state saved and restored (it must be accepted), then the
 *                   announcement a destination makes (VIRTIO_NET_F_GUEST_ANNOUNCE); the
 *                   first 4 in an input, the rest are skipped
 * At the end the state must save and restore once more.
 *
 * FUZZ_NET_SEEDS=DIR: write seed programs (a frame received, one sent, the announce
 * handshake on the control queue, all of it together) into DIR, and exit. */
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci.h"
#include "devices/virtio_devices.h"
#include "devices/virtio_net.h"
#include "hv/layout.h"
#include "tests/fuzz/fuzz_guest.h"
#include "tests/fuzz/fuzz_network.h"

#define SLOT VIRTIO_NIC_SLOT(0)
#define RING_AREA 0x100000ull
#define RING_SPAN (3 * FUZZ_QUEUE_SPAN) /* RX, TX and control queue */
#define MEM (4 * MiB)
#define OPS 8
#define MIGRATIONS 4 /* op 7s acted on per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* ---- one input ---- */

static void migrate(struct virtio_net *net)
{
	struct virtio_net_state st;

	fuzz_check_migratable(virtio_net_transport(net));
	virtio_net_get_state(net, &st);
	if (virtio_net_set_state(net, &st) < 0)
		abort();
	virtio_net_announce(net);
}

static void run(struct vm *vm, struct virtio_net *net, struct fuzz_network *nw, struct fuzz_input *in)
{
	int migrations = 0;

	for (int ops = 0; in->left && ops < 256; ops++) {
		int op = (int)(fuzz_take(in, 1) % OPS);
		if (op < FUZZ_GUEST_OPS) {
			fuzz_guest_op(vm, in, op, SLOT, RING_AREA, RING_SPAN);
			continue;
		}
		switch (op) {
		case 5: {
			uint8_t flags = (uint8_t)fuzz_take(in, 1);
			if (flags & 1)
				fuzz_bring_up(vm, SLOT, 3, (uint16_t)(1u << (flags >> 1) % 10),
					      fuzz_take(in, 8), RING_AREA);
			virtio_net_process_rx(net);
			virtio_net_process_tx(net);
			virtio_net_process_ctrl(net);
			break;
		}
		case 6: {
			size_t len;
			const uint8_t *frame = fuzz_take_bytes(in, (size_t)fuzz_take(in, 2), &len);
			fuzz_network_send(nw, frame, len);
			break;
		}
		case 7:
			/* A few per input: each wakes the device threads twice, and inputs of
			 * many 7s made most of the run's time without reaching new code. */
			if (migrations++ < MIGRATIONS)
				migrate(net);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_network network;

	struct vm *vm = fake_vm_create_spec(MEM, &fuzz_ram);
	if (!vm)
		return 0;
	struct pci_bus *bus = pci_bus_create(vm);
	if (!bus)
		abort();
	fuzz_network_start(&network);
	struct virtio_net *net = virtio_net_create_fd(bus, SLOT, "fuzz0", network.tap, mac);
	if (!net)
		abort();
	struct fuzz_input in = { data, size };
	run(vm, net, &network, &in);
	fuzz_check_migratable(virtio_net_transport(net));
	virtio_net_destroy(net);
	fuzz_network_stop(&network);
	pci_bus_destroy(bus);
	fake_vm_destroy(vm);
	return 0;
}

/* ---- seeds ---- */

/* Queue q's ring area offsets, as fuzz_bring_up lays them out. */
#define QOFF(q) ((uint16_t)((q) * FUZZ_QUEUE_SPAN))
#define QBUF(q) (RING_AREA + QOFF(q) + FUZZ_BUF_OFF)

static void seed_bring_up(struct fuzz_seed *s)
{
	fuzz_seed_put(s, 5, 1);
	fuzz_seed_put(s, 1 | 4 << 1, 1); /* 16 entries */
	fuzz_seed_put(s, ~0ull, 8);      /* every offered feature */
}

/* A receive buffer posted, a frame arriving. */
static void seed_rx(struct fuzz_seed *s)
{
	uint8_t frame[VIRTIO_NET_HDR_LEN + 60] = { 0 };

	fuzz_seed_desc(s, QOFF(0), 0, QBUF(0), 1526, VRING_DESC_F_WRITE, 0);
	fuzz_seed_avail(s, QOFF(0) + FUZZ_AVAIL_OFF, (const uint16_t[]){ 0 }, 1);
	memset(frame + VIRTIO_NET_HDR_LEN, 0xff, 6); /* broadcast */
	memcpy(frame + VIRTIO_NET_HDR_LEN + 6, mac, 6);
	fuzz_seed_put(s, 6, 1);
	fuzz_seed_put(s, sizeof(frame), 2);
	for (size_t i = 0; i < sizeof(frame); i++)
		fuzz_seed_put(s, frame[i], 1);
}

/* A frame sent: header and frame in two descriptors. */
static void seed_tx(struct fuzz_seed *s)
{
	uint8_t frame[60] = { 0 };

	memset(frame, 0xff, 6);
	memcpy(frame + 6, mac, 6);
	fuzz_seed_desc(s, QOFF(1), 0, QBUF(1), VIRTIO_NET_HDR_LEN, VRING_DESC_F_NEXT, 1);
	fuzz_seed_desc(s, QOFF(1), 1, QBUF(1) + 0x100, sizeof(frame), 0, 0);
	fuzz_seed_ram(s, QOFF(1) + FUZZ_BUF_OFF + 0x100, frame, sizeof(frame));
	fuzz_seed_avail(s, QOFF(1) + FUZZ_AVAIL_OFF, (const uint16_t[]){ 0 }, 1);
}

/* The guest acknowledges an announcement: VIRTIO_NET_CTRL_ANNOUNCE_ACK and its ack byte. */
static void seed_ctrl(struct fuzz_seed *s)
{
	uint8_t cmd[2] = { VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK };

	fuzz_seed_desc(s, QOFF(2), 0, QBUF(2), sizeof(cmd), VRING_DESC_F_NEXT, 1);
	fuzz_seed_desc(s, QOFF(2), 1, QBUF(2) + 0x10, 1, VRING_DESC_F_WRITE, 0);
	fuzz_seed_ram(s, QOFF(2) + FUZZ_BUF_OFF, cmd, sizeof(cmd));
	fuzz_seed_avail(s, QOFF(2) + FUZZ_AVAIL_OFF, (const uint16_t[]){ 0 }, 1);
}

static void seed_save(const char *dir, const char *name, void (*const *parts)(struct fuzz_seed *),
		      int n, bool announce)
{
	struct fuzz_seed s = { .len = 0 };
	char path[4096];

	seed_bring_up(&s);
	if (announce)
		fuzz_seed_put(&s, 7, 1);
	for (int i = 0; i < n; i++)
		parts[i](&s);
	fuzz_seed_put(&s, 5, 1);
	fuzz_seed_put(&s, 0, 1);
	fuzz_seed_put(&s, 7, 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fuzz_write_file(path, s.buf, s.len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_NET_SEEDS");
	static void (*const all[])(struct fuzz_seed *) = { seed_rx, seed_tx, seed_ctrl };

	(void)argc;
	(void)argv;
	if (!dir)
		return 0;
	seed_save(dir, "rx", &all[0], 1, false);
	seed_save(dir, "tx", &all[1], 1, false);
	seed_save(dir, "ctrl-announce", &all[2], 1, true);
	seed_save(dir, "all", all, 3, true);
	exit(0);
}
