/* Just enough of the i8042 keyboard controller for a guest to reset the machine
 * (command 0xfe on port 0x64, what Linux's reboot=k uses). */
#include "devices/legacy.h"
#include "hv/vm.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe

static void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	if (!is_write) {
		/* Status 0: output buffer empty, input buffer empty (ready for commands). */
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0;
		return;
	}
}

static void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write && data[0] == I8042_CMD_RESET)
		vm_request_stop(opaque, 0, "guest reset the machine (i8042)");
	else
		i8042_io(opaque, offset, data, len, is_write);
}

int i8042_create(struct vm *vm)
{
	if (bus_register(&vm->pio, I8042_DATA, 1, i8042_io, vm, "i8042-data") < 0)
		return -1;
	/* Offsets are relative to each registration: the command port sees offset 0. */
	return bus_register(&vm->pio, I8042_CMD, 1, i8042_cmd_io, vm, "i8042-cmd");
}
