/* The PIO/MMIO bus: devices register address ranges; vCPU exits are dispatched here.
 * Dispatch may run on every vCPU thread at once, so each device protects its own state.
 * A read-write lock makes registration safe while vCPUs run (PCI BARs move at run time):
 * dispatch holds it shared for the lookup and the handler call, bus_register and
 * bus_unregister hold it exclusively. So when bus_unregister returns, no vCPU is still
 * inside the removed region's handler, and its opaque may be freed.
 * A handler must never register or unregister on the bus that is dispatching to it
 * (that would deadlock); a PIO handler may change the MMIO bus and vice versa, but only
 * in that one direction (PCI config on PIO moves BARs on MMIO; no MMIO handler touches
 * the PIO bus's regions). */
#ifndef HV_BUS_H
#define HV_BUS_H

#include <pthread.h>
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
	pthread_rwlock_t lock;      /* shared by dispatch, exclusive by (un)register */
	struct bus_region *regions; /* sorted by base, never overlapping */
	int count, cap;
};

void bus_init(struct bus *b);
void bus_destroy(struct bus *b);
/* 0, or -EEXIST if the range overlaps a registered one, -EINVAL for an empty or wrapping range. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name);
/* 0, or -ENOENT if no region starts at `base`. Waits for in-flight dispatches to finish. */
int bus_unregister(struct bus *b, uint64_t base);
/* true if a device took the access. Unclaimed reads return all ones in `data`; an access
 * that straddles the end of a region is unclaimed. */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
