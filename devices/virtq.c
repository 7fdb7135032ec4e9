/* Split virtqueue processing. See virtq.h for the rules this file enforces.
 *
 * Ring layout (virtio 1.x 2.7): descriptor i at desc + 16 i (addr u64, len u32, flags u16,
 * next u16); avail: flags u16, idx u16, ring[size] u16, used_event u16; used: flags u16,
 * idx u16, ring[size] {id u32, len u32}, avail_event u16. All little-endian (x86 host).
 * Guest memory is read and written through volatile accesses: the guest may change it at
 * any moment, so each value is read exactly once. */
#include "devices/virtq.h"

#include <linux/virtio_ring.h>
#include <string.h>

#include "hv/log.h"
#include "hv/state_enc.h"

#define DESC_SIZE 16

/* Guest structures need not be naturally aligned (an indirect table may sit anywhere):
 * packed types make the compiler emit accesses that are fine at any address. */
struct __attribute__((packed, may_alias)) u16p { uint16_t v; };
struct __attribute__((packed, may_alias)) u32p { uint32_t v; };
struct __attribute__((packed, may_alias)) u64p { uint64_t v; };

static uint16_t rd16(const void *base, uint64_t off)
{
	return ((const volatile struct u16p *)((const uint8_t *)base + off))->v;
}

static uint32_t rd32(const void *base, uint64_t off)
{
	return ((const volatile struct u32p *)((const uint8_t *)base + off))->v;
}

static uint64_t rd64(const void *base, uint64_t off)
{
	return ((const volatile struct u64p *)((const uint8_t *)base + off))->v;
}

static void wr16(void *base, uint64_t off, uint16_t v)
{
	((volatile struct u16p *)((uint8_t *)base + off))->v = v;
}

static void wr32(void *base, uint64_t off, uint32_t v)
{
	((volatile struct u32p *)((uint8_t *)base + off))->v = v;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct desc read_desc(const void *table, uint32_t i)
{
	uint64_t o = (uint64_t)i * DESC_SIZE;

	return (struct desc){ rd64(table, o), rd32(table, o + 8), rd16(table, o + 12),
			      rd16(table, o + 14) };
}

static uint64_t avail_bytes(uint16_t size)
{
	return 4 + 2ull * size + 2;
}

static uint64_t used_bytes(uint16_t size)
{
	return 4 + 8ull * size + 2;
}

void virtq_init(struct virtq *q, struct guest_mem *mem, int index, virtq_error_fn on_error,
		void *opaque)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	q->mem = mem;
	q->index = index;
	q->on_error = on_error;
	q->opaque = opaque;
	q->s.msix_vector = VIRTQ_NO_VECTOR;
}

void virtq_destroy(struct virtq *q)
{
	pthread_mutex_destroy(&q->lock);
}

static void fail(struct virtq *q, const char *why)
{
	if (q->broken)
		return;
	q->broken = true;
	hv_debug("virtq %d: %s", q->index, why);
	if (q->on_error)
		q->on_error(q->opaque, q, why);
}

void virtq_fail(struct virtq *q, const char *why)
{
	fail(q, why);
}

void virtq_reset(struct virtq *q)
{
	memset(&q->s, 0, sizeof(q->s));
	q->s.msix_vector = VIRTQ_NO_VECTOR;
	q->ready = q->broken = q->no_notify = false;
	q->event_idx = q->indirect = false;
	q->desc = q->avail = q->used = NULL;
}

int virtq_start(struct virtq *q, bool event_idx, bool indirect)
{
	uint16_t size = q->s.size;

	q->ready = false;
	q->event_idx = event_idx;
	q->indirect = indirect;
	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1))) {
		fail(q, "queue size is not a power of two within the maximum");
		return -1;
	}
	if (q->s.desc_addr % VRING_DESC_ALIGN_SIZE || q->s.avail_addr % VRING_AVAIL_ALIGN_SIZE ||
	    q->s.used_addr % VRING_USED_ALIGN_SIZE) {
		fail(q, "ring address misaligned");
		return -1;
	}
	q->desc = guest_mem_ptr(q->mem, q->s.desc_addr, (uint64_t)size * DESC_SIZE);
	q->avail = guest_mem_ptr(q->mem, q->s.avail_addr, avail_bytes(size));
	q->used = guest_mem_ptr(q->mem, q->s.used_addr, used_bytes(size));
	if (!q->desc || !q->avail || !q->used) {
		q->desc = q->avail = q->used = NULL;
		fail(q, "ring outside guest RAM");
		return -1;
	}
	q->no_notify = rd16(q->used, 0) & VRING_USED_F_NO_NOTIFY;
	if (!q->s.signalled_used_valid) {
		/* Nothing pushed yet, so nothing to signal: interrupts start with the first push. */
		q->s.signalled_used = q->s.used_idx;
		q->s.signalled_used_valid = 1;
	}
	q->ready = true;
	return 0;
}

