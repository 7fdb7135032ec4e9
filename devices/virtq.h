/* Split virtqueues (virtio 1.x) with VIRTIO_F_EVENT_IDX and indirect descriptors.
 *
 * Everything in guest memory is untrusted and may change under our feet: ring indices and
 * descriptors are read once into locals, every buffer must lie wholly in guest RAM
 * (guest_mem_ptr), chains are bounded by the queue size (so loops end), indirect tables
 * are validated (length a non-zero multiple of 16, at most the queue size entries, in RAM, no
 * nesting), zero-length descriptors count toward the segment cap, and an avail index
 * that runs more than a queue size ahead is rejected. Any violation marks the queue broken
 * and calls its error callback once (the transport then sets DEVICE_NEEDS_RESET); a broken
 * queue yields nothing more until it is reset. Every byte the VMM writes into guest memory
 * (used ring, event index, data) is marked in the VMM dirty bitmap for migration.
 *
 * Locking: q->lock is held by whoever processes the queue (a device I/O thread) and by the
 * transport while it configures, resets or saves it. All virtq_* functions except
 * virtq_init/virtq_destroy expect the caller to hold it. */
#ifndef DEVICES_VIRTQ_H
#define DEVICES_VIRTQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hv/guest_mem.h"

#define VIRTQ_MAX_SIZE 256           /* largest queue size the devices offer */
#define VIRTQ_MAX_SEGS VIRTQ_MAX_SIZE /* a chain is never longer than the queue size */
#define VIRTQ_NO_VECTOR 0xffff

/* What migration saves for one queue (the transport's copy of the driver's settings plus
 * the device's ring positions). Restored with the device quiesced, no chain in flight. */
struct virtq_state {
	uint16_t size;           /* queue_size as the driver set it */
	uint16_t msix_vector;    /* queue_msix_vector */
	uint8_t enabled;         /* queue_enable */
	uint8_t signalled_used_valid;
	uint16_t last_avail_idx; /* next avail ring entry the device takes */
	uint16_t used_idx;       /* next used ring entry the device fills (= used->idx) */
	uint16_t signalled_used; /* used idx when the last interrupt decision was made */
	uint64_t desc_addr, avail_addr, used_addr;
};

struct virtq;
typedef void (*virtq_error_fn)(void *opaque, struct virtq *q, const char *why);

struct virtq {
	pthread_mutex_t lock;
	struct guest_mem *mem;
	int index;
	struct virtq_state s;
	bool event_idx, indirect; /* negotiated features */
	bool ready;               /* started: the ring pointers below are valid */
	bool broken;
	bool paused;              /* quiesced for save/restore; devices skip the queue */
	bool no_notify;           /* shadow of used->flags NO_NOTIFY */
	void *desc, *avail, *used; /* host pointers of the rings */
	virtq_error_fn on_error;
	void *opaque;
};

/* A popped chain: iov[0, n_out) are device-readable, iov[n_out, n_out + n_in) writable. */
struct virtq_chain {
	uint16_t head;
	uint16_t n_out, n_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS];
};

void virtq_init(struct virtq *q, struct guest_mem *mem, int index, virtq_error_fn on_error,
		void *opaque);
void virtq_destroy(struct virtq *q);

/* Starts the queue from q->s (size, ring addresses, positions) with the negotiated
 * features. 0, or -1 after reporting the problem through the error callback. */
int virtq_start(struct virtq *q, bool event_idx, bool indirect);
/* Back to the reset state: not ready, not broken, state zeroed (vector: none). */
void virtq_reset(struct virtq *q);
/* Marks the queue broken and reports `why` through the error callback (once): for a
 * device that finds a request it cannot make sense of. */
void virtq_fail(struct virtq *q, const char *why);
/* True if the queue is started, not broken and not paused. */
bool virtq_active(const struct virtq *q);

/* 1 with a chain, 0 if the ring is empty, -1 if the queue is (now) broken. */
int virtq_pop(struct virtq *q, struct virtq_chain *c);
/* Hands back the chain just popped, unused (e.g. no packet to put in it after all). */
void virtq_unpop(struct virtq *q);
/* Returns a chain to the driver with `written` bytes written (clamped to in_len). Every
 * writable segment of the chain is marked dirty, whatever `written` says. */
void virtq_push(struct virtq *q, const struct virtq_chain *c, uint32_t written);
/* Whether the driver wants an interrupt for what was pushed since the last call
 * (EVENT_IDX used_event, or VRING_AVAIL_F_NO_INTERRUPT). */
bool virtq_needs_interrupt(struct virtq *q);
/* Ask for (enable) or suppress (disable) driver notifications. enable returns true if
 * buffers are already waiting, so that the caller processes them instead of sleeping. */
bool virtq_enable_notify(struct virtq *q);
void virtq_disable_notify(struct virtq *q);
/* True if the driver has made chains available that were not popped yet. */
bool virtq_has_avail(struct virtq *q);

void virtq_get_state(struct virtq *q, struct virtq_state *st);
/* The state as one state_enc.h section body, and back (form only: 0, or -1 with one line
 * in err; the transport checks sizes and vectors against the device). */
struct state_out;
struct state_sec;
void virtq_state_encode(const struct virtq_state *st, struct state_out *o);
int virtq_state_decode(struct virtq_state *st, struct state_sec *s, char *err, size_t errlen);

/* Copy helpers over iovecs. Each returns the number of bytes copied. */
size_t virtq_iov_read(const struct iovec *iov, int n, size_t skip, void *buf, size_t len);
size_t virtq_iov_write(const struct iovec *iov, int n, size_t skip, const void *buf, size_t len);
/* dst = the bytes [skip, skip + len) of src, as at most dst_max iovecs; returns their
 * count (the slice is shorter if src is). */
int virtq_iov_slice(const struct iovec *src, int n, size_t skip, size_t len, struct iovec *dst,
		    int dst_max);
size_t virtq_iov_len(const struct iovec *iov, int n);

#endif
