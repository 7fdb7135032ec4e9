/* The PIO/MMIO bus: devices register address ranges; vCPU exits are dispatched here.
 * Registration happens before vCPUs start; dispatch is lock-free and may run on any
 * vCPU thread at once, so each device protects its own state. */
#ifndef HV_BUS_H
#define HV_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* `offset` is relative to the registered base; `data` holds `len` (1..8) bytes,
 * little-endian; on a read the handler fills it. */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			       bool is_write);

struct bus_region {
	uint64_t base, len;
	bus_handler_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_region *regions; /* sorted by base, never overlapping */
	int count, cap;
};

void bus_init(struct bus *b);
void bus_destroy(struct bus *b);
/* 0, or -EEXIST if the range overlaps a registered one, -EINVAL for an empty or wrapping range. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name);
int bus_unregister(struct bus *b, uint64_t base);
/* true if a device took the access. Unclaimed reads return all ones in `data`. */
bool bus_dispatch(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
