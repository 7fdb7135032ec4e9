/* cpu_state: serialisation round trips and strict decoding (no KVM needed), then a real save ->
 * serialise -> restore into a fresh VM -> run test under KVM (skipped without /dev/kvm). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "migrate/cpu_state.h"
#include "migrate/wire.h"

/* ---- Synthetic state ---- */

static void fill(void *p, size_t n, unsigned seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static struct vcpu_state *make_vcpu_state(void)
{
	struct vcpu_state *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->vcpu_index = 3;
	s->have = CPU_STATE_HAVE_SREGS2 | CPU_STATE_HAVE_XSAVE | CPU_STATE_HAVE_XCRS |
		  CPU_STATE_HAVE_DEBUGREGS | CPU_STATE_HAVE_TSC_KHZ;
	fill(&s->regs, sizeof(s->regs), 1);
	fill(&s->sregs2, sizeof(s->sregs2), 2);
	fill(&s->fpu, sizeof(s->fpu), 3);
	fill(&s->xcrs, sizeof(s->xcrs), 4);
	s->xcrs.nr_xcrs = 1;
	fill(&s->lapic, sizeof(s->lapic), 5);
	fill(&s->events, sizeof(s->events), 6);
	s->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
	fill(&s->debugregs, sizeof(s->debugregs), 7);
	s->tsc_khz = 2994000;
	s->xsave_size = 4096;
	fill(s->xsave, 4096, 8);
	s->nmsrs = 40;
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		s->msrs[i].index = 0x100 + i;
		s->msrs[i].data = 0x1122334455667700ull + i;
	}
	return s;
}

static void make_vm_state(struct vm_kvm_state *s)
{
	memset(s, 0, sizeof(*s));
	s->have = CPU_STATE_HAVE_PIT;
	fill(&s->pic_master, sizeof(s->pic_master), 11);
	fill(&s->pic_slave, sizeof(s->pic_slave), 12);
	fill(&s->ioapic, sizeof(s->ioapic), 13);
	fill(&s->pit, sizeof(s->pit), 14);
	fill(&s->clock, sizeof(s->clock), 15);
	s->pic_master.chip_id = 0;
	s->pic_slave.chip_id = 1;
	s->ioapic.chip_id = 2;
}

static uint8_t *encode_vcpu(const struct vcpu_state *s, size_t *len)
{
	uint8_t *buf = malloc(CPU_STATE_VCPU_BLOB_MAX);

	assert_non_null(buf);
	assert_int_equal(cpu_state_encode_vcpu(s, buf, CPU_STATE_VCPU_BLOB_MAX, len), 0);
	return buf;
}

