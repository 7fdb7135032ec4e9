/* What migration and snapshots need of a device: its state ops, and the machine's registry
 * of devices. A device with state implements the ops next to its state (in its own file under devices/) and
 * the place that creates it registers it; the migration code only walks the registry, so a
 * new device touches nothing in migrate/.
 *
 * A device's saved state is a state_enc.h blob (its own sections). `load` validates all of
 * it against the device here before it changes anything, and refuses with one line. */
#ifndef HV_DEV_STATE_H
#define HV_DEV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_out;

/* How devices tell the network where the guest now is, after a migration or a restore
 * (hvctl receive --announce-rounds, --announce-step, --no-guest-announce): `rounds`
 * host-side announcements (0: none), the first at once, then after 50 ms, the gap growing
 * by `step_ms` each round up to DEV_ANNOUNCE_MAX_GAP_MS; and, if `guest`, one request to
 * the guest's driver to announce itself. */
struct dev_announce {
	unsigned rounds;
	unsigned step_ms;
	bool guest;
};
#define DEV_ANNOUNCE_DEFAULT ((struct dev_announce){ .rounds = 5, .step_ms = 100, .guest = true })
#define DEV_ANNOUNCE_FIRST_GAP_MS 50
#define DEV_ANNOUNCE_MAX_GAP_MS 1000
#define DEV_ANNOUNCE_MAX_ROUNDS 100
#define DEV_ANNOUNCE_MAX_STEP_MS 10000

/* Where `describe` puts what a destination must provide for the device (HELLO's device
 * list: one JSON object per device; the migration code supplies the writer). */
struct dev_desc {
	void (*str)(struct dev_desc *d, const char *key, const char *val);
	void (*num)(struct dev_desc *d, const char *key, uint64_t val);
	void (*flag)(struct dev_desc *d, const char *key, bool val);
};

struct dev_state_ops {
	const char *type; /* HELLO's "type": "serial", "virtio-blk", "virtio-net" */
	unsigned version; /* of its sections; a different one is refused by name */
	/* Device paused. 0, or < 0 with one hv_error line (-ENOMEM: out of memory). */
	int (*save)(void *dev, struct state_out *out);
	/* Device paused. 0, or -1 with one line in err; the device is unchanged then. */
	int (*load)(void *dev, const void *blob, size_t len, char *err, size_t errlen);
	void (*describe)(void *dev, struct dev_desc *d); /* optional: nothing to describe */
	/* Optional: make everything the device has written reach its backing store, so that
	 * another host opening the same file sees it (a disk: fdatasync). 0, or -1 with one
	 * line in err; callable running or paused. */
	int (*flush)(void *dev, char *err, size_t errlen);
	/* Optional, disks: changed-block tracking, so that a copy of the storage can travel
	 * with the guest. Blocks of DEV_TRACK_BLOCK bytes. track_start clears and starts it,
	 * and gives the image's size in bytes and a new read-only descriptor of it (the caller
	 * closes it); 0, or -1 with one hv_error line. track_take ORs into bitmap (one bit per
	 * block, (size + DEV_TRACK_BLOCK - 1) / DEV_TRACK_BLOCK bits) every block written since
	 * the last take or the start, and forgets them: a block is marked once its write has
	 * completed, so what is read after a take is never older than what was taken. */
	int (*track_start)(void *dev, uint64_t *size, int *fd);
	void (*track_take)(void *dev, uint64_t *bitmap);
	void (*track_stop)(void *dev);
	/* Optional, disks (hvctl move-disk): with the device paused, use the image `fd` at
	 * `path` from the next request on (the same size; the device takes the descriptor over
	 * and closes its old one; what the guest sees, the disk's ID included, stays). 0, or -1
	 * with one line in err (the device is unchanged then). */
	int (*switch_image)(void *dev, int fd, const char *path, char *err, size_t errlen);
	/* Optional: stop and restart the device's I/O threads' use of guest memory. */
	void (*pause)(void *dev);
	void (*resume)(void *dev);
	/* Optional: on a destination, once the guest runs, tell the network where the device
	 * is now (a NIC: RARP from its MAC and a gratuitous ARP for the guest's address, in
	 * rounds, and a request to the guest to announce itself), as `a` says. */
	void (*announce)(void *dev, const struct dev_announce *a);
};

#define DEV_TRACK_BLOCK (64u * 1024)

#define DEV_REGISTRY_MAX 16
#define DEV_NAME_MAX 16

struct dev_entry {
	char name[DEV_NAME_MAX]; /* unique in the machine: "com1", "disk0", "net1" */
	const struct dev_state_ops *ops;
	void *dev;
};

struct dev_registry {
	struct dev_entry e[DEV_REGISTRY_MAX];
	int n;
};

/* 0, or -1 with one hv_error line (full, or the name is taken or too long). */
int dev_registry_add(struct dev_registry *r, const char *name, const struct dev_state_ops *ops,
		     void *dev);
/* The entry named `name`, or NULL. */
struct dev_entry *dev_registry_find(struct dev_registry *r, const char *name);
/* Every device with pause ops, in registry order (resume: the same order). */
void dev_registry_pause(struct dev_registry *r);
void dev_registry_resume(struct dev_registry *r);
/* Every device with a flush op; stops at the first failure: -1 with "NAME: why" in err. */
int dev_registry_flush(struct dev_registry *r, char *err, size_t errlen);

#endif
