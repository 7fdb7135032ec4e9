/* Boot loaders on synthetic but realistic images: a PVH ELF64 (and ELF32) kernel with a
 * Xen note and two PT_LOADs, a bzImage with a 2.15 setup header; and hostile variants of
 * both (every truncation, out-of-file offsets, overflowing sizes, addresses outside RAM). */
#include <elf.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/boot.h"
#include "hv/guest_mem.h"
#include "hv/layout.h"
#include "hv/x86_tables.h"
#include "quiet_stderr.h"

#define RAM_SIZE (64 * MiB)

/* ---- helpers ---- */

static int setup_mem(void **state)
{
	struct guest_mem *m = calloc(1, sizeof(*m));

	if (!m || guest_mem_create(m, RAM_SIZE) < 0)
		return -1;
	*state = m;
	return 0;
}

static int teardown_mem(void **state)
{
	struct guest_mem *m = *state;

	guest_mem_destroy(m);
	free(m);
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static bool page_dirty(struct guest_mem *m, uint64_t gpa)
{
	uint64_t page = (uint64_t)guest_mem_offset(m, gpa) / PAGE_SIZE;

	return (m->vmm_dirty[page / 64] >> (page % 64)) & 1;
}

/* Runs a load and returns its result, with hv_error lines hidden. */
static int load_quiet(struct guest_mem *m, const uint8_t *img, size_t len, const char *cmdline,
		      const uint8_t *initrd, size_t initrd_len)
{
	struct boot_params_in in = { img, len, initrd, initrd_len, cmdline };
	struct boot_entry out;
	int saved = quiet_begin(false);
	int r = boot_load(m, &in, &out);

	quiet_end(saved);
	return r;
}

/* ---- a synthetic PVH kernel ----
 *
 * ELF header, program headers [PT_NOTE, PT_LOAD text, PT_LOAD data+bss], the note, then
 * the segments' bytes at page offsets. */
#define SEG1_OFF 0x1000
#define SEG1_PADDR 0x100000
#define SEG1_FILESZ 0x800
#define SEG1_MEMSZ 0x1000
#define SEG2_OFF 0x2000
#define SEG2_PADDR 0x200000
#define SEG2_FILESZ 0x100
#define SEG2_MEMSZ 0x3000
#define PVH_ENTRY (SEG1_PADDR + 0x10)
#define ELF_LEN (SEG2_OFF + SEG2_FILESZ)
#define NPHDR 3
#define PH_NOTE 0
#define PH_TEXT 1
#define PH_DATA 2

struct pvh_opts {
	bool is32;
	bool note_in_section_only; /* PT_NOTE replaced by PT_NULL, note in a SHT_NOTE */
	bool no_note;
	unsigned desc_size;        /* 4 or 8 */
};

struct image {
	uint8_t *p;
	size_t len;
	size_t phoff, phentsize, note_off;
};

static uint8_t seg_byte(int seg, size_t i)
{
	return (uint8_t)(seg * 0x40 + i * 7 + 1);
}

static void put_phdr(struct image *im, bool is32, int i, uint32_t type, uint64_t off,
		     uint64_t paddr, uint64_t filesz, uint64_t memsz, uint64_t align)
{
	uint8_t *p = im->p + im->phoff + (size_t)i * im->phentsize;

	if (is32) {
		Elf32_Phdr ph = { .p_type = type, .p_offset = (Elf32_Off)off,
				  .p_vaddr = (Elf32_Addr)paddr, .p_paddr = (Elf32_Addr)paddr,
				  .p_filesz = (Elf32_Word)filesz, .p_memsz = (Elf32_Word)memsz,
				  .p_flags = PF_R, .p_align = (Elf32_Word)align };
		memcpy(p, &ph, sizeof(ph));
	} else {
		Elf64_Phdr ph = { .p_type = type, .p_flags = PF_R, .p_offset = off,
				  .p_vaddr = 0xffffffff80000000ULL + paddr, .p_paddr = paddr,
				  .p_filesz = filesz, .p_memsz = memsz, .p_align = align };
		memcpy(p, &ph, sizeof(ph));
	}
}

static struct image make_pvh(const struct pvh_opts *o)
{
	struct image im = { 0 };
	bool is32 = o->is32;
	size_t ehsize = is32 ? sizeof(Elf32_Ehdr) : sizeof(Elf64_Ehdr);
	unsigned desc = o->desc_size ? o->desc_size : 4;
	size_t note_len = 12 + 4 + ((desc + 3) & ~3u);
	size_t shoff, shentsize = is32 ? sizeof(Elf32_Shdr) : sizeof(Elf64_Shdr);
	uint8_t *n;

	im.phentsize = is32 ? sizeof(Elf32_Phdr) : sizeof(Elf64_Phdr);
	im.phoff = ehsize;
	im.note_off = im.phoff + NPHDR * im.phentsize;
	shoff = 0xc00; /* two section headers: null, note */
	im.len = ELF_LEN;
	im.p = calloc(1, im.len);
	assert_non_null(im.p);

	memcpy(im.p, ELFMAG, SELFMAG);
	im.p[EI_CLASS] = is32 ? ELFCLASS32 : ELFCLASS64;
	im.p[EI_DATA] = ELFDATA2LSB;
	im.p[EI_VERSION] = EV_CURRENT;
	if (is32) {
		Elf32_Ehdr e;

		memcpy(&e, im.p, EI_NIDENT);
		memset((uint8_t *)&e + EI_NIDENT, 0, sizeof(e) - EI_NIDENT);
		e.e_type = ET_EXEC;
		e.e_machine = EM_386;
		e.e_version = EV_CURRENT;
		e.e_entry = 0xc1000000;
		e.e_phoff = (Elf32_Off)im.phoff;
		e.e_shoff = (Elf32_Off)shoff;
		e.e_ehsize = (Elf32_Half)ehsize;
		e.e_phentsize = (Elf32_Half)im.phentsize;
		e.e_phnum = NPHDR;
		e.e_shentsize = (Elf32_Half)shentsize;
		e.e_shnum = 2;
		memcpy(im.p, &e, sizeof(e));
	} else {
		Elf64_Ehdr e;

		memcpy(&e, im.p, EI_NIDENT);
		memset((uint8_t *)&e + EI_NIDENT, 0, sizeof(e) - EI_NIDENT);
		e.e_type = ET_EXEC;
		e.e_machine = EM_X86_64;
		e.e_version = EV_CURRENT;
		e.e_entry = 0xffffffff81000000ULL;
		e.e_phoff = im.phoff;
		e.e_shoff = shoff;
		e.e_ehsize = (Elf64_Half)ehsize;
		e.e_phentsize = (Elf64_Half)im.phentsize;
		e.e_phnum = NPHDR;
		e.e_shentsize = (Elf64_Half)shentsize;
		e.e_shnum = 2;
		memcpy(im.p, &e, sizeof(e));
	}

	/* The note: "Xen", XEN_ELFNOTE_PHYS32_ENTRY, the entry. */
	n = im.p + im.note_off;
	wr32(n, 4);
	wr32(n + 4, desc);
	wr32(n + 8, o->no_note ? 17 : 18);
	memcpy(n + 12, "Xen", 4);
	if (desc == 8)
		wr64(n + 16, PVH_ENTRY);
	else
		wr32(n + 16, PVH_ENTRY);

	put_phdr(&im, is32, PH_NOTE, o->note_in_section_only ? PT_NULL : PT_NOTE, im.note_off, 0,
		 note_len, note_len, 4);
	put_phdr(&im, is32, PH_TEXT, PT_LOAD, SEG1_OFF, SEG1_PADDR, SEG1_FILESZ, SEG1_MEMSZ,
		 0x1000);
	put_phdr(&im, is32, PH_DATA, PT_LOAD, SEG2_OFF, SEG2_PADDR, SEG2_FILESZ, SEG2_MEMSZ,
		 0x1000);

	/* Section 1: the note. */
	if (is32) {
		Elf32_Shdr sh = { .sh_type = SHT_NOTE, .sh_offset = (Elf32_Off)im.note_off,
				  .sh_size = (Elf32_Word)note_len, .sh_addralign = 4 };
		memcpy(im.p + shoff + shentsize, &sh, sizeof(sh));
	} else {
		Elf64_Shdr sh = { .sh_type = SHT_NOTE, .sh_offset = im.note_off,
				  .sh_size = note_len, .sh_addralign = 4 };
		memcpy(im.p + shoff + shentsize, &sh, sizeof(sh));
	}

	for (size_t i = 0; i < SEG1_FILESZ; i++)
		im.p[SEG1_OFF + i] = seg_byte(1, i);
	for (size_t i = 0; i < SEG2_FILESZ; i++)
		im.p[SEG2_OFF + i] = seg_byte(2, i);
	return im;
}

/* Field offsets inside a program header, by class. */
static size_t ph_field(const struct image *im, bool is32, int i, const char *f)
{
	size_t base = im->phoff + (size_t)i * im->phentsize;

	if (!strcmp(f, "offset"))
		return base + (is32 ? offsetof(Elf32_Phdr, p_offset) : offsetof(Elf64_Phdr, p_offset));
	if (!strcmp(f, "paddr"))
		return base + (is32 ? offsetof(Elf32_Phdr, p_paddr) : offsetof(Elf64_Phdr, p_paddr));
	if (!strcmp(f, "filesz"))
		return base + (is32 ? offsetof(Elf32_Phdr, p_filesz) : offsetof(Elf64_Phdr, p_filesz));
	if (!strcmp(f, "memsz"))
		return base + (is32 ? offsetof(Elf32_Phdr, p_memsz) : offsetof(Elf64_Phdr, p_memsz));
	fail();
	return 0;
}

static void set_ph64(struct image *im, int i, const char *f, uint64_t v)
{
	wr64(im->p + ph_field(im, false, i, f), v);
}

/* ---- PVH: good images ---- */

static void check_pvh_loaded(struct guest_mem *m, const struct boot_entry *out,
			     const char *cmdline, const uint8_t *initrd, size_t initrd_len)
{
	const uint8_t *si = guest_mem_ptr(m, BOOT_INFO_ADDR, 56);
	const uint8_t *g;
	struct e820_entry e820[E820_MAX];
	int n;

	assert_int_equal(out->mode, BOOT_PVH32);
	assert_int_equal(out->entry, PVH_ENTRY);
	assert_int_equal(out->info_addr, BOOT_INFO_ADDR);
	assert_int_equal(out->kernel_end, SEG2_PADDR + SEG2_MEMSZ);

	/* Segments: file bytes landed, the rest of p_memsz is zero, pages marked dirty. */
	g = guest_mem_ptr(m, SEG1_PADDR, SEG1_MEMSZ);
	for (size_t i = 0; i < SEG1_FILESZ; i++)
		assert_int_equal(g[i], seg_byte(1, i));
	for (size_t i = SEG1_FILESZ; i < SEG1_MEMSZ; i++)
		assert_int_equal(g[i], 0);
	g = guest_mem_ptr(m, SEG2_PADDR, SEG2_MEMSZ);
	for (size_t i = 0; i < SEG2_FILESZ; i++)
		assert_int_equal(g[i], seg_byte(2, i));
	for (size_t i = SEG2_FILESZ; i < SEG2_MEMSZ; i++)
		assert_int_equal(g[i], 0);
	for (uint64_t a = SEG2_PADDR; a < SEG2_PADDR + SEG2_MEMSZ; a += PAGE_SIZE)
		assert_true(page_dirty(m, a));
	assert_true(page_dirty(m, SEG1_PADDR));
	assert_true(page_dirty(m, BOOT_INFO_ADDR));
	assert_true(page_dirty(m, BOOT_MEMMAP_ADDR));
	assert_true(page_dirty(m, BOOT_CMDLINE_ADDR));

	/* hvm_start_info */
	assert_int_equal(rd32(si + 0), 0x336ec578);
	assert_int_equal(rd32(si + 4), 1);
	assert_int_equal(rd32(si + 8), 0);
	assert_int_equal(rd64(si + 24), BOOT_CMDLINE_ADDR);
	assert_int_equal(rd64(si + 32), 0);
	assert_int_equal(rd64(si + 40), BOOT_MEMMAP_ADDR);
	n = e820_build(m, e820);
	assert_int_equal(rd32(si + 48), n);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		const uint8_t *e = guest_mem_ptr(m, BOOT_MEMMAP_ADDR + 24 * (uint64_t)i, 24);

		assert_int_equal(rd64(e), e820[i].addr);
		assert_int_equal(rd64(e + 8), e820[i].size);
		assert_int_equal(rd32(e + 16), e820[i].type);
		assert_int_equal(rd32(e + 20), 0);
	}

	assert_string_equal((const char *)guest_mem_ptr(m, BOOT_CMDLINE_ADDR, 1),
			    cmdline ? cmdline : "");

	if (initrd) {
		uint64_t modlist = rd64(si + 16), addr, size;
		const uint8_t *mod;

		assert_int_equal(rd32(si + 12), 1);
		assert_int_equal(modlist, BOOT_INFO_ADDR + 56);
		mod = guest_mem_ptr(m, modlist, 32);
		addr = rd64(mod);
		size = rd64(mod + 8);
		assert_int_equal(size, initrd_len);
		assert_int_equal(addr % PAGE_SIZE, 0);
		assert_true(addr >= out->kernel_end);
		assert_true(addr + size <= RAM_SIZE);
		assert_true(addr + size > RAM_SIZE - PAGE_SIZE); /* as high as it goes */
		assert_memory_equal(guest_mem_ptr(m, addr, size), initrd, initrd_len);
		assert_true(page_dirty(m, addr));
	} else {
		assert_int_equal(rd32(si + 12), 0);
		assert_int_equal(rd64(si + 16), 0);
	}
}