static void test_vcpu_roundtrip(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = calloc(1, sizeof(*d));
	size_t len, len2;
	uint8_t *buf = encode_vcpu(s, &len), *buf2;
	char err[256];

	assert_int_equal(cpu_state_decode_vcpu(buf, len, d, err, sizeof(err)), 0);
	assert_int_equal(d->vcpu_index, 3);
	assert_int_equal(d->have, s->have);
	assert_memory_equal(&d->regs, &s->regs, sizeof(s->regs));
	assert_memory_equal(&d->sregs2, &s->sregs2, sizeof(s->sregs2));
	assert_memory_equal(&d->fpu, &s->fpu, sizeof(s->fpu));
	assert_memory_equal(&d->xcrs, &s->xcrs, sizeof(s->xcrs));
	assert_memory_equal(&d->lapic, &s->lapic, sizeof(s->lapic));
	assert_memory_equal(&d->events, &s->events, sizeof(s->events));
	assert_memory_equal(&d->debugregs, &s->debugregs, sizeof(s->debugregs));
	assert_int_equal(d->mp_state.mp_state, KVM_MP_STATE_RUNNABLE);
	assert_int_equal(d->tsc_khz, 2994000);
	assert_int_equal(d->xsave_size, 4096);
	assert_memory_equal(d->xsave, s->xsave, 4096);
	assert_int_equal(d->nmsrs, 40);
	assert_memory_equal(d->msrs, s->msrs, 40 * sizeof(s->msrs[0]));

	/* Encoding the decoded state gives the same bytes. */
	buf2 = encode_vcpu(d, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	/* Too small a buffer is -ENOSPC, never an overflow. */
	for (size_t cap = 0; cap < len; cap += 97)
		assert_int_equal(cpu_state_encode_vcpu(s, buf2, cap, &len2), -ENOSPC);
	free(buf);
	free(buf2);
	free(s);
	free(d);
}

static void test_vcpu_sregs_variant(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = calloc(1, sizeof(*d));
	size_t len;
	uint8_t *buf;

	s->have = 0; /* plain SREGS, no XSAVE/XCRS/DEBUGREGS/TSC */
	fill(&s->sregs, sizeof(s->sregs), 9);
	buf = encode_vcpu(s, &len);
	assert_int_equal(cpu_state_decode_vcpu(buf, len, d, NULL, 0), 0);
	assert_int_equal(d->have, 0);
	assert_memory_equal(&d->sregs, &s->sregs, sizeof(s->sregs));
	assert_int_equal(d->xsave_size, 0);
	free(buf);
	free(s);
	free(d);
}

static void test_vcpu_every_truncation(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = calloc(1, sizeof(*d));
	size_t len;
	uint8_t *buf = encode_vcpu(s, &len);

	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exact-size copy: ASan sees any over-read */

		memcpy(copy, buf, n);
		assert_int_equal(cpu_state_decode_vcpu(copy, n, d, NULL, 0), -EINVAL);
		free(copy);
	}
	/* A trailing byte is rejected too. */
	uint8_t *longer = malloc(len + 1);

	memcpy(longer, buf, len);
	longer[len] = 0;
	assert_int_equal(cpu_state_decode_vcpu(longer, len + 1, d, NULL, 0), -EINVAL);
	free(longer);
	free(buf);
	free(s);
	free(d);
}

/* Builds a blob section by section. */
struct blob {
	uint8_t b[CPU_STATE_VCPU_BLOB_MAX];
	size_t len;
	unsigned n;
};

static void blob_begin(struct blob *b, uint32_t magic, uint32_t index)
{
	memset(b, 0, sizeof(*b));
	wire_put_u32(b->b, magic);
	wire_put_u16(b->b + 4, CPU_STATE_VERSION);
	wire_put_u32(b->b + 8, index);
	b->len = 16;
}

static void blob_sec(struct blob *b, uint16_t id, const void *p, uint32_t size)
{
	assert_true(b->len + 8 + size <= sizeof(b->b));
	wire_put_u16(b->b + b->len, id);
	wire_put_u16(b->b + b->len + 2, 0);
	wire_put_u32(b->b + b->len + 4, size);
	if (size)
		memcpy(b->b + b->len + 8, p, size);
	b->len += 8 + size;
	wire_put_u16(b->b + 6, (uint16_t)++b->n);
}

#define MAGIC_VCPU 0x50436876u
#define MAGIC_VM 0x4d566876u

/* A minimal valid vCPU blob, with section `skip` left out and `extra` (id, size) added. */
static void blob_vcpu(struct blob *b, const struct vcpu_state *s, unsigned skip)
{
	blob_begin(b, MAGIC_VCPU, s->vcpu_index);
	if (skip != 1)
		blob_sec(b, 1, &s->regs, sizeof(s->regs));
	if (skip != 3)
		blob_sec(b, 3, &s->sregs2, sizeof(s->sregs2));
	if (skip != 4)
		blob_sec(b, 4, &s->fpu, sizeof(s->fpu));
	if (skip != 7)
		blob_sec(b, 7, s->msrs, s->nmsrs * 16);
	if (skip != 8)
		blob_sec(b, 8, &s->lapic, sizeof(s->lapic));
	if (skip != 9)
		blob_sec(b, 9, &s->events, sizeof(s->events));
	if (skip != 10)
		blob_sec(b, 10, &s->mp_state, sizeof(s->mp_state));
}

static int decode_blob(const struct blob *b, char *err, size_t errlen)
{
	struct vcpu_state *d = calloc(1, sizeof(*d));
	int rc;

	assert_non_null(d);
	err[0] = '\0';
	rc = cpu_state_decode_vcpu(b->b, b->len, d, err, errlen);
	free(d);
	return rc;
}

