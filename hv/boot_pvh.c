/* PVH boot: an ELF kernel (ELF64 or ELF32, x86) with a XEN_ELFNOTE_PHYS32_ENTRY note is
 * entered in 32-bit protected mode, paging off, with EBX = struct hvm_start_info.
 *
 * Guest memory written here:
 *   PT_LOAD segments at p_paddr (p_filesz copied, the rest of p_memsz zeroed)
 *   BOOT_INFO_ADDR        hvm_start_info, then the module list
 *   BOOT_MEMMAP_ADDR      hvm_memmap_table_entry[] (the e820 map)
 *   BOOT_CMDLINE_ADDR     the command line
 *   top of low RAM        the initrd, module 0
 *
 * The image is untrusted: headers are copied out with memcpy (no unaligned access into the
 * file), every offset and size is checked against the file with overflow-safe arithmetic,
 * and every destination against guest RAM. */
#include "hv/boot.h"

#include <elf.h>
#include <stdbool.h>
#include <string.h>

#include "hv/layout.h"
#include "hv/log.h"
#include "hv/x86_tables.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define XEN_HVM_START_MAGIC 0x336ec578
#define PVH_MAX_MODULES 1

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

#define MODLIST_ADDR (BOOT_INFO_ADDR + sizeof(struct hvm_start_info))

/* The ELF headers that matter, class-independent. */
struct elf_hdr {
	bool is64;
	uint16_t type;
	uint64_t phoff, shoff;
	uint16_t phentsize, phnum, shentsize, shnum;
};

struct elf_seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

/* Memory hv itself uses before the kernel runs: GDT, page tables, boot info, memory map,
 * command line; and the EBDA/BIOS area holding the MP table. Segments must stay clear. */
static const struct {
	uint64_t start, end;
} reserved_ranges[] = {
	{ 0, BOOT_CMDLINE_ADDR + BOOT_CMDLINE_MAX },
	{ EBDA_START, BIOS_END },
};

/* [off, off+size) lies inside a buffer of len bytes. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static int parse_ehdr(const uint8_t *img, size_t len, struct elf_hdr *h, bool verbose)
{
	if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG) != 0) {
		if (verbose)
			hv_error("kernel: not an ELF file");
		return -1;
	}
	if (img[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr e;

		if (len < sizeof(e))
			goto truncated;
		memcpy(&e, img, sizeof(e));
		if (e.e_machine != EM_X86_64)
			goto machine;
		h->is64 = true;
		h->type = e.e_type;
		h->phoff = e.e_phoff;
		h->shoff = e.e_shoff;
		h->phentsize = e.e_phentsize;
		h->phnum = e.e_phnum;
		h->shentsize = e.e_shentsize;
		h->shnum = e.e_shnum;
	} else if (img[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr e;

		if (len < sizeof(e))
			goto truncated;
		memcpy(&e, img, sizeof(e));
		if (e.e_machine != EM_386)
			goto machine;
		h->is64 = false;
		h->type = e.e_type;
		h->phoff = e.e_phoff;
		h->shoff = e.e_shoff;
		h->phentsize = e.e_phentsize;
		h->phnum = e.e_phnum;
		h->shentsize = e.e_shentsize;
		h->shnum = e.e_shnum;
	} else {
		if (verbose)
			hv_error("kernel ELF: unknown ELF class %u; pass an x86 kernel",
				 img[EI_CLASS]);
		return -1;
	}
	if (img[EI_DATA] != ELFDATA2LSB) {
		if (verbose)
			hv_error("kernel ELF: not little-endian; pass an x86 kernel");
		return -1;
	}
	if (h->type != ET_EXEC) {
		if (verbose)
			hv_error("kernel ELF: type %u is not an executable (ET_EXEC); link the kernel "
				 "as a static, non-PIE executable", h->type);
		return -1;
	}
	if (h->phnum == 0 ||
	    h->phentsize < (h->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) ||
	    !in_file(h->phoff, (uint64_t)h->phnum * h->phentsize, len)) {
		if (verbose)
			hv_error("kernel ELF: program header table (offset 0x%llx, %u entries of %u "
				 "bytes) is missing or outside the %zu-byte file; the file is "
				 "truncated or corrupt", (unsigned long long)h->phoff, h->phnum,
				 h->phentsize, len);
		return -1;
	}
	return 0;
truncated:
	if (verbose)
		hv_error("kernel ELF: file is %zu bytes, shorter than its ELF header; the file is "
			 "truncated", len);
	return -1;
machine:
	if (verbose)
		hv_error("kernel ELF: not an x86 %s executable; pass an x86 kernel",
			 img[EI_CLASS] == ELFCLASS64 ? "64-bit" : "32-bit");
	return -1;
}

/* Program header i; the table was checked against the file by parse_ehdr. */
static void get_phdr(const uint8_t *img, const struct elf_hdr *h, unsigned i, struct elf_seg *s)
{
	const uint8_t *p = img + h->phoff + (uint64_t)i * h->phentsize;

	if (h->is64) {
		Elf64_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		*s = (struct elf_seg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz,
				       ph.p_memsz, ph.p_align };
	} else {
		Elf32_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		*s = (struct elf_seg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz,
				       ph.p_memsz, ph.p_align };
	}
}

