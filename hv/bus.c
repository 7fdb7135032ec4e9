#include "hv/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *b)
{
	pthread_rwlockattr_t attr;

	memset(b, 0, sizeof(*b));
	/* Writers first: vCPUs that keep dispatching must not starve a BAR move. No thread
	 * ever takes the read side of one bus twice, so this kind cannot self-deadlock. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&b->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

/* Only after every vCPU and device thread that might dispatch has gone. */
void bus_destroy(struct bus *b)
{
	free(b->regions);
	b->regions = NULL;
	b->count = b->cap = 0;
	pthread_rwlock_destroy(&b->lock);
}

static int register_locked(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn,
			   void *opaque, const char *name)
{
	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	int pos = 0;
	while (pos < b->count && b->regions[pos].base < base)
		pos++;
	/* Neighbours on both sides must not overlap the new range. */
	if (pos > 0) {
		const struct bus_region *prev = &b->regions[pos - 1];
		if (prev->base + prev->len > base)
			return -EEXIST;
	}
	if (pos < b->count && b->regions[pos].base < base + len)
		return -EEXIST;
	if (b->count == b->cap) {
		int cap = b->cap ? b->cap * 2 : 16;
		struct bus_region *r = realloc(b->regions, (size_t)cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->regions = r;
		b->cap = cap;
	}
	memmove(&b->regions[pos + 1], &b->regions[pos], (size_t)(b->count - pos) * sizeof(*b->regions));
	b->regions[pos] = (struct bus_region){ base, len, fn, opaque, name };
	b->count++;
	return 0;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name)
{
	pthread_rwlock_wrlock(&b->lock);
	int r = register_locked(b, base, len, fn, opaque, name);
	pthread_rwlock_unlock(&b->lock);
	return r;
}

static int unregister_locked(struct bus *b, uint64_t base)
{
	for (int i = 0; i < b->count; i++) {
		if (b->regions[i].base == base) {
			memmove(&b->regions[i], &b->regions[i + 1],
				(size_t)(b->count - i - 1) * sizeof(*b->regions));
			b->count--;
			return 0;
		}
	}
	return -ENOENT;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	pthread_rwlock_wrlock(&b->lock);
	int r = unregister_locked(b, base);
	pthread_rwlock_unlock(&b->lock);
	return r;
}

static const struct bus_region *bus_find(const struct bus *b, uint64_t addr)
{
	int lo = 0, hi = b->count - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_region *r = &b->regions[mid];
		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	pthread_rwlock_rdlock(&b->lock);
	const struct bus_region *r = bus_find(b, addr);

	/* An access must fit entirely in one region; a straddling access is unclaimed. */
	if (!r || len > r->len - (addr - r->base)) {
		pthread_rwlock_unlock(&b->lock);
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	/* The region is copied: the handler runs on this copy while the lock keeps the
	 * region (and its opaque) alive. */
	struct bus_region reg = *r;
	reg.fn(reg.opaque, addr - reg.base, data, len, is_write);
	pthread_rwlock_unlock(&b->lock);
	return true;
}
