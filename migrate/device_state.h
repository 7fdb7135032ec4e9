/* The devices of a migrating machine: what the destination must provide (described in
 * HELLO, checked there before any page moves) and their state (DEVICE_STATE records at
 * switchover). The list only describes; what backs each device on the destination is the
 * destination operator's choice (migrate/dest_policy.h). */
#ifndef MIGRATE_DEVICE_STATE_H
#define MIGRATE_DEVICE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/device_spec.h"

struct dev_announce;
struct machine;
struct wire_conn;

/* HELLO's device list for the source machine, as JSON text. 0 or -1 (too long). */
int device_state_describe(const struct machine *m, char *json, size_t len);
/* The source's devices as its HELLO describes them: untrusted text, checked for form only
 * (paths have no control bytes; MACs are unicast). */
struct source_disk {
	char path[VIRTIO_DISK_PATH_MAX];
	uint64_t sectors;
	uint64_t allocated; /* bytes the image takes on its file system (at most its size) */
	bool ro;
};
struct source_devices {
	struct source_disk disks[VIRTIO_MAX_DISKS];
	int ndisks;
	uint8_t macs[VIRTIO_MAX_NICS][6];
	int nnics;
};
/* 0, or -1 with a printable reason in err (an unknown device type, a malformed entry). */
int device_state_parse_list(const char *json, struct source_devices *src, char *err, size_t errlen);

/* Source, devices paused: one DEVICE_STATE record per device. Returns the number of records
 * sent, a WIRE_E_* error from sending, or DEVICE_STATE_E_SAVE with one line in err (a device
 * could not save its state). */
#define DEVICE_STATE_E_SAVE (-100)
int device_state_send(struct wire_conn *c, struct machine *m, char *err, size_t errlen);

/* Destination: collects DEVICE_STATE records, then applies them all at once. */
struct device_state_rx;
struct device_state_rx *device_state_rx_new(struct machine *m);
void device_state_rx_free(struct device_state_rx *rx);
/* One record (name, version, blob). 0, or -1 with a reason in err. */
int device_state_rx_add(struct device_state_rx *rx, const char *name, unsigned version,
			const void *data, size_t len, char *err, size_t errlen);
/* Every device got its state exactly once; loads it into the devices (paused). Returns the
 * number of devices, or -1 with a reason in err. */
int device_state_rx_apply(struct device_state_rx *rx, char *err, size_t errlen);

/* Destination, after the guest runs: each NIC tells the network where the guest is now,
 * as `a` says (hv/dev_state.h: RARP and gratuitous ARP out of its TAP, so that switches
 * learn the new port, and a request to the guest to announce itself). */
void device_state_announce(struct machine *m, const struct dev_announce *a);

#endif