bool virtq_active(const struct virtq *q)
{
	return q->ready && !q->broken && !q->paused;
}

/* The driver's avail index, checked against the device's position. */
static int avail_pending(struct virtq *q, uint16_t *pending)
{
	uint16_t idx = __atomic_load_n((volatile uint16_t *)((uint8_t *)q->avail + 2), __ATOMIC_ACQUIRE);
	uint16_t n = (uint16_t)(idx - q->s.last_avail_idx);

	if (n > q->s.size) {
		fail(q, "avail index moved more than the queue size");
		return -1;
	}
	*pending = n;
	return 0;
}

bool virtq_has_avail(struct virtq *q)
{
	uint16_t n;

	if (!virtq_active(q) || avail_pending(q, &n) < 0)
		return false;
	return n > 0;
}

static int add_seg(struct virtq *q, struct virtq_chain *c, const struct desc *d)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;

	if (d->len == 0)
		return 0;
	if (d->addr + d->len < d->addr) {
		fail(q, "descriptor address + length wraps");
		return -1;
	}
	void *p = guest_mem_ptr(q->mem, d->addr, d->len);
	if (!p) {
		fail(q, "descriptor buffer outside guest RAM");
		return -1;
	}
	if (!writable && c->n_in) {
		fail(q, "device-readable descriptor after a writable one");
		return -1;
	}
	int i = c->n_out + c->n_in;
	if (i >= VIRTQ_MAX_SEGS) {
		fail(q, "descriptor chain too long");
		return -1;
	}
	c->iov[i] = (struct iovec){ p, d->len };
	c->gpa[i] = d->addr;
	if (writable) {
		c->n_in++;
		c->in_len += d->len;
	} else {
		c->n_out++;
		c->out_len += d->len;
	}
	return 0;
}

/* Walks the chain starting at `head`. The direct part and an indirect table are each
 * bounded by the queue size (a driver never needs a longer table), and every descriptor,
 * zero-length ones included, counts toward the segment cap: the work one kick costs the
 * device is bounded by the queue size, not by what the guest writes in a length field. */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const void *table = q->desc;
	uint32_t table_size = q->s.size, idx = head, steps = 0, descs = 0;
	bool in_indirect = false;

	for (;;) {
		if (idx >= table_size) {
			fail(q, "descriptor index out of range");
			return -1;
		}
		if (++steps > table_size) {
			fail(q, "descriptor chain loops or is longer than its table");
			return -1;
		}
		struct desc d = read_desc(table, idx);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect) {
				fail(q, "nested indirect descriptor");
				return -1;
			}
			if (!q->indirect) {
				fail(q, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
				return -1;
			}
			if (d.flags & VRING_DESC_F_NEXT) {
				fail(q, "indirect descriptor with the NEXT flag");
				return -1;
			}
			if (d.len == 0 || d.len % DESC_SIZE) {
				fail(q, "indirect table length not a non-zero multiple of 16");
				return -1;
			}
			if (d.len / DESC_SIZE > q->s.size) {
				fail(q, "indirect table too long: more entries than the queue size");
				return -1;
			}
			if (d.addr + d.len < d.addr || !(table = guest_mem_ptr(q->mem, d.addr, d.len))) {
				fail(q, "indirect table outside guest RAM");
				return -1;
			}
			in_indirect = true;
			table_size = d.len / DESC_SIZE;
			idx = 0;
			steps = 0;
			continue;
		}
		if (++descs > VIRTQ_MAX_SEGS) {
			fail(q, "descriptor chain too long");
			return -1;
		}
		if (add_seg(q, c, &d) < 0)
			return -1;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t pending;

	if (!virtq_active(q))
		return q->broken ? -1 : 0;
	if (avail_pending(q, &pending) < 0)
		return -1;
	if (!pending)
		return 0;
	uint16_t head = rd16(q->avail, 4 + 2ull * (q->s.last_avail_idx % q->s.size));
	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	if (walk_chain(q, head, c) < 0)
		return -1;
	q->s.last_avail_idx++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->s.last_avail_idx--;
}

void virtq_push(struct virtq *q, const struct virtq_chain *c, uint32_t written)
{
	if (!q->ready)
		return;
	struct guest_mem *m = q->mem;
	uint64_t slot = q->s.used_idx % q->s.size;
	uint64_t elem = 4 + 8 * slot;

	if (written > c->in_len)
		written = (uint32_t)c->in_len;
	for (int i = c->n_out; i < c->n_out + c->n_in; i++)
		guest_mem_mark_dirty(m, c->gpa[i], c->iov[i].iov_len);
	wr32(q->used, elem, c->head);
	wr32(q->used, elem + 4, written);
	guest_mem_mark_dirty(m, q->s.used_addr + elem, 8);
	q->s.used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n((volatile uint16_t *)((uint8_t *)q->used + 2), q->s.used_idx, __ATOMIC_RELEASE);
	guest_mem_mark_dirty(m, q->s.used_addr + 2, 2);
}