static void test_pvh_elf64(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);
	uint8_t initrd[5000];
	struct boot_params_in in = { im.p, im.len, initrd, sizeof(initrd), "console=ttyS0 quiet" };
	struct boot_entry out;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 13);
	/* Old contents where the bss goes: the loader must zero them. */
	memset(guest_mem_ptr(m, SEG1_PADDR, SEG1_MEMSZ), 0xaa, SEG1_MEMSZ);
	memset(guest_mem_ptr(m, SEG2_PADDR, SEG2_MEMSZ), 0xaa, SEG2_MEMSZ);

	assert_true(boot_is_pvh_elf(im.p, im.len));
	assert_false(boot_is_bzimage(im.p, im.len));
	assert_int_equal(boot_load(m, &in, &out), 0);
	check_pvh_loaded(m, &out, in.cmdline, initrd, sizeof(initrd));
	free(im.p);
}

static void test_pvh_elf32_no_initrd(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { .is32 = true };
	struct image im = make_pvh(&o);
	struct boot_params_in in = { im.p, im.len, NULL, 0, NULL };
	struct boot_entry out;

	assert_true(boot_is_pvh_elf(im.p, im.len));
	assert_int_equal(boot_load_pvh(m, &in, &out), 0);
	check_pvh_loaded(m, &out, NULL, NULL, 0);
	free(im.p);
}

