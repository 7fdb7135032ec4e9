/* virtio-blk: requests from the guest's queue become preadv/pwritev/fdatasync/fallocate
 * on the image, on the device's I/O thread. Request layout (virtio 1.x 5.2.6): a 16-byte
 * header {type, ioprio, sector} device-readable, then the data (readable for OUT, DISCARD,
 * WRITE_ZEROES; writable for IN, GET_ID), then one writable status byte. */
#include "devices/virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "devices/virtio_pci.h"
#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/state_enc.h"

#define BLK_CONFIG_SIZE offsetof(struct virtio_blk_config, max_secure_erase_sectors)
#define BLK_SEG_MAX (VIRTQ_MAX_SEGS - 2) /* header and status take two */
#define BLK_SIZE_MAX (1u << 20)
#define BLK_MAX_DISCARD_SECTORS 0x3fffffu
#define BLK_MAX_DISCARD_SEG 16
#define BLK_DISCARD_ALIGN 8 /* sectors: 4 KiB */

struct virtio_blk {
	struct virtio_pci *vp;
	int fd;
	bool ro;
	uint64_t capacity; /* sectors */
	char *path; /* as given, for HELLO and messages */
	char id[VIRTIO_BLK_ID_BYTES];
	struct virtio_blk_config cfg;
	int stop_fd;
	pthread_t thread;
	bool thread_started;
	struct virtq_chain chain; /* used under the queue lock only */
	/* Changed-block tracking (dev_state.h): set and freed under the queue lock, bits set
	 * by the I/O thread after a write completes and taken with atomic exchanges. */
	_Atomic uint64_t *changed;
	uint64_t changed_words;
};

/* Blocks [off, off + len) were written (the write has completed). Queue lock held. */
static void mark_changed(struct virtio_blk *b, uint64_t off, uint64_t len)
{
	if (!b->changed || !len)
		return;
	for (uint64_t blk = off / DEV_TRACK_BLOCK; blk <= (off + len - 1) / DEV_TRACK_BLOCK; blk++)
		atomic_fetch_or(&b->changed[blk / 64], 1ull << (blk % 64));
}

/* ---- requests ---- */

static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	if (bytes % VIRTIO_BLK_SECTOR)
		return false;
	return sector <= b->capacity && bytes / VIRTIO_BLK_SECTOR <= b->capacity - sector;
}

