/* Disks that travel with the guest: the source's reader and the destination's writer
 * (disk_copy.h). */
#include "migrate/disk_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/log.h"

/* ---- source ---- */

int disk_copy_src_start(struct disk_copy_src *c, struct dev_registry *r, const char *only)
{
	c->buf = malloc(DEV_TRACK_BLOCK);
	if (!c->buf) {
		hv_error("out of memory for the disk copy");
		return -1;
	}
	for (int i = 0; i < r->n; i++) {
		struct dev_entry *e = &r->e[i];
		if (!e->ops->track_start || (only && strcmp(e->name, only)))
			continue;
		if (c->n == WIRE_DISKS_MAX) {
			hv_error("more than %d disks to copy", WIRE_DISKS_MAX);
			return -1;
		}
		int k = c->n;
		c->d[k].fd = -1;
		if (e->ops->track_start(e->dev, &c->d[k].size, &c->d[k].fd) < 0)
			return -1;
		c->d[k].e = e;
		c->n++;
		c->d[k].blocks = (c->d[k].size + DEV_TRACK_BLOCK - 1) / DEV_TRACK_BLOCK;
		c->d[k].dirty = calloc((c->d[k].blocks + 63) / 64, sizeof(uint64_t));
		if (!c->d[k].dirty) {
			hv_error("out of memory for the disk copy");
			return -1;
		}
	}
	return 0;
}

void disk_copy_src_stop(struct disk_copy_src *c)
{
	for (int i = 0; i < c->n; i++) {
		c->d[i].e->ops->track_stop(c->d[i].e->dev);
		if (c->d[i].fd >= 0)
			close(c->d[i].fd);
		free(c->d[i].dirty);
	}
	c->n = 0;
	free(c->buf);
	c->buf = NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];

	for (size_t off = 0; off < n; off += sizeof(zero)) {
		size_t k = n - off < sizeof(zero) ? n - off : sizeof(zero);
		if (memcmp(p + off, zero, k))
			return false;
	}
	return true;
}

/* Block b of disk k: read, then sent as data or as zeros (`skip_zero`: not at all). */
static int send_block(struct disk_copy_src *c, int k, uint64_t b, bool skip_zero)
{
	uint64_t off = b * DEV_TRACK_BLOCK;
	uint32_t len = (uint32_t)(c->d[k].size - off < DEV_TRACK_BLOCK ? c->d[k].size - off : DEV_TRACK_BLOCK);
	size_t got = 0;

	/* An image whose size is not whole sectors: the guest never sees the tail. */
	len -= len % 512;
	if (!len)
		return 0;
	while (got < len) {
		ssize_t r = pread(c->d[k].fd, c->buf + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(c->err, sizeof(c->err), "reading %s's image at byte %llu: %s", c->d[k].e->name,
				 (unsigned long long)(off + got), r < 0 ? strerror(errno) : "it is shorter than its size");
			return DISK_COPY_E_READ;
		}
		got += (size_t)r;
	}
	c->scanned_bytes += len;
	bool zero = all_zero(c->buf, len);
	if (zero && skip_zero) {
		c->zero_blocks++;
		return 0;
	}
	c->blocks_sent++;
	if (zero)
		c->zero_blocks++;
	else
		c->data_bytes += len;
	return c->sink(c->sink_opaque, k, off, zero ? NULL : c->buf, len);
}

/* The first extent with data at or after *pos on disk k, as whole blocks [*first, *end);
 * false when only a hole is left. A file (or device) without holes is all data. */
static bool next_extent(struct disk_copy_src *c, int k, uint64_t *pos, uint64_t *first, uint64_t *end)
{
	uint64_t size = c->d[k].size;

	if (*pos >= size)
		return false;
	off_t data = lseek(c->d[k].fd, (off_t)*pos, SEEK_DATA);
	if (data < 0 && errno == ENXIO)
		return false;
	if (data < 0)
		data = (off_t)*pos;
	off_t hole = lseek(c->d[k].fd, data, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole > size)
		hole = (off_t)size;
	*first = (uint64_t)data / DEV_TRACK_BLOCK;
	*end = ((uint64_t)hole + DEV_TRACK_BLOCK - 1) / DEV_TRACK_BLOCK;
	*pos = *end * DEV_TRACK_BLOCK;
	return *end > *first;
}

