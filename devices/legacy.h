/* Small legacy devices: QEMU-compatible debug-exit (0xf4), i8042 reset (0x60/0x64),
 * and a sink for port 0x80 (POST codes / I/O delay). */
#ifndef DEVICES_LEGACY_H
#define DEVICES_LEGACY_H

struct vm;

#define DEBUG_EXIT_PORT 0xf4

/* Registers all of them on vm->pio. 0 or -1. */
int legacy_devices_create(struct vm *vm);
int debug_exit_create(struct vm *vm);
int i8042_create(struct vm *vm);

#endif
