/* Linux bzImage, 64-bit boot protocol (Documentation/arch/x86/boot.rst).
 *
 * The file is: boot sector + setup (setup_sects sectors, real-mode code, with the setup
 * header at 0x1f1), then the protected-mode kernel. hv skips the real-mode part: it loads
 * the protected-mode kernel at KERNEL_LOAD_ADDR, builds boot_params (the "zero page") at
 * BOOT_INFO_ADDR from the file's setup header, and the VMM enters at load address + 0x200 in
 * long mode with RSI = boot_params.
 *
 * Offsets below are those of struct boot_params / struct setup_header in the boot protocol. */
#include "hv/boot.h"

#include <stdbool.h>
#include <string.h>

#include "hv/layout.h"
#include "hv/log.h"
#include "hv/x86_tables.h"

#define BP_SIZE 4096
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1           /* setup header: from here ... */
#define BP_HDR_SPACE_END 0x290 /* ... at most to here (edd_mbr_sig_buffer follows) */
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200 /* the byte at 0x201 is the header's length past 0x202 */
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_SETUP_DATA 0x250
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_MIN_END 0x264 /* through init_size: what protocol 2.12 guarantees */

#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01
#define TYPE_OF_LOADER_UNDEFINED 0xff
#define HEAP_END 0xfe00 /* usual value; only the real-mode setup code uses the heap */
#define MIN_PROTOCOL 0x020c
#define DEFAULT_INITRD_ADDR_MAX 0x37ffffffULL
#define ENTRY_64_OFFSET 0x200

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

int boot_is_bzimage(const uint8_t *img, size_t len)
{
	return img && len >= HDR_MAGIC + 4 && rd16(img + HDR_BOOT_FLAG) == 0xaa55 &&
	       memcmp(img + HDR_MAGIC, "HdrS", 4) == 0;
}

/* Where the kernel runs, which is where it decompresses to: a relocatable kernel moves to
 * the load address rounded up to kernel_alignment but not below pref_address
 * (LOAD_PHYSICAL_ADDR); a fixed one runs at pref_address. */
static uint64_t runtime_start(const uint8_t *img)
{
	uint64_t pref = rd64(img + HDR_PREF_ADDRESS);
	uint32_t align = rd32(img + HDR_KERNEL_ALIGNMENT);
	uint64_t start = KERNEL_LOAD_ADDR;

	if (pref < KERNEL_LOAD_ADDR || pref >= MMIO_HOLE_START)
		pref = KERNEL_LOAD_ADDR;
	if (img[HDR_RELOCATABLE] && align && (align & (align - 1)) == 0 && align <= GiB)
		start = (KERNEL_LOAD_ADDR + align - 1) & ~((uint64_t)align - 1);
	return start > pref ? start : pref;
}

static void fill_e820(const struct guest_mem *m, uint8_t *bp)
{
	struct e820_entry map[E820_MAX];
	int n = e820_build(m, map);

	_Static_assert(E820_MAX <= BP_E820_MAX, "boot_params e820 table size");
	_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry layout");
	memcpy(bp + BP_E820_TABLE, map, (size_t)n * sizeof(map[0]));
	bp[BP_E820_ENTRIES] = (uint8_t)n;
}

int boot_load_bzimage(struct guest_mem *m, const struct boot_params_in *in,
		      struct boot_entry *out)
{
	const uint8_t *img = in->kernel;
	const size_t len = in->kernel_len;
	uint8_t bp[BP_SIZE];
	uint64_t hdr_end, pm_off, pm_len, need_end, start, init_size, initrd_max;
	uint64_t initrd_addr = 0, low_end = boot_low_ram_end(m);
	unsigned setup_sects;
	uint16_t version;