static void test_vcpu_strict_sections(void **unused)
{
	struct vcpu_state *s = make_vcpu_state();
	struct blob *b = malloc(sizeof(*b));
	char err[256];
	uint8_t big[CPU_STATE_XSAVE_MAX + 8] = { 0 };
	uint32_t khz0 = 0;

	blob_vcpu(b, s, 0);
	assert_int_equal(decode_blob(b, err, sizeof(err)), 0);

	/* Each required section missing. */
	const unsigned required[] = { 1, 3, 4, 7, 8, 9, 10 };

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		blob_vcpu(b, s, required[i]);
		assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, required[i] == 3 ? "SREGS" : "missing"));
	}

	/* Both SREGS and SREGS2. */
	blob_vcpu(b, s, 0);
	blob_sec(b, 2, &s->sregs, sizeof(s->sregs));
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "exactly one"));

	/* A section twice. */
	blob_vcpu(b, s, 0);
	blob_sec(b, 1, &s->regs, sizeof(s->regs));
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice"));

	/* Unknown section. */
	blob_vcpu(b, s, 0);
	blob_sec(b, 13, "x", 1);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown section 13"));
	blob_vcpu(b, s, 0);
	blob_sec(b, 0xffff, "x", 1);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);

	/* Fixed-size sections one byte off either way. */
	blob_vcpu(b, s, 1);
	blob_sec(b, 1, &s->regs, sizeof(s->regs) - 1);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "REGS is"));
	blob_vcpu(b, s, 8);
	blob_sec(b, 8, big, sizeof(s->lapic) + 1);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);

	/* XSAVE too small, too large, unaligned; then a good one. */
	blob_vcpu(b, s, 0);
	blob_sec(b, 5, big, 4092);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	blob_sec(b, 5, big, CPU_STATE_XSAVE_MAX + 4);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	blob_sec(b, 5, big, 4098);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	blob_sec(b, 5, big, 4096 + 64);
	assert_int_equal(decode_blob(b, err, sizeof(err)), 0);

	/* MSRS: not a multiple of 16, too many, reserved bits. */
	blob_vcpu(b, s, 7);
	blob_sec(b, 7, s->msrs, 17);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 7);
	{
		size_t n = (CPU_STATE_MAX_MSRS + 1) * 16;
		uint8_t *many = calloc(1, n);

		blob_sec(b, 7, many, (uint32_t)n);
		assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
		free(many);
	}
	s->msrs[5].reserved = 1;
	blob_vcpu(b, s, 0);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "reserved"));
	s->msrs[5].reserved = 0;

	/* TSC_KHZ of zero; XCRS count too large. */
	blob_vcpu(b, s, 0);
	blob_sec(b, 12, &khz0, 4);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	s->xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
	blob_vcpu(b, s, 0);
	blob_sec(b, 6, &s->xcrs, sizeof(s->xcrs));
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	s->xcrs.nr_xcrs = 1;

	/* Section size larger than what is left. */
	blob_vcpu(b, s, 0);
	wire_put_u32(b->b + 16 + 4, 0xffffffffu);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "truncated"));

	/* Header: magic, version, section count, reserved, vCPU index, section reserved bits. */
	blob_vcpu(b, s, 0);
	b->b[0] ^= 1;
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "magic"));
	blob_vcpu(b, s, 0);
	wire_put_u16(b->b + 4, CPU_STATE_VERSION + 1);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "version"));
	blob_vcpu(b, s, 0);
	wire_put_u16(b->b + 6, 33);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	wire_put_u16(b->b + 6, 6); /* fewer sections than present: trailing bytes */
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	b->b[12] = 1;
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	wire_put_u32(b->b + 8, CPU_STATE_MAX_VCPUS);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	blob_vcpu(b, s, 0);
	b->b[16 + 2] = 1;
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);

	/* The VM magic on a vCPU blob. */
	blob_vcpu(b, s, 0);
	wire_put_u32(b->b, MAGIC_VM);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	free(b);
	free(s);
}

