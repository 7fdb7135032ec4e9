/* cpu_state: serialisation round trips and strict decoding (no KVM needed), then a real save ->
 * serialise -> restore into a fresh VM -> run test under KVM (skipped without /dev/kvm). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/state_enc.h"
#include "migrate/cpu_state.h"
#include "migrate/wire.h"

#define MAGIC_VCPU 0x50436876u
#define MAGIC_VM 0x4d566876u
#define HDR 16
#define NXCRS 3
#define NMSRS 40
#define XSAVE_SIZE (4096 + 64)

/* ---- Synthetic state ---- */

/* Bytes that are never zero and differ from field to field, so a field the encoding drops or
 * moves shows up as a difference. */
static void fill(void *p, size_t n, unsigned seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(1 + (seed * 131 + i * 7 + (i >> 8)) % 255);
}

/* Every part of a vCPU state filled, the optional sections all present. */
static struct vcpu_state *make_vcpu_state(void)
{
	struct vcpu_state *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	fill(&s->regs, sizeof(s->regs), 1);
	fill(&s->sregs, sizeof(s->sregs), 2);
	fill(&s->sregs2, sizeof(s->sregs2), 3);
	fill(&s->fpu, sizeof(s->fpu), 4);
	fill(&s->xcrs, sizeof(s->xcrs), 5);
	fill(&s->lapic, sizeof(s->lapic), 6);
	fill(&s->events, sizeof(s->events), 7);
	fill(&s->mp_state, sizeof(s->mp_state), 8);
	fill(&s->debugregs, sizeof(s->debugregs), 9);
	fill(s->msrs, sizeof(s->msrs), 10);
	fill(s->xsave, sizeof(s->xsave), 11);
	s->nmsrs_unreadable = 1;
	s->msrs_unreadable[0] = 0x1234;
	s->vcpu_index = 3;
	s->have = CPU_STATE_HAVE_SREGS2 | CPU_STATE_HAVE_XSAVE | CPU_STATE_HAVE_XCRS |
		  CPU_STATE_HAVE_DEBUGREGS | CPU_STATE_HAVE_TSC_KHZ;
	s->xcrs.nr_xcrs = NXCRS;
	s->xsave_size = XSAVE_SIZE;
	s->nmsrs = NMSRS;
	s->tsc_khz = 2994000;
	return s;
}

static void scrub_segment(struct kvm_segment *seg)
{
	seg->padding = 0;
}

#define SCRUB_SREGS(r)                                                                      \
	do {                                                                                \
		scrub_segment(&(r)->cs), scrub_segment(&(r)->ds), scrub_segment(&(r)->es);  \
		scrub_segment(&(r)->fs), scrub_segment(&(r)->gs), scrub_segment(&(r)->ss);  \
		scrub_segment(&(r)->tr), scrub_segment(&(r)->ldt);                          \
		memset((r)->gdt.padding, 0, sizeof((r)->gdt.padding));                      \
		memset((r)->idt.padding, 0, sizeof((r)->idt.padding));                      \
	} while (0)

/* What the encoding leaves out, zeroed: the state a decode must give back. */
static void scrub_vcpu(struct vcpu_state *s)
{
	if (s->have & CPU_STATE_HAVE_SREGS2)
		memset(&s->sregs, 0, sizeof(s->sregs));
	else
		memset(&s->sregs2, 0, sizeof(s->sregs2));
	SCRUB_SREGS(&s->sregs);
	SCRUB_SREGS(&s->sregs2);
	s->fpu.pad1 = 0;
	s->fpu.pad2 = 0;
	for (uint32_t i = 0; i < KVM_MAX_XCRS; i++) {
		if (i < s->xcrs.nr_xcrs)
			s->xcrs.xcrs[i].reserved = 0;
		else
			memset(&s->xcrs.xcrs[i], 0, sizeof(s->xcrs.xcrs[i]));
	}
	memset(s->xcrs.padding, 0, sizeof(s->xcrs.padding));
	s->events.nmi.pad = 0;
	memset(s->events.reserved, 0, sizeof(s->events.reserved));
	memset(s->debugregs.reserved, 0, sizeof(s->debugregs.reserved));
	for (uint32_t i = 0; i < CPU_STATE_MAX_MSRS; i++) {
		if (i < s->nmsrs)
			s->msrs[i].reserved = 0;
		else
			memset(&s->msrs[i], 0, sizeof(s->msrs[i]));
	}
	memset(s->xsave + s->xsave_size, 0, CPU_STATE_XSAVE_MAX - s->xsave_size);
	s->nmsrs_unreadable = 0; /* save diagnostics, not state */
	memset(s->msrs_unreadable, 0, sizeof(s->msrs_unreadable));
}

