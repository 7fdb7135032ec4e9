/* hv-guest: virtio-blk driver (see virtio_blk.h). */
#include "virtio_blk.h"

#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "time.h"

/* virtio_blk_config offsets. */
#define CFG_CAPACITY 0

#define QSIZE 256

int vblk_init(struct vblk *b, int index)
{
	struct vblk_req *req = b->req;

	b->capacity = 0;
	b->ro = b->flush = 0;
	b->req = req;
	int r = virtio_probe(&b->dev, VIRTIO_DEV_BLK, index, "virtio-blk");
	if (r < 0)
		return r;
	if (virtio_begin(&b->dev, 1ULL << VBLK_F_RO | 1ULL << VBLK_F_FLUSH) < 0)
		return -2;
	b->ro = !!(b->dev.features & (1ULL << VBLK_F_RO));
	b->flush = !!(b->dev.features & (1ULL << VBLK_F_FLUSH));
	b->capacity = virtio_cfg64(&b->dev, CFG_CAPACITY);
	if (!b->req) {
		uint64_t p = mem_alloc(sizeof(struct vblk_req) * VBLK_MAX_INFLIGHT, 64);
		if (!p) {
			kprintf("virtio-blk: out of memory\n");
			return -2;
		}
		b->req = (struct vblk_req *)(uintptr_t)p;
	}
	for (int i = 0; i < VBLK_MAX_INFLIGHT; i++)
		b->free_slot[i] = (uint16_t)(VBLK_MAX_INFLIGHT - 1 - i);
	b->nfree = VBLK_MAX_INFLIGHT;
	b->inflight = 0;
	if (virtio_setup_vq(&b->dev, 0, QSIZE) < 0)
		return -2;
	virtio_driver_ok(&b->dev);
	if (virtio_status(&b->dev) & VIRTIO_S_NEEDS_RESET) {
		kprintf("virtio-blk: device needs a reset right after DRIVER_OK\n");
		return -2;
	}
	return 0;
}

int vblk_submit(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		uint64_t cookie)
{
	struct virtq *q = &b->dev.vq[0];

	if (!b->nfree || q->num_free < 3)
		return -1;
	int s = b->free_slot[--b->nfree];
	struct vblk_req *r = &b->req[s];
	r->hdr.type = type;
	r->hdr.reserved = 0;
	r->hdr.sector = sector;
	r->status = VBLK_S_NOSTATUS; /* the device must overwrite it */
	struct vq_buf out[2] = { { &r->hdr, sizeof(r->hdr) }, { buf, len } };
	struct vq_buf in[2] = { { buf, len }, { (void *)&r->status, 1 } };
	int rc;
	if (!len) /* flush, or a request without data */
		rc = vq_add(q, out, 1, &in[1], 1, (uint64_t)s);
	else if (type == VBLK_T_OUT)
		rc = vq_add(q, out, 2, &in[1], 1, (uint64_t)s);
	else
		rc = vq_add(q, out, 1, in, 2, (uint64_t)s);
	if (rc < 0) {
		b->nfree++;
		return -1;
	}
	b->cookie[s] = cookie;
	b->inflight++;
	return 0;
}

void vblk_kick(struct vblk *b)
{
	vq_kick(&b->dev.vq[0]);
}

int vblk_poll(struct vblk *b, uint64_t *cookie, uint8_t *status)
{
	uint64_t tok;
	int r = vq_get(&b->dev.vq[0], &tok, NULL);

	if (r <= 0)
		return r;
	int s = (int)tok;
	*status = b->req[s].status;
	*cookie = b->cookie[s];
	b->free_slot[b->nfree++] = (uint16_t)s;
	b->inflight--;
	return 1;
}

uint8_t vblk_wait(struct vblk *b, uint64_t *cookie, int secs)
{
	uint64_t t0 = ticks;
	uint8_t st;

	for (uint64_t spins = 0;; spins++) {
		int r = vblk_poll(b, cookie, &st);
		if (r > 0)
			return st;
		if (r < 0)
			return VBLK_S_BROKEN;
		cpu_relax();
		/* Rarely: look at the device status (an MMIO exit) and the clock. */
		if ((spins & 0xfffff) == 0xfffff) {
			if (virtio_status(&b->dev) & VIRTIO_S_NEEDS_RESET)
				return VBLK_S_BROKEN;
			if (ticks - t0 > (uint64_t)secs * timer_hz)
				return VBLK_S_TIMEOUT;
		}
	}
}

uint8_t vblk_io(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	uint64_t cookie;

	if (vblk_submit(b, type, sector, buf, len, 0) < 0)
		return VBLK_S_BROKEN;
	vblk_kick(b);
	return vblk_wait(b, &cookie, 10);
}

const char *vblk_status_name(uint8_t s)
{
	switch (s) {
	case VBLK_S_OK:
		return "OK";
	case VBLK_S_IOERR:
		return "IOERR";
	case VBLK_S_UNSUPP:
		return "UNSUPP";
	case VBLK_S_TIMEOUT:
		return "TIMEOUT";
	case VBLK_S_NOSTATUS:
		return "NO_STATUS";
	case VBLK_S_BROKEN:
		return "NEEDS_RESET";
	default:
		return "?";
	}
}
