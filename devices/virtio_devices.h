/* The PCI bus of a machine and its virtio devices, as `hvctl run --disk/--net` asks.
 * Slots are fixed so that a guest (and a migration destination) always finds the same
 * device at the same place: disk i at 00:(1+i).0, NIC i at 00:(8+i).0 (see
 * docs/devices.md). */
#ifndef DEVICES_VIRTIO_DEVICES_H
#define DEVICES_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "hv/device_spec.h"

struct vm;
struct pci_bus;

#define VIRTIO_DISK_SLOT(i) (1 + (i))
#define VIRTIO_NIC_SLOT(i) (8 + (i))

struct virtio_devices {
	struct pci_bus *pci;
	struct virtio_blk *disks[VIRTIO_MAX_DISKS];
	int ndisks;
	struct virtio_net *nics[VIRTIO_MAX_NICS];
	int nnics;
};

/* --disk PATH[,ro] ("PATH,rw" is accepted too; any other comma stays in the path).
 * 0, or -1 with one hv_error line. */
int virtio_devices_parse_disk(const char *spec, struct disk_spec *d);
/* --net tap=IF[,mac=MAC]. 0, or -1 with one hv_error line. */
int virtio_devices_parse_net(const char *spec, struct nic_spec *n);

/* Creates the PCI bus on `vm` and the devices in it. NULL on failure (one hv_error line;
 * everything created so far is gone again). */
struct virtio_devices *virtio_devices_create(struct vm *vm, const struct disk_spec *disks,
					     int ndisks, const struct nic_spec *nics, int nnics);
/* Quiesce every device for save/restore or the final migration round: afterwards no
 * device thread touches guest memory until resume (virtio_pci_pause on each). */
void virtio_devices_pause(struct virtio_devices *d);
void virtio_devices_resume(struct virtio_devices *d);
/* Stops the devices' I/O threads and removes everything (the vCPUs must be stopped). */
void virtio_devices_destroy(struct virtio_devices *d);

#endif
