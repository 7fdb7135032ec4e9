/* A VM without KVM for device unit tests: guest RAM (default backing), the PIO and MMIO buses,
 * vm_fd = -1 (so devices skip KVM ioctls: interrupts reach only their eventfds). */
#ifndef TESTS_UNIT_FAKE_VM_H
#define TESTS_UNIT_FAKE_VM_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/vm.h"

/* Sets up a VM object that lives elsewhere (a struct machine's, for migration code), its RAM
 * backed as `spec` says (NULL: the default). 0 or -1. */
static inline int fake_vm_init(struct vm *vm, uint64_t mem_size, const struct guest_mem_spec *spec)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	snprintf(vm->name, sizeof(vm->name), "test");
	snprintf(vm->uuid, sizeof(vm->uuid), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	bus_init(&vm->pio);
	bus_init(&vm->mmio);
	if (guest_mem_create_spec(&vm->mem, mem_size, spec) < 0) {
		bus_destroy(&vm->pio);
		bus_destroy(&vm->mmio);
		return -1;
	}
	return 0;
}

static inline void fake_vm_fini(struct vm *vm)
{
	guest_mem_destroy(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
}

static inline struct vm *fake_vm_create_spec(uint64_t mem_size, const struct guest_mem_spec *spec)
{
	struct vm *vm = malloc(sizeof(*vm));

	if (vm && fake_vm_init(vm, mem_size, spec) < 0) {
		free(vm);
		return NULL;
	}
	return vm;
}

static inline struct vm *fake_vm_create(uint64_t mem_size)
{
	return fake_vm_create_spec(mem_size, NULL);
}

static inline void fake_vm_destroy(struct vm *vm)
{
	fake_vm_fini(vm);
	free(vm);
}

static inline uint64_t bus_read(struct bus *b, uint64_t addr, uint32_t len)
{
	uint8_t data[8] = { 0 };
	uint64_t v = 0;

	bus_dispatch(b, addr, data, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static inline bool bus_write(struct bus *b, uint64_t addr, uint32_t len, uint64_t v)
{
	uint8_t data[8];

	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	return bus_dispatch(b, addr, data, len, true);
}

/* Config cycles through the conf1 ports, as a guest does them. */
static inline uint32_t conf1_read(struct vm *vm, int slot, int off, int len)
{
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u | (uint32_t)slot << 11 | (uint32_t)(off & 0xfc));
	return (uint32_t)bus_read(&vm->pio, 0xcfc + (off & 3), (uint32_t)len);
}

static inline void conf1_write(struct vm *vm, int slot, int off, int len, uint32_t v)
{
	bus_write(&vm->pio, 0xcf8, 4, 0x80000000u | (uint32_t)slot << 11 | (uint32_t)(off & 0xfc));
	bus_write(&vm->pio, 0xcfc + (off & 3), (uint32_t)len, v);
}

/* Waits up to `ms` for an eventfd to become readable and consumes it; true if it did. */
static inline bool eventfd_wait(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v);
}

#endif