static void test_pvh_note_in_section(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { .note_in_section_only = true };
	struct image im = make_pvh(&o);
	struct boot_params_in in = { im.p, im.len, NULL, 0, "a" };
	struct boot_entry out;

	assert_true(boot_is_pvh_elf(im.p, im.len));
	assert_int_equal(boot_load(m, &in, &out), 0);
	check_pvh_loaded(m, &out, "a", NULL, 0);
	free(im.p);
	o.is32 = true;
	im = make_pvh(&o);
	in.kernel = im.p;
	assert_int_equal(boot_load(m, &in, &out), 0);
	free(im.p);
}

static void test_pvh_note_8byte(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { .desc_size = 8 };
	struct image im = make_pvh(&o);
	struct boot_params_in in = { im.p, im.len, NULL, 0, NULL };
	struct boot_entry out;

	assert_int_equal(boot_load(m, &in, &out), 0);
	assert_int_equal(out.entry, PVH_ENTRY);
	free(im.p);
}

static void test_pvh_cmdline_limit(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);
	char *cmd = malloc(BOOT_CMDLINE_MAX + 1);
	struct boot_params_in in = { im.p, im.len, NULL, 0, cmd };
	struct boot_entry out;

	memset(cmd, 'x', BOOT_CMDLINE_MAX - 1);
	cmd[BOOT_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(boot_load(m, &in, &out), 0); /* exactly the limit */
	assert_int_equal(strlen(guest_mem_ptr(m, BOOT_CMDLINE_ADDR, 1)), BOOT_CMDLINE_MAX - 1);
	cmd[BOOT_CMDLINE_MAX - 1] = 'x';
	cmd[BOOT_CMDLINE_MAX] = '\0';
	assert_int_equal(load_quiet(m, im.p, im.len, cmd, NULL, 0), -1);
	free(cmd);
	free(im.p);
}

