/* hv-guest: what the loader told us: PVH hvm_start_info or Linux boot_params. */
#ifndef HVG_BOOTINFO_H
#define HVG_BOOTINFO_H

#include <stdint.h>

#define E820_RAM 1
#define BOOT_MAX_REGIONS 128
#define BOOT_MAX_BUSY 8

struct mem_region {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct bootinfo {
	int mode;               /* BOOT_PVH or BOOT_LINUX */
	const char *cmdline;    /* never NULL */
	uint64_t rsdp;          /* ACPI RSDP from the loader, 0 if not given */
	int nregions;
	struct mem_region regions[BOOT_MAX_REGIONS];
	/* Loader structures that must survive (cmdline, info, memory map), so the AP
	 * trampoline page is not put on top of them. [start, end) */
	int nbusy;
	struct {
		uint64_t start, end;
	} busy[BOOT_MAX_BUSY];
};

extern struct bootinfo boot;
extern uint32_t boot_mode; /* set by entry.S */
extern uint64_t boot_info; /* EBX (PVH) or ESI/RSI (Linux) at entry */

/* Parses the structure the loader passed; prints and exits (EXIT_PLATFORM) if invalid. */
void bootinfo_parse(struct bootinfo *bi);
const char *boot_mode_name(int mode);

#endif