static void test_vcpu_bit_flips(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = calloc(1, sizeof(*d));
	size_t len;
	uint8_t *buf = encode_vcpu(s, &len);
	int ok = 0, bad = 0;

	/* Every bit of the header and of every section header, and a sample of the bodies: the
	 * decoder either accepts (a body bit) or rejects, and never reads out of bounds. */
	for (size_t byte = 0; byte < len; byte += (byte < 64 ? 1 : 13)) {
		for (int bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1u << bit);
			if (cpu_state_decode_vcpu(buf, len, d, NULL, 0) == 0)
				ok++;
			else
				bad++;
			buf[byte] ^= (uint8_t)(1u << bit);
		}
	}
	assert_true(bad > 0);
	assert_true(ok > 0);
	free(buf);
	free(s);
	free(d);
}

static void test_vm_roundtrip_and_strict(void **unused)
{
	struct vm_kvm_state s, d;
	uint8_t buf[CPU_STATE_VM_BLOB_MAX], buf2[CPU_STATE_VM_BLOB_MAX];
	size_t len, len2;
	char err[256];

	make_vm_state(&s);
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, err, sizeof(err)), 0);
	assert_memory_equal(&s, &d, sizeof(s));
	assert_int_equal(cpu_state_encode_vm(&d, buf2, sizeof(buf2), &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	for (size_t n = 0; n < len; n++)
		assert_int_equal(cpu_state_decode_vm(buf, n, &d, NULL, 0), -EINVAL);

	/* Without a PIT. */
	s.have = 0;
	memset(&s.pit, 0, sizeof(s.pit));
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, NULL, 0), 0);
	assert_memory_equal(&s, &d, sizeof(s));

	/* Wrong chip ids. */
	s.pic_slave.chip_id = 2;
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "irqchip"));
	s.pic_slave.chip_id = 1;

	/* The vCPU magic on a VM blob; a nonzero index. */
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	wire_put_u32(buf, MAGIC_VCPU);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, NULL, 0), -EINVAL);
	wire_put_u32(buf, MAGIC_VM);
	wire_put_u32(buf + 8, 1);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, NULL, 0), -EINVAL);
	assert_int_equal(cpu_state_encode_vm(&s, buf, 100, &len), -ENOSPC);
}

/* ---- Under KVM ---- */

#define GUEST_MEM (1u << 20)
#define GUEST_CODE 0x1000
#define GUEST_PORT 0x10

struct test_vm {
	int vm, vcpu;
	struct kvm_run *run;
	int run_size;
	uint8_t *mem;
};

static int kvm_open(void)
{
	return open("/dev/kvm", O_RDWR | O_CLOEXEC);
}

static void kvm_check(int r, const char *what)
{
	if (r < 0)
		fail_msg("%s: %s", what, strerror(errno));
}

static void set_cpuid(int kvm_fd, int vcpu_fd)
{
	size_t sz = sizeof(struct kvm_cpuid2) + 256 * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);

	assert_non_null(c);
	c->nent = 256;
	kvm_check(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c), "KVM_GET_SUPPORTED_CPUID");
	kvm_check(ioctl(vcpu_fd, KVM_SET_CPUID2, c), "KVM_SET_CPUID2");
	free(c);
}

