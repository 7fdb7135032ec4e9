/* What a machine is asked to have in disks and NICs (hvctl run --disk/--net, or a
 * destination's policy for an arriving VM), and the limits of both: devices/ builds the
 * devices from these, migrate/ describes and checks them, neither needs the other. */
#ifndef HV_DEVICE_SPEC_H
#define HV_DEVICE_SPEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VIRTIO_MAX_DISKS 4
#define VIRTIO_MAX_NICS 4
#define VIRTIO_DISK_PATH_MAX 4096
#define VIRTIO_BLK_SECTOR 512

/* What the image opened must be, when someone checked it by path before (a destination's
 * policy): the same file (dev and inode), and, with nofollow, not reached through a final
 * symbolic link. A file swapped in between the check and the open is refused. */
struct virtio_blk_expect {
	bool set;
	bool nofollow;
	dev_t dev;
	ino_t ino;
};

struct disk_spec {
	char path[VIRTIO_DISK_PATH_MAX];
	bool ro;
	struct virtio_blk_expect expect; /* set by a destination policy that checked the file */
};

struct nic_spec {
	char tap[16];
	uint8_t mac[6];
	bool has_mac; /* else derived from the VM UUID */
};

#endif