static void make_vm_state(struct vm_kvm_state *s)
{
	memset(s, 0, sizeof(*s));
	s->have = CPU_STATE_HAVE_PIT;
	fill(&s->pic_master, sizeof(s->pic_master), 12);
	fill(&s->pic_slave, sizeof(s->pic_slave), 13);
	fill(&s->ioapic, sizeof(s->ioapic), 14);
	fill(&s->pit, sizeof(s->pit), 15);
	fill(&s->clock, sizeof(s->clock), 16);
}

static void scrub_vm(struct vm_kvm_state *s)
{
	struct kvm_irqchip *chips[] = { &s->pic_master, &s->pic_slave, &s->ioapic };
	size_t used;

	for (unsigned i = 0; i < 3; i++) {
		chips[i]->chip_id = i; /* the section says which chip it is */
		chips[i]->pad = 0;
		used = i < 2 ? sizeof(struct kvm_pic_state) : sizeof(struct kvm_ioapic_state);
		memset(chips[i]->chip.dummy + used, 0, sizeof(chips[i]->chip.dummy) - used);
	}
	s->ioapic.chip.ioapic.pad = 0;
	memset(s->pit.reserved, 0, sizeof(s->pit.reserved));
	s->clock.pad0 = 0;
	memset(s->clock.pad, 0, sizeof(s->clock.pad));
}

static uint8_t *encode_vcpu(const struct vcpu_state *s, size_t *len)
{
	uint8_t *buf = malloc(CPU_STATE_VCPU_BLOB_MAX);

	assert_non_null(buf);
	assert_int_equal(cpu_state_encode_vcpu(s, buf, CPU_STATE_VCPU_BLOB_MAX, len), 0);
	return buf;
}

/* The body of section `id` of a blob and its size, or NULL. */
static const uint8_t *find_section(const uint8_t *blob, size_t len, unsigned id, uint32_t *size)
{
	for (size_t off = HDR; off + 8 <= len; off += 8 + wire_get_u32(blob + off + 4)) {
		if (wire_get_u16(blob + off) == id) {
			*size = wire_get_u32(blob + off + 4);
			return blob + off + 8;
		}
	}
	return NULL;
}

/* Section sizes are exactly the sum of their fields' widths: no host padding on the wire. */
static void check_section_sizes(const uint8_t *blob, size_t len, const uint32_t (*sizes)[2],
				size_t n)
{
	size_t total = HDR;

	for (size_t i = 0; i < n; i++) {
		uint32_t size = 0;

		if (!find_section(blob, len, sizes[i][0], &size))
			fail_msg("section %u missing", sizes[i][0]);
		if (size != sizes[i][1])
			fail_msg("section %u: %u bytes, %u expected", sizes[i][0], size,
				 sizes[i][1]);
		total += 8 + size;
	}
	assert_int_equal(len, total);
}

/* id, body bytes: the sum of the field widths of docs/migration-protocol.md, 5. */
static const uint32_t vcpu_sizes[][2] = {
	{ 1, 18 * 8 },                                        /* REGS */
	{ 3, 8 * 23 + 2 * 10 + 7 * 8 + 8 + 4 * 8 },           /* SREGS2 */
	{ 4, 128 + 2 + 2 + 1 + 2 + 8 + 8 + 256 + 4 },         /* FPU */
	{ 5, 4 + XSAVE_SIZE },                                /* XSAVE */
	{ 6, 4 + 4 + NXCRS * (4 + 8) },                       /* XCRS */
	{ 7, 4 + NMSRS * (4 + 8) },                           /* MSRS */
	{ 8, 1024 },                                          /* LAPIC */
	{ 9, 4 + 4 + 4 + 3 + 4 + 4 + 4 + 1 + 1 + 8 },         /* VCPU_EVENTS */
	{ 10, 4 },                                            /* MP_STATE */
	{ 11, 4 * 8 + 8 + 8 + 8 },                            /* DEBUGREGS */
	{ 12, 4 },                                            /* TSC_KHZ */
};

