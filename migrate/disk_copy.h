/* Disks that travel with the guest (hvctl migrate --storage copy). The source sends every
 * allocated, non-zero block of each disk in round 0, then in each round the blocks the guest
 * wrote meanwhile (the device tracks them: hv/dev_state.h), the last ones with the guest
 * paused, so that at COMMIT the destination's image equals the source's at the switchover.
 * The destination writes them into the images its policy created (migrate/dest_policy.h),
 * which stay sparse: zero blocks are never written, zeroed ones are deallocated.
 * docs/migration.md, "Shared-nothing: the disk travels". */
#ifndef MIGRATE_DISK_COPY_H
#define MIGRATE_DISK_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "hv/dev_state.h"
#include "migrate/wire.h"

/* Returned besides the sink's own errors. */
#define DISK_COPY_E_READ (-200) /* the source image could not be read: err says why */

/* Where the blocks go: a DISK_DATA record on the stream (migration), or straight into a
 * file (hvctl move-disk). data NULL: the range reads as zeros. 0, or < 0 to stop (returned
 * as is by the sender). */
typedef int (*disk_copy_sink_fn)(void *opaque, int disk, uint64_t offset, const uint8_t *data,
				 uint32_t len);

struct disk_copy_src {
	disk_copy_sink_fn sink;
	void *sink_opaque;
	int n;
	struct {
		struct dev_entry *e;
		int fd;          /* the image, read-only */
		uint64_t size;   /* bytes */
		uint64_t blocks; /* of DEV_TRACK_BLOCK bytes, the last one maybe shorter */
		uint64_t *dirty; /* blocks to send */
	} d[WIRE_DISKS_MAX];
	uint8_t *buf;
	uint64_t blocks_sent, zero_blocks, data_bytes;
	uint64_t scanned_bytes; /* every block read so far, sent or skipped: the progress */
	char err[256];
};

/* Starts tracking the disk named `only` of the registry, or every disk (NULL). 0, or -1
 * with one hv_error line. */
int disk_copy_src_start(struct disk_copy_src *c, struct dev_registry *r, const char *only);
/* What round 0 reads: each disk's data extents (SEEK_DATA), rounded out to whole blocks. */
uint64_t disk_copy_extent_bytes(struct disk_copy_src *c);
/* Round 0: every allocated block that is not all zeros (the new image reads as zeros
 * already). 0, the sink's error, or DISK_COPY_E_READ. */
int disk_copy_send_all(struct disk_copy_src *c);
/* Adds the blocks written since the last call to the set to send; returns the set's size. */
uint64_t disk_copy_collect(struct disk_copy_src *c);
/* Sends the set (an all-zero block as zeros) and empties it. As disk_copy_send_all. */
int disk_copy_send_dirty(struct disk_copy_src *c);
/* Stops tracking, closes and frees. Safe on a zeroed or half-started struct. */
void disk_copy_src_stop(struct disk_copy_src *c);

/* The destination's side: the images to write, as dest_policy created them. */
struct disk_copy_dst {
	int n;
	int fd[WIRE_DISKS_MAX];
	uint64_t size[WIRE_DISKS_MAX];
	uint64_t blocks, data_bytes; /* what arrived */
};
/* One DISK_DATA payload, untrusted: the disk index, the range inside that disk. 0, or -1
 * with one line in err (corrupt, or the write failed: a full file system). */
int disk_copy_apply(struct disk_copy_dst *c, const uint8_t *payload, size_t len, char *err, size_t errlen);
/* The same for one checked range (data NULL: zeros). */
int disk_copy_write(struct disk_copy_dst *c, int disk, uint64_t offset, const uint8_t *data, uint32_t len,
		    char *err, size_t errlen);
/* Every image on stable storage, before the destination acknowledges the state. */
int disk_copy_sync(struct disk_copy_dst *c, char *err, size_t errlen);

#endif