/* preadv/pwritev until done; the iovecs are consumed. */
static int do_rw(struct virtio_blk *b, struct iovec *iov, int n, uint64_t off, bool write)
{
	while (n > 0) {
		ssize_t r = write ? pwritev(b->fd, iov, n, (off_t)off) : preadv(b->fd, iov, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1; /* error, or end of file: the image shrank under us */
		off += (uint64_t)r;
		size_t left = (size_t)r;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static int write_zeroes(struct virtio_blk *b, uint64_t off, uint64_t len, bool unmap)
{
	if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (unmap && fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			       (off_t)len) == 0)
		return 0;
	static const uint8_t zero[64 * 1024];
	while (len) {
		size_t chunk = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		ssize_t r = pwrite(b->fd, zero, chunk, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* DISCARD / WRITE_ZEROES: an array of {sector u64, num_sectors u32, flags u32}. */
static uint8_t discard_or_zero(struct virtio_blk *b, const struct virtq_chain *c, bool zeroes)
{
	uint64_t f = virtio_pci_driver_features(b->vp);
	uint64_t bytes = c->out_len - sizeof(struct virtio_blk_outhdr);
	struct virtio_blk_discard_write_zeroes seg;

	if (!(f & (1ull << (zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD))))
		return VIRTIO_BLK_S_UNSUPP;
	if (b->ro)
		return VIRTIO_BLK_S_IOERR;
	if (bytes == 0 || bytes % sizeof(seg))
		return VIRTIO_BLK_S_IOERR;
	if (bytes / sizeof(seg) > BLK_MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_UNSUPP;
	for (uint64_t i = 0; i < bytes / sizeof(seg); i++) {
		virtq_iov_read(c->iov, c->n_out, sizeof(struct virtio_blk_outhdr) + i * sizeof(seg),
			       &seg, sizeof(seg));
		uint32_t allowed = zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
		if (seg.flags & ~allowed)
			return VIRTIO_BLK_S_UNSUPP;
		if (seg.num_sectors > BLK_MAX_DISCARD_SECTORS ||
		    !range_ok(b, seg.sector, (uint64_t)seg.num_sectors * VIRTIO_BLK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		uint64_t off = seg.sector * VIRTIO_BLK_SECTOR;
		uint64_t len = (uint64_t)seg.num_sectors * VIRTIO_BLK_SECTOR;
		if (!len)
			continue;
		if (zeroes) {
			int r = write_zeroes(b, off, len, seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
			mark_changed(b, off, len); /* even a failed one may have changed some */
			if (r < 0)
				return VIRTIO_BLK_S_IOERR;
		} else {
			/* A hint: where holes cannot be punched, the data simply stays. */
			if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
				mark_changed(b, off, len);
		}
	}
	return VIRTIO_BLK_S_OK;
}

/* Serves one request; returns the number of bytes written into the chain (status
 * included), or -1 if the request is malformed (the queue is then broken). */
static int handle_request(struct virtio_blk *b, struct virtq *q, struct virtq_chain *c)
{
	struct virtio_blk_outhdr hdr;
	struct iovec data[VIRTQ_MAX_SEGS];
	const struct iovec *in = &c->iov[c->n_out];
	uint8_t status = VIRTIO_BLK_S_OK;
	uint64_t written = 0;

	if (c->out_len < sizeof(hdr) || c->in_len < 1) {
		virtq_fail(q, "virtio-blk request without a header or a status byte");
		return -1;
	}
	virtq_iov_read(c->iov, c->n_out, 0, &hdr, sizeof(hdr));
	uint64_t in_data = c->in_len - 1, out_data = c->out_len - sizeof(hdr);

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN: {
		if (!range_ok(b, hdr.sector, in_data)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		int n = virtq_iov_slice(in, c->n_in, 0, in_data, data, VIRTQ_MAX_SEGS);
		if (do_rw(b, data, n, hdr.sector * VIRTIO_BLK_SECTOR, false) < 0)
			status = VIRTIO_BLK_S_IOERR;
		else
			written = in_data;
		break;
	}
	case VIRTIO_BLK_T_OUT: {
		if (b->ro || !range_ok(b, hdr.sector, out_data)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		int n = virtq_iov_slice(c->iov, c->n_out, sizeof(hdr), out_data, data, VIRTQ_MAX_SEGS);
		if (do_rw(b, data, n, hdr.sector * VIRTIO_BLK_SECTOR, true) < 0)
			status = VIRTIO_BLK_S_IOERR;
		/* Marked after the write (a failed one may have written part). */
		mark_changed(b, hdr.sector * VIRTIO_BLK_SECTOR, out_data);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (!b->ro && fdatasync(b->fd) < 0)
			status = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t n = in_data < VIRTIO_BLK_ID_BYTES ? in_data : VIRTIO_BLK_ID_BYTES;
		written = virtq_iov_write(in, c->n_in, 0, b->id, (size_t)n);
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = discard_or_zero(b, c, hdr.type == VIRTIO_BLK_T_WRITE_ZEROES);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	virtq_iov_write(in, c->n_in, c->in_len - 1, &status, 1);
	return (int)(written + 1);
}

void virtio_blk_process(struct virtio_blk *b)
{
	struct virtq *q = virtio_pci_queue(b->vp, VIRTIO_BLK_QUEUE);

	pthread_mutex_lock(&q->lock);
	while (virtq_active(q)) {
		int r;
		virtq_disable_notify(q);
		while ((r = virtq_pop(q, &b->chain)) == 1) {
			int written = handle_request(b, q, &b->chain);
			virtq_push(q, &b->chain, written < 0 ? 0 : (uint32_t)written);
			if (written < 0)
				break;
		}
		virtio_pci_notify_used(b->vp, q);
		if (r < 0 || !virtq_enable_notify(q))
			break;
	}
	pthread_mutex_unlock(&q->lock);
}

static void *io_thread(void *arg)
{
	struct virtio_blk *b = arg;
	struct pollfd pfd[2] = {
		{ .fd = virtio_pci_queue_eventfd(b->vp, VIRTIO_BLK_QUEUE), .events = POLLIN },
		{ .fd = b->stop_fd, .events = POLLIN },
	};
	uint64_t count;

	pthread_setname_np(pthread_self(), "virtio-blk");
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN) {
			if (read(pfd[0].fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				break;
			virtio_blk_process(b);
		}
	}
	return NULL;
}

/* ---- configuration ---- */

static void blk_get_config(void *dev, uint32_t offset, void *data, uint32_t len)
{
	struct virtio_blk *b = dev;

	memcpy(data, (const uint8_t *)&b->cfg + offset, len);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.type = VIRTIO_ID_BLOCK,
	.class_code = 0x018000, /* mass storage, other */
	.features = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		    (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH),
	.num_queues = 1,
	.config_size = BLK_CONFIG_SIZE,
	.get_config = blk_get_config,
};

static void build_config(struct virtio_blk *b)
{
	struct virtio_blk_config *c = &b->cfg;

	memset(c, 0, sizeof(*c));
	c->capacity = b->capacity;
	c->size_max = BLK_SIZE_MAX;
	c->seg_max = BLK_SEG_MAX;
	c->blk_size = VIRTIO_BLK_SECTOR;
	c->num_queues = 1;
	c->max_discard_sectors = BLK_MAX_DISCARD_SECTORS;
	c->max_discard_seg = BLK_MAX_DISCARD_SEG;
	c->discard_sector_alignment = BLK_DISCARD_ALIGN;
	c->max_write_zeroes_sectors = BLK_MAX_DISCARD_SECTORS;
	c->max_write_zeroes_seg = BLK_MAX_DISCARD_SEG;
	c->write_zeroes_may_unmap = 1;
}

/* Opens the image; one hv_error line naming the path and the fix on failure. */
static int open_image(struct virtio_blk *b, const char *path, bool ro, const struct virtio_blk_expect *expect)
{
	struct stat st;
	bool nofollow = expect && expect->set && expect->nofollow;
	int fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));

	if (fd < 0) {
		int err = errno;
		if (err == ENOENT)
			hv_error("disk image '%s' does not exist; create it (e.g. truncate -s 1G %s) or correct --disk",
				 path, path);
		else if (err == EROFS)
			hv_error("disk image '%s' is on a read-only file system; use --disk %s,ro", path, path);
		else if ((err == EACCES || err == EPERM) && !ro && access(path, R_OK) == 0)
			hv_error("disk image '%s' is not writable for this user; use --disk %s,ro or make it writable",
				 path, path);
		else if (err == EACCES || err == EPERM)
			hv_error("cannot open disk image '%s': permission denied; fix its permissions or run as its owner",
				 path);
		else if (err == EISDIR)
			hv_error("disk image '%s' is a directory; give a raw image file", path);
		else if (err == ELOOP && nofollow)
			hv_error("disk image '%s' became a symbolic link after it was checked; not followed", path);
		else
			hv_error("cannot open disk image '%s': %s", path, strerror(err));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		hv_error("disk image '%s' is not a regular file or block device", path);
		close(fd);
		return -1;
	}
	if (expect && expect->set && (st.st_dev != expect->dev || st.st_ino != expect->ino)) {
		hv_error("disk image '%s' was replaced by another file after it was checked; refused", path);
		close(fd);
		return -1;
	}
	/* root opens anything: respect an image deliberately marked unreadable or read-only. */
	if (S_ISREG(st.st_mode) && !(st.st_mode & 0444)) {
		hv_error("disk image '%s' is not readable (mode %03o); chmod u+r it (u+rw to write)",
			 path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	if (!ro && S_ISREG(st.st_mode) && !(st.st_mode & 0222)) {
		hv_error("disk image '%s' is read-only (mode %03o); use --disk %s,ro or chmod u+w it",
			 path, (unsigned)(st.st_mode & 0777), path);
		close(fd);
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
		hv_error("cannot get the size of block device '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (size < VIRTIO_BLK_SECTOR) {
		hv_error("disk image '%s' is smaller than one 512-byte sector; give it a size (e.g. truncate -s 1G %s)",
			 path, path);
		close(fd);
		return -1;
	}
	if (size % VIRTIO_BLK_SECTOR)
		hv_warn("disk image '%s': the last %llu bytes (not a whole sector) are not visible to the guest",
			path, (unsigned long long)(size % VIRTIO_BLK_SECTOR));
	b->fd = fd;
	b->capacity = size / VIRTIO_BLK_SECTOR;
	return 0;
}

struct virtio_blk *virtio_blk_create(struct pci_bus *bus, int slot, const char *path, bool ro)
{
	return virtio_blk_create_checked(bus, slot, path, ro, NULL);
}

struct virtio_blk *virtio_blk_create_checked(struct pci_bus *bus, int slot, const char *path, bool ro,
					     const struct virtio_blk_expect *expect)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));

	if (!b) {
		hv_error("virtio-blk: out of memory");
		return NULL;
	}
	b->fd = b->stop_fd = -1;
	b->ro = ro;
	b->path = strdup(path);
	if (!b->path) {
		free(b);
		hv_error("virtio-blk: out of memory");
		return NULL;
	}
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* Not NUL-terminated when it fills all 20 bytes, as the spec has it. */
	size_t idlen = strlen(base);
	memcpy(b->id, base, idlen < sizeof(b->id) ? idlen : sizeof(b->id));
	if (open_image(b, path, ro, expect) < 0)
		goto fail;
	build_config(b);
	uint64_t extra = ro ? 1ull << VIRTIO_BLK_F_RO
			    : (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	b->vp = virtio_pci_create(bus, slot, &blk_ops, b, extra);
	if (!b->vp)
		goto fail;
	b->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (b->stop_fd < 0 || pthread_create(&b->thread, NULL, io_thread, b) != 0) {
		hv_error("virtio-blk: cannot start the I/O thread for '%s'", path);
		goto fail;
	}
	b->thread_started = true;
	return b;
fail:
	virtio_blk_destroy(b);
	return NULL;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	if (b->thread_started) {
		uint64_t one = 1;
		if (write(b->stop_fd, &one, sizeof(one)) < 0)
			hv_debug("virtio-blk: stop write failed");
		pthread_join(b->thread, NULL);
	}
	virtio_pci_destroy(b->vp);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	if (b->fd >= 0)
		close(b->fd);
	free((void *)b->changed);
	free(b->path);
	free(b);
}

struct virtio_pci *virtio_blk_transport(struct virtio_blk *b)
{
	return b->vp;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *b)
{
	return b->capacity;
}

void virtio_blk_get_state(struct virtio_blk *b, struct virtio_blk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->capacity = b->capacity;
	st->read_only = b->ro;
}

int virtio_blk_set_state(struct virtio_blk *b, const struct virtio_blk_state *st)
{
	if (st->capacity != b->capacity || !st->read_only != !b->ro) {
		hv_error("disk '%s' differs from the saved one (%llu sectors%s; here %llu%s); attach the same image",
			 b->path, (unsigned long long)st->capacity, st->read_only ? ", read-only" : "",
			 (unsigned long long)b->capacity, b->ro ? ", read-only" : "");
		return -EINVAL;
	}
	return 0;
}

/* ---- the image's identity ---- */

/* A fingerprint of the image's content: its size, its first 64 KiB, 64 blocks of 4 KiB
 * spread evenly over it and its last 4 KiB. The source computes it with the guest paused
 * after its last flush, the destination on the file it opened: two different files (the
 * same path on two hosts that do not share it, a copy that went stale) almost always
 * differ in it, for ~70 reads at switchover. It cannot see a difference outside the
 * samples, which is why it is a check and not a copy. */
#define FP_HEAD (64u * 1024)
#define FP_SAMPLES 64
#define FP_BLOCK 4096u

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = 0; /* the file ended early */
		if (r <= 0)
			return -1;
		buf = (uint8_t *)buf + r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int content_fingerprint(const struct virtio_blk *b, uint64_t *out)
{
	static _Thread_local uint8_t buf[FP_HEAD];
	uint64_t size = b->capacity * VIRTIO_BLK_SECTOR;
	uint64_t h = XXH3_64bits(&size, sizeof(size));
	size_t head = size < FP_HEAD ? (size_t)size : FP_HEAD;

	if (read_at(b->fd, buf, head, 0) < 0)
		return -1;
	h = XXH3_64bits_withSeed(buf, head, h);
	if (size < 2 * FP_BLOCK) {
		*out = h;
		return 0;
	}
	for (uint64_t i = 0; i <= FP_SAMPLES; i++) {
		/* Block-aligned, the last one the image's last 4 KiB. */
		uint64_t off = i == FP_SAMPLES ? size - FP_BLOCK : (size - FP_BLOCK) / FP_SAMPLES * i / FP_BLOCK * FP_BLOCK;
		if (read_at(b->fd, buf, FP_BLOCK, off) < 0)
			return -1;
		h = XXH3_64bits_withSeed(buf, FP_BLOCK, h);
	}
	*out = h;
	return 0;
}

/* ---- saved state (dev_state.h) ---- */

enum {
	BLK_SEC_DISK = VIRTIO_PCI_SEC_DEVICE, /* u64 capacity (sectors), u8 read-only */
	BLK_SEC_CONTENT,                      /* u64 content_fingerprint() */
};

static int blk_save(void *dev, struct state_out *o)
{
	struct virtio_blk *b = dev;
	struct virtio_blk_state st;

	uint64_t fp;

	if (content_fingerprint(b, &fp) < 0) {
		hv_error("disk image '%s' cannot be read to fingerprint it: %s", b->path,
			 errno ? strerror(errno) : "it is shorter than its size");
		return -EIO;
	}
	virtio_pci_save(b->vp, o);
	virtio_blk_get_state(b, &st);
	state_out_begin(o, BLK_SEC_DISK);
	state_out_u64(o, st.capacity);
	state_out_u8(o, st.read_only);
	state_out_end(o);
	state_out_begin(o, BLK_SEC_CONTENT);
	state_out_u64(o, fp);
	state_out_end(o);
	return state_out_error(o);
}

struct blk_saved {
	struct virtio_blk_state st;
	uint64_t fingerprint;
};

static int blk_decode_own(void *ctx, struct state_sec *s, char *err, size_t errlen)
{
	struct blk_saved *sv = ctx;

	if (s->id == BLK_SEC_CONTENT) {
		sv->fingerprint = state_sec_u64(s);
		return state_sec_end(s, "virtio-blk content", err, errlen);
	}
	sv->st.capacity = state_sec_u64(s);
	sv->st.read_only = state_sec_u8(s);
	return state_sec_end(s, "virtio-blk disk", err, errlen);
}

/* The image here is the one the state was saved with: same size and mode, same content
 * fingerprint. Read afresh (a shared file system's client may cache what it read before
 * the source's last flush). 0, or -1 with one line in err. */
static int blk_check_image(struct virtio_blk *b, const struct blk_saved *sv, char *err, size_t errlen)
{
	uint64_t fp;

	hv_clear_error();
	if (virtio_blk_set_state(b, &sv->st) < 0) {
		snprintf(err, errlen, "%s", hv_last_error());
		return -1;
	}
	posix_fadvise(b->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (content_fingerprint(b, &fp) < 0) {
		snprintf(err, errlen, "disk image '%s' cannot be read: %s", b->path,
			 errno ? strerror(errno) : "it is shorter than its size");
		return -1;
	}
	if (fp != sv->fingerprint) {
		/* No path: this text goes back to a migration's source too. */
		snprintf(err, errlen, "the image here is not the disk the state was saved with: same "
			 "size, different content (another file at that path, a stale copy, or written "
			 "since); attach that very image");
		return -1;
	}
	return 0;
}

static int blk_load(void *dev, const void *blob, size_t len, char *err, size_t errlen)
{
	struct virtio_blk *b = dev;
	struct virtio_pci_state *tr = malloc(sizeof(*tr));
	struct blk_saved sv = { 0 };
	int r = -1;

	if (!tr) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (virtio_pci_decode(b->vp, blob, len, tr, blk_decode_own, &sv,
			      1ull << BLK_SEC_DISK | 1ull << BLK_SEC_CONTENT, err, errlen) < 0)
		goto out;
	/* The disk first: it only compares, so a refusal leaves the device as it was. */
	if (blk_check_image(b, &sv, err, errlen) < 0)
		goto out;
	hv_clear_error();
	if (virtio_pci_set_state(b->vp, tr) < 0) {
		snprintf(err, errlen, "%s", hv_last_error());
		goto out;
	}
	r = 0;
out:
	free(tr);
	return r;
}

static void blk_describe(void *dev, struct dev_desc *d)
{
	struct virtio_blk *b = dev;

	d->str(d, "path", b->path);
	d->flag(d, "ro", b->ro);
	struct stat st;

	d->num(d, "size", b->capacity * VIRTIO_BLK_SECTOR);
	if (fstat(b->fd, &st) == 0 && S_ISREG(st.st_mode))
		d->num(d, "allocated", (uint64_t)st.st_blocks * 512);
}

static int blk_flush(void *dev, char *err, size_t errlen)
{
	struct virtio_blk *b = dev;

	if (!b->ro && fdatasync(b->fd) < 0) {
		snprintf(err, errlen, "flushing disk image '%s' failed: %s", b->path, strerror(errno));
		return -1;
	}
	return 0;
}

static void blk_pause(void *dev)
{
	virtio_pci_pause(((struct virtio_blk *)dev)->vp);
}

static void blk_resume(void *dev)
{
	virtio_pci_resume(((struct virtio_blk *)dev)->vp);
}

static int blk_track_start(void *dev, uint64_t *size, int *fd)
{
	struct virtio_blk *b = dev;
	struct virtq *q = virtio_pci_queue(b->vp, VIRTIO_BLK_QUEUE);
	uint64_t blocks = (b->capacity * VIRTIO_BLK_SECTOR + DEV_TRACK_BLOCK - 1) / DEV_TRACK_BLOCK;
	_Atomic uint64_t *bits = calloc((blocks + 63) / 64, sizeof(*bits));
	char self[64];

	/* A descriptor of its own: the reader's offsets and lifetime are not the device's. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", b->fd);
	int rfd = open(self, O_RDONLY | O_CLOEXEC);
	if (!bits || rfd < 0) {
		hv_error("disk image '%s': cannot start tracking its changes: %s", b->path,
			 bits ? strerror(errno) : "out of memory");
		free((void *)bits);
		if (rfd >= 0)
			close(rfd);
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	free((void *)b->changed);
	b->changed = bits;
	b->changed_words = (blocks + 63) / 64;
	pthread_mutex_unlock(&q->lock);
	*size = b->capacity * VIRTIO_BLK_SECTOR;
	*fd = rfd;
	return 0;
}

static void blk_track_take(void *dev, uint64_t *bitmap)
{
	struct virtio_blk *b = dev;

	for (uint64_t w = 0; b->changed && w < b->changed_words; w++)
		bitmap[w] |= atomic_exchange(&b->changed[w], 0);
}

static void blk_track_stop(void *dev)
{
	struct virtio_blk *b = dev;
	struct virtq *q = virtio_pci_queue(b->vp, VIRTIO_BLK_QUEUE);

	pthread_mutex_lock(&q->lock);
	free((void *)b->changed);
	b->changed = NULL;
	b->changed_words = 0;
	pthread_mutex_unlock(&q->lock);
}

static int blk_switch_image(void *dev, int fd, const char *path, char *err, size_t errlen)
{
	struct virtio_blk *b = dev;
	struct virtq *q = virtio_pci_queue(b->vp, VIRTIO_BLK_QUEUE);
	struct stat st;
	char *p = strdup(path);

	if (!p || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size / VIRTIO_BLK_SECTOR != b->capacity) {
		snprintf(err, errlen, "the new image '%s' is not a regular file of the disk's size", path);
		free(p);
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	int old = b->fd;
	b->fd = fd;
	free(b->path);
	b->path = p;
	pthread_mutex_unlock(&q->lock);
	close(old);
	return 0;
}

const struct dev_state_ops virtio_blk_state_ops = {
	.type = "virtio-blk",
	.version = 3, /* 3: the content fingerprint */
	.save = blk_save,
	.flush = blk_flush,
	.track_start = blk_track_start,
	.track_take = blk_track_take,
	.track_stop = blk_track_stop,
	.switch_image = blk_switch_image,
	.load = blk_load,
	.describe = blk_describe,
	.pause = blk_pause,
	.resume = blk_resume,
};