/* A VM with irqchip, PIT, 1 MiB of RAM (a copy of `image` if given) and one vCPU with CPUID. */
static void test_vm_create(struct test_vm *t, int kvm_fd, const uint8_t *image)
{
	struct kvm_pit_config pit = { .flags = 0 };
	struct kvm_userspace_memory_region region;

	t->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	kvm_check(t->vm, "KVM_CREATE_VM");
	ioctl(t->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul); /* real mode on VMX needs it; harmless */
	kvm_check(ioctl(t->vm, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
	kvm_check(ioctl(t->vm, KVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2");
	t->mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t->mem != MAP_FAILED);
	if (image)
		memcpy(t->mem, image, GUEST_MEM);
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = GUEST_MEM,
		.userspace_addr = (uintptr_t)t->mem,
	};
	kvm_check(ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
	t->vcpu = ioctl(t->vm, KVM_CREATE_VCPU, 0);
	kvm_check(t->vcpu, "KVM_CREATE_VCPU");
	t->run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	kvm_check(t->run_size, "KVM_GET_VCPU_MMAP_SIZE");
	t->run = mmap(NULL, (size_t)t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	assert_true(t->run != MAP_FAILED);
	set_cpuid(kvm_fd, t->vcpu);
}

static void test_vm_destroy(struct test_vm *t)
{
	munmap(t->run, (size_t)t->run_size);
	munmap(t->mem, GUEST_MEM);
	close(t->vcpu);
	close(t->vm);
}

/* Runs until the guest's next OUT to GUEST_PORT; returns RAX then. */
/* A vCPU stopped at a port exit has not finished the instruction (KVM completes it on the
 * next KVM_RUN), so its saved RIP would repeat it: KVM_RUN with immediate_exit completes it
 * without entering the guest. 0: done (EINTR); 1: another exit; negative errno. */
static int complete_io(int vcpu_fd, struct kvm_run *run)
{
	int r;

	run->immediate_exit = 1;
	r = ioctl(vcpu_fd, KVM_RUN, 0);
	run->immediate_exit = 0;
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return 1;
}

static uint64_t run_to_out(struct test_vm *t)
{
	struct kvm_regs regs;

	for (int tries = 0; tries < 100; tries++) {
		int r = ioctl(t->vcpu, KVM_RUN, 0);

		if (r < 0 && errno == EINTR)
			continue;
		kvm_check(r, "KVM_RUN");
		if (t->run->exit_reason == KVM_EXIT_IO && t->run->io.port == GUEST_PORT &&
		    t->run->io.direction == KVM_EXIT_IO_OUT) {
			kvm_check(ioctl(t->vcpu, KVM_GET_REGS, &regs), "KVM_GET_REGS");
			return regs.rax;
		}
		fail_msg("unexpected exit %u", t->run->exit_reason);
	}
	fail_msg("no OUT from the guest");
	return 0;
}

static void set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + sizeof(m->entries[0]));

	assert_non_null(m);
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = value;
	assert_int_equal(ioctl(vcpu_fd, KVM_SET_MSRS, m), 1);
	free(m);
}

static const struct kvm_msr_entry *find_msr(const struct vcpu_state *s, uint32_t index)
{
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == index)
			return &s->msrs[i];
	return NULL;
}

static uint32_t lapic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, 4);
	return v;
}

static void lapic_set(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(l->regs + off, &v, 4);
}

static const struct {
	uint32_t index;
	uint64_t value;
} test_msrs[] = {
	{ 0x174, 0x10 },                    /* IA32_SYSENTER_CS */
	{ 0x175, 0x12345000 },              /* IA32_SYSENTER_ESP */
	{ 0x176, 0xffffffff81000000ull },   /* IA32_SYSENTER_EIP */
	{ 0xc0000081, 0x0023001000000000ull }, /* STAR */
	{ 0xc0000082, 0xffffffff81800000ull }, /* LSTAR */
	{ 0xc0000084, 0x47700 },            /* SFMASK */
	{ 0xc0000102, 0xffff888000001000ull }, /* KERNEL_GS_BASE */
};

static void segment_equal(const struct kvm_segment *a, const struct kvm_segment *b)
{
	assert_int_equal(a->base, b->base);
	assert_int_equal(a->limit, b->limit);
	assert_int_equal(a->selector, b->selector);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->present, b->present);
	assert_int_equal(a->dpl, b->dpl);
	assert_int_equal(a->db, b->db);
	assert_int_equal(a->s, b->s);
	assert_int_equal(a->l, b->l);
	assert_int_equal(a->g, b->g);
}

