#include "migrate/dirty.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/layout.h"
#include "hv/log.h"
#include "hv/vm.h"

int dirty_start(struct dirty_tracker *t, struct vm *vm)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->pages = guest_mem_pages(&vm->mem);
	t->words = (t->pages + 63) / 64;
	t->bitmap = calloc(t->words, sizeof(uint64_t));
	t->slot_buf = calloc(t->words, sizeof(uint64_t));
	if (!t->bitmap || !t->slot_buf) {
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

void dirty_stop(struct dirty_tracker *t)
{
	if (t->logging)
		vm_set_dirty_logging(t->vm, false);
	t->logging = 0;
	free(t->bitmap);
	free(t->slot_buf);
	t->bitmap = t->slot_buf = NULL;
}