/* Section header i as a segment-like record (type = sh_type); false if out of the file. */
static bool get_shdr(const uint8_t *img, size_t len, const struct elf_hdr *h, unsigned i,
		     struct elf_seg *s)
{
	size_t need = h->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
	uint64_t off;

	if (h->shentsize < need || h->shoff > len ||
	    i >= (len - h->shoff) / h->shentsize)
		return false;
	off = h->shoff + (uint64_t)i * h->shentsize;
	if (h->is64) {
		Elf64_Shdr sh;

		memcpy(&sh, img + off, sizeof(sh));
		*s = (struct elf_seg){ sh.sh_type, sh.sh_offset, 0, sh.sh_size, sh.sh_size,
				       sh.sh_addralign };
	} else {
		Elf32_Shdr sh;

		memcpy(&sh, img + off, sizeof(sh));
		*s = (struct elf_seg){ sh.sh_type, sh.sh_offset, 0, sh.sh_size, sh.sh_size,
				       sh.sh_addralign };
	}
	return true;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Walks the notes in img[off, off+size): 1 and *entry if the PVH entry note is there,
 * 0 if not, -1 if a note is malformed (message if verbose). */
static int scan_notes(const uint8_t *img, uint64_t off, uint64_t size, uint64_t align,
		      uint64_t *entry, bool verbose)
{
	const uint8_t *p = img + off;
	const uint64_t a = align == 8 ? 8 : 4; /* notes are 4-aligned except 8-aligned ones */
	uint64_t pos = 0;

	while (size - pos >= 12) {
		uint32_t namesz = rd32(p + pos), descsz = rd32(p + pos + 4);
		uint32_t type = rd32(p + pos + 8);
		uint64_t name_off = pos + 12;
		uint64_t desc_off = name_off + ((namesz + a - 1) & ~(a - 1));
		uint64_t next = desc_off + ((descsz + a - 1) & ~(a - 1));

		if (namesz > size - name_off || desc_off > size || descsz > size - desc_off) {
			if (verbose)
				hv_error("kernel ELF: note at file offset 0x%llx (name size %u, "
					 "value size %u) overruns its note area; the file is corrupt",
					 (unsigned long long)(off + pos), namesz, descsz);
			return -1;
		}
		if (type == XEN_ELFNOTE_PHYS32_ENTRY &&
		    ((namesz == 4 && memcmp(p + name_off, "Xen", 4) == 0) ||
		     (namesz == 3 && memcmp(p + name_off, "Xen", 3) == 0))) {
			if (descsz == 4) {
				*entry = rd32(p + desc_off);
			} else if (descsz == 8) {
				memcpy(entry, p + desc_off, 8);
			} else {
				if (verbose)
					hv_error("kernel ELF: XEN_ELFNOTE_PHYS32_ENTRY has a %u-byte "
						 "value, expected 4 or 8; the kernel is corrupt",
						 descsz);
				return -1;
			}
			return 1;
		}
		if (next >= size)
			break;
		pos = next;
	}
	return 0;
}

/* Finds the PVH entry in PT_NOTE segments, else in SHT_NOTE sections. 1, 0 or -1. */
static int find_pvh_entry(const uint8_t *img, size_t len, const struct elf_hdr *h,
			  uint64_t *entry, bool verbose)
{
	struct elf_seg s;
	int r;

	for (unsigned i = 0; i < h->phnum; i++) {
		get_phdr(img, h, i, &s);
		if (s.type != PT_NOTE)
			continue;
		if (!in_file(s.offset, s.filesz, len)) {
			if (verbose)
				hv_error("kernel ELF: note segment %u (offset 0x%llx, 0x%llx bytes) "
					 "lies outside the %zu-byte file; the file is truncated or "
					 "corrupt", i, (unsigned long long)s.offset,
					 (unsigned long long)s.filesz, len);
			return -1;
		}
		r = scan_notes(img, s.offset, s.filesz, s.align, entry, verbose);
		if (r != 0)
			return r;
	}
	/* Sections are optional for loading: a broken section table is not an error, it
	 * just has no note to offer. */
	if (h->shoff == 0)
		return 0;
	for (unsigned i = 0; i < h->shnum && get_shdr(img, len, h, i, &s); i++) {
		if (s.type != SHT_NOTE || !in_file(s.offset, s.filesz, len))
			continue;
		if (scan_notes(img, s.offset, s.filesz, s.align, entry, false) == 1)
			return 1;
	}
	return 0;
}

int boot_is_pvh_elf(const uint8_t *img, size_t len)
{
	struct elf_hdr h;
	uint64_t entry;

	if (!img || parse_ehdr(img, len, &h, false) < 0)
		return 0;
	return find_pvh_entry(img, len, &h, &entry, false) == 1;
}

/* Checks every PT_LOAD against the file, guest RAM and hv's own areas; *end = highest
 * segment end, *entry_ok = whether `entry` lies inside a segment. */
static int check_segments(const struct guest_mem *m, const uint8_t *img, size_t len,
			  const struct elf_hdr *h, uint64_t entry, uint64_t *end, int *nload,
			  bool *entry_ok)
{
	struct elf_seg s;

	*end = 0;
	*nload = 0;
	*entry_ok = false;
	for (unsigned i = 0; i < h->phnum; i++) {
		get_phdr(img, h, i, &s);
		if (s.type != PT_LOAD)
			continue;
		if (s.filesz > s.memsz) {
			hv_error("kernel ELF: segment %u has p_filesz 0x%llx > p_memsz 0x%llx; the "
				 "file is corrupt", i, (unsigned long long)s.filesz,
				 (unsigned long long)s.memsz);
			return -1;
		}
		if (!in_file(s.offset, s.filesz, len)) {
			hv_error("kernel ELF: segment %u (offset 0x%llx, 0x%llx bytes) lies outside "
				 "the %zu-byte file; the file is truncated or corrupt", i,
				 (unsigned long long)s.offset, (unsigned long long)s.filesz, len);
			return -1;
		}
		if (s.memsz == 0)
			continue;
		if (s.paddr > UINT64_MAX - s.memsz || !guest_mem_ptr(m, s.paddr, s.memsz)) {
			hv_error("kernel ELF: segment %u at 0x%llx (0x%llx bytes) is not inside "
				 "guest RAM (0x%llx bytes below 3 GiB); give the VM more memory "
				 "(--mem) or link the kernel at a lower physical address", i,
				 (unsigned long long)s.paddr, (unsigned long long)s.memsz,
				 (unsigned long long)boot_low_ram_end(m));
			return -1;
		}
		for (size_t r = 0; r < sizeof(reserved_ranges) / sizeof(reserved_ranges[0]); r++) {
			if (s.paddr < reserved_ranges[r].end &&
			    s.paddr + s.memsz > reserved_ranges[r].start) {
				hv_error("kernel ELF: segment %u at 0x%llx-0x%llx overlaps "
					 "0x%llx-0x%llx, which hv uses for boot data; link the "
					 "kernel at 1 MiB (0x100000) or above", i,
					 (unsigned long long)s.paddr,
					 (unsigned long long)(s.paddr + s.memsz),
					 (unsigned long long)reserved_ranges[r].start,
					 (unsigned long long)reserved_ranges[r].end);
				return -1;
			}
		}
		if (entry >= s.paddr && entry - s.paddr < s.memsz)
			*entry_ok = true;
		if (s.paddr + s.memsz > *end)
			*end = s.paddr + s.memsz;
		(*nload)++;
	}
	return 0;
}

static int load_segments(struct guest_mem *m, const uint8_t *img, const struct elf_hdr *h)
{
	struct elf_seg s;

	for (unsigned i = 0; i < h->phnum; i++) {
		uint8_t *dst;

		get_phdr(img, h, i, &s);
		if (s.type != PT_LOAD || s.memsz == 0)
			continue;
		/* check_segments made sure that the whole of [paddr, paddr+memsz) is RAM. */
		dst = guest_mem_ptr(m, s.paddr, s.memsz);
		if (!dst)
			return -1;
		memcpy(dst, img + s.offset, s.filesz);
		memset(dst + s.filesz, 0, s.memsz - s.filesz);
		guest_mem_mark_dirty(m, s.paddr, s.memsz);
	}
	return 0;
}

static int write_memmap(struct guest_mem *m, uint32_t *count)
{
	struct e820_entry e820[E820_MAX];
	struct hvm_memmap_table_entry map[E820_MAX];
	int n = e820_build(m, e820);

	memset(map, 0, sizeof(map));
	for (int i = 0; i < n; i++) {
		map[i].addr = e820[i].addr;
		map[i].size = e820[i].size;
		map[i].type = e820[i].type;
	}
	if (guest_mem_write(m, BOOT_MEMMAP_ADDR, map, (uint64_t)n * sizeof(map[0])) < 0)
		return -1;
	*count = (uint32_t)n;
	return 0;
}

int boot_load_pvh(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out)
{
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct elf_hdr h;
	uint64_t entry = 0, end, initrd_addr = 0;
	bool entry_ok;
	int nload;

	if (!in->kernel || parse_ehdr(in->kernel, in->kernel_len, &h, true) < 0)
		return -1;
	switch (find_pvh_entry(in->kernel, in->kernel_len, &h, &entry, true)) {
	case 1:
		break;
	case 0:
		hv_error("kernel: ELF without XEN_ELFNOTE_PHYS32_ENTRY: hv boots PVH ELF kernels "
			 "(CONFIG_PVH=y) or bzImages");
		return -1;
	default:
		return -1;
	}
	if (check_segments(m, in->kernel, in->kernel_len, &h, entry, &end, &nload,
			   &entry_ok) < 0)
		return -1;
	if (nload == 0) {
		hv_error("kernel ELF: no loadable (PT_LOAD) segment; the file is not a kernel");
		return -1;
	}
	if (!entry_ok || entry >= MMIO_HOLE_START) {
		hv_error("kernel ELF: PVH entry point 0x%llx is not inside any loaded segment; "
			 "the kernel is corrupt", (unsigned long long)entry);
		return -1;
	}

	if (load_segments(m, in->kernel, &h) < 0) {
		hv_error("kernel ELF: loading segments into guest RAM failed");
		return -1;
	}
	if (boot_write_cmdline(m, in->cmdline, BOOT_CMDLINE_MAX - 1, "hv") < 0)
		return -1;
	if (in->initrd && in->initrd_len) {
		uint64_t floor = end > BIOS_END ? end : BIOS_END;

		if (boot_place_initrd(m, in->initrd, in->initrd_len, floor, MMIO_HOLE_START,
				      &initrd_addr) < 0)
			return -1;
	}

	memset(&si, 0, sizeof(si));
	si.magic = XEN_HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = BOOT_CMDLINE_ADDR;
	si.memmap_paddr = BOOT_MEMMAP_ADDR;
	if (write_memmap(m, &si.memmap_entries) < 0)
		goto ram;
	if (initrd_addr) {
		memset(&mod, 0, sizeof(mod));
		mod.paddr = initrd_addr;
		mod.size = in->initrd_len;
		if (guest_mem_write(m, MODLIST_ADDR, &mod, sizeof(mod)) < 0)
			goto ram;
		si.nr_modules = PVH_MAX_MODULES;
		si.modlist_paddr = MODLIST_ADDR;
	}
	if (guest_mem_write(m, BOOT_INFO_ADDR, &si, sizeof(si)) < 0)
		goto ram;

	out->mode = BOOT_PVH32;
	out->entry = entry;
	out->info_addr = BOOT_INFO_ADDR;
	out->kernel_end = end;
	return 0;
ram:
	hv_error("guest RAM does not cover hv's boot data at 0x%llx-0x%llx; give the VM more "
		 "memory (--mem)", (unsigned long long)BOOT_INFO_ADDR,
		 (unsigned long long)(BOOT_MEMMAP_ADDR + PAGE_SIZE));
	return -1;
}
