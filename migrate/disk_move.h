/* hvctl move-disk: a running guest's disk moves to a new image on this host (Storage
 * vMotion). The new image is created (never over a file), the disk's data is copied into it
 * while the guest runs, then in rounds the blocks the guest wrote meanwhile (changed-block
 * tracking, hv/dev_state.h), until what is left is small; then the device is paused between
 * two requests, the last blocks are copied, the new image is flushed and the device switches
 * to it, and resumes. The guest sees no error, only that pause (stall_ms). Until the switch
 * has succeeded the old image is the disk; after it, the old image is left as it was at the
 * switch, for the operator to remove. On failure or cancel the new image is removed. */
#ifndef MIGRATE_DISK_MOVE_H
#define MIGRATE_DISK_MOVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct dev_registry;
struct json_object;

#define DISK_MOVE_MAX_ROUNDS 30
/* Copy rounds stop when what is left would take about this long to copy. */
#define DISK_MOVE_STALL_TARGET_MS 5.0

struct disk_move_stats {
	const char *phase; /* "copy", "switch", "done", "failed" (literals) */
	uint32_t round;
	uint64_t size;         /* the disk's bytes */
	uint64_t copied_bytes; /* data copied so far (blocks of zeros take none) */
	uint64_t dirty_blocks; /* written again, at the last round's end */
	/* This round: the bytes it reads (round 0: the data extents; then the blocks written
	 * again) and those read so far. */
	uint64_t round_bytes, round_done_bytes;
	double rate_mibs;      /* copy rate of the last round */
	double elapsed_ms;
	double stall_ms;       /* the device paused for the switch */
	char old_path[1024], new_path[1024];
	char error[2560];
};

typedef void (*disk_move_progress_fn)(void *opaque, const struct disk_move_stats *st);

/* Moves the disk registered as `disk` (e.g. "disk0") to `path` (absolute). Blocks until done:
 * 0, or -1 with st->error (the disk is unchanged then). `cancel` may be set from another
 * thread at any point before the switch. */
int disk_move(struct dev_registry *r, const char *disk, const char *path, atomic_bool *cancel,
	      disk_move_progress_fn progress, void *opaque, struct disk_move_stats *st);

/* The stats as a JSON event ({"event": event, ...}); the caller puts it. */
struct json_object *disk_move_stats_to_json(const char *event, const char *disk, const struct disk_move_stats *st);

#endif