static const uint32_t vm_sizes[][2] = {
	{ 1, 16 },                          /* PIC_MASTER */
	{ 2, 16 },                          /* PIC_SLAVE */
	{ 3, 8 + 4 + 4 + 4 + 24 * 8 },      /* IOAPIC */
	{ 4, 3 * (4 + 2 + 10 + 8) + 4 },    /* PIT2 */
	{ 5, 8 + 4 + 8 + 8 },               /* CLOCK */
};

static void test_vcpu_roundtrip(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = malloc(sizeof(*d));
	struct vcpu_state *want = malloc(sizeof(*want));
	size_t len, len2;
	uint8_t *buf = encode_vcpu(s, &len), *buf2;
	const uint8_t *body;
	uint32_t size;
	char err[256];

	assert_non_null(d);
	assert_non_null(want);
	check_section_sizes(buf, len, vcpu_sizes, sizeof(vcpu_sizes) / sizeof(vcpu_sizes[0]));

	/* Padding and reserved bytes never reach the wire: the scrubbed state encodes alike. */
	memcpy(want, s, sizeof(*s));
	scrub_vcpu(want);
	buf2 = encode_vcpu(want, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf2);

	/* Every encoded field comes back (the whole struct compares equal). */
	memset(d, 0xaa, sizeof(*d));
	assert_int_equal(cpu_state_decode_vcpu(buf, len, d, err, sizeof(err)), 0);
	assert_memory_equal(d, want, sizeof(*d));

	/* Fields go little endian, one after the other: REGS starts with rax; in SREGS2, ds
	 * follows cs's 23 bytes; MSRS is a count, then index and data of each. */
	body = find_section(buf, len, 1, &size);
	assert_int_equal(wire_get_u64(body), s->regs.rax);
	assert_int_equal(wire_get_u64(body + 17 * 8), s->regs.rflags);
	body = find_section(buf, len, 3, &size);
	assert_int_equal(wire_get_u64(body + 23), s->sregs2.ds.base);
	assert_int_equal(wire_get_u16(body + 12), s->sregs2.cs.selector);
	body = find_section(buf, len, 7, &size);
	assert_int_equal(wire_get_u32(body), NMSRS);
	assert_int_equal(wire_get_u32(body + 4 + 12), s->msrs[1].index);
	assert_int_equal(wire_get_u64(body + 4 + 12 + 4), s->msrs[1].data);

	/* Encoding the decoded state gives the same bytes. */
	buf2 = encode_vcpu(d, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	/* Too small a buffer is -ENOSPC, never an overflow. */
	for (size_t cap = 0; cap < len; cap += 97)
		assert_int_equal(cpu_state_encode_vcpu(s, buf2, cap, &len2), -ENOSPC);
	/* Counts the decoder would refuse are not encoded. */
	s->nmsrs = CPU_STATE_MAX_MSRS + 1;
	assert_int_equal(cpu_state_encode_vcpu(s, buf2, CPU_STATE_VCPU_BLOB_MAX, &len2), -EINVAL);
	s->nmsrs = NMSRS;
	s->xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
	assert_int_equal(cpu_state_encode_vcpu(s, buf2, CPU_STATE_VCPU_BLOB_MAX, &len2), -EINVAL);
	s->xcrs.nr_xcrs = NXCRS;
	s->xsave_size = 4098;
	assert_int_equal(cpu_state_encode_vcpu(s, buf2, CPU_STATE_VCPU_BLOB_MAX, &len2), -EINVAL);
	free(buf);
	free(buf2);
	free(s);
	free(d);
	free(want);
}

static void test_vcpu_sregs_variant(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = malloc(sizeof(*d));
	size_t len;
	uint8_t *buf;
	uint32_t size;

	assert_non_null(d);
	s->have = 0; /* plain SREGS, no XSAVE/XCRS/DEBUGREGS/TSC */
	buf = encode_vcpu(s, &len);
	assert_int_equal(cpu_state_decode_vcpu(buf, len, d, NULL, 0), 0);
	assert_int_equal(d->have, 0);
	assert_non_null(find_section(buf, len, 2, &size));
	assert_int_equal(size, 8 * 23 + 2 * 10 + 7 * 8 + 4 * 8);
	assert_null(find_section(buf, len, 3, &size));
	scrub_vcpu(s);
	/* Optional sections absent: nothing of them decoded. */
	s->xsave_size = 0;
	memset(s->xsave, 0, sizeof(s->xsave));
	memset(&s->xcrs, 0, sizeof(s->xcrs));
	memset(&s->debugregs, 0, sizeof(s->debugregs));
	s->tsc_khz = 0;
	assert_memory_equal(d, s, sizeof(*s));
	free(buf);
	free(s);
	free(d);
}

/* Every cut of a blob, in an exact-size copy (so ASan sees any over-read), is refused; so is
 * one byte more. */
static void check_every_truncation(const uint8_t *buf, size_t len, bool vm)
{
	struct vcpu_state *d = malloc(sizeof(*d));
	struct vm_kvm_state vmd;
	char err[256];

	assert_non_null(d);
	for (size_t n = 0; n <= len + 1; n++) {
		uint8_t *copy;
		int rc;

		if (n == len)
			continue;
		copy = malloc(n ? n : 1);
		memcpy(copy, buf, n < len ? n : len);
		if (n > len)
			copy[len] = 0;
		rc = vm ? cpu_state_decode_vm(copy, n, &vmd, err, sizeof(err))
			: cpu_state_decode_vcpu(copy, n, d, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("a blob of %zu of %zu bytes was accepted", n, len);
		free(copy);
	}
	free(d);
}

static void test_vcpu_every_truncation(void **unused)
{
	struct vcpu_state *s = make_vcpu_state();
	size_t len;
	uint8_t *buf = encode_vcpu(s, &len);

	check_every_truncation(buf, len, false);
	free(buf);
	free(s);
}

/* A blob assembled by hand: the sections of an encoded one, then crafted ones. */
struct blob {
	uint8_t b[CPU_STATE_VCPU_BLOB_MAX];
	size_t len;
};

/* Adds n sections to the count of the blob's header. */
static void blob_count(struct blob *b, int n)
{
	wire_put_u16(b->b + 6, (uint16_t)(wire_get_u16(b->b + 6) + n));
}

/* Header and every section of src but `skip`. */
static void blob_copy(struct blob *b, const uint8_t *src, size_t len, unsigned skip)
{
	memcpy(b->b, src, HDR);
	b->len = HDR;
	for (size_t off = HDR; off < len;) {
		size_t n = 8 + wire_get_u32(src + off + 4);

		if (wire_get_u16(src + off) != skip) {
			memcpy(b->b + b->len, src + off, n);
			b->len += n;
		} else {
			blob_count(b, -1);
		}
		off += n;
	}
}

/* Appends the one section o holds (written with hv/state_enc.h). */
static void blob_add(struct blob *b, struct state_out *o)
{
	assert_int_equal(state_out_error(o), 0);
	assert_true(b->len + o->len <= sizeof(b->b));
	memcpy(b->b + b->len, o->buf, o->len);
	b->len += o->len;
	blob_count(b, 1);
	state_out_free(o);
}

/* Appends section `id` whose body is one u32 count (then `nbytes` zero bytes). */
static void blob_add_counted(struct blob *b, unsigned id, uint32_t count, size_t nbytes)
{
	struct state_out o;
	uint8_t *zeros = calloc(1, nbytes + 1);

	state_out_init(&o);
	state_out_begin(&o, id);
	state_out_u32(&o, count);
	state_out_bytes(&o, zeros, nbytes);
	state_out_end(&o);
	blob_add(b, &o);
	free(zeros);
}

static int decode_blob(const struct blob *b, char *err, size_t errlen)
{
	struct vcpu_state *d = malloc(sizeof(*d));
	int rc;

	assert_non_null(d);
	err[0] = '\0';
	rc = cpu_state_decode_vcpu(b->b, b->len, d, err, errlen);
	free(d);
	return rc;
}

static void expect_refused(const struct blob *b, const char *why)
{
	char err[256];

	if (decode_blob(b, err, sizeof(err)) != -EINVAL)
		fail_msg("accepted, expected refused for \"%s\"", why);
	if (!strstr(err, why))
		fail_msg("refused with \"%s\", expected \"%s\"", err, why);
	assert_null(strchr(err, '\n'));
}

/* The layout of version 1: 16-byte header with a section count, then the KVM structs byte for
 * byte. */
static void blob_v1(struct blob *b, const struct vcpu_state *s)
{
	const struct {
		uint16_t id;
		const void *p;
		uint32_t size;
	} secs[] = {
		{ 1, &s->regs, sizeof(s->regs) },       { 3, &s->sregs2, sizeof(s->sregs2) },
		{ 4, &s->fpu, sizeof(s->fpu) },         { 7, s->msrs, 16 * 2 },
		{ 8, &s->lapic, sizeof(s->lapic) },     { 9, &s->events, sizeof(s->events) },
		{ 10, &s->mp_state, sizeof(s->mp_state) },
	};

	memset(b->b, 0, HDR);
	wire_put_u32(b->b, MAGIC_VCPU);
	wire_put_u16(b->b + 4, 1);
	wire_put_u16(b->b + 6, sizeof(secs) / sizeof(secs[0]));
	wire_put_u32(b->b + 8, s->vcpu_index);
	b->len = HDR;
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		wire_put_u16(b->b + b->len, secs[i].id);
		wire_put_u16(b->b + b->len + 2, 0);
		wire_put_u32(b->b + b->len + 4, secs[i].size);
		memcpy(b->b + b->len + 8, secs[i].p, secs[i].size);
		b->len += 8 + secs[i].size;
	}
}

static void test_vcpu_strict_sections(void **unused)
{
	struct vcpu_state *s = make_vcpu_state();
	struct blob *b = malloc(sizeof(*b));
	struct state_out o;
	size_t len;
	uint8_t *buf;
	char err[256], want[128];

	assert_non_null(b);
	buf = encode_vcpu(s, &len);
	blob_copy(b, buf, len, 0);
	assert_int_equal(decode_blob(b, err, sizeof(err)), 0);

	/* The old layout: one line naming both versions. */
	blob_v1(b, s);
	assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "vCPU state: version 1, this hv reads version %u",
		 CPU_STATE_VERSION);
	assert_string_equal(err, want);

	/* Each required section missing; the optional ones may be. */
	const unsigned required[] = { 1, 4, 7, 8, 9, 10 };

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		blob_copy(b, buf, len, required[i]);
		expect_refused(b, "is missing");
	}
	blob_copy(b, buf, len, 3);
	expect_refused(b, "exactly one of SREGS and SREGS2");
	const unsigned optional[] = { 5, 6, 11, 12 };

	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
		blob_copy(b, buf, len, optional[i]);
		assert_int_equal(decode_blob(b, err, sizeof(err)), 0);
	}

	/* Both SREGS and SREGS2. */
	blob_copy(b, buf, len, 0);
	state_out_init(&o);
	state_out_begin(&o, 2);
	state_out_bytes(&o, &s->sregs, 8 * 23 + 2 * 10 + 7 * 8 + 4 * 8);
	state_out_end(&o);
	blob_add(b, &o);
	expect_refused(b, "exactly one");

	/* A section twice. */
	blob_copy(b, buf, len, 0);
	memcpy(b->b + b->len, buf + HDR, 8 + 144);
	b->len += 8 + 144;
	blob_count(b, 1);
	expect_refused(b, "section 1 appears twice");

	/* Unknown sections. */
	blob_copy(b, buf, len, 0);
	blob_add_counted(b, 13, 0, 0);
	expect_refused(b, "unknown section 13");
	blob_copy(b, buf, len, 0);
	wire_put_u16(b->b + b->len, 64);
	wire_put_u16(b->b + b->len + 2, 0);
	wire_put_u32(b->b + b->len + 4, 0);
	b->len += 8;
	blob_count(b, 1);
	expect_refused(b, "section id 64");

	/* Trailing bytes: a few, or a whole empty section header. */
	blob_copy(b, buf, len, 0);
	memset(b->b + b->len, 0, 3);
	b->len += 3;
	expect_refused(b, "too few for a header");
	blob_copy(b, buf, len, 0);
	memset(b->b + b->len, 0, 8);
	b->len += 8;
	expect_refused(b, "section id 0");

	/* Every section's size one byte off either way. */
	for (size_t off = HDR; off < len; off += 8 + wire_get_u32(buf + off + 4)) {
		uint32_t size = wire_get_u32(buf + off + 4);

		for (int delta = -1; delta <= 1; delta += 2) {
			blob_copy(b, buf, len, 0);
			wire_put_u32(b->b + off + 4, size + (uint32_t)delta);
			assert_int_equal(decode_blob(b, err, sizeof(err)), -EINVAL);
		}
	}
	blob_copy(b, buf, len, 1);
	blob_add_counted(b, 1, 0, 144 - 4 - 1);
	expect_refused(b, "REGS (section 1): 143 bytes, too short");
	blob_copy(b, buf, len, 8);
	blob_add_counted(b, 8, 0, 1024 - 4 + 1);
	expect_refused(b, "LAPIC (section 8): 1025 bytes, 1024 expected");

	/* XSAVE too small, too large, unaligned; then a good one. */
	blob_copy(b, buf, len, 5);
	blob_add_counted(b, 5, 4092, 4092);
	expect_refused(b, "XSAVE area of 4092 bytes");
	blob_copy(b, buf, len, 5);
	blob_add_counted(b, 5, CPU_STATE_XSAVE_MAX + 4, CPU_STATE_XSAVE_MAX + 4);
	expect_refused(b, "XSAVE area of");
	blob_copy(b, buf, len, 5);
	blob_add_counted(b, 5, 4098, 4098);
	expect_refused(b, "XSAVE area of 4098 bytes");
	blob_copy(b, buf, len, 5);
	blob_add_counted(b, 5, 4096 + 64, 4096 + 63);
	expect_refused(b, "too short");
	blob_copy(b, buf, len, 5);
	blob_add_counted(b, 5, 4096 + 64, 4096 + 64);
	assert_int_equal(decode_blob(b, err, sizeof(err)), 0);

	/* Counts: too many XCRs or MSRs, or more than the section holds. */
	blob_copy(b, buf, len, 6);
	blob_add_counted(b, 6, KVM_MAX_XCRS + 1, 4 + (KVM_MAX_XCRS + 1) * 12);
	expect_refused(b, "17 XCRs, at most 16");
	blob_copy(b, buf, len, 7);
	blob_add_counted(b, 7, CPU_STATE_MAX_MSRS + 1, (CPU_STATE_MAX_MSRS + 1) * 12);
	expect_refused(b, "513 MSRs, at most 512");
	blob_copy(b, buf, len, 7);
	blob_add_counted(b, 7, CPU_STATE_MAX_MSRS, 12);
	expect_refused(b, "too short");
	blob_copy(b, buf, len, 7);
	blob_add_counted(b, 7, 1, 12 + 1);
	expect_refused(b, "expected");

	/* TSC_KHZ of zero. */
	blob_copy(b, buf, len, 12);
	blob_add_counted(b, 12, 0, 0);
	expect_refused(b, "TSC_KHZ is 0");

	/* A section larger than what is left. */
	blob_copy(b, buf, len, 0);
	wire_put_u32(b->b + HDR + 4, 0xffffffffu);
	expect_refused(b, "only");

	/* Header: magic, version, section count, reserved bytes, vCPU index, section reserved
	 * bits. */
	blob_copy(b, buf, len, 0);
	b->b[0] ^= 1;
	expect_refused(b, "magic");
	blob_copy(b, buf, len, 0);
	wire_put_u16(b->b + 4, CPU_STATE_VERSION + 1);
	expect_refused(b, "version");
	blob_copy(b, buf, len, 0);
	blob_count(b, 1);
	expect_refused(b, "11 sections, its header says 12");
	blob_copy(b, buf, len, 0);
	blob_count(b, -1);
	expect_refused(b, "11 sections, its header says 10");
	blob_copy(b, buf, len, 0);
	b->b[12] = 1;
	expect_refused(b, "reserved");
	blob_copy(b, buf, len, 0);
	wire_put_u32(b->b + 8, CPU_STATE_MAX_VCPUS);
	expect_refused(b, "vCPU index 1024");
	blob_copy(b, buf, len, 0);
	b->b[HDR + 2] = 1;
	expect_refused(b, "reserved");

	/* The VM magic on a vCPU blob. */
	blob_copy(b, buf, len, 0);
	wire_put_u32(b->b, MAGIC_VM);
	expect_refused(b, "magic");
	free(buf);
	free(b);
	free(s);
}