static void test_pvh_initrd_too_large(void **state)
{
	struct guest_mem *m = *state;
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);
	size_t big = RAM_SIZE - SEG2_PADDR; /* would overlap the kernel */
	uint8_t *initrd = calloc(1, big);

	assert_int_equal(load_quiet(m, im.p, im.len, NULL, initrd, big), -1);
	/* The largest that fits: everything above the kernel's end. */
	big = RAM_SIZE - (SEG2_PADDR + SEG2_MEMSZ);
	assert_int_equal(load_quiet(m, im.p, im.len, NULL, initrd, big), 0);
	free(initrd);
	free(im.p);
}

/* ---- PVH: hostile images ---- */

typedef void (*mutator)(struct image *im);

static void mut_no_note(struct image *im)
{
	wr32(im->p + im->note_off + 8, 17);
	/* and not in the section either: it points at the same note */
}
static void mut_phoff_outside(struct image *im) { wr64(im->p + offsetof(Elf64_Ehdr, e_phoff), im->len - 8); }
static void mut_phoff_huge(struct image *im) { wr64(im->p + offsetof(Elf64_Ehdr, e_phoff), UINT64_MAX - 16); }
static void mut_phnum_huge(struct image *im) { wr16(im->p + offsetof(Elf64_Ehdr, e_phnum), 0xffff); }
static void mut_phnum_zero(struct image *im) { wr16(im->p + offsetof(Elf64_Ehdr, e_phnum), 0); }
static void mut_phentsize_small(struct image *im) { wr16(im->p + offsetof(Elf64_Ehdr, e_phentsize), 8); }
static void mut_type_dyn(struct image *im) { wr16(im->p + offsetof(Elf64_Ehdr, e_type), ET_DYN); }
static void mut_machine(struct image *im) { wr16(im->p + offsetof(Elf64_Ehdr, e_machine), EM_AARCH64); }
static void mut_class(struct image *im) { im->p[EI_CLASS] = 7; }
static void mut_bigendian(struct image *im) { im->p[EI_DATA] = ELFDATA2MSB; }
static void mut_offset_overflow(struct image *im)
{
	set_ph64(im, PH_TEXT, "offset", UINT64_MAX - 0x10);
}
static void mut_offset_outside(struct image *im) { set_ph64(im, PH_DATA, "offset", im->len - 0x10); }
static void mut_filesz_huge(struct image *im)
{
	set_ph64(im, PH_TEXT, "filesz", UINT64_MAX);
	set_ph64(im, PH_TEXT, "memsz", UINT64_MAX);
}
static void mut_memsz_lt_filesz(struct image *im) { set_ph64(im, PH_TEXT, "memsz", SEG1_FILESZ - 1); }
static void mut_paddr_beyond_ram(struct image *im) { set_ph64(im, PH_DATA, "paddr", RAM_SIZE - 0x1000); }
static void mut_paddr_mmio(struct image *im) { set_ph64(im, PH_DATA, "paddr", MMIO_HOLE_START + 0x1000); }
static void mut_paddr_wrap(struct image *im) { set_ph64(im, PH_DATA, "paddr", UINT64_MAX - 0x1000); }
static void mut_memsz_huge(struct image *im) { set_ph64(im, PH_DATA, "memsz", UINT64_MAX); }
static void mut_paddr_low(struct image *im) { set_ph64(im, PH_DATA, "paddr", BOOT_INFO_ADDR); }
static void mut_paddr_bios(struct image *im) { set_ph64(im, PH_DATA, "paddr", MPTABLE_ADDR); }
static void mut_note_namesz(struct image *im) { wr32(im->p + im->note_off, 0xffffffff); }
static void mut_note_descsz(struct image *im) { wr32(im->p + im->note_off + 4, 0xfffffffd); }
static void mut_note_desc_odd(struct image *im) { wr32(im->p + im->note_off + 4, 2); }
static void mut_note_seg_outside(struct image *im)
{
	set_ph64(im, PH_NOTE, "offset", im->len - 4);
}
static void mut_note_seg_size(struct image *im) { set_ph64(im, PH_NOTE, "filesz", UINT64_MAX); }
static void mut_entry_outside(struct image *im) { wr32(im->p + im->note_off + 16, 0x500000); }
static void mut_no_load(struct image *im)
{
	wr32(im->p + im->phoff + im->phentsize * PH_TEXT, PT_NULL);
	wr32(im->p + im->phoff + im->phentsize * PH_DATA, PT_NULL);
}

