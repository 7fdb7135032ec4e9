#include "migrate/dirty.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/layout.h"
#include "hv/log.h"
#include "hv/vm.h"

/* Manual protection on or off for the VM (before logging starts, after it stops). */
static int set_manual(struct vm *vm, bool on)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				      .args = { on ? KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE : 0 } };

	return ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
}

int dirty_start(struct dirty_tracker *t, struct vm *vm, bool clear_in_chunks)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->pages = guest_mem_pages(&vm->mem);
	t->words = (t->pages + 63) / 64;
	t->bitmap = calloc(t->words, sizeof(uint64_t));
	t->slot_buf = calloc(t->words, sizeof(uint64_t));
	t->clear_buf = calloc(DIRTY_CHUNK_PAGES / 64, sizeof(uint64_t));
	if (clear_in_chunks && ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0 &&
	    set_manual(vm, true) == 0)
		t->manual = true;
	if (!t->bitmap || !t->slot_buf || !t->clear_buf) {
		hv_error("out of memory for the dirty bitmap");
		dirty_stop(t);
		return -1;
	}
	if (vm_set_dirty_logging(vm, true) < 0) {
		dirty_stop(t);
		return -1;
	}
	t->logging = 1;
	for (uint64_t w = 0; w < t->words; w++)
		guest_mem_take_dirty_word(&vm->mem, w);
	return 0;
}

/* ORs one slot's KVM log into t->bitmap at page offset first_page (a multiple of 64). */
static int collect_slot(struct dirty_tracker *t, uint32_t slot, uint64_t first_page, uint64_t pages)
{
	uint64_t words = (pages + 63) / 64;
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = t->slot_buf };

	memset(t->slot_buf, 0, words * sizeof(uint64_t));
	if (ioctl(t->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		hv_error("KVM_GET_DIRTY_LOG failed: %s", strerror(errno));
		return -1;
	}
	uint64_t *dst = t->bitmap + first_page / 64;
	for (uint64_t w = 0; w < words; w++)
		dst[w] |= t->slot_buf[w];
	return 0;
}

int64_t dirty_collect(struct dirty_tracker *t)
{
	struct guest_mem *m = &t->vm->mem;
	uint64_t low_pages = m->low_size / PAGE_SIZE;

	memset(t->bitmap, 0, t->words * sizeof(uint64_t));
	if (collect_slot(t, VM_SLOT_LOW, 0, low_pages) < 0)
		return -1;
	/* low_size is MMIO_HOLE_START when high RAM exists: a multiple of 64 pages. */
	if (m->high_size && collect_slot(t, VM_SLOT_HIGH, low_pages, m->high_size / PAGE_SIZE) < 0)
		return -1;
	int64_t count = 0;
	for (uint64_t w = 0; w < t->words; w++) {
		t->bitmap[w] |= guest_mem_take_dirty_word(m, w);
		count += __builtin_popcountll(t->bitmap[w]);
	}
	return count;
}

/* One slot's part of a chunk: the chunk's bits from t->bitmap, relative to the slot. */
static int clear_slot(struct dirty_tracker *t, uint32_t slot, uint64_t slot_first, uint64_t slot_pages,
		      uint64_t first_page, uint64_t npages)
{
	uint64_t from = first_page > slot_first ? first_page : slot_first;
	uint64_t to = first_page + npages < slot_first + slot_pages ? first_page + npages : slot_first + slot_pages;

	if (from >= to)
		return 0;
	/* from is a multiple of 64 (chunks and the high slot's start are): whole words, the
	 * last one cut at `to`. */
	uint64_t words = (to - from + 63) / 64, any = 0;
	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = t->bitmap[from / 64 + w];
		if (w == words - 1 && (to - from) % 64)
			bits &= (1ull << ((to - from) % 64)) - 1;
		t->clear_buf[w] = bits;
		any |= bits;
	}
	if (!any)
		return 0;
	struct kvm_clear_dirty_log c = { .slot = slot, .first_page = from - slot_first,
					 .num_pages = (uint32_t)(to - from), .dirty_bitmap = t->clear_buf };
	if (ioctl(t->vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
		hv_error("KVM_CLEAR_DIRTY_LOG failed: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int dirty_rearm(struct dirty_tracker *t, uint64_t first_page, uint64_t npages)
{
	struct guest_mem *m = &t->vm->mem;
	uint64_t low_pages = m->low_size / PAGE_SIZE;

	if (!t->manual)
		return 0;
	if (npages > DIRTY_CHUNK_PAGES)
		npages = DIRTY_CHUNK_PAGES;
	if (clear_slot(t, VM_SLOT_LOW, 0, low_pages, first_page, npages) < 0)
		return -1;
	return m->high_size ? clear_slot(t, VM_SLOT_HIGH, low_pages, m->high_size / PAGE_SIZE, first_page, npages) : 0;
}

void dirty_stop(struct dirty_tracker *t)
{
	if (t->logging)
		vm_set_dirty_logging(t->vm, false);
	if (t->manual)
		set_manual(t->vm, false);
	t->logging = 0;
	t->manual = false;
	free(t->bitmap);
	free(t->slot_buf);
	free(t->clear_buf);
	t->bitmap = t->slot_buf = t->clear_buf = NULL;
}
