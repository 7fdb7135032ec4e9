#include "migrate/dest_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hv/layout.h"
#include "hv/machine.h"
#include "hv/parse.h"
#include "hv/printable.h"
#include "migrate/device_state.h"

static int refuse(struct dest_refusal *r, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct dest_refusal *r, const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	return -1;
}

static void size_text(uint64_t sectors, char *out, size_t len)
{
	uint64_t b = sectors * 512;

	if (b >= MiB && b % MiB == 0)
		snprintf(out, len, "%llu MiB", (unsigned long long)(b / MiB));
	else
		snprintf(out, len, "%llu bytes", (unsigned long long)b);
}

/* The generic refusal: what is missing, never which file or why. */
static int refuse_disk(struct dest_refusal *r, int i, const struct source_disk *sd,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int refuse_disk(struct dest_refusal *r, int i, const struct source_disk *sd,
		       const char *fmt, ...)
{
	char sz[32], why[700], shown[256];
	va_list ap;

	size_text(sd->sectors, sz, sizeof(sz));
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(r->peer, sizeof(r->peer),
		 "the destination's policy does not provide disk %d (%s, %s); see the destination's log",
		 i, sz, sd->ro ? "ro" : "rw");
	snprintf(r->detail, sizeof(r->detail), "refused the source's disk %d ('%s', %s, %s): %s", i,
		 printable(shown, sizeof(shown), sd->path), sz, sd->ro ? "ro" : "rw", why);
	return -1;
}

/* Size in sectors of an open regular file or block device; -1 if it is neither. */
static int64_t fd_sectors(int fd, const struct stat *st)
{
	uint64_t size = (uint64_t)st->st_size;

	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return -1;
	} else if (!S_ISREG(st->st_mode)) {
		return -1;
	}
	return (int64_t)(size / 512);
}

/* A disk the operator named: any regular file or block device (their choice). */
static int named_disk(const struct disk_spec *d, const struct source_disk *sd, int i,
		      struct dest_refusal *r, struct virtio_blk_expect *expect)
{
	struct stat st;
	int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	int64_t sectors = -1;

	if (fd < 0)
		return refuse_disk(r, i, sd, "cannot open --disk %s: %s", d->path, strerror(errno));
	if (fstat(fd, &st) == 0) {
		sectors = fd_sectors(fd, &st);
		*expect = (struct virtio_blk_expect){ .set = true, .dev = st.st_dev, .ino = st.st_ino };
	}
	close(fd);
	if (sectors < 0)
		return refuse_disk(r, i, sd, "--disk %s is not a regular file or block device", d->path);
	if ((uint64_t)sectors != sd->sectors)
		return refuse_disk(r, i, sd, "--disk %s has %lld sectors, the source's disk %llu; give an image "
				   "of the same size", d->path, (long long)sectors,
				   (unsigned long long)sd->sectors);
	if (d->ro && !sd->ro)
		return refuse_disk(r, i, sd, "--disk %s is read-only here but the source's disk is writable; "
				   "give a writable image (without ,ro)", d->path);
	return 0;
}

/* A disk found by the source's path or file name: a regular file, not through a symlink. */
static int found_disk(int dirfd, const char *name, const struct source_disk *sd, int i,
		      struct dest_refusal *r, const char *where, struct virtio_blk_expect *expect)
{
	struct stat st;
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return refuse_disk(r, i, sd, "%s: %s", where,
				   errno == ELOOP ? "a symbolic link (not followed)" : strerror(errno));
	/* O_PATH | O_NOFOLLOW opens a final symbolic link itself rather than failing. */
	int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode), link = !ok && S_ISLNK(st.st_mode);
	close(fd);
	if (link)
		return refuse_disk(r, i, sd, "%s: a symbolic link (not followed)", where);
	if (!ok)
		return refuse_disk(r, i, sd, "%s is not a regular file (block devices only with --disk)", where);
	if ((uint64_t)st.st_size / 512 != sd->sectors)
		return refuse_disk(r, i, sd, "%s has %llu sectors, the source's disk %llu", where,
				   (unsigned long long)st.st_size / 512, (unsigned long long)sd->sectors);
	/* What is opened later must be this very file, reached the same way. */
	*expect = (struct virtio_blk_expect){ .set = true, .nofollow = true, .dev = st.st_dev, .ino = st.st_ino };
	return 0;
}

static int map_disk(const struct dest_policy *p, const struct source_disk *sd, int i,
		    struct disk_spec *out, struct dest_refusal *r)
{
	char where[VIRTIO_DISK_PATH_MAX + 64];