static void test_vcpu_bit_flips(void **unused)
{
	struct vcpu_state *s = make_vcpu_state(), *d = malloc(sizeof(*d));
	size_t len;
	uint8_t *buf = encode_vcpu(s, &len);
	int ok = 0, bad = 0;

	/* Every bit of the header and of the first section headers, and a sample of the rest:
	 * the decoder either accepts (a body bit) or rejects, and never reads out of bounds. */
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
	struct vm_kvm_state s, want, d;
	uint8_t buf[CPU_STATE_VM_BLOB_MAX], buf2[CPU_STATE_VM_BLOB_MAX];
	const uint8_t *body;
	uint32_t size;
	size_t len, len2;
	char err[256], line[128];

	make_vm_state(&s);
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	check_section_sizes(buf, len, vm_sizes, sizeof(vm_sizes) / sizeof(vm_sizes[0]));
	assert_int_equal(len, 404);

	/* Padding, reserved words, chip_id and the unused rest of the irqchip union are not on
	 * the wire; every field is. */
	memcpy(&want, &s, sizeof(s));
	scrub_vm(&want);
	assert_int_equal(cpu_state_encode_vm(&want, buf2, sizeof(buf2), &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, err, sizeof(err)), 0);
	assert_memory_equal(&d, &want, sizeof(d));
	assert_int_equal(cpu_state_encode_vm(&d, buf2, sizeof(buf2), &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	/* The IOAPIC by its fields: base_address, ioregsel, id, irr, the redirection table. */
	body = find_section(buf, len, 3, &size);
	assert_int_equal(wire_get_u64(body), s.ioapic.chip.ioapic.base_address);
	assert_int_equal(wire_get_u32(body + 16), s.ioapic.chip.ioapic.irr);
	assert_int_equal(wire_get_u64(body + 20 + 23 * 8), s.ioapic.chip.ioapic.redirtbl[23].bits);
	body = find_section(buf, len, 4, &size);
	assert_int_equal(wire_get_u64(body + 24 + 16), (uint64_t)s.pit.channels[1].count_load_time);
	assert_int_equal(wire_get_u32(body + 72), s.pit.flags);

	check_every_truncation(buf, len, true);

	/* Every section's size one byte off either way. */
	for (size_t off = HDR; off < len; off += 8 + wire_get_u32(buf + off + 4)) {
		memcpy(buf2, buf, len);
		wire_put_u32(buf2 + off + 4, wire_get_u32(buf + off + 4) + 1);
		assert_int_equal(cpu_state_decode_vm(buf2, len, &d, NULL, 0), -EINVAL);
		wire_put_u32(buf2 + off + 4, wire_get_u32(buf + off + 4) - 1);
		assert_int_equal(cpu_state_decode_vm(buf2, len, &d, NULL, 0), -EINVAL);
	}

	/* A repeated section; a missing one. */
	memcpy(buf2, buf, len);
	wire_put_u16(buf2 + 6, 6);
	memcpy(buf2 + len, buf + HDR, 8 + 16);
	assert_int_equal(cpu_state_decode_vm(buf2, len + 8 + 16, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "section 1 appears twice"));
	memcpy(buf2, buf, HDR);
	wire_put_u16(buf2 + 6, 4);
	memcpy(buf2 + HDR, buf + HDR + 8 + 16, len - HDR - 8 - 16);
	assert_int_equal(cpu_state_decode_vm(buf2, len - 8 - 16, &d, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "VM state: section PIC_MASTER is missing");

	/* An old-layout blob. */
	memcpy(buf2, buf, len);
	wire_put_u16(buf2 + 4, 1);
	wire_put_u16(buf2 + 6, 5);
	assert_int_equal(cpu_state_decode_vm(buf2, len, &d, err, sizeof(err)), -EINVAL);
	snprintf(line, sizeof(line), "VM state: version 1, this hv reads version %u",
		 CPU_STATE_VERSION);
	assert_string_equal(err, line);

	/* Without a PIT. */
	s.have = 0;
	want.have = 0;
	memset(&want.pit, 0, sizeof(want.pit));
	assert_int_equal(cpu_state_encode_vm(&s, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 404 - 8 - 76);
	assert_int_equal(cpu_state_decode_vm(buf, len, &d, NULL, 0), 0);
	assert_memory_equal(&d, &want, sizeof(d));

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
