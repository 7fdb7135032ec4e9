/* Register state a boot protocol expects at the kernel's entry point. */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/boot.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/vcpu.h"

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL

/* Selectors 0x10 (code) and 0x18 (data), as both boot protocols expect (__BOOT_CS/__BOOT_DS). */
enum { GDT_NULL, GDT_UNUSED, GDT_CODE, GDT_DATA, GDT_TSS, GDT_ENTRIES };

static struct kvm_segment flat_segment(int index, bool code, bool long_mode)
{
	struct kvm_segment s = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = (uint16_t)(index * 8),
		.type = code ? 0xb : 0x3, /* execute/read or read/write, accessed */
		.present = 1,
		.dpl = 0,
		.db = long_mode ? 0 : 1,
		.s = 1,
		.l = long_mode ? 1 : 0,
		.g = 1,
	};
	return s;
}

static uint64_t gdt_entry(const struct kvm_segment *s)
{
	uint64_t limit = s->g ? s->limit >> 12 : s->limit;
	uint64_t e = (limit & 0xffff) | ((s->base & 0xffffff) << 16) | ((uint64_t)s->type << 40) |
		     ((uint64_t)s->s << 44) | ((uint64_t)s->dpl << 45) | ((uint64_t)s->present << 47) |
		     (((limit >> 16) & 0xf) << 48) | ((uint64_t)s->l << 53) | ((uint64_t)s->db << 54) |
		     ((uint64_t)s->g << 55) | (((s->base >> 24) & 0xff) << 56);
	return e;
}

/* A GDT in guest memory matching the hidden segment state, so a guest that reloads a
 * selector before installing its own GDT still gets the same segment. */
static int write_gdt(struct guest_mem *m, struct kvm_sregs *sr, bool long_mode)
{
	uint64_t gdt[GDT_ENTRIES] = { 0 };
	struct kvm_segment code = flat_segment(GDT_CODE, true, long_mode);
	struct kvm_segment data = flat_segment(GDT_DATA, false, false);

	gdt[GDT_CODE] = gdt_entry(&code);
	gdt[GDT_DATA] = gdt_entry(&data);
	struct kvm_segment tss = { .base = 0, .limit = 0x67, .selector = GDT_TSS * 8, .type = 0xb,
				   .present = 1, .s = 0 };
	gdt[GDT_TSS] = gdt_entry(&tss);
	if (guest_mem_write(m, BOOT_GDT_ADDR, gdt, sizeof(gdt)) < 0)
		return -1;
	sr->gdt.base = BOOT_GDT_ADDR;
	sr->gdt.limit = sizeof(gdt) - 1;
	sr->idt.base = 0;
	sr->idt.limit = 0;
	sr->tr = tss;
	sr->ldt = (struct kvm_segment){ .type = 0x2, .present = 1, .limit = 0xffff };
	sr->ds = sr->es = sr->fs = sr->gs = sr->ss = data;
	sr->cs = code;
	return 0;
}

/* Identity map of 0-4 GiB in 2 MiB pages: what the 64-bit boot protocol requires. */
static int write_identity_page_tables(struct guest_mem *m)
{
	uint64_t pml4[512] = { BOOT_PDPT_ADDR | PTE_P | PTE_RW };
	uint64_t pdpt[512] = { 0 };
	uint64_t pd[512];

	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + (uint64_t)i * PAGE_SIZE) | PTE_P | PTE_RW;
	if (guest_mem_write(m, BOOT_PML4_ADDR, pml4, sizeof(pml4)) < 0 ||
	    guest_mem_write(m, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt)) < 0)
		return -1;
	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < 512; i++)
			pd[i] = (((uint64_t)t * 512 + (uint64_t)i) << 21) | PTE_P | PTE_RW | PTE_PS;
		if (guest_mem_write(m, BOOT_PD_ADDR + (uint64_t)t * PAGE_SIZE, pd, sizeof(pd)) < 0)
			return -1;
	}
	return 0;
}

int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *e)
{
	struct guest_mem *m = &v->vm->mem;
	struct kvm_sregs sr;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0) {
		hv_error("KVM_GET_SREGS failed: %s", strerror(errno));
		return -1;
	}
	if (write_gdt(m, &sr, e->mode == BOOT_LINUX64) < 0) {
		hv_error("guest memory too small for the boot GDT");
		return -1;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = e->entry;
	if (e->mode == BOOT_PVH32) {
		/* PVH: 32-bit protected mode, paging off, EBX = hvm_start_info. */
		sr.cr0 = CR0_PE | CR0_ET;
		sr.cr4 = 0;
		sr.efer = 0;
		regs.rbx = e->info_addr;
	} else {
		if (write_identity_page_tables(m) < 0) {
			hv_error("guest memory too small for boot page tables");
			return -1;
		}
		sr.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
		sr.cr3 = BOOT_PML4_ADDR;
		sr.cr4 = CR4_PAE;
		sr.efer = EFER_LME | EFER_LMA;
		regs.rsi = e->info_addr;
		regs.rsp = BOOT_STACK_TOP;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
		hv_error("cannot set boot registers: %s", strerror(errno));
		return -1;
	}
	return 0;
}