static void test_kvm_save_restore_run(void **unused)
{
	static const uint8_t code[] = {
		0x66, 0x40,       /* inc eax */
		0xe6, GUEST_PORT, /* out GUEST_PORT, al */
		0xeb, 0xfa,       /* jmp back to inc */
	};
	int kvm_fd = kvm_open();
	struct test_vm a, b;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_lapic_state lapic;
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = { .clock = 5000000000ull };
	struct vcpu_state *sa = calloc(1, sizeof(*sa)), *sb = calloc(1, sizeof(*sb));
	struct vcpu_state *decoded = calloc(1, sizeof(*decoded));
	struct vm_kvm_state va, vb, vdecoded;
	uint8_t *blob = malloc(CPU_STATE_VCPU_BLOB_MAX), vblob[CPU_STATE_VM_BLOB_MAX];
	size_t blob_len, vblob_len;
	char err[256] = "";

	if (kvm_fd < 0) {
		print_message("no /dev/kvm (%s): skipping\n", strerror(errno));
		free(sa);
		free(sb);
		free(decoded);
		free(blob);
		skip();
	}

	/* Source VM: real-mode loop at 0x1000 counting in EAX, OUT after every step. */
	test_vm_create(&a, kvm_fd, NULL);
	memcpy(a.mem + GUEST_CODE, code, sizeof(code));
	kvm_check(ioctl(a.vcpu, KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	kvm_check(ioctl(a.vcpu, KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_CODE;
	regs.rflags = 2;
	regs.rbx = 0xb0b0b0b0;
	regs.r15 = 0x1515151515151515ull;
	kvm_check(ioctl(a.vcpu, KVM_SET_REGS, &regs), "KVM_SET_REGS");

	/* State that must survive: MSRs, LAPIC registers, PIC, IOAPIC, PIT, clock. */
	for (size_t i = 0; i < sizeof(test_msrs) / sizeof(test_msrs[0]); i++)
		set_msr(a.vcpu, test_msrs[i].index, test_msrs[i].value);
	kvm_check(ioctl(a.vcpu, KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC");
	lapic_set(&lapic, 0xf0, 0x1ff);     /* SVR: enabled, vector 0xff */
	lapic_set(&lapic, 0x320, 0x10040);  /* LVT timer: masked, vector 0x40 */
	lapic_set(&lapic, 0x80, 0x20);      /* TPR */
	kvm_check(ioctl(a.vcpu, KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
	memset(&chip, 0, sizeof(chip));
	chip.chip_id = KVM_IRQCHIP_PIC_MASTER;
	kvm_check(ioctl(a.vm, KVM_GET_IRQCHIP, &chip), "KVM_GET_IRQCHIP");
	chip.chip.pic.irq_base = 0x20;
	chip.chip.pic.imr = 0xfb;
	kvm_check(ioctl(a.vm, KVM_SET_IRQCHIP, &chip), "KVM_SET_IRQCHIP");
	memset(&chip, 0, sizeof(chip));
	chip.chip_id = KVM_IRQCHIP_IOAPIC;
	kvm_check(ioctl(a.vm, KVM_GET_IRQCHIP, &chip), "KVM_GET_IRQCHIP");
	chip.chip.ioapic.redirtbl[3].bits = 0x10033; /* masked, vector 0x33 */
	kvm_check(ioctl(a.vm, KVM_SET_IRQCHIP, &chip), "KVM_SET_IRQCHIP");
	kvm_check(ioctl(a.vm, KVM_GET_PIT2, &pit), "KVM_GET_PIT2");
	pit.channels[1].count = 0x1234;
	pit.channels[1].mode = 2;
	kvm_check(ioctl(a.vm, KVM_SET_PIT2, &pit), "KVM_SET_PIT2");
	kvm_check(ioctl(a.vm, KVM_SET_CLOCK, &clock), "KVM_SET_CLOCK");

	for (uint64_t i = 1; i <= 5; i++)
		assert_int_equal(run_to_out(&a), i);
	/* Finish the OUT so the saved RIP is past it. */
	assert_int_equal(complete_io(a.vcpu, a.run), 0);

	assert_int_equal(cpu_state_save_vcpu(a.vcpu, kvm_fd, sa, err, sizeof(err)), 0);
	assert_int_equal(cpu_state_save_vm(a.vm, &va, err, sizeof(err)), 0);
	print_message("saved: rip=0x%llx rax=%llu, %u MSRs (%u unreadable), xsave %u bytes, "
		      "have 0x%x, tsc %u kHz\n", (unsigned long long)sa->regs.rip,
		      (unsigned long long)sa->regs.rax, sa->nmsrs, sa->nmsrs_unreadable,
		      sa->xsave_size, sa->have, sa->tsc_khz);
	for (uint32_t i = 0; i < sa->nmsrs_unreadable && i < 16; i++)
		print_message("unreadable MSR 0x%x\n", sa->msrs_unreadable[i]);
	assert_int_equal(sa->regs.rax, 5);
	assert_int_equal(sa->regs.rip, GUEST_CODE + 4);
	for (size_t i = 0; i < sizeof(test_msrs) / sizeof(test_msrs[0]); i++) {
		const struct kvm_msr_entry *m = find_msr(sa, test_msrs[i].index);

		assert_non_null(m);
		assert_int_equal(m->data, test_msrs[i].value);
	}

	/* Through the serialised form. */
	sa->vcpu_index = 0;
	assert_int_equal(cpu_state_encode_vcpu(sa, blob, CPU_STATE_VCPU_BLOB_MAX, &blob_len), 0);
	assert_int_equal(cpu_state_encode_vm(&va, vblob, sizeof(vblob), &vblob_len), 0);
	assert_int_equal(cpu_state_decode_vcpu(blob, blob_len, decoded, err, sizeof(err)), 0);
	assert_int_equal(cpu_state_decode_vm(vblob, vblob_len, &vdecoded, err, sizeof(err)), 0);
	print_message("blobs: vCPU %zu bytes, VM %zu bytes\n", blob_len, vblob_len);

	/* Destination: a fresh VM with the same memory; restore in the documented order. */
	test_vm_create(&b, kvm_fd, a.mem);
	int vcpu_fds[1] = { b.vcpu };

	if (cpu_state_restore_all(b.vm, kvm_fd, vcpu_fds, decoded, 1, &vdecoded, err,
				  sizeof(err)) != 0)
		fail_msg("restore: %s", err);

	/* Save again and compare. */
	assert_int_equal(cpu_state_save_vcpu(b.vcpu, kvm_fd, sb, err, sizeof(err)), 0);
	assert_int_equal(cpu_state_save_vm(b.vm, &vb, err, sizeof(err)), 0);
	assert_memory_equal(&sa->regs, &sb->regs, sizeof(sa->regs));
	assert_int_equal(sa->have, sb->have);
	if (sa->have & CPU_STATE_HAVE_SREGS2) {
		const struct kvm_sregs2 *x = &sa->sregs2, *y = &sb->sregs2;

		segment_equal(&x->cs, &y->cs);
		segment_equal(&x->ds, &y->ds);
		segment_equal(&x->ss, &y->ss);
		segment_equal(&x->tr, &y->tr);
		assert_int_equal(x->cr0, y->cr0);
		assert_int_equal(x->cr3, y->cr3);
		assert_int_equal(x->cr4, y->cr4);
		assert_int_equal(x->efer, y->efer);
		assert_int_equal(x->apic_base, y->apic_base);
		assert_int_equal(x->gdt.base, y->gdt.base);
		assert_int_equal(x->idt.limit, y->idt.limit);
	}
	for (unsigned off = 0; off < 0x400; off += 0x10) {
		if (off == 0x390) /* timer current count */
			continue;
		if (lapic_reg(&sa->lapic, off) != lapic_reg(&sb->lapic, off))
			fail_msg("LAPIC register 0x%x: 0x%x then 0x%x", off, lapic_reg(&sa->lapic, off),
				 lapic_reg(&sb->lapic, off));
	}
	assert_int_equal(lapic_reg(&sb->lapic, 0xf0), 0x1ff);
	assert_int_equal(lapic_reg(&sb->lapic, 0x320), 0x10040);
	assert_int_equal(lapic_reg(&sb->lapic, 0x80), 0x20);
	assert_int_equal(sa->nmsrs, sb->nmsrs);
	for (uint32_t i = 0; i < sa->nmsrs; i++) {
		const struct kvm_msr_entry *m = find_msr(sb, sa->msrs[i].index);

		assert_non_null(m);
		if (sa->msrs[i].index == CPU_STATE_MSR_IA32_TSC)
			continue; /* runs on */
		if (m->data != sa->msrs[i].data)
			fail_msg("MSR 0x%x: 0x%llx then 0x%llx", sa->msrs[i].index,
				 (unsigned long long)sa->msrs[i].data, (unsigned long long)m->data);
	}
	assert_int_equal(sa->mp_state.mp_state, sb->mp_state.mp_state);
	assert_memory_equal(&sa->fpu, &sb->fpu, sizeof(sa->fpu));
	assert_int_equal(sa->xsave_size, sb->xsave_size);
	assert_memory_equal(&sa->debugregs, &sb->debugregs, sizeof(sa->debugregs));
	assert_int_equal(vb.pic_master.chip.pic.irq_base, 0x20);
	assert_int_equal(vb.pic_master.chip.pic.imr, 0xfb);
	assert_memory_equal(&va.pic_slave.chip.pic, &vb.pic_slave.chip.pic,
			    sizeof(va.pic_slave.chip.pic));
	assert_int_equal(vb.ioapic.chip.ioapic.redirtbl[3].bits, 0x10033);
	assert_memory_equal(&va.ioapic.chip.ioapic, &vb.ioapic.chip.ioapic,
			    sizeof(va.ioapic.chip.ioapic));
	assert_int_equal(vb.pit.channels[1].count, 0x1234);
	assert_int_equal(vb.pit.channels[1].mode, 2);
	assert_true(vb.clock.clock >= va.clock.clock);
	assert_true(vb.clock.clock < va.clock.clock + 5000000000ull);
	assert_true(va.clock.clock >= 5000000000ull);

	/* The restored vCPU continues counting where the source stopped. */
	assert_int_equal(run_to_out(&b), 6);
	assert_int_equal(run_to_out(&b), 7);
	kvm_check(ioctl(b.vcpu, KVM_GET_REGS, &regs), "KVM_GET_REGS");
	assert_int_equal(regs.rbx, 0xb0b0b0b0);
	assert_int_equal(regs.r15, 0x1515151515151515ull);

	test_vm_destroy(&a);
	test_vm_destroy(&b);
	close(kvm_fd);
	free(sa);
	free(sb);
	free(decoded);
	free(blob);
}

/* A blob of a real vCPU that a newer-XSAVE source would send: refused if this KVM can't hold it. */
static void test_kvm_restore_refuses_bad_state(void **unused)
{
	int kvm_fd = kvm_open();
	struct test_vm t;
	struct vcpu_state *s = calloc(1, sizeof(*s));
	char err[256] = "";

	if (kvm_fd < 0) {
		free(s);
		skip();
	}
	test_vm_create(&t, kvm_fd, NULL);
	assert_int_equal(cpu_state_save_vcpu(t.vcpu, kvm_fd, s, err, sizeof(err)), 0);

	/* XSAVE state larger than this host's, with data in the extra part. */
	if (s->have & CPU_STATE_HAVE_XSAVE) {
		int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

		if (size > 0 && size + 64 <= CPU_STATE_XSAVE_MAX) {
			struct vcpu_state *big = malloc(sizeof(*big));

			memcpy(big, s, sizeof(*s));
			big->xsave_size = (uint32_t)size + 64;
			big->xsave[size + 8] = 1;
			assert_int_equal(cpu_state_restore_vcpu(t.vcpu, kvm_fd, big, err, sizeof(err)),
					 -EOPNOTSUPP);
			assert_non_null(strstr(err, "XSAVE"));
			free(big);
		}
	}

	/* An MSR this KVM does not know: named in the error. */
	s->msrs[s->nmsrs].index = 0xdead0001;
	s->msrs[s->nmsrs].data = 1;
	s->nmsrs++;
	assert_int_equal(cpu_state_restore_vcpu(t.vcpu, kvm_fd, s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0xdead0001"));
	s->nmsrs--;

	/* Unchanged state restores fine. */
	if (cpu_state_restore_vcpu(t.vcpu, kvm_fd, s, err, sizeof(err)) != 0)
		fail_msg("restore: %s", err);
	test_vm_destroy(&t);
	close(kvm_fd);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_roundtrip),
		cmocka_unit_test(test_vcpu_sregs_variant),
		cmocka_unit_test(test_vcpu_every_truncation),
		cmocka_unit_test(test_vcpu_strict_sections),
		cmocka_unit_test(test_vcpu_bit_flips),
		cmocka_unit_test(test_vm_roundtrip_and_strict),
		cmocka_unit_test(test_kvm_save_restore_run),
		cmocka_unit_test(test_kvm_restore_refuses_bad_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
