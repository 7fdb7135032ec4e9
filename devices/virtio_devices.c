/* The PCI bus and the virtio devices of a machine. See virtio_devices.h. */
#include "devices/virtio_devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/pci.h"
#include "devices/virtio_pci.h"
#include "hv/log.h"
#include "hv/parse.h"
#include "hv/vm.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

int virtio_devices_parse_disk(const char *spec, struct disk_spec *d)
{
	size_t len = strlen(spec);

	memset(d, 0, sizeof(*d));
	if (ends_with(spec, ",ro")) {
		d->ro = true;
		len -= 3;
	} else if (ends_with(spec, ",rw")) {
		len -= 3;
	}
	if (len == 0) {
		hv_error("--disk '%s' has no path; use --disk PATH[,ro]", spec);
		return -1;
	}
	if (len >= sizeof(d->path)) {
		hv_error("--disk path is longer than %zu characters", sizeof(d->path) - 1);
		return -1;
	}
	memcpy(d->path, spec, len);
	d->path[len] = 0;
	return 0;
}

int virtio_devices_parse_net(const char *spec, struct nic_spec *n)
{
	char buf[128];
	bool have_tap = false;

	memset(n, 0, sizeof(*n));
	if (strlen(spec) >= sizeof(buf)) {
		hv_error("--net '%s' is too long; use --net tap=IF[,mac=MAC]", spec);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL;
	for (char *opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (!strncmp(opt, "tap=", 4)) {
			const char *name = opt + 4;
			if (!*name) {
				hv_error("--net '%s' has an empty TAP name; use --net tap=IF[,mac=MAC]", spec);
				return -1;
			}
			if (strlen(name) >= sizeof(n->tap)) {
				hv_error("TAP name '%s' is too long: at most %zu characters", name,
					 sizeof(n->tap) - 1);
				return -1;
			}
			snprintf(n->tap, sizeof(n->tap), "%s", name);
			have_tap = true;
		} else if (!strncmp(opt, "mac=", 4)) {
			if (parse_mac(opt + 4, n->mac) < 0) {
				hv_error("--net mac '%s' is not a valid unicast MAC address; use six hex bytes like 52:54:00:12:34:56",
					 opt + 4);
				return -1;
			}
			n->has_mac = true;
		} else {
			hv_error("--net: unknown option '%s'; use --net tap=IF[,mac=MAC]", opt);
			return -1;
		}
	}
	if (!have_tap) {
		hv_error("--net '%s' names no TAP; use --net tap=IF[,mac=MAC]", spec);
		return -1;
	}
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int check_specs(const struct disk_spec *disks, int ndisks, const struct nic_spec *nics, int nnics)
{
	if (ndisks > VIRTIO_MAX_DISKS) {
		hv_error("at most %d --disk options are supported", VIRTIO_MAX_DISKS);
		return -1;
	}
	if (nnics > VIRTIO_MAX_NICS) {
		hv_error("at most %d --net options are supported", VIRTIO_MAX_NICS);
		return -1;
	}
	for (int i = 0; i < ndisks; i++)
		for (int j = 0; j < i; j++)
			if (same_file(disks[i].path, disks[j].path)) {
				hv_error("disk image '%s' is given twice; attach each image once", disks[i].path);
				return -1;
			}
	for (int i = 0; i < nnics; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(nics[i].tap, nics[j].tap)) {
				hv_error("TAP '%s' is given twice; give each --net its own TAP", nics[i].tap);
				return -1;
			}
	return 0;
}

struct virtio_devices *virtio_devices_create(struct vm *vm, const struct disk_spec *disks,
					     int ndisks, const struct nic_spec *nics, int nnics)
{
	if (check_specs(disks, ndisks, nics, nnics) < 0)
		return NULL;
	struct virtio_devices *d = calloc(1, sizeof(*d));
	if (!d) {
		hv_error("out of memory creating devices");
		return NULL;
	}
	d->pci = pci_bus_create(vm);
	if (!d->pci)
		goto fail;
	for (int i = 0; i < ndisks; i++) {
		d->disks[i] = virtio_blk_create_checked(d->pci, VIRTIO_DISK_SLOT(i), disks[i].path, disks[i].ro,
						       &disks[i].expect);
		if (!d->disks[i])
			goto fail;
		d->ndisks++;
		hv_debug("disk %d: %s%s, %llu sectors, at 00:%02x.0", i, disks[i].path,
			 disks[i].ro ? " (read-only)" : "",
			 (unsigned long long)virtio_blk_capacity(d->disks[i]), VIRTIO_DISK_SLOT(i));
	}
	for (int i = 0; i < nnics; i++) {
		uint8_t mac[6];
		char text[18];
		if (nics[i].has_mac)
			memcpy(mac, nics[i].mac, 6);
		else
			virtio_net_default_mac(vm->uuid, i, mac);
		d->nics[i] = virtio_net_create(d->pci, VIRTIO_NIC_SLOT(i), nics[i].tap, mac);
		if (!d->nics[i])
			goto fail;
		d->nnics++;
		format_mac(mac, text);
		hv_debug("nic %d: TAP %s, MAC %s, at 00:%02x.0", i, nics[i].tap, text, VIRTIO_NIC_SLOT(i));
	}
	return d;
fail:
	virtio_devices_destroy(d);
	return NULL;
}

void virtio_devices_pause(struct virtio_devices *d)
{
	for (int i = 0; i < d->ndisks; i++)
		virtio_pci_pause(virtio_blk_transport(d->disks[i]));
	for (int i = 0; i < d->nnics; i++)
		virtio_pci_pause(virtio_net_transport(d->nics[i]));
}

void virtio_devices_resume(struct virtio_devices *d)
{
	for (int i = 0; i < d->ndisks; i++)
		virtio_pci_resume(virtio_blk_transport(d->disks[i]));
	for (int i = 0; i < d->nnics; i++)
		virtio_pci_resume(virtio_net_transport(d->nics[i]));
}

void virtio_devices_destroy(struct virtio_devices *d)
{
	if (!d)
		return;
	for (int i = d->nnics - 1; i >= 0; i--)
		virtio_net_destroy(d->nics[i]);
	for (int i = d->ndisks - 1; i >= 0; i--)
		virtio_blk_destroy(d->disks[i]);
	pci_bus_destroy(d->pci);
	free(d);
}
