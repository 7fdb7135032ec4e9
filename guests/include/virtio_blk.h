/* hv-guest: virtio-blk driver (polled, see virtio.h). Requests are {type, 0, sector}
 * header (device-readable), the data, and one status byte (device-writable); up to
 * VBLK_MAX_INFLIGHT of them in flight. */
#ifndef HVG_VIRTIO_BLK_H
#define HVG_VIRTIO_BLK_H

#include <stdint.h>

#include "virtio.h"

#define VBLK_SECTOR 512
#define VBLK_T_IN 0
#define VBLK_T_OUT 1
#define VBLK_T_FLUSH 4
#define VBLK_T_GET_ID 8
#define VBLK_S_OK 0
#define VBLK_S_IOERR 1
#define VBLK_S_UNSUPP 2
#define VBLK_S_NOSTATUS 0xfd /* not a device status: completed without writing one */
#define VBLK_S_TIMEOUT 0xfe /* not a device status: the driver gave up waiting */
#define VBLK_S_BROKEN 0xff  /* not a device status: DEVICE_NEEDS_RESET or a bad used id */

#define VBLK_F_SIZE_MAX 1
#define VBLK_F_SEG_MAX 2
#define VBLK_F_RO 5
#define VBLK_F_BLK_SIZE 6
#define VBLK_F_FLUSH 9

#define VBLK_MAX_INFLIGHT 64
#define VBLK_MAX_IO (1U << 20) /* bytes per request this driver issues */

struct vblk_req {
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	volatile uint8_t status;
	uint8_t pad[15];
};

struct vblk {
	struct virtio_dev dev;
	uint64_t capacity; /* sectors */
	int ro, flush;
	struct vblk_req *req;  /* VBLK_MAX_INFLIGHT slots, in guest RAM */
	uint64_t cookie[VBLK_MAX_INFLIGHT];
	uint16_t free_slot[VBLK_MAX_INFLIGHT];
	int nfree;
	int inflight;
};

/* Finds and starts the index-th virtio-blk device. 0, -1 if there is none, -2 if it
 * could not be started (printed). */
int vblk_init(struct vblk *b, int index);
/* Queues a request (made visible to the device by vblk_kick). `len` a multiple of 512,
 * at most VBLK_MAX_IO. 0, or -1 if no slot or descriptor is free. */
int vblk_submit(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		uint64_t cookie);
void vblk_kick(struct vblk *b);
/* One completion: 1 with (cookie, status), 0 if none yet, -1 if the device broke. */
int vblk_poll(struct vblk *b, uint64_t *cookie, uint8_t *status);
/* Waits for one completion (bounded: VBLK_S_TIMEOUT after `secs` seconds of ticks,
 * VBLK_S_BROKEN if the device needs a reset). Returns the status, sets *cookie. */
uint8_t vblk_wait(struct vblk *b, uint64_t *cookie, int secs);
/* Synchronous request: submit, kick, wait up to 10 s. Returns the status. */
uint8_t vblk_io(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len);
const char *vblk_status_name(uint8_t s);

#endif
