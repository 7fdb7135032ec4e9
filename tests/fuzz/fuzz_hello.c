/* libFuzzer target for the JSON records a destination parses before any page moves: the
 * HELLO (name, uuid, host, memory, vCPUs, caps, cpuid, devices, ram) and the HELLO_REPLY a
 * source parses. The input is the record's payload as it arrives; whatever it holds, the
 * parser must return 0 or -1 with a reason, never crash, abort or read out of bounds. The
 * first byte picks the record (even: HELLO, odd: HELLO_REPLY), the rest is the payload. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* ~100 KiB: on the heap, as the receiver has it. */
	static struct wire_hello *h;
	struct wire_hello_reply r;
	char err[256];

	if (size < 1)
		return 0;
	if (!h && !(h = malloc(sizeof(*h))))
		abort();
	if (data[0] % 2 == 0) {
		if (wire_parse_hello(data + 1, size - 1, h, err, sizeof(err)) == 0) {
			/* What the destination then trusts: the bounds the parser promises. */
			if (h->ncpuid > WIRE_CPUID_MAX || h->nram > WIRE_RAM_RANGES_MAX ||
			    strnlen(h->devices_json, sizeof(h->devices_json)) == sizeof(h->devices_json))
				abort();
			for (uint32_t i = 0; i < h->nram; i++)
				if (h->ram[i].gfn + h->ram[i].npages > h->mem_size / WIRE_PAGE_SIZE)
					abort();
		}
	} else {
		wire_parse_hello_reply(data + 1, size - 1, &r, err, sizeof(err));
	}
	return 0;
}