static void test_pvh_hostile(void **state)
{
	static const struct {
		const char *name;
		mutator fn;
	} cases[] = {
		{ "no note", mut_no_note },
		{ "phoff outside", mut_phoff_outside },
		{ "phoff huge", mut_phoff_huge },
		{ "phnum huge", mut_phnum_huge },
		{ "phnum zero", mut_phnum_zero },
		{ "phentsize small", mut_phentsize_small },
		{ "ET_DYN", mut_type_dyn },
		{ "machine", mut_machine },
		{ "class", mut_class },
		{ "big-endian", mut_bigendian },
		{ "p_offset overflow", mut_offset_overflow },
		{ "p_offset outside", mut_offset_outside },
		{ "p_filesz huge", mut_filesz_huge },
		{ "memsz < filesz", mut_memsz_lt_filesz },
		{ "paddr beyond RAM", mut_paddr_beyond_ram },
		{ "paddr in MMIO hole", mut_paddr_mmio },
		{ "paddr wraps", mut_paddr_wrap },
		{ "memsz huge", mut_memsz_huge },
		{ "paddr on boot info", mut_paddr_low },
		{ "paddr on MP table", mut_paddr_bios },
		{ "note namesz", mut_note_namesz },
		{ "note descsz", mut_note_descsz },
		{ "note desc 2 bytes", mut_note_desc_odd },
		{ "note segment outside", mut_note_seg_outside },
		{ "note segment size", mut_note_seg_size },
		{ "entry outside segments", mut_entry_outside },
		{ "no PT_LOAD", mut_no_load },
	};
	struct guest_mem *m = *state;
	struct pvh_opts o = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct image im = make_pvh(&o);

		cases[i].fn(&im);
		if (load_quiet(m, im.p, im.len, NULL, NULL, 0) != -1)
			fail_msg("hostile PVH image '%s' was accepted", cases[i].name);
		free(im.p);
	}
}