	if (!boot_is_bzimage(img, len)) {
		hv_error("kernel: not a bzImage (no HdrS setup header); pass an x86 bzImage");
		return -1;
	}
	hdr_end = HDR_MAGIC + (uint64_t)img[HDR_JUMP + 1];
	if (len < HDR_VERSION + 2 || hdr_end > len) {
		hv_error("kernel bzImage: file (%zu bytes) ends inside its setup header; the file "
			 "is truncated", len);
		return -1;
	}
	version = rd16(img + HDR_VERSION);
	if (version < MIN_PROTOCOL) {
		hv_error("kernel bzImage: boot protocol %u.%02u is too old; hv needs 2.12 or newer "
			 "(Linux 3.8 or later)", version >> 8, version & 0xff);
		return -1;
	}
	if (hdr_end < HDR_MIN_END) {
		hv_error("kernel bzImage: setup header ends at 0x%llx, too short for boot protocol "
			 "%u.%02u; the file is corrupt", (unsigned long long)hdr_end, version >> 8,
			 version & 0xff);
		return -1;
	}
	if (!(rd16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		hv_error("kernel bzImage: no 64-bit entry point (XLF_KERNEL_64 not set); pass a "
			 "64-bit kernel (CONFIG_X86_64=y)");
		return -1;
	}
	if (!(img[HDR_LOADFLAGS] & LOADED_HIGH)) {
		hv_error("kernel bzImage: a zImage (not loaded high) is not supported; pass a "
			 "bzImage");
		return -1;
	}
	setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
	pm_off = ((uint64_t)setup_sects + 1) * 512;
	if (pm_off >= len) {
		hv_error("kernel bzImage: setup_sects=%u puts the kernel at offset %llu, beyond the "
			 "%zu-byte file; the file is truncated or corrupt", setup_sects,
			 (unsigned long long)pm_off, len);
		return -1;
	}
	pm_len = len - pm_off;

	start = runtime_start(img);
	init_size = rd32(img + HDR_INIT_SIZE);
	need_end = KERNEL_LOAD_ADDR + pm_len;
	if (start + init_size > need_end)
		need_end = start + init_size;
	if (need_end > low_end) {
		hv_error("kernel bzImage: needs guest RAM up to 0x%llx (%llu MiB: 0x%llx bytes of "
			 "kernel, init_size 0x%llx at 0x%llx) but the VM has %llu MiB below 3 GiB; "
			 "give it more memory (--mem)", (unsigned long long)need_end,
			 (unsigned long long)((need_end + MiB - 1) / MiB),
			 (unsigned long long)pm_len, (unsigned long long)init_size,
			 (unsigned long long)start, (unsigned long long)(low_end / MiB));
		return -1;
	}

	/* The zero page: the file's setup header, the rest zero, then hv's fields. */
	memset(bp, 0, sizeof(bp));
	if (hdr_end > BP_HDR_SPACE_END)
		hdr_end = BP_HDR_SPACE_END;
	memcpy(bp + BP_HDR, img + BP_HDR, hdr_end - BP_HDR);
	bp[HDR_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED;
	bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	wr16(bp + HDR_HEAP_END_PTR, HEAP_END);
	wr64(bp + HDR_SETUP_DATA, 0); /* no setup_data chain */
	wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	wr32(bp + BP_EXT_CMD_LINE_PTR, 0);
	wr32(bp + HDR_RAMDISK_IMAGE, 0);
	wr32(bp + HDR_RAMDISK_SIZE, 0);

	if (guest_mem_write(m, KERNEL_LOAD_ADDR, img + pm_off, pm_len) < 0) {
		hv_error("kernel bzImage: guest RAM does not hold the %llu-byte kernel at 0x%llx; "
			 "give the VM more memory (--mem)", (unsigned long long)pm_len,
			 (unsigned long long)KERNEL_LOAD_ADDR);
		return -1;
	}
	if (boot_write_cmdline(m, in->cmdline, rd32(img + HDR_CMDLINE_SIZE), "this kernel") < 0)
		return -1;
	if (in->initrd && in->initrd_len) {
		initrd_max = rd32(img + HDR_INITRD_ADDR_MAX);
		if (!initrd_max)
			initrd_max = DEFAULT_INITRD_ADDR_MAX;
		if (boot_place_initrd(m, in->initrd, in->initrd_len, need_end, initrd_max + 1,
				      &initrd_addr) < 0)
			return -1;
		wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
		wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)in->initrd_len);
		wr32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_addr >> 32));
		wr32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)in->initrd_len >> 32));
	}
	fill_e820(m, bp);
	if (guest_mem_write(m, BOOT_INFO_ADDR, bp, sizeof(bp)) < 0) {
		hv_error("guest RAM does not cover boot_params at 0x%llx; give the VM more memory "
			 "(--mem)", (unsigned long long)BOOT_INFO_ADDR);
		return -1;
	}

	out->mode = BOOT_LINUX64;
	out->entry = KERNEL_LOAD_ADDR + ENTRY_64_OFFSET;
	out->info_addr = BOOT_INFO_ADDR;
	out->kernel_end = need_end;
	return 0;
}
