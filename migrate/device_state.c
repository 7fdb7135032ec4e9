#include "migrate/device_state.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial.h"
#include "devices/virtio_devices.h"
#include "devices/virtio_pci.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/printable.h"
#include "migrate/wire.h"

#define DEVICE_STATE_VERSION 1

/* Blobs are the device structs themselves, fixed-size and versioned: sender and receiver
 * are the same hv version (the protocol version guards that). */
struct blk_blob {
	struct virtio_pci_state transport;
	struct virtio_blk_state blk;
};

struct net_blob {
	struct virtio_pci_state transport;
	struct virtio_net_state net;
};

int device_state_describe(const struct machine *m, char *json, size_t len)
{
	struct json_object *a = json_object_new_array(), *d;
	const struct machine_config *c = &m->config;
	char mac[18];

	d = json_object_new_object();
	json_object_object_add(d, "type", json_object_new_string("serial"));
	json_object_object_add(d, "name", json_object_new_string("com1"));
	json_object_array_add(a, d);
	for (int i = 0; i < c->ndisks; i++) {
		d = json_object_new_object();
		json_object_object_add(d, "type", json_object_new_string("virtio-blk"));
		json_object_object_add(d, "path", json_object_new_string(c->disks[i].path));
		json_object_object_add(d, "ro", json_object_new_boolean(c->disks[i].ro));
		json_object_object_add(d, "size", json_object_new_int64((int64_t)(
			virtio_blk_capacity(m->devices->disks[i]) * VIRTIO_BLK_SECTOR)));
		json_object_array_add(a, d);
	}
	for (int i = 0; i < c->nnics; i++) {
		d = json_object_new_object();
		json_object_object_add(d, "type", json_object_new_string("virtio-net"));
		json_object_object_add(d, "tap", json_object_new_string(c->nics[i].tap));
		uint8_t m6[6];
		virtio_net_get_mac(m->devices->nics[i], m6);
		virtio_net_format_mac(m6, mac);
		json_object_object_add(d, "mac", json_object_new_string(mac));
		json_object_array_add(a, d);
	}
	const char *s = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = strlen(s) < len ? 0 : -1;
	if (!r)
		strcpy(json, s);
	json_object_put(a);
	return r;
}

static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Paths travel raw (the destination may need the file name) but never with control bytes. */
static bool path_ok(const char *path)
{
	size_t n = strlen(path);

	if (!n || n >= VIRTIO_DISK_PATH_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)path[i] < 0x20 || (unsigned char)path[i] == 0x7f)
			return false;
	return true;
}

int device_state_parse_list(const char *json, struct source_devices *src, char *err, size_t errlen)
{
	struct json_object *a = json_tokener_parse(json);
	char shown[40];
	int r = -1;

	memset(src, 0, sizeof(*src));
	if (!a || !json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "device list is not a JSON array");
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *d = json_object_array_get_idx(a, i), *v;
		const char *type = json_object_is_type(d, json_type_object) ? str_field(d, "type") : NULL;
		if (!type) {
			snprintf(err, errlen, "device %zu has no type", i);
			goto out;
		}
		if (!strcmp(type, "serial"))
			continue;
		if (!strcmp(type, "virtio-blk")) {
			const char *path = str_field(d, "path");
			if (!path || !path_ok(path) || src->ndisks == VIRTIO_MAX_DISKS ||
			    !json_object_object_get_ex(d, "size", &v) || !json_object_is_type(v, json_type_int) ||
			    json_object_get_int64(v) < VIRTIO_BLK_SECTOR) {
				snprintf(err, errlen, "virtio-blk device %zu: bad path or size, or too many disks", i);
				goto out;
			}
			struct source_disk *sd = &src->disks[src->ndisks++];
			snprintf(sd->path, sizeof(sd->path), "%s", path);
			sd->sectors = (uint64_t)json_object_get_int64(v) / VIRTIO_BLK_SECTOR;
			sd->ro = json_object_object_get_ex(d, "ro", &v) && json_object_get_boolean(v);
			continue;
		}
		if (!strcmp(type, "virtio-net")) {
			const char *mac = str_field(d, "mac");
			if (!mac || src->nnics == VIRTIO_MAX_NICS) {
				snprintf(err, errlen, "virtio-net device %zu: no MAC or too many NICs", i);
				goto out;
			}
			if (virtio_net_parse_mac(mac, src->macs[src->nnics]) < 0) {
				snprintf(err, errlen, "virtio-net device %zu: bad MAC '%s'", i,
					 printable(shown, sizeof(shown), mac));
				goto out;
			}
			src->nnics++;
			continue;
		}
		snprintf(err, errlen, "destination cannot provide device type '%s'",
			 printable(shown, sizeof(shown), type));
		goto out;
	}
	r = 0;
out:
	json_object_put(a);
	return r;
}

int device_state_send(struct wire_conn *c, struct machine *m)
{
	struct serial_regs sr;
	char name[16];
	int n = 0, r;

	serial_get_regs(m->vm.serial, &sr);
	r = wire_send_device_state(c, "serial", DEVICE_STATE_VERSION, &sr, sizeof(sr));
	if (r < 0)
		return r;
	n++;
	struct virtio_devices *d = m->devices;
	for (int i = 0; d && i < d->ndisks; i++) {
		struct blk_blob *b = calloc(1, sizeof(*b));
		if (!b)
			return WIRE_E_NOMEM;
		virtio_pci_get_state(virtio_blk_transport(d->disks[i]), &b->transport);
		virtio_blk_get_state(d->disks[i], &b->blk);
		snprintf(name, sizeof(name), "disk%d", i);
		r = wire_send_device_state(c, name, DEVICE_STATE_VERSION, b, sizeof(*b));
		free(b);
		if (r < 0)
			return r;
		n++;
	}
	for (int i = 0; d && i < d->nnics; i++) {
		struct net_blob *b = calloc(1, sizeof(*b));
		if (!b)
			return WIRE_E_NOMEM;
		virtio_pci_get_state(virtio_net_transport(d->nics[i]), &b->transport);
		virtio_net_get_state(d->nics[i], &b->net);
		snprintf(name, sizeof(name), "net%d", i);
		r = wire_send_device_state(c, name, DEVICE_STATE_VERSION, b, sizeof(*b));
		free(b);
		if (r < 0)
			return r;
		n++;
	}
	return n;
}