	memset(out, 0, sizeof(*out));
	out->ro = sd->ro; /* never more than the guest had; ro given here is checked below */
	if (i < p->ndisks) {
		if (named_disk(&p->disks[i], sd, i, r, &out->expect) < 0)
			return -1;
		snprintf(out->path, sizeof(out->path), "%s", p->disks[i].path);
		return 0;
	}
	if (p->disk_dir) {
		const char *base = strrchr(sd->path, '/');
		base = base ? base + 1 : sd->path;
		if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
			return refuse_disk(r, i, sd, "its file name is not usable in --disk-dir");
		int dfd = open(p->disk_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return refuse_disk(r, i, sd, "--disk-dir %s: %s", p->disk_dir, strerror(errno));
		char shown[256];
		snprintf(where, sizeof(where), "--disk-dir %s/%s", p->disk_dir,
			 printable(shown, sizeof(shown), base));
		int rc = found_disk(dfd, base, sd, i, r, where, &out->expect);
		close(dfd);
		if (rc < 0)
			return -1;
		if ((size_t)snprintf(out->path, sizeof(out->path), "%s/%s", p->disk_dir, base) >=
		    sizeof(out->path))
			return refuse_disk(r, i, sd, "the path in --disk-dir is too long");
		return 0;
	}
	if (p->shared_storage) {
		if (sd->path[0] != '/')
			return refuse_disk(r, i, sd, "--shared-storage needs an absolute path");
		snprintf(where, sizeof(where), "--shared-storage");
		if (found_disk(AT_FDCWD, sd->path, sd, i, r, where, &out->expect) < 0)
			return -1;
		snprintf(out->path, sizeof(out->path), "%s", sd->path);
		return 0;
	}
	return refuse_disk(r, i, sd, "no --disk for it, and neither --disk-dir nor --shared-storage");
}

/* --storage copy: where disk i's copy goes. The source may only choose a file name in
 * --disk-dir (its directory must be --disk-dir itself); --disk PATH wins. */
static int copy_target(const struct dest_policy *p, const struct source_disk *sd, int i, const char *want,
		       char *out, size_t len, struct dest_refusal *r)
{
	char shown[256];

	if (i < p->ndisks) {
		if (p->disks[i].ro)
			return refuse_disk(r, i, sd, "--disk %s is read-only: a copy needs a writable image", p->disks[i].path);
		snprintf(out, len, "%s", p->disks[i].path);
		return 0;
	}
	if (!p->disk_dir)
		return refuse_disk(r, i, sd, "no --disk or --disk-dir to copy it into");
	const char *name = want && want[0] ? want : sd->path;
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (want && want[0] && strchr(want, '/')) {
		char dir[VIRTIO_DISK_PATH_MAX], real_dir[PATH_MAX], real_policy[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)(base - want - 1), want);
		if (!realpath(dir[0] ? dir : "/", real_dir) || !realpath(p->disk_dir, real_policy) ||
		    strcmp(real_dir, real_policy))
			return refuse_disk(r, i, sd, "the source asks for '%s', outside --disk-dir %s",
					   printable(shown, sizeof(shown), want), p->disk_dir);
	}
	if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
		return refuse_disk(r, i, sd, "its file name is not usable in --disk-dir");
	if ((size_t)snprintf(out, len, "%s/%s", p->disk_dir, base) >= len)
		return refuse_disk(r, i, sd, "the path in --disk-dir is too long");
	return 0;
}

