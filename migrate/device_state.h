/* The devices of a migrating machine: what the destination must provide (described in
 * HELLO, checked there before any page moves) and their state (DEVICE_STATE records at
 * switchover). Disks are shared storage: the destination opens the same path. */
#ifndef MIGRATE_DEVICE_STATE_H
#define MIGRATE_DEVICE_STATE_H

#include <stddef.h>

struct machine;
struct machine_config;
struct wire_conn;

/* HELLO's device list for the source machine, as JSON text. 0 or -1 (too long). */
int device_state_describe(const struct machine *m, char *json, size_t len);
/* Fills cfg's disks and NICs from a HELLO device list. 0, or -1 with a reason in err
 * (an unknown device type, a malformed entry). */
int device_state_config(const char *json, struct machine_config *cfg, char *err, size_t errlen);

/* Source, devices paused: one DEVICE_STATE record per device. Returns the number of records
 * sent, or a WIRE_E_* error. */
int device_state_send(struct wire_conn *c, struct machine *m);

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

/* Destination, after the guest runs: RARP from each NIC's MAC out of its TAP (so switches
 * learn where the guest is now) and a request to the guest to announce itself. */
void device_state_announce(struct machine *m);

#endif
