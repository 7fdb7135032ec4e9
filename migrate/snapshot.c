/* Snapshot files (snapshot.h). Header, 128 bytes, little endian:
 *   0 "hvSNAPSH"  8 u32 version  12 u32 header size (128)  16 u64 created  24 u64 mem_size
 *  32 u32 vcpus  36 u32 reserved (0)  40 char name[64] (NUL padded)  104 20 bytes reserved (0)
 * 124 u32 CRC-32 of bytes 0..123. */
#include "migrate/snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "hv/log.h"
#include "hv/printable.h"

static const char magic[8] = { 'h', 'v', 'S', 'N', 'A', 'P', 'S', 'H' };

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

void snapshot_header_encode(uint8_t b[SNAPSHOT_HEADER_SIZE], const struct snapshot_header *h)
{
	memset(b, 0, SNAPSHOT_HEADER_SIZE);
	memcpy(b, magic, sizeof(magic));
	put_le(b + 8, SNAPSHOT_VERSION, 4);
	put_le(b + 12, SNAPSHOT_HEADER_SIZE, 4);
	put_le(b + 16, h->created, 8);
	put_le(b + 24, h->mem_size, 8);
	put_le(b + 32, h->vcpus, 4);
	snprintf((char *)b + 40, 64, "%s", h->name);
	put_le(b + 124, crc32(0, b, 124), 4);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int snapshot_header_decode(const uint8_t b[SNAPSHOT_HEADER_SIZE], struct snapshot_header *h,
			   const char *path, char *err, size_t errlen)
{
	char shown[64];
	size_t name_len = strnlen((const char *)b + 40, 64);

	if (memcmp(b, magic, sizeof(magic)))
		return hv_errf(err, errlen, "'%s' is not an hv snapshot (no hvSNAPSH header)", path);
	h->version = (uint32_t)get_le(b + 8, 4);
	if (h->version != SNAPSHOT_VERSION)
		return hv_errf(err, errlen, "'%s' is a snapshot of version %u, this hv reads version %d",
			       path, h->version, SNAPSHOT_VERSION);
	/* The name must end inside its 64 bytes, and what is reserved must be zero: a header
	 * that differs there was not written by this hv, whatever its CRC says. */
	if (get_le(b + 124, 4) != crc32(0, b, 124) || get_le(b + 12, 4) != SNAPSHOT_HEADER_SIZE ||
	    name_len == 64 || !all_zero(b + 36, 4) || !all_zero(b + 40 + name_len, 64 - name_len) ||
	    !all_zero(b + 104, 20))
		return hv_errf(err, errlen, "'%s': the snapshot header is damaged (bad CRC)", path);
	h->created = get_le(b + 16, 8);
	h->mem_size = get_le(b + 24, 8);
	h->vcpus = (uint32_t)get_le(b + 32, 4);
	printable_copy(shown, sizeof(shown), (const char *)b + 40, name_len);
	snprintf(h->name, sizeof(h->name), "%s", shown);
	return 0;
}

int snapshot_create(struct snapshot_out *o, const char *path, const struct snapshot_header *h,
		    char *err, size_t errlen)
{
	uint8_t b[SNAPSHOT_HEADER_SIZE] = { 0 };
	struct stat st;

	o->fd = -1;
	o->tmp[0] = '\0';
	if (!path[0] || strlen(path) >= sizeof(o->path))
		return hv_errf(err, errlen, "snapshot file name is empty or too long");
	snprintf(o->path, sizeof(o->path), "%s", path);
	if (lstat(path, &st) == 0)
		return hv_errf(err, errlen, "'%s' exists: remove it or save under another name", path);
	snprintf(o->tmp, sizeof(o->tmp), "%s.XXXXXX", path);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		int e = errno;
		o->tmp[0] = '\0';
		return hv_errf(err, errlen, "cannot create a file beside '%s': %s", path, strerror(e));
	}
	snapshot_header_encode(b, h);
	if (write_all(o->fd, b, sizeof(b)) < 0) {
		int e = errno;
		snapshot_discard(o);
		return hv_errf(err, errlen, "cannot write '%s': %s", path, strerror(e));
	}
	return 0;
}

void snapshot_discard(struct snapshot_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->tmp[0])
		unlink(o->tmp);
	o->tmp[0] = '\0';
}

int snapshot_commit(struct snapshot_out *o, char *err, size_t errlen)
{
	char dir[sizeof(o->path)];

	if (fsync(o->fd) < 0 || close(o->fd) < 0) {
		int e = errno;
		o->fd = -1;
		snapshot_discard(o);
		return hv_errf(err, errlen, "cannot write '%s': %s", o->path, strerror(e));
	}
	o->fd = -1;
	/* link(2) never replaces an existing file, as rename(2) would. */
	if (link(o->tmp, o->path) < 0) {
		int e = errno;
		snapshot_discard(o);
		return hv_errf(err, errlen, "cannot name the snapshot '%s': %s", o->path, strerror(e));
	}
	snapshot_discard(o);
	snprintf(dir, sizeof(dir), "%s", o->path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int snapshot_open(const char *path, struct snapshot_header *h, char *err, size_t errlen)
{
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return hv_errf(err, errlen, "cannot open snapshot '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return hv_errf(err, errlen, "'%s' is not a snapshot file (not a regular file)", path);
	}
	ssize_t n = read(fd, b, sizeof(b));
	if (n != (ssize_t)sizeof(b)) {
		close(fd);
		return hv_errf(err, errlen, "'%s' is not a snapshot: %s", path,
			       n <= 0 ? "the file is empty" : "shorter than a snapshot header");
	}
	if (snapshot_header_decode(b, h, path, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