uint64_t disk_copy_extent_bytes(struct disk_copy_src *c)
{
	uint64_t total = 0;

	for (int k = 0; k < c->n; k++) {
		uint64_t pos = 0, first, end;
		while (next_extent(c, k, &pos, &first, &end)) {
			uint64_t to = end * DEV_TRACK_BLOCK < c->d[k].size ? end * DEV_TRACK_BLOCK : c->d[k].size;
			total += to - first * DEV_TRACK_BLOCK;
		}
	}
	return total;
}

int disk_copy_send_all(struct disk_copy_src *c)
{
	for (int k = 0; k < c->n; k++) {
		uint64_t pos = 0, first, end;
		while (next_extent(c, k, &pos, &first, &end))
			for (uint64_t b = first; b < end; b++) {
				int r = send_block(c, k, b, true);
				if (r < 0)
					return r;
			}
	}
	return 0;
}

uint64_t disk_copy_collect(struct disk_copy_src *c)
{
	uint64_t n = 0;

	for (int k = 0; k < c->n; k++) {
		c->d[k].e->ops->track_take(c->d[k].e->dev, c->d[k].dirty);
		for (uint64_t w = 0; w < (c->d[k].blocks + 63) / 64; w++)
			n += (uint64_t)__builtin_popcountll(c->d[k].dirty[w]);
	}
	return n;
}

int disk_copy_send_dirty(struct disk_copy_src *c)
{
	for (int k = 0; k < c->n; k++)
		for (uint64_t w = 0; w < (c->d[k].blocks + 63) / 64; w++) {
			while (c->d[k].dirty[w]) {
				int bit = __builtin_ctzll(c->d[k].dirty[w]);
				c->d[k].dirty[w] &= c->d[k].dirty[w] - 1;
				int r = send_block(c, k, w * 64 + (uint64_t)bit, false);
				if (r < 0)
					return r;
			}
		}
	return 0;
}

/* ---- destination ---- */

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* The range reads as zeros afterwards, deallocated where the file system can. */
static int zero_range(int fd, uint64_t off, uint32_t len)
{
	static const uint8_t zero[64 * 1024];

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, len) == 0 ||
	    fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, len) == 0)
		return 0;
	for (uint32_t done = 0; done < len;) {
		uint32_t k = len - done < sizeof(zero) ? len - done : (uint32_t)sizeof(zero);
		if (write_all(fd, zero, k, off + done) < 0)
			return -1;
		done += k;
	}
	return 0;
}

int disk_copy_apply(struct disk_copy_dst *c, const uint8_t *payload, size_t len, char *err, size_t errlen)
{
	struct wire_disk_data d;
	char why[160];

	if (wire_parse_disk_data(payload, len, &d, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "stream corrupt: %s", why);
		return -1;
	}
	if (d.disk >= c->n) {
		snprintf(err, errlen, "stream corrupt: DISK_DATA for disk %u, the VM has %d to copy", d.disk, c->n);
		return -1;
	}
	if (d.offset > c->size[d.disk] || d.len > c->size[d.disk] - d.offset) {
		snprintf(err, errlen, "stream corrupt: DISK_DATA for %u bytes at byte %llu of disk %u, which has %llu",
			 d.len, (unsigned long long)d.offset, d.disk, (unsigned long long)c->size[d.disk]);
		return -1;
	}
	return disk_copy_write(c, d.disk, d.offset, d.data, d.len, err, errlen);
}

int disk_copy_write(struct disk_copy_dst *c, int disk, uint64_t offset, const uint8_t *data, uint32_t len,
		    char *err, size_t errlen)
{
	errno = 0;
	int r = data ? write_all(c->fd[disk], data, len, offset) : zero_range(c->fd[disk], offset, len);
	if (r < 0) {
		snprintf(err, errlen, "writing the copy of disk %d at byte %llu: %s", disk,
			 (unsigned long long)offset, errno ? strerror(errno) : "nothing written");
		return -1;
	}
	c->blocks++;
	if (data)
		c->data_bytes += len;
	return 0;
}

int disk_copy_sync(struct disk_copy_dst *c, char *err, size_t errlen)
{
	for (int i = 0; i < c->n; i++)
		if (fdatasync(c->fd[i]) < 0) {
			snprintf(err, errlen, "flushing the copy of disk %d: %s", i, strerror(errno));
			return -1;
		}
	return 0;
}
