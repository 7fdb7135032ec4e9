/* virtio-blk on a raw image file (or block device), over virtio-pci.
 * One request queue, served by an I/O thread of its own with preadv/pwritev: IN, OUT,
 * FLUSH, GET_ID, DISCARD and WRITE_ZEROES. A request outside the disk, of a size that is
 * not a whole number of sectors, or a write to a read-only disk completes with
 * VIRTIO_BLK_S_IOERR; a request without header or status byte sets DEVICE_NEEDS_RESET. */
#ifndef DEVICES_VIRTIO_BLK_H
#define DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hv/device_spec.h"

struct pci_bus;
struct virtio_blk;
struct virtio_pci;

#define VIRTIO_BLK_QUEUE 0

/* Device state for migration beyond the transport's: what the disk looks like, checked
 * on restore (the image itself travels separately, or is shared). */
struct virtio_blk_state {
	uint64_t capacity; /* in 512-byte sectors */
	uint8_t read_only;
};


/* Opens `path` (read-only if `ro`) and puts the device at `slot`. NULL on failure, with
 * one hv_error line naming the path and the fix. */
struct virtio_blk *virtio_blk_create(struct pci_bus *bus, int slot, const char *path, bool ro);
/* The same, opening only the file `expect` describes (NULL: any). */
struct virtio_blk *virtio_blk_create_checked(struct pci_bus *bus, int slot, const char *path, bool ro,
					     const struct virtio_blk_expect *expect);
void virtio_blk_destroy(struct virtio_blk *b);
struct virtio_pci *virtio_blk_transport(struct virtio_blk *b);
uint64_t virtio_blk_capacity(const struct virtio_blk *b);

/* Serves every available request now, on the calling thread. The I/O thread calls it after
 * each notification; unit tests call it directly. */
void virtio_blk_process(struct virtio_blk *b);

void virtio_blk_get_state(struct virtio_blk *b, struct virtio_blk_state *st);
/* -EINVAL with a hv_error line if the disk here differs (capacity, read-only). */
int virtio_blk_set_state(struct virtio_blk *b, const struct virtio_blk_state *st);
/* Its state ops (dev_state.h; `dev` is the struct virtio_blk): the transport's sections and
 * one of its own (capacity, read-only), checked against the disk here. */
extern const struct dev_state_ops virtio_blk_state_ops;

#endif
