/* isa-debug-exit at 0xf4: a write of v ends the VM with status v (QEMU reports (v<<1)|1;
 * hv passes v through so that a guest's 0 is a process's 0). Low bytes of 124 and up become
 * HV_EXIT_GUEST_HIGH (vm.h): the guest must not be able to fake hv's own statuses. */
#include <stdio.h>

#include "devices/legacy.h"
#include "hv/vm.h"

static void debug_exit_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	uint32_t v = 0;
	char why[128];

	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0xff;
		return;
	}
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	int status = (int)(v & 0xff);
	if (status >= HV_EXIT_GUEST_HIGH) {
		snprintf(why, sizeof(why), "guest exited with status %u (exit status %d: %d-255 are reported as %d)",
			 v, HV_EXIT_GUEST_HIGH, HV_EXIT_GUEST_HIGH, HV_EXIT_GUEST_HIGH);
		status = HV_EXIT_GUEST_HIGH;
	} else {
		snprintf(why, sizeof(why), "guest exited with status %u", v);
	}
	vm_request_stop(vm, status, why);
}

int debug_exit_create(struct vm *vm)
{
	return bus_register(&vm->pio, DEBUG_EXIT_PORT, 4, debug_exit_io, vm, "debug-exit");
}
