/* Boot loader dispatch (by magic) and the pieces both loaders share: the command line and
 * the initrd placement. */
#include "hv/boot.h"

#include <string.h>

#include "hv/layout.h"
#include "hv/log.h"

static int is_elf(const uint8_t *img, size_t len)
{
	return len >= 4 && memcmp(img, "\x7f" "ELF", 4) == 0;
}

int boot_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out)
{
	/* Any ELF goes to the PVH loader, which names precisely what is wrong with it (no
	 * XEN_ELFNOTE_PHYS32_ENTRY note, a truncated header, ...). */
	if (is_elf(in->kernel, in->kernel_len))
		return boot_load_pvh(m, in, out);
	if (boot_is_bzimage(in->kernel, in->kernel_len))
		return boot_load_bzimage(m, in, out);
	hv_error("kernel: not a PVH ELF kernel nor a bzImage (%zu bytes, no ELF or HdrS "
		 "magic); pass a vmlinux built with CONFIG_PVH=y or an x86 bzImage",
		 in->kernel_len);
	return -1;
}

uint64_t boot_low_ram_end(const struct guest_mem *m)
{
	return m->low_size < MMIO_HOLE_START ? m->low_size : MMIO_HOLE_START;
}

int boot_write_cmdline(struct guest_mem *m, const char *cmdline, uint64_t max_len,
		       const char *limit_what)
{
	size_t len;

	if (!cmdline)
		cmdline = "";
	len = strlen(cmdline);
	if (max_len > BOOT_CMDLINE_MAX - 1)
		max_len = BOOT_CMDLINE_MAX - 1;
	if (len > max_len) {
		hv_error("kernel command line is %zu bytes; %s accepts at most %llu; shorten "
			 "--cmdline", len, limit_what, (unsigned long long)max_len);
		return -1;
	}
	if (guest_mem_write(m, BOOT_CMDLINE_ADDR, cmdline, len + 1) < 0) {
		hv_error("guest RAM does not cover the command line at 0x%llx; give the VM more "
			 "memory (--mem)", (unsigned long long)BOOT_CMDLINE_ADDR);
		return -1;
	}
	return 0;
}

int boot_place_initrd(struct guest_mem *m, const uint8_t *initrd, size_t len, uint64_t floor,
		      uint64_t limit, uint64_t *addr)
{
	uint64_t top = limit < boot_low_ram_end(m) ? limit : boot_low_ram_end(m);
	uint64_t at;

	if (floor > UINT64_MAX - (PAGE_SIZE - 1)) {
		floor = UINT64_MAX; /* nothing fits */
	} else {
		floor = (floor + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	}
	if ((uint64_t)len > top || ((top - len) & ~(PAGE_SIZE - 1)) < floor) {
		hv_error("initrd (%zu bytes) does not fit in guest RAM between the kernel's end "
			 "(0x%llx) and 0x%llx; give the VM more memory (--mem) or use a smaller "
			 "initrd", len, (unsigned long long)floor, (unsigned long long)top);
		return -1;
	}
	at = (top - len) & ~(PAGE_SIZE - 1);
	if (guest_mem_write(m, at, initrd, len) < 0) {
		hv_error("initrd at 0x%llx+0x%zx is outside guest RAM; give the VM more memory "
			 "(--mem)", (unsigned long long)at, len);
		return -1;
	}
	*addr = at;
	return 0;
}