/* A segment in high RAM, past the MMIO hole, loads; one in the hole does not. */
static void test_pvh_high_ram(void **state)
{
	struct guest_mem big;
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);

	(void)state;
	assert_int_equal(guest_mem_create(&big, MMIO_HOLE_START + 16 * MiB), 0);
	set_ph64(&im, PH_DATA, "paddr", HIGH_RAM_START + 0x1000);
	assert_int_equal(load_quiet(&big, im.p, im.len, NULL, NULL, 0), 0);
	assert_int_equal(((uint8_t *)guest_mem_ptr(&big, HIGH_RAM_START + 0x1000, 1))[0],
			 seg_byte(2, 0));
	set_ph64(&im, PH_DATA, "paddr", MMIO_HOLE_START - 0x1000); /* straddles the hole */
	assert_int_equal(load_quiet(&big, im.p, im.len, NULL, NULL, 0), -1);
	guest_mem_destroy(&big);
	free(im.p);
}

/* Every prefix of a valid image must be refused or loaded, never read out of bounds
 * (the ASan build checks: each prefix is its own exact-size allocation). */
static void truncate_all(struct guest_mem *m, const uint8_t *img, size_t len, bool ok_at_full)
{
	int saved = quiet_begin(true); /* thousands of lines */

	for (size_t l = 0; l <= len; l++) {
		uint8_t *copy = malloc(l ? l : 1);
		struct boot_params_in in = { copy, l, NULL, 0, "x" };
		struct boot_entry out;
		int r;

		memcpy(copy, img, l);
		(void)boot_is_pvh_elf(copy, l);
		(void)boot_is_bzimage(copy, l);
		r = boot_load(m, &in, &out);
		assert_true(r == 0 || r == -1);
		if (l == len && ok_at_full)
			assert_int_equal(r, 0);
		free(copy);
	}
	quiet_end(saved);
}

static void test_pvh_truncated(void **state)
{
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);

	truncate_all(*state, im.p, im.len, true);
	free(im.p);
	o.is32 = true;
	im = make_pvh(&o);
	truncate_all(*state, im.p, im.len, true);
	free(im.p);
}

/* ---- bzImage ---- */

#define BZ_SETUP_SECTS 3
#define BZ_PM_OFF ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PM_LEN 0x3000
#define BZ_LEN (BZ_PM_OFF + BZ_PM_LEN)
#define BZ_PREF 0x1000000ULL
#define BZ_INIT_SIZE 0x800000ULL
#define BZ_CMDLINE_SIZE 2047