bool virtq_needs_interrupt(struct virtq *q)
{
	if (!q->ready)
		return false;
	/* Our used index store must be ordered before reading the driver's suppression. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t old = q->s.signalled_used, now = q->s.used_idx;
	bool valid = q->s.signalled_used_valid;
	q->s.signalled_used = now;
	q->s.signalled_used_valid = 1;
	if (valid && now == old)
		return false; /* nothing new since the last decision */
	if (!q->event_idx)
		return !(rd16(q->avail, 0) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true; /* a restored queue that never decided: err on the side of telling */
	uint16_t event = rd16(q->avail, 4 + 2ull * q->s.size);
	/* vring_need_event: did the used index step over used_event since `old`? */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

bool virtq_enable_notify(struct virtq *q)
{
	if (!virtq_active(q))
		return false;
	if (q->event_idx) {
		uint64_t off = 4 + 8ull * q->s.size;
		if (rd16(q->used, off) != q->s.last_avail_idx) {
			wr16(q->used, off, q->s.last_avail_idx);
			guest_mem_mark_dirty(q->mem, q->s.used_addr + off, 2);
		}
	} else if (q->no_notify) {
		wr16(q->used, 0, 0);
		guest_mem_mark_dirty(q->mem, q->s.used_addr, 2);
		q->no_notify = false;
	}
	/* Publish the request before looking at the avail index once more. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_has_avail(q);
}

void virtq_disable_notify(struct virtq *q)
{
	if (!virtq_active(q) || q->event_idx || q->no_notify)
		return;
	wr16(q->used, 0, VRING_USED_F_NO_NOTIFY);
	guest_mem_mark_dirty(q->mem, q->s.used_addr, 2);
	q->no_notify = true;
}

void virtq_state_encode(const struct virtq_state *st, struct state_out *o)
{
	state_out_u16(o, st->size);
	state_out_u16(o, st->msix_vector);
	state_out_u8(o, st->enabled);
	state_out_u8(o, st->signalled_used_valid);
	state_out_u16(o, st->last_avail_idx);
	state_out_u16(o, st->used_idx);
	state_out_u16(o, st->signalled_used);
	state_out_u64(o, st->desc_addr);
	state_out_u64(o, st->avail_addr);
	state_out_u64(o, st->used_addr);
}

int virtq_state_decode(struct virtq_state *st, struct state_sec *s, char *err, size_t errlen)
{
	st->size = state_sec_u16(s);
	st->msix_vector = state_sec_u16(s);
	st->enabled = state_sec_u8(s);
	st->signalled_used_valid = state_sec_u8(s);
	st->last_avail_idx = state_sec_u16(s);
	st->used_idx = state_sec_u16(s);
	st->signalled_used = state_sec_u16(s);
	st->desc_addr = state_sec_u64(s);
	st->avail_addr = state_sec_u64(s);
	st->used_addr = state_sec_u64(s);
	return state_sec_end(s, "virtqueue", err, errlen);
}

void virtq_get_state(struct virtq *q, struct virtq_state *st)
{
	*st = q->s;
}

size_t virtq_iov_len(const struct iovec *iov, int n)
{
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

static size_t iov_copy(const struct iovec *iov, int n, size_t skip, void *buf, size_t len,
		       bool to_iov)
{
	size_t done = 0;

	for (int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t chunk = l - skip;
		if (chunk > len - done)
			chunk = len - done;
		uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(p, (const uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done, p, chunk);
		done += chunk;
		skip = 0;
	}
	return done;
}

size_t virtq_iov_read(const struct iovec *iov, int n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, false);
}

size_t virtq_iov_write(const struct iovec *iov, int n, size_t skip, const void *buf, size_t len)
{
	return iov_copy(iov, n, skip, (void *)buf, len, true);
}

int virtq_iov_slice(const struct iovec *src, int n, size_t skip, size_t len, struct iovec *dst,
		    int dst_max)
{
	int k = 0;

	for (int i = 0; i < n && len && k < dst_max; i++) {
		size_t l = src[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t chunk = l - skip;
		if (chunk > len)
			chunk = len;
		dst[k++] = (struct iovec){ (uint8_t *)src[i].iov_base + skip, chunk };
		len -= chunk;
		skip = 0;
	}
	return k;
}
