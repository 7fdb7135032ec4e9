#include "devices/legacy.h"

#include "hv/log.h"
#include "hv/vm.h"

/* Port 0x80 takes POST codes and I/O-delay writes; claiming it keeps them off the log. */
static void port80_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0xff;
}

int legacy_devices_create(struct vm *vm)
{
	if (debug_exit_create(vm) < 0 || i8042_create(vm) < 0 ||
	    bus_register(&vm->pio, 0x80, 1, port80_io, vm, "post") < 0) {
		hv_error("legacy devices: a port range is already taken");
		return -1;
	}
	return 0;
}