static uint8_t *make_bz(size_t *len)
{
	uint8_t *p = calloc(1, BZ_LEN);

	assert_non_null(p);
	p[0x1f1] = BZ_SETUP_SECTS;
	wr16(p + 0x1fe, 0xaa55);
	p[0x200] = 0xeb;
	p[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(p + 0x202, "HdrS", 4);
	wr16(p + 0x206, 0x020f);
	p[0x211] = 0x01; /* LOADED_HIGH */
	wr32(p + 0x214, 0x100000);
	wr32(p + 0x22c, 0x7fffffff);
	wr32(p + 0x230, 0x200000);
	p[0x234] = 1;
	wr16(p + 0x236, 0x3); /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	wr32(p + 0x238, BZ_CMDLINE_SIZE);
	wr64(p + 0x250, 0xdeadbeef); /* setup_data: hv must not pass the file's on */
	wr64(p + 0x258, BZ_PREF);
	wr32(p + 0x260, BZ_INIT_SIZE);
	p[0x26c] = 0x5a; /* beyond the header: must not be copied */
	for (size_t i = 0; i < BZ_PM_LEN; i++)
		p[BZ_PM_OFF + i] = seg_byte(3, i);
	*len = BZ_LEN;
	return p;
}

static void test_bzimage(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_bz(&len);
	uint8_t initrd[10000];
	struct boot_params_in in = { img, len, initrd, sizeof(initrd), "console=ttyS0" };
	struct boot_entry out;
	const uint8_t *bp, *pm;
	struct e820_entry e820[E820_MAX];
	uint32_t rd_addr;
	int n;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	assert_true(boot_is_bzimage(img, len));
	assert_false(boot_is_pvh_elf(img, len));
	memset(guest_mem_ptr(m, BOOT_INFO_ADDR, 4096), 0xcc, 4096);
	assert_int_equal(boot_load(m, &in, &out), 0);
	assert_int_equal(out.mode, BOOT_LINUX64);
	assert_int_equal(out.entry, 0x100200);
	assert_int_equal(out.info_addr, BOOT_INFO_ADDR);
	assert_int_equal(out.kernel_end, BZ_PREF + BZ_INIT_SIZE);

	pm = guest_mem_ptr(m, KERNEL_LOAD_ADDR, BZ_PM_LEN);
	for (size_t i = 0; i < BZ_PM_LEN; i++)
		assert_int_equal(pm[i], seg_byte(3, i));
	assert_true(page_dirty(m, KERNEL_LOAD_ADDR));

	bp = guest_mem_ptr(m, BOOT_INFO_ADDR, 4096);
	assert_int_equal(bp[0], 0);      /* zeroed outside the header */
	assert_int_equal(bp[0x1f1], BZ_SETUP_SECTS);
	assert_int_equal(rd32(bp + 0x202), rd32((const uint8_t *)"HdrS"));
	assert_int_equal(bp[0x206] | bp[0x207] << 8, 0x020f);
	assert_int_equal(bp[0x210], 0xff);
	assert_int_equal(bp[0x211], 0x81);
	assert_int_equal(bp[0x224] | bp[0x225] << 8, 0xfe00);
	assert_int_equal(rd32(bp + 0x228), BOOT_CMDLINE_ADDR);
	assert_int_equal(rd32(bp + 0x0c8), 0);
	assert_int_equal(rd64(bp + 0x250), 0);
	assert_int_equal(rd32(bp + 0x260), BZ_INIT_SIZE);
	assert_int_equal(bp[0x26c], 0);
	assert_string_equal((const char *)guest_mem_ptr(m, BOOT_CMDLINE_ADDR, 1), "console=ttyS0");

	rd_addr = rd32(bp + 0x218);
	assert_int_equal(rd32(bp + 0x21c), sizeof(initrd));
	assert_int_equal(rd32(bp + 0x0c0), 0);
	assert_int_equal(rd32(bp + 0x0c4), 0);
	assert_int_equal(rd_addr % PAGE_SIZE, 0);
	assert_true(rd_addr >= BZ_PREF + BZ_INIT_SIZE);
	assert_true(rd_addr + sizeof(initrd) <= RAM_SIZE);
	assert_true(rd_addr + sizeof(initrd) > RAM_SIZE - PAGE_SIZE);
	assert_memory_equal(guest_mem_ptr(m, rd_addr, sizeof(initrd)), initrd, sizeof(initrd));

	n = e820_build(m, e820);
	assert_int_equal(bp[0x1e8], n);
	assert_memory_equal(bp + 0x2d0, e820, (size_t)n * 20);
	assert_int_equal(bp[0x2d0 + n * 20], 0);

	/* initrd_addr_max lower than RAM: the initrd ends at or below it. */
	wr32(img + 0x22c, 0x1ffffff);
	assert_int_equal(boot_load(m, &in, &out), 0);
	rd_addr = rd32(bp + 0x218);
	assert_true(rd_addr + sizeof(initrd) - 1 <= 0x1ffffff);
	assert_true(rd_addr + sizeof(initrd) > 0x2000000 - PAGE_SIZE);
	free(img);
}

/* setup_sects 0 means 4. */
static void test_bzimage_setup_sects_zero(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_bz(&len);
	struct boot_params_in in = { img, len, NULL, 0, NULL };
	struct boot_entry out;

	img[0x1f1] = 0;
	assert_int_equal(boot_load(m, &in, &out), 0);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(m, KERNEL_LOAD_ADDR, 1), seg_byte(3, 5 * 512 - BZ_PM_OFF));
	assert_int_equal(rd32((uint8_t *)guest_mem_ptr(m, BOOT_INFO_ADDR, 4096) + 0x218), 0);
	assert_int_equal(rd32((uint8_t *)guest_mem_ptr(m, BOOT_INFO_ADDR, 4096) + 0x21c), 0);
	free(img);
}

