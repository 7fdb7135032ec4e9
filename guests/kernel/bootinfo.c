/* hv-guest: reads the loader's boot information.
 *  PVH:   struct hvm_start_info at EBX (magic 0x336ec578); memory map from version 1 on.
 *  Linux: struct boot_params ("zero page") at ESI/RSI: cmd_line_ptr (0x228, high bits at
 *         0x0c8), e820_entries (0x1e8), e820_table (0x2d0, 20-byte entries). */
#include "bootinfo.h"

#include "layout.h"
#include "lib.h"
#include "print.h"
#include "sys.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

struct bootinfo boot;

const char *boot_mode_name(int mode)
{
	return mode == BOOT_PVH ? "pvh" : mode == BOOT_LINUX ? "linux" : "unknown";
}

static void add_busy(struct bootinfo *bi, uint64_t start, uint64_t len)
{
	if (start && len && bi->nbusy < BOOT_MAX_BUSY) {
		bi->busy[bi->nbusy].start = start;
		bi->busy[bi->nbusy].end = start + len;
		bi->nbusy++;
	}
}

static void add_region(struct bootinfo *bi, uint64_t addr, uint64_t size, uint32_t type)
{
	if (bi->nregions < BOOT_MAX_REGIONS && size) {
		bi->regions[bi->nregions].addr = addr;
		bi->regions[bi->nregions].size = size;
		bi->regions[bi->nregions].type = type;
		bi->nregions++;
	}
}

static void set_cmdline(struct bootinfo *bi, uint64_t pa)
{
	/* The command line must lie in the identity-mapped 4 GiB. */
	if (pa && pa < 0x100000000ULL) {
		bi->cmdline = (const char *)(uintptr_t)pa;
		add_busy(bi, pa, strlen(bi->cmdline) + 1);
	} else {
		bi->cmdline = "";
	}
}

static void parse_pvh(struct bootinfo *bi, const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC) {
		kprintf("hv-guest: bad hvm_start_info magic 0x%x at %p\n", si->magic, si);
		guest_exit(EXIT_PLATFORM);
	}
	add_busy(bi, (uintptr_t)si, sizeof(*si));
	set_cmdline(bi, si->cmdline_paddr);
	bi->rsdp = si->rsdp_paddr;
	if (si->nr_modules)
		add_busy(bi, si->modlist_paddr, si->nr_modules * 32ULL);
	if (si->version >= 1 && si->memmap_paddr && si->memmap_entries) {
		const struct hvm_memmap_entry *e =
			(const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
		add_busy(bi, si->memmap_paddr, si->memmap_entries * sizeof(*e));
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			add_region(bi, e[i].addr, e[i].size, e[i].type);
	}
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void parse_linux(struct bootinfo *bi, const uint8_t *bp)
{
	uint64_t cmd = rd32(bp + BP_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	unsigned n = bp[BP_E820_ENTRIES];

	add_busy(bi, (uintptr_t)bp, 4096);
	set_cmdline(bi, cmd);
	bi->rsdp = rd64(bp + BP_ACPI_RSDP_ADDR);
	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		add_region(bi, rd64(e), rd64(e + 8), rd32(e + 16));
	}
}

void bootinfo_parse(struct bootinfo *bi)
{
	bi->mode = (int)boot_mode;
	bi->cmdline = "";
	if (!boot_info || boot_info >= 0x100000000ULL) {
		kprintf("hv-guest: no boot information (mode %d, pointer 0x%lx)\n", bi->mode,
			boot_info);
		guest_exit(EXIT_PLATFORM);
	}
	if (bi->mode == BOOT_PVH)
		parse_pvh(bi, (const struct hvm_start_info *)(uintptr_t)boot_info);
	else
		parse_linux(bi, (const uint8_t *)(uintptr_t)boot_info);
	if (!bi->nregions)
		kprintf("hv-guest: warning: the loader gave no memory map\n");
}
