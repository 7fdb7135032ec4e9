/* hvctl move-disk (disk_move.h): the mirror, its rounds and the switch. */
#include "migrate/disk_move.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/dev_state.h"
#include "hv/log.h"
#include "migrate/disk_copy.h"

#define MOVE_CANCELLED (-300)
#define MOVE_REPORT_NS (150 * 1000000ULL)

struct mover {
	struct disk_copy_src src;
	struct disk_copy_dst dst;
	struct disk_move_stats *st;
	atomic_bool *cancel;
	disk_move_progress_fn progress;
	void *opaque;
	uint64_t t0, last_report;
	uint64_t round_scanned0; /* src.scanned_bytes when this round began */
	char err[256];
};

/* What the disk describes of itself: its path and whether it is read-only. */
struct disk_desc {
	struct dev_desc d;
	char path[1024];
	bool ro;
};

static void desc_str(struct dev_desc *d, const char *key, const char *val)
{
	if (!strcmp(key, "path"))
		snprintf(((struct disk_desc *)d)->path, sizeof(((struct disk_desc *)d)->path), "%s", val);
}

static void desc_num(struct dev_desc *d, const char *key, uint64_t val)
{
	(void)d, (void)key, (void)val;
}

static void desc_flag(struct dev_desc *d, const char *key, bool val)
{
	if (!strcmp(key, "ro"))
		((struct disk_desc *)d)->ro = val;
}

static void report(struct mover *mv)
{
	mv->st->elapsed_ms = (double)(clock_now_ns() - mv->t0) / 1e6;
	mv->st->copied_bytes = mv->dst.data_bytes;
	mv->st->round_done_bytes = mv->src.scanned_bytes - mv->round_scanned0;
	mv->last_report = clock_now_ns();
	if (mv->progress)
		mv->progress(mv->opaque, mv->st);
}

/* Each block straight into the new image; progress now and then; a cancel stops it. */
static int move_sink(void *opaque, int disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct mover *mv = opaque;

	(void)disk;
	if (disk_copy_write(&mv->dst, 0, offset, data, len, mv->err, sizeof(mv->err)) < 0)
		return -1;
	if (clock_now_ns() - mv->last_report >= MOVE_REPORT_NS)
		report(mv);
	return atomic_load(mv->cancel) ? MOVE_CANCELLED : 0;
}

static int copy_result(struct mover *mv, int r)
{
	if (r == 0)
		return 0;
	if (r == MOVE_CANCELLED)
		snprintf(mv->st->error, sizeof(mv->st->error), "cancelled");
	else if (r == DISK_COPY_E_READ)
		snprintf(mv->st->error, sizeof(mv->st->error), "%s", mv->src.err);
	else
		snprintf(mv->st->error, sizeof(mv->st->error), "%s (%s)", mv->err, mv->st->new_path);
	return -1;
}