static void test_bzimage_hostile(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img;
	char cmd[BZ_CMDLINE_SIZE + 2];
	uint8_t *initrd;

	/* Protocol too old. */
	img = make_bz(&len);
	wr16(img + 0x206, 0x020b);
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* No 64-bit entry. */
	img = make_bz(&len);
	wr16(img + 0x236, 0);
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* Not loaded high. */
	img = make_bz(&len);
	img[0x211] = 0;
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* setup_sects huge: the kernel would start beyond the file. */
	img = make_bz(&len);
	img[0x1f1] = 0xff;
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* Header length byte pointing past the file. */
	img = make_bz(&len);
	assert_int_equal(load_quiet(m, img, 0x280, NULL, NULL, 0), -1);
	img[0x201] = 0xff;
	assert_int_equal(load_quiet(m, img, 0x290, NULL, NULL, 0), -1);
	/* ... and a header too short for the protocol it claims. */
	img[0x201] = 0x30;
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* init_size beyond RAM. */
	img = make_bz(&len);
	wr32(img + 0x260, RAM_SIZE);
	assert_int_equal(load_quiet(m, img, len, NULL, NULL, 0), -1);
	free(img);
	/* Command line longer than the kernel's cmdline_size; exactly cmdline_size is fine. */
	img = make_bz(&len);
	memset(cmd, 'y', sizeof(cmd));
	cmd[BZ_CMDLINE_SIZE] = '\0';
	assert_int_equal(load_quiet(m, img, len, cmd, NULL, 0), 0);
	cmd[BZ_CMDLINE_SIZE] = 'y';
	cmd[BZ_CMDLINE_SIZE + 1] = '\0';
	assert_int_equal(load_quiet(m, img, len, cmd, NULL, 0), -1);
	/* initrd too large for what is left above the decompression area. */
	initrd = calloc(1, RAM_SIZE - BZ_PREF - BZ_INIT_SIZE + 1);
	assert_int_equal(load_quiet(m, img, len, NULL, initrd,
				    RAM_SIZE - BZ_PREF - BZ_INIT_SIZE + 1), -1);
	assert_int_equal(load_quiet(m, img, len, NULL, initrd, RAM_SIZE - BZ_PREF - BZ_INIT_SIZE),
			 0);
	/* ... or for initrd_addr_max. */
	wr32(img + 0x22c, BZ_PREF + BZ_INIT_SIZE + 0x1000 - 1);
	assert_int_equal(load_quiet(m, img, len, NULL, initrd, 0x1001), -1);
	assert_int_equal(load_quiet(m, img, len, NULL, initrd, 0x1000), 0);
	free(initrd);
	free(img);
}

static void test_bzimage_truncated(void **state)
{
	size_t len;
	uint8_t *img = make_bz(&len);

	truncate_all(*state, img, len, true);
	free(img);
}

/* ---- dispatch ---- */

static void test_dispatch(void **state)
{
	struct guest_mem *m = *state;
	static const uint8_t junk[600] = { 'M', 'Z' };
	struct pvh_opts o = { .no_note = true };
	struct image im = make_pvh(&o);

	assert_int_equal(load_quiet(m, junk, sizeof(junk), NULL, NULL, 0), -1);
	assert_int_equal(load_quiet(m, junk, 0, NULL, NULL, 0), -1);
	assert_false(boot_is_pvh_elf(im.p, im.len));
	assert_int_equal(load_quiet(m, im.p, im.len, NULL, NULL, 0), -1);
	free(im.p);
}

/* A RAM too small for the boot data itself. */
static void test_tiny_ram(void **state)
{
	struct guest_mem tiny;
	struct pvh_opts o = { 0 };
	struct image im = make_pvh(&o);
	size_t len;
	uint8_t *bz = make_bz(&len);

	(void)state;
	assert_int_equal(guest_mem_create(&tiny, 64 * KiB), 0);
	assert_int_equal(load_quiet(&tiny, im.p, im.len, NULL, NULL, 0), -1);
	assert_int_equal(load_quiet(&tiny, bz, len, NULL, NULL, 0), -1);
	guest_mem_destroy(&tiny);
	free(im.p);
	free(bz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pvh_elf64, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_elf32_no_initrd, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_note_in_section, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_note_8byte, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_cmdline_limit, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_initrd_too_large, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_pvh_hostile, setup_mem, teardown_mem),
		cmocka_unit_test(test_pvh_high_ram),
		cmocka_unit_test_setup_teardown(test_pvh_truncated, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_bzimage, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_bzimage_setup_sects_zero, setup_mem,
						teardown_mem),
		cmocka_unit_test_setup_teardown(test_bzimage_hostile, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_bzimage_truncated, setup_mem, teardown_mem),
		cmocka_unit_test_setup_teardown(test_dispatch, setup_mem, teardown_mem),
		cmocka_unit_test(test_tiny_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
