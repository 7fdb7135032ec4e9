/* What a migration destination may open: its operator's choice, never the stream's. A
 * HELLO only describes the source's disks (path, size, read-only) and NICs (MAC); this
 * module maps them onto what `hvctl receive` was given (--disk, --net, --disk-dir,
 * --shared-storage, --max-mem) or refuses. Refusals come in two texts: the detail, for the
 * destination's own log, and a generic one for the peer (no paths, no file-existence
 * oracle). docs/migration.md, "Who decides what the destination opens". */
#ifndef MIGRATE_DEST_POLICY_H
#define MIGRATE_DEST_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/device_spec.h"

struct machine_config;
struct source_devices;

struct dest_policy {
	struct disk_spec disks[VIRTIO_MAX_DISKS]; /* --disk: the source's disk i is disks[i] */
	int ndisks;
	struct nic_spec nics[VIRTIO_MAX_NICS];    /* --net: NIC i is nics[i] (the MAC stays) */
	int nnics;
	const char *disk_dir;  /* --disk-dir: images named as the source's, regular files only */
	bool shared_storage;   /* --shared-storage: the source's own path, regular files only */
	bool force;            /* --force: a copied disk may replace an existing image */
	uint64_t max_mem;      /* --max-mem; 0: MemAvailable when the HELLO arrives */
};

/* --storage copy: the images the destination creates for the source's disks, written by
 * the stream (migrate/disk_copy.h), removed again unless the migration commits. */
struct dest_copy {
	/* In: per disk, the path the source asks for ("" or absent: the destination's choice). */
	const char *want[VIRTIO_MAX_DISKS];
	/* Out: */
	int n;
	int fd[VIRTIO_MAX_DISKS]; /* open for writing */
	uint64_t size[VIRTIO_MAX_DISKS];
	char path[VIRTIO_MAX_DISKS][VIRTIO_DISK_PATH_MAX];
};

struct dest_refusal {
	char detail[1024]; /* for the destination's log */
	char peer[256];    /* for the source */
};

/* Fills cfg's disks and NICs for the source's devices. 0, or -1 with r filled. With `copy`
 * (the source sends its disks), each disk is a new image the policy allows: --disk PATH, or
 * the file name the source asks for (or its own) in --disk-dir; it must not exist (unless
 * --force), and its file system must have room for what the source's image takes. They are
 * created (0600, sparse, the source's size) and left open in copy; on refusal none is left. */
int dest_policy_devices(const struct dest_policy *p, const struct source_devices *src,
			struct machine_config *cfg, struct dest_copy *copy, struct dest_refusal *r);
/* The migration failed: every image in copy is closed and removed. */
void dest_copy_discard(struct dest_copy *copy);
/* It committed: the images stay; their descriptors are closed. */
void dest_copy_keep(struct dest_copy *copy);
/* A guest of mem_size bytes fits (--max-mem, or what the host has available). 0 or -1. */
int dest_policy_memory(const struct dest_policy *p, uint64_t mem_size, struct dest_refusal *r);
/* MemAvailable from /proc/meminfo in bytes; 0 if unknown. */
uint64_t dest_policy_mem_available(void);

#endif