/* The new image: created here, never over a file, with room for the disk's data. */
static int create_image(struct mover *mv, const char *path, uint64_t size, uint64_t allocated)
{
	struct disk_move_stats *st = mv->st;
	struct statvfs vfs;

	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(st->error, sizeof(st->error), errno == EEXIST ? "'%s' exists; move-disk never replaces a file" :
			 "cannot create '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < allocated) {
		snprintf(st->error, sizeof(st->error), "the file system of '%s' has %llu MiB free, the disk's data takes %llu MiB",
			 path, (unsigned long long)((uint64_t)vfs.f_bavail * vfs.f_frsize >> 20),
			 (unsigned long long)((allocated + (1u << 20) - 1) >> 20));
		close(fd);
		unlink(path);
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		snprintf(st->error, sizeof(st->error), "cannot size '%s': %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	mv->dst = (struct disk_copy_dst){ .n = 1, .fd = { fd }, .size = { size } };
	return 0;
}

/* Rounds while the guest runs, until what is left is quick to copy. */
static int mirror(struct mover *mv)
{
	struct disk_move_stats *st = mv->st;
	uint64_t t = clock_now_ns(), bytes0 = 0;

	st->round_bytes = disk_copy_extent_bytes(&mv->src);
	if (copy_result(mv, disk_copy_send_all(&mv->src)) < 0)
		return -1;
	for (;;) {
		uint64_t now = clock_now_ns(), bytes = mv->src.blocks_sent * DEV_TRACK_BLOCK;
		double secs = now > t ? (double)(now - t) / 1e9 : 1e-9;
		if (bytes - bytes0 >= (1u << 20) || st->rate_mibs == 0)
			st->rate_mibs = (double)(bytes - bytes0) / secs / (1 << 20);
		st->dirty_blocks = disk_copy_collect(&mv->src);
		report(mv);
		double left_ms = st->rate_mibs > 0 ? (double)st->dirty_blocks * DEV_TRACK_BLOCK / (1 << 20) / st->rate_mibs * 1000 : 0;
		if (!st->dirty_blocks || left_ms <= DISK_MOVE_STALL_TARGET_MS || st->round + 1 >= DISK_MOVE_MAX_ROUNDS)
			return 0;
		st->round++;
		st->round_bytes = st->dirty_blocks * DEV_TRACK_BLOCK;
		mv->round_scanned0 = mv->src.scanned_bytes;
		t = now;
		bytes0 = bytes;
		if (copy_result(mv, disk_copy_send_dirty(&mv->src)) < 0)
			return -1;
	}
}

/* Device paused between two requests: the last blocks, a flush, the switch. */
static int switch_over(struct mover *mv, struct dev_entry *e, bool ro)
{
	struct disk_move_stats *st = mv->st;
	struct stat a, b;
	char err[256];
	int r = -1;

	st->phase = "switch";
	uint64_t t = clock_now_ns();
	e->ops->pause(e->dev);
	disk_copy_collect(&mv->src);
	if (copy_result(mv, disk_copy_send_dirty(&mv->src)) < 0)
		goto out;
	if (fdatasync(mv->dst.fd[0]) < 0) {
		snprintf(st->error, sizeof(st->error), "flushing '%s': %s", st->new_path, strerror(errno));
		goto out;
	}
	/* The device's own descriptor, with its access, of this very file. */
	int fd = open(st->new_path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &a) < 0 || fstat(mv->dst.fd[0], &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		snprintf(st->error, sizeof(st->error), "'%s' was replaced while the disk moved; not switched", st->new_path);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (e->ops->switch_image(e->dev, fd, st->new_path, err, sizeof(err)) < 0) {
		snprintf(st->error, sizeof(st->error), "%s", err);
		close(fd);
		goto out;
	}
	r = 0;
out:
	e->ops->resume(e->dev);
	st->stall_ms = (double)(clock_now_ns() - t) / 1e6;
	return r;
}

int disk_move(struct dev_registry *r, const char *disk, const char *path, atomic_bool *cancel,
	      disk_move_progress_fn progress, void *opaque, struct disk_move_stats *st)
{
	struct mover mv = { .st = st, .cancel = cancel, .progress = progress, .opaque = opaque,
			    .dst = { .n = 0 } };
	struct disk_desc desc = { .d = { desc_str, desc_num, desc_flag } };
	struct dev_entry *e = dev_registry_find(r, disk);
	bool switched = false;
	struct stat sst;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	st->phase = "copy";
	mv.t0 = clock_now_ns();
	snprintf(st->new_path, sizeof(st->new_path), "%s", path);
	if (!e || !e->ops->track_start || !e->ops->switch_image || !e->ops->pause || !e->ops->describe) {
		snprintf(st->error, sizeof(st->error), "this VM has no disk '%s' (its disks are disk0, disk1, ...)", disk);
		goto out;
	}
	if (path[0] != '/') {
		snprintf(st->error, sizeof(st->error), "the new path '%s' is not absolute", path);
		goto out;
	}
	e->ops->describe(e->dev, &desc.d);
	snprintf(st->old_path, sizeof(st->old_path), "%s", desc.path);
	mv.src.sink = move_sink;
	mv.src.sink_opaque = &mv;
	hv_clear_error();
	if (disk_copy_src_start(&mv.src, r, disk) < 0) {
		snprintf(st->error, sizeof(st->error), "%s", hv_last_error());
		goto out;
	}
	st->size = mv.src.d[0].size;
	if (fstat(mv.src.d[0].fd, &sst) < 0 ||
	    create_image(&mv, path, st->size, S_ISREG(sst.st_mode) ? (uint64_t)sst.st_blocks * 512 : st->size) < 0)
		goto out;
	if (mirror(&mv) < 0 || switch_over(&mv, e, desc.ro) < 0)
		goto out;
	switched = true;
	rc = 0;
out:
	disk_copy_src_stop(&mv.src);
	if (mv.dst.n) {
		close(mv.dst.fd[0]);
		if (!switched)
			unlink(path); /* nothing half copied stays */
	}
	st->phase = rc == 0 ? "done" : "failed";
	st->elapsed_ms = (double)(clock_now_ns() - mv.t0) / 1e6;
	st->copied_bytes = mv.dst.data_bytes;
	return rc;
}

struct json_object *disk_move_stats_to_json(const char *event, const char *disk, const struct disk_move_stats *st)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "disk", json_object_new_string(disk));
	json_object_object_add(o, "phase", json_object_new_string(st->phase ? st->phase : "copy"));
	json_object_object_add(o, "round", json_object_new_int64(st->round));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st->size));
	json_object_object_add(o, "copied_bytes", json_object_new_int64((int64_t)st->copied_bytes));
	json_object_object_add(o, "dirty_blocks", json_object_new_int64((int64_t)st->dirty_blocks));
	json_object_object_add(o, "round_bytes", json_object_new_int64((int64_t)st->round_bytes));
	json_object_object_add(o, "round_done_bytes", json_object_new_int64((int64_t)st->round_done_bytes));
	json_object_object_add(o, "rate_mibs", json_object_new_double(st->rate_mibs));
	json_object_object_add(o, "elapsed_ms", json_object_new_double(st->elapsed_ms));
	json_object_object_add(o, "stall_ms", json_object_new_double(st->stall_ms));
	json_object_object_add(o, "old_path", json_object_new_string(st->old_path));
	json_object_object_add(o, "new_path", json_object_new_string(st->new_path));
	if (st->error[0])
		json_object_object_add(o, "error", json_object_new_string(st->error));
	return o;
}
