/* isa-debug-exit at 0xf4: a write of v ends the VM with status v (QEMU reports (v<<1)|1;
 * hv passes v through so that a guest's 0 is a process's 0). */
#include <stdio.h>

#include "devices/legacy.h"
#include "hv/vm.h"

static void debug_exit_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	uint32_t v = 0;
	char why[64];

	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0xff;
		return;
	}
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	snprintf(why, sizeof(why), "guest exited with status %u", v);
	vm_request_stop(vm, (int)(v & 0xff), why);
}

int debug_exit_create(struct vm *vm)
{
	return bus_register(&vm->pio, DEBUG_EXIT_PORT, 4, debug_exit_io, vm, "debug-exit");
}