struct device_state_rx {
	struct machine *m;
	bool serial_seen;
	struct serial_regs serial;
	bool disk_seen[VIRTIO_MAX_DISKS], nic_seen[VIRTIO_MAX_NICS];
	struct blk_blob disks[VIRTIO_MAX_DISKS];
	struct net_blob nics[VIRTIO_MAX_NICS];
};

struct device_state_rx *device_state_rx_new(struct machine *m)
{
	struct device_state_rx *rx = calloc(1, sizeof(*rx));

	if (rx)
		rx->m = m;
	return rx;
}

void device_state_rx_free(struct device_state_rx *rx)
{
	free(rx);
}

/* "disk3" -> 3 when prefix matches and the index is below max; else -1. */
static int indexed(const char *name, const char *prefix, int max)
{
	size_t pl = strlen(prefix);

	if (strncmp(name, prefix, pl) || !name[pl] || name[pl + 1])
		return -1;
	int i = name[pl] - '0';
	return i >= 0 && i < max ? i : -1;
}

int device_state_rx_add(struct device_state_rx *rx, const char *name, unsigned version,
			const void *data, size_t len, char *err, size_t errlen)
{
	struct virtio_devices *d = rx->m->devices;
	int i;

	if (version != DEVICE_STATE_VERSION) {
		snprintf(err, errlen, "state of device '%s' has version %u, this hv reads %d", name,
			 version, DEVICE_STATE_VERSION);
		return -1;
	}
	if (!strcmp(name, "serial")) {
		if (len != sizeof(rx->serial) || rx->serial_seen)
			goto bad;
		memcpy(&rx->serial, data, len);
		rx->serial_seen = true;
		return 0;
	}
	if ((i = indexed(name, "disk", d ? d->ndisks : 0)) >= 0) {
		if (len != sizeof(rx->disks[i]) || rx->disk_seen[i])
			goto bad;
		memcpy(&rx->disks[i], data, len);
		rx->disk_seen[i] = true;
		return 0;
	}
	if ((i = indexed(name, "net", d ? d->nnics : 0)) >= 0) {
		if (len != sizeof(rx->nics[i]) || rx->nic_seen[i])
			goto bad;
		memcpy(&rx->nics[i], data, len);
		rx->nic_seen[i] = true;
		return 0;
	}
	snprintf(err, errlen, "state for device '%s', which this VM does not have", name);
	return -1;
bad:
	snprintf(err, errlen, "state of device '%s': %zu bytes or repeated, not what this hv expects",
		 name, len);
	return -1;
}

int device_state_rx_apply(struct device_state_rx *rx, char *err, size_t errlen)
{
	struct machine *m = rx->m;
	struct virtio_devices *d = m->devices;
	int n = 1;

	if (!rx->serial_seen) {
		snprintf(err, errlen, "no state arrived for the serial port");
		return -1;
	}
	for (int i = 0; d && i < d->ndisks; i++)
		if (!rx->disk_seen[i]) {
			snprintf(err, errlen, "no state arrived for disk%d", i);
			return -1;
		}
	for (int i = 0; d && i < d->nnics; i++)
		if (!rx->nic_seen[i]) {
			snprintf(err, errlen, "no state arrived for net%d", i);
			return -1;
		}
	serial_set_regs(m->vm.serial, &rx->serial);
	hv_clear_error();
	for (int i = 0; d && i < d->ndisks; i++, n++)
		if (virtio_pci_set_state(virtio_blk_transport(d->disks[i]), &rx->disks[i].transport) < 0 ||
		    virtio_blk_set_state(d->disks[i], &rx->disks[i].blk) < 0) {
			snprintf(err, errlen, "disk%d: %s", i, hv_last_error());
			return -1;
		}
	for (int i = 0; d && i < d->nnics; i++, n++)
		if (virtio_pci_set_state(virtio_net_transport(d->nics[i]), &rx->nics[i].transport) < 0 ||
		    virtio_net_set_state(d->nics[i], &rx->nics[i].net) < 0) {
			snprintf(err, errlen, "net%d: %s", i, hv_last_error());
			return -1;
		}
	return n;
}

/* A RARP request "who am I", from and about the NIC's MAC: what switches learn from. */
static void send_rarp(struct virtio_net *nic)
{
	uint8_t f[60] = { 0 }, mac[6];

	virtio_net_get_mac(nic, mac);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x80, f[13] = 0x35;           /* ethertype RARP */
	f[14] = 0, f[15] = 1;                 /* hardware: Ethernet */
	f[16] = 0x08, f[17] = 0x00;           /* protocol: IPv4 */
	f[18] = 6, f[19] = 4;                 /* address lengths */
	f[20] = 0, f[21] = 3;                 /* op: reverse request */
	memcpy(f + 22, mac, 6);
	memcpy(f + 32, mac, 6);
	virtio_net_send_to_host(nic, f, sizeof(f));
}

void device_state_announce(struct machine *m)
{
	struct virtio_devices *d = m->devices;

	for (int i = 0; d && i < d->nnics; i++) {
		send_rarp(d->nics[i]);
		virtio_net_announce(d->nics[i]);
	}
}
