/* Boot loaders: put a kernel (and initrd, cmdline) into guest RAM and say how to enter it.
 * Images are untrusted input: every offset and size is checked against the file and RAM. */
#ifndef HV_BOOT_H
#define HV_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "hv/guest_mem.h"

enum boot_mode {
	BOOT_PVH32,   /* 32-bit protected mode, paging off, EBX = hvm_start_info */
	BOOT_LINUX64, /* 64-bit long mode on identity page tables, RSI = boot_params */
};

struct boot_params_in {
	const uint8_t *kernel; /* whole kernel file */
	size_t kernel_len;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_len;
	const char *cmdline;   /* may be NULL */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t entry;     /* guest-physical entry point */
	uint64_t info_addr; /* hvm_start_info (EBX) or boot_params (RSI) */
	uint64_t kernel_end; /* first byte after the loaded image */
};

/* Recognisers: 1 if the file is of that kind (by magic), else 0. */
int boot_is_pvh_elf(const uint8_t *img, size_t len);
int boot_is_bzimage(const uint8_t *img, size_t len);

/* Load by kind (PVH ELF or bzImage). 0, or -1 with one hv_error line naming the cause. */
int boot_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out);
int boot_load_pvh(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out);
int boot_load_bzimage(struct guest_mem *m, const struct boot_params_in *in,
		      struct boot_entry *out);

/* Helpers shared by the loaders (hv/boot.c). Each prints its own hv_error line. */
/* End of the RAM below the 32-bit MMIO hole. */
uint64_t boot_low_ram_end(const struct guest_mem *m);
/* Writes the command line (NULL = empty) NUL-terminated at BOOT_CMDLINE_ADDR; refuses one
 * longer than max_len characters (limit_what names whose limit that is). 0 or -1. */
int boot_write_cmdline(struct guest_mem *m, const char *cmdline, uint64_t max_len,
		       const char *limit_what);
/* Copies the initrd page-aligned as high as possible below `limit` (exclusive) and not
 * below `floor`; *addr = its guest-physical address. 0 or -1. */
int boot_place_initrd(struct guest_mem *m, const uint8_t *initrd, size_t len, uint64_t floor,
		      uint64_t limit, uint64_t *addr);

#endif
