/* The board: the devices of a machine (board.h). */
#include "devices/board.h"

#include <stdio.h>
#include <stdlib.h>

#include "devices/legacy.h"
#include "devices/serial.h"
#include "devices/virtio_devices.h"
#include "hv/log.h"

struct board {
	struct serial *com1;
	struct virtio_devices *pci;
};

static void board_destroy(void *devices)
{
	struct board *b = devices;

	virtio_devices_destroy(b->pci);
	if (b->com1)
		serial_destroy(b->com1);
	free(b);
}

/* Every device with state, under the names migration and snapshots use. */
static int board_register(struct board *b, struct dev_registry *r)
{
	char name[DEV_NAME_MAX];

	if (dev_registry_add(r, "com1", &serial_state_ops, b->com1) < 0)
		return -1;
	for (int i = 0; i < b->pci->ndisks; i++) {
		snprintf(name, sizeof(name), "disk%d", i);
		if (dev_registry_add(r, name, &virtio_blk_state_ops, b->pci->disks[i]) < 0)
			return -1;
	}
	for (int i = 0; i < b->pci->nnics; i++) {
		snprintf(name, sizeof(name), "net%d", i);
		if (dev_registry_add(r, name, &virtio_net_state_ops, b->pci->nics[i]) < 0)
			return -1;
	}
	return 0;
}

static void *board_create(struct machine *m, const struct machine_config *cfg)
{
	struct board *b = calloc(1, sizeof(*b));

	if (!b) {
		hv_error("out of memory for the machine's devices");
		return NULL;
	}
	b->com1 = serial_create(&m->vm, m->console.out_fd, m->console.in_fd);
	if (!b->com1 || legacy_devices_create(&m->vm) < 0)
		goto fail;
	b->pci = virtio_devices_create(&m->vm, cfg->disks, cfg->ndisks, cfg->nics, cfg->nnics);
	if (!b->pci || board_register(b, &m->devs) < 0)
		goto fail;
	return b;
fail:
	board_destroy(b);
	return NULL;
}

const struct machine_board pc_board = {
	.create = board_create,
	.destroy = board_destroy,
};
