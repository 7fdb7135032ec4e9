#include "migrate/device_state.h"

#include <errno.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "hv/printable.h"
#include "hv/state_enc.h"
#include "migrate/wire.h"

/* HELLO's device list: one object per registered device, {"type", "name", then what the
 * device describes}. */
struct json_desc {
	struct dev_desc d;
	struct json_object *o;
};

static void desc_str(struct dev_desc *d, const char *key, const char *val)
{
	json_object_object_add(((struct json_desc *)d)->o, key, json_object_new_string(val));
}

static void desc_num(struct dev_desc *d, const char *key, uint64_t val)
{
	json_object_object_add(((struct json_desc *)d)->o, key, json_object_new_int64((int64_t)val));
}

static void desc_flag(struct dev_desc *d, const char *key, bool val)
{
	json_object_object_add(((struct json_desc *)d)->o, key, json_object_new_boolean(val));
}

int device_state_describe(const struct machine *m, char *json, size_t len)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < m->devs.n; i++) {
		const struct dev_entry *e = &m->devs.e[i];
		struct json_desc jd = { { desc_str, desc_num, desc_flag }, json_object_new_object() };
		json_object_object_add(jd.o, "type", json_object_new_string(e->ops->type));
		json_object_object_add(jd.o, "name", json_object_new_string(e->name));
		if (e->ops->describe)
			e->ops->describe(e->dev, &jd.d);
		json_object_array_add(a, jd.o);
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
			/* What the image takes on its disk (a copy needs that much room); absent: all. */
			sd->allocated = sd->sectors * VIRTIO_BLK_SECTOR;
			if (json_object_object_get_ex(d, "allocated", &v) && json_object_is_type(v, json_type_int) &&
			    json_object_get_int64(v) >= 0 && (uint64_t)json_object_get_int64(v) < sd->allocated)
				sd->allocated = (uint64_t)json_object_get_int64(v);
			continue;
		}
		if (!strcmp(type, "virtio-net")) {
			const char *mac = str_field(d, "mac");
			if (!mac || src->nnics == VIRTIO_MAX_NICS) {
				snprintf(err, errlen, "virtio-net device %zu: no MAC or too many NICs", i);
				goto out;
			}
			if (parse_mac(mac, src->macs[src->nnics]) < 0) {
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

int device_state_send(struct wire_conn *c, struct machine *m, char *err, size_t errlen)
{
	for (int i = 0; i < m->devs.n; i++) {
		const struct dev_entry *e = &m->devs.e[i];
		struct state_out o;
		state_out_init(&o);
		hv_clear_error();
		int r = e->ops->save(e->dev, &o);
		if (r < 0) {
			state_out_free(&o);
			snprintf(err, errlen, "saving %s's state: %s", e->name,
				 r == -ENOMEM || !hv_last_error()[0] ? "out of memory" : hv_last_error());
			return DEVICE_STATE_E_SAVE;
		}
		r = wire_send_device_state(c, e->name, (uint16_t)e->ops->version, o.buf, o.len);
		state_out_free(&o);
		if (r < 0)
			return r;
	}
	return m->devs.n;
}

/* What arrived for each registered device, by registry index, until apply. */
struct device_state_rx {
	struct machine *m;
	uint8_t *blob[DEV_REGISTRY_MAX];
	size_t len[DEV_REGISTRY_MAX];
	bool seen[DEV_REGISTRY_MAX];
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
	if (!rx)
		return;
	for (int i = 0; i < DEV_REGISTRY_MAX; i++)
		free(rx->blob[i]);
	free(rx);
}

int device_state_rx_add(struct device_state_rx *rx, const char *name, unsigned version,
			const void *data, size_t len, char *err, size_t errlen)
{
	struct dev_entry *e = dev_registry_find(&rx->m->devs, name);

	/* Names come checked by wire_parse_device_state (letters, digits, "_.:-"). */
	if (!e) {
		snprintf(err, errlen, "state for device '%s', which this VM does not have", name);
		return -1;
	}
	if (version != e->ops->version) {
		snprintf(err, errlen, "state of device '%s' (%s) has version %u, this hv reads %u",
			 name, e->ops->type, version, e->ops->version);
		return -1;
	}
	int i = (int)(e - rx->m->devs.e);
	if (rx->seen[i]) {
		snprintf(err, errlen, "state of device '%s' arrived twice", name);
		return -1;
	}
	rx->blob[i] = malloc(len ? len : 1);
	if (!rx->blob[i]) {
		snprintf(err, errlen, "out of memory for the state of device '%s'", name);
		return -1;
	}
	if (len)
		memcpy(rx->blob[i], data, len);
	rx->len[i] = len;
	rx->seen[i] = true;
	return 0;
}

int device_state_rx_apply(struct device_state_rx *rx, char *err, size_t errlen)
{
	struct dev_registry *r = &rx->m->devs;
	char why[WIRE_ERROR_MAX];

	for (int i = 0; i < r->n; i++)
		if (!rx->seen[i]) {
			snprintf(err, errlen, "no state arrived for %s (%s)", r->e[i].name, r->e[i].ops->type);
			return -1;
		}
	for (int i = 0; i < r->n; i++) {
		struct dev_entry *e = &r->e[i];
		why[0] = '\0';
		if (e->ops->load(e->dev, rx->blob[i], rx->len[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", e->name, why[0] ? why : "state refused");
			return -1;
		}
	}
	return r->n;
}

void device_state_announce(struct machine *m, const struct dev_announce *a)
{
	for (int i = 0; i < m->devs.n; i++)
		if (m->devs.e[i].ops->announce)
			m->devs.e[i].ops->announce(m->devs.e[i].dev, a);
}