/* Free bytes for an unprivileged writer on the file system of the directory of `path`. */
static int free_bytes(const char *path, uint64_t *out, dev_t *dev)
{
	char dir[VIRTIO_DISK_PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct statvfs vfs;
	struct stat st;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	if (statvfs(dir, &vfs) < 0 || stat(dir, &st) < 0)
		return -1;
	*out = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*dev = st.st_dev;
	return 0;
}

static int create_copy(const struct dest_policy *p, const struct source_devices *src,
		       struct machine_config *cfg, struct dest_copy *copy, struct dest_refusal *r)
{
	uint64_t need[VIRTIO_MAX_DISKS] = { 0 }, avail[VIRTIO_MAX_DISKS];
	dev_t fs[VIRTIO_MAX_DISKS];

	copy->n = 0;
	for (int i = 0; i < src->ndisks; i++) {
		const struct source_disk *sd = &src->disks[i];
		struct disk_spec *d = &cfg->disks[i];
		memset(d, 0, sizeof(*d));
		d->ro = sd->ro;
		if (copy_target(p, sd, i, copy->want[i], d->path, sizeof(d->path), r) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (!strcmp(cfg->disks[j].path, d->path))
				return refuse_disk(r, i, sd, "disk %d is copied to %s already", j, d->path);
		struct stat st;
		if (!p->force && lstat(d->path, &st) == 0)
			return refuse_disk(r, i, sd, "%s exists; remove it, or let 'hvctl receive --force' replace it", d->path);
		if (p->force && lstat(d->path, &st) == 0 && !S_ISREG(st.st_mode))
			return refuse_disk(r, i, sd, "%s exists and is not a regular file: not replaced", d->path);
		if (free_bytes(d->path, &avail[i], &fs[i]) < 0)
			return refuse_disk(r, i, sd, "cannot write in the directory of %s: %s", d->path, strerror(errno));
		/* Disks on one file system share its room. */
		for (int j = 0; j <= i; j++)
			if (fs[j] == fs[i])
				need[j] += sd->allocated;
		for (int j = 0; j <= i; j++)
			if (need[j] > avail[j])
				return refuse_disk(r, i, sd, "the file system of %s has %llu MiB free, the copy needs %llu MiB",
						   cfg->disks[j].path, (unsigned long long)(avail[j] >> 20),
						   (unsigned long long)((need[j] + MiB - 1) >> 20));
	}
	for (int i = 0; i < src->ndisks; i++) {
		const struct source_disk *sd = &src->disks[i];
		struct disk_spec *d = &cfg->disks[i];
		struct stat st;
		if (p->force)
			unlink(d->path); /* a fresh file: nothing of the old one shows through */
		int fd = open(d->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)(sd->sectors * 512)) < 0 || fstat(fd, &st) < 0) {
			int err = errno;
			if (fd >= 0) {
				close(fd);
				unlink(d->path);
			}
			dest_copy_discard(copy);
			return refuse_disk(r, i, sd, "cannot create %s: %s", d->path, strerror(err));
		}
		copy->fd[i] = fd;
		copy->size[i] = sd->sectors * 512;
		snprintf(copy->path[i], sizeof(copy->path[i]), "%s", d->path);
		copy->n = i + 1;
		/* What the device opens later is this very file. */
		d->expect = (struct virtio_blk_expect){ .set = true, .nofollow = true, .dev = st.st_dev, .ino = st.st_ino };
	}
	cfg->ndisks = src->ndisks;
	return 0;
}

void dest_copy_discard(struct dest_copy *copy)
{
	for (int i = 0; i < copy->n; i++) {
		close(copy->fd[i]);
		unlink(copy->path[i]);
	}
	copy->n = 0;
}

void dest_copy_keep(struct dest_copy *copy)
{
	for (int i = 0; i < copy->n; i++)
		close(copy->fd[i]);
	copy->n = 0;
}

static int map_nics(const struct dest_policy *p, const struct source_devices *src,
		    struct machine_config *cfg, struct dest_refusal *r);

int dest_policy_devices(const struct dest_policy *p, const struct source_devices *src,
			struct machine_config *cfg, struct dest_copy *copy, struct dest_refusal *r)
{
	cfg->ndisks = cfg->nnics = 0;
	if (map_nics(p, src, cfg, r) < 0)
		return -1; /* first: a refusal here must not leave created images behind */
	if (copy)
		return create_copy(p, src, cfg, copy, r);
	for (int i = 0; i < src->ndisks; i++) {
		if (map_disk(p, &src->disks[i], i, &cfg->disks[i], r) < 0)
			return -1;
		cfg->ndisks++;
	}
	return 0;
}

static int map_nics(const struct dest_policy *p, const struct source_devices *src,
		    struct machine_config *cfg, struct dest_refusal *r)
{
	char mac[18];

	for (int i = 0; i < src->nnics; i++) {
		format_mac(src->macs[i], mac);
		if (i >= p->nnics)
			return refuse(r, "the destination's policy does not provide a NIC for every source NIC; see the destination's log",
				      "refused the source's NIC %d (MAC %s): no --net tap=IF for it", i, mac);
		if (p->nics[i].has_mac && memcmp(p->nics[i].mac, src->macs[i], 6))
			return refuse(r, "the destination's policy does not provide a NIC for every source NIC; see the destination's log",
				      "refused the source's NIC %d (MAC %s): --net %s names another MAC; drop mac= or give the source's",
				      i, mac, p->nics[i].tap);
		struct nic_spec *ns = &cfg->nics[i];
		*ns = p->nics[i];
		memcpy(ns->mac, src->macs[i], 6); /* the guest keeps its MAC: it is its identity */
		ns->has_mac = true;
		cfg->nnics++;
	}
	return 0;
}

uint64_t dest_policy_mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

int dest_policy_memory(const struct dest_policy *p, uint64_t mem_size, struct dest_refusal *r)
{
	uint64_t limit = p->max_mem ? p->max_mem : dest_policy_mem_available();

	if (limit && mem_size > limit)
		return refuse(r, "the VM's memory is more than the destination accepts; see the destination's log",
			      "refused a VM of %llu MiB: this host accepts at most %llu MiB (%s); free memory or raise --max-mem",
			      (unsigned long long)(mem_size / MiB), (unsigned long long)(limit / MiB),
			      p->max_mem ? "--max-mem" : "MemAvailable");
	return 0;
}
