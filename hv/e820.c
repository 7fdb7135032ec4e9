/* The e820 memory map hv gives the guest (through boot_params or the PVH memmap).
 *
 *   [0, EBDA_START)             RAM (real-mode area, hv's boot structures)
 *   [EBDA_START, BIOS_END)      reserved (EBDA, VGA hole, BIOS area with the MP table)
 *   [BIOS_END, low end)         RAM
 *   [MMIO_HOLE_START, 4 GiB)    not listed: the gap is where Linux looks for PCI space
 *   [HIGH_RAM_START, + high)    RAM
 */
#include "hv/x86_tables.h"

#include "hv/layout.h"

static int add(struct e820_entry *out, int n, uint64_t addr, uint64_t end, uint32_t type)
{
	if (end <= addr)
		return n;
	out[n].addr = addr;
	out[n].size = end - addr;
	out[n].type = type;
	return n + 1;
}

int e820_build(const struct guest_mem *m, struct e820_entry *out)
{
	uint64_t low = m->low_size < MMIO_HOLE_START ? m->low_size : MMIO_HOLE_START;
	int n = 0;

	n = add(out, n, 0, low < EBDA_START ? low : EBDA_START, E820_RAM);
	n = add(out, n, EBDA_START, BIOS_END, E820_RESERVED);
	n = add(out, n, BIOS_END, low, E820_RAM);
	if (m->high_size)
		n = add(out, n, HIGH_RAM_START, HIGH_RAM_START + m->high_size, E820_RAM);
	return n;
}
