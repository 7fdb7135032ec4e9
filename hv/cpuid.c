/* The guest's CPUID: KVM_GET_SUPPORTED_CPUID, one data-driven filter, per-vCPU topology.
 *
 * The filter removes what guest kernel code cannot run under the KVM instruction emulator
 * of the development machines (PLATFORM.md: cmpxchg16b, popcnt, crc32, xsave, AVX, rdtscp,
 * invpcid, movbe, rdpid, ...). Guests look at CPUID before using these, so hiding them keeps
 * a stock kernel on instructions that work everywhere. */
#include "hv/cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/log.h"

enum cpuid_reg { R_EAX, R_EBX, R_ECX, R_EDX };

/* A named feature bit. Names are those of Linux's /proc/cpuinfo. `hide`: cpuid_filter
 * clears it. The table also serves cpuid_missing_features (CPU-baseline checks). */
struct cpuid_feature {
	uint32_t function, index;
	uint8_t reg, bit;
	uint8_t hide;
	const char *name;
};

#define F(fn, idx, r, b, h, n) { fn, idx, R_##r, b, h, n }

static const struct cpuid_feature features[] = {
	/* Leaf 1 EDX */
	F(1, 0, EDX, 0, 0, "fpu"),
	F(1, 0, EDX, 1, 0, "vme"),
	F(1, 0, EDX, 2, 0, "de"),
	F(1, 0, EDX, 3, 0, "pse"),
	F(1, 0, EDX, 4, 0, "tsc"),
	F(1, 0, EDX, 5, 0, "msr"),
	F(1, 0, EDX, 6, 0, "pae"),
	F(1, 0, EDX, 7, 0, "mce"),
	F(1, 0, EDX, 8, 0, "cx8"),
	F(1, 0, EDX, 9, 0, "apic"),
	F(1, 0, EDX, 11, 0, "sep"),
	F(1, 0, EDX, 12, 0, "mtrr"),
	F(1, 0, EDX, 13, 0, "pge"),
	F(1, 0, EDX, 14, 0, "mca"),
	F(1, 0, EDX, 15, 0, "cmov"),
	F(1, 0, EDX, 16, 0, "pat"),
	F(1, 0, EDX, 17, 0, "pse36"),
	F(1, 0, EDX, 19, 0, "clflush"),
	F(1, 0, EDX, 23, 0, "mmx"),
	F(1, 0, EDX, 24, 0, "fxsr"),
	F(1, 0, EDX, 25, 0, "sse"),
	F(1, 0, EDX, 26, 0, "sse2"),
	/* Leaf 1 ECX */
	F(1, 0, ECX, 0, 0, "pni"),
	F(1, 0, ECX, 1, 0, "pclmulqdq"),
	F(1, 0, ECX, 9, 0, "ssse3"),
	F(1, 0, ECX, 12, 1, "fma"),
	F(1, 0, ECX, 13, 1, "cx16"),
	F(1, 0, ECX, 17, 0, "pcid"),
	F(1, 0, ECX, 19, 0, "sse4_1"),
	F(1, 0, ECX, 20, 1, "sse4_2"), /* crc32 */
	F(1, 0, ECX, 21, 0, "x2apic"),
	F(1, 0, ECX, 22, 1, "movbe"),
	F(1, 0, ECX, 23, 1, "popcnt"),
	F(1, 0, ECX, 24, 0, "tsc_deadline_timer"),
	F(1, 0, ECX, 25, 0, "aes"),
	F(1, 0, ECX, 26, 1, "xsave"),
	F(1, 0, ECX, 27, 1, "osxsave"),
	F(1, 0, ECX, 28, 1, "avx"),
	F(1, 0, ECX, 29, 1, "f16c"),
	F(1, 0, ECX, 30, 1, "rdrand"),
	/* Leaf 7 subleaf 0 EBX */
	F(7, 0, EBX, 0, 0, "fsgsbase"),
	F(7, 0, EBX, 3, 1, "bmi1"),
	F(7, 0, EBX, 5, 1, "avx2"),
	F(7, 0, EBX, 7, 0, "smep"),
	F(7, 0, EBX, 8, 1, "bmi2"),
	F(7, 0, EBX, 9, 0, "erms"),
	F(7, 0, EBX, 10, 1, "invpcid"),
	F(7, 0, EBX, 16, 1, "avx512f"),
	F(7, 0, EBX, 17, 1, "avx512dq"),
	F(7, 0, EBX, 18, 1, "rdseed"),
	F(7, 0, EBX, 19, 1, "adx"),
	F(7, 0, EBX, 20, 0, "smap"),
	F(7, 0, EBX, 21, 1, "avx512ifma"),
	F(7, 0, EBX, 23, 0, "clflushopt"),
	F(7, 0, EBX, 24, 0, "clwb"),
	F(7, 0, EBX, 26, 1, "avx512pf"),
	F(7, 0, EBX, 27, 1, "avx512er"),
	F(7, 0, EBX, 28, 1, "avx512cd"),
	F(7, 0, EBX, 29, 1, "sha_ni"),
	F(7, 0, EBX, 30, 1, "avx512bw"),
	F(7, 0, EBX, 31, 1, "avx512vl"),
	/* Leaf 7 subleaf 0 ECX */
	F(7, 0, ECX, 1, 1, "avx512vbmi"),
	F(7, 0, ECX, 2, 0, "umip"),
	F(7, 0, ECX, 3, 1, "pku"),
	F(7, 0, ECX, 4, 1, "ospke"),
	F(7, 0, ECX, 6, 1, "avx512_vbmi2"),
	F(7, 0, ECX, 8, 1, "gfni"),
	F(7, 0, ECX, 9, 1, "vaes"),
	F(7, 0, ECX, 10, 1, "vpclmulqdq"),
	F(7, 0, ECX, 11, 1, "avx512_vnni"),
	F(7, 0, ECX, 12, 1, "avx512_bitalg"),
	F(7, 0, ECX, 14, 1, "avx512_vpopcntdq"),
	F(7, 0, ECX, 22, 1, "rdpid"),
	/* Leaf 7 subleaf 0 EDX */
	F(7, 0, EDX, 2, 1, "avx512_4vnniw"),
	F(7, 0, EDX, 3, 1, "avx512_4fmaps"),
	F(7, 0, EDX, 4, 0, "fsrm"),
	F(7, 0, EDX, 8, 1, "avx512_vp2intersect"),
	F(7, 0, EDX, 10, 0, "md_clear"),
	F(7, 0, EDX, 22, 1, "amx_bf16"),
	F(7, 0, EDX, 23, 1, "avx512_fp16"),
	F(7, 0, EDX, 24, 1, "amx_tile"),
	F(7, 0, EDX, 25, 1, "amx_int8"),
	/* Leaf 7 subleaf 1 EAX */
	F(7, 1, EAX, 4, 1, "avx_vnni"),
	F(7, 1, EAX, 5, 1, "avx512_bf16"),
	/* Leaf 0x80000001 ECX (AMD) */
	F(0x80000001, 0, ECX, 0, 0, "lahf_lm"),
	F(0x80000001, 0, ECX, 5, 1, "abm"), /* lzcnt */
	F(0x80000001, 0, ECX, 6, 1, "sse4a"),
	F(0x80000001, 0, ECX, 8, 0, "3dnowprefetch"),
	F(0x80000001, 0, ECX, 11, 1, "xop"),
	F(0x80000001, 0, ECX, 16, 1, "fma4"),
	F(0x80000001, 0, ECX, 21, 1, "tbm"),
	/* Leaf 0x80000001 EDX */
	F(0x80000001, 0, EDX, 11, 0, "syscall"),
	F(0x80000001, 0, EDX, 20, 0, "nx"),
	F(0x80000001, 0, EDX, 26, 0, "pdpe1gb"),
	F(0x80000001, 0, EDX, 27, 1, "rdtscp"),
	F(0x80000001, 0, EDX, 29, 0, "lm"),
};

#undef F

#define CPUID_HYPERVISOR_BIT 31 /* leaf 1 ECX */
#define CPUID_HTT_BIT 28        /* leaf 1 EDX */
#define CPUID_LEAF_XSAVE 0xd

uint32_t *cpuid_reg(struct kvm_cpuid_entry2 *e, uint8_t reg)
{
	switch (reg) {
	case R_EAX: return &e->eax;
	case R_EBX: return &e->ebx;
	case R_ECX: return &e->ecx;
	default: return &e->edx;
	}
}

int cpuid_feature_bit(const char *name, struct cpuid_bit *out)
{
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		if (strcmp(features[i].name, name))
			continue;
		*out = (struct cpuid_bit){ features[i].function, features[i].index, features[i].reg,
					   features[i].bit };
		return 0;
	}
	return -1;
}

static uint32_t reg_val(const struct kvm_cpuid_entry2 *e, int reg)
{
	switch (reg) {
	case R_EAX: return e->eax;
	case R_EBX: return e->ebx;
	case R_ECX: return e->ecx;
	default: return e->edx;
	}
}

static uint32_t nent(const struct cpuid_table *t)
{
	return t->hdr.nent < CPUID_MAX_ENTRIES ? t->hdr.nent : CPUID_MAX_ENTRIES;
}

int cpuid_get_supported(int kvm_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->hdr.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, t) < 0) {
		int err = errno;

		if (err == E2BIG)
			hv_error("KVM_GET_SUPPORTED_CPUID: KVM reports more than %d CPUID entries; "
				 "raise CPUID_MAX_ENTRIES in hv/cpuid.h", CPUID_MAX_ENTRIES);
		else
			hv_error("KVM_GET_SUPPORTED_CPUID failed: %s; check that /dev/kvm is a "
				 "working KVM", strerror(err));
		return -err;
	}
	return 0;
}

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < nent(t); i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

static const struct kvm_cpuid_entry2 *find_const(const struct cpuid_table *t, uint32_t function,
						 uint32_t index)
{
	return cpuid_find((struct cpuid_table *)t, function, index);
}

void cpuid_filter(struct cpuid_table *t)
{
	struct kvm_cpuid_entry2 *e;

	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		const struct cpuid_feature *f = &features[i];

		if (!f->hide)
			continue;
		e = cpuid_find(t, f->function, f->index);
		if (e)
			*cpuid_reg(e, f->reg) &= ~(1u << f->bit);
	}
	/* No XSAVE: the whole XSAVE leaf (every subleaf) reads as zero. */
	for (uint32_t i = 0; i < nent(t); i++) {
		e = &t->entries[i];
		if (e->function == CPUID_LEAF_XSAVE)
			e->eax = e->ebx = e->ecx = e->edx = 0;
	}
	e = cpuid_find(t, 1, 0);
	if (e)
		e->ecx |= 1u << CPUID_HYPERVISOR_BIT;
}

int cpuid_missing_features(const struct cpuid_table *want, const struct cpuid_table *have,
			   char *buf, size_t len)
{
	size_t used = 0;
	int count = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		const struct cpuid_feature *f = &features[i];
		const struct kvm_cpuid_entry2 *w = find_const(want, f->function, f->index);
		const struct kvm_cpuid_entry2 *h = find_const(have, f->function, f->index);
		uint32_t mask = 1u << f->bit;

		if (!w || !(reg_val(w, f->reg) & mask))
			continue;
		if (h && (reg_val(h, f->reg) & mask))
			continue;
		if (used < len) {
			int n = snprintf(buf + used, len - used, "%s%s", count ? ", " : "",
					 f->name);

			if (n > 0)
				used += (size_t)n;
		}
		count++;
	}
	return count;
}

static uint32_t id_bits(int ncpus)
{
	uint32_t bits = 0;

	while ((1 << bits) < ncpus)
		bits++;
	return bits;
}

/* Subleaf `index` of an index-significant leaf, appended (zeroed) if missing. */
static struct kvm_cpuid_entry2 *ensure_subleaf(struct cpuid_table *t, uint32_t function,
					       uint32_t index)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(t, function, index);

	if (e || t->hdr.nent >= CPUID_MAX_ENTRIES)
		return e;
	e = &t->entries[t->hdr.nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	e->index = index;
	e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	return e;
}

/* One socket of `ncpus` cores, one thread each; APIC id == vCPU index. */
static void set_topology(struct cpuid_table *t, int cpu, int ncpus)
{
	/* The extended topology leaves enumerate levels until a level of type 0: make sure
	 * the SMT level, the core level and the terminator are all there (KVM may list only
	 * subleaf 0). */
	for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb) {
		if (!cpuid_find(t, leaf, 0))
			continue;
		for (uint32_t idx = 0; idx < 3; idx++)
			ensure_subleaf(t, leaf, idx);
	}

	const uint32_t shift = id_bits(ncpus);
	const uint32_t apic_id = (uint32_t)cpu;

	for (uint32_t i = 0; i < nent(t); i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffff) | (apic_id << 24) |
				 ((uint32_t)(ncpus & 0xff) << 16);
			if (ncpus > 1)
				e->edx |= 1u << CPUID_HTT_BIT;
			else
				e->edx &= ~(1u << CPUID_HTT_BIT);
			break;
		case 4:          /* Intel deterministic cache parameters */
		case 0x8000001d: /* the same for AMD */
			if ((e->eax & 0x1f) == 0) /* no more caches */
				break;
			/* L1/L2 belong to one core (one thread), L3 to the whole socket. */
			e->eax = (e->eax & ~(0xfffu << 14)) |
				 ((((e->eax >> 5) & 7) >= 3 ? (uint32_t)ncpus - 1 : 0) << 14);
			if (e->function == 4)
				e->eax = (e->eax & 0x03ffffff) |
					 ((uint32_t)(ncpus > 64 ? 64 : ncpus) - 1) << 26;
			break;
		case 0xb:
		case 0x1f:
			/* Level 0: SMT (1 thread per core); level 1: core (all vCPUs). */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = shift;
				e->ebx = (uint32_t)ncpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index & 0xff;
			}
			e->edx = apic_id;
			break;
		case 0x80000008: /* AMD: cores per package, APIC id size */
			e->ecx = (e->ecx & ~0xf0ffu) | (shift << 12) | (uint32_t)(ncpus - 1);
			break;
		case 0x8000001e: /* AMD: extended APIC id, compute unit, node */
			e->eax = apic_id;
			e->ebx = apic_id & 0xff;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
}

int cpuid_apply(int vcpu_fd, const struct cpuid_table *t, int cpu_index, int ncpus)
{
	struct cpuid_table *copy;
	int ret = 0;

	if (ncpus < 1 || ncpus > 255 || cpu_index < 0 || cpu_index >= ncpus) {
		hv_error("CPUID: vCPU %d of %d is out of range (1 to 255 vCPUs)", cpu_index,
			 ncpus);
		return -EINVAL;
	}
	copy = malloc(sizeof(*copy));
	if (!copy) {
		hv_error("CPUID: out of memory");
		return -ENOMEM;
	}
	memcpy(copy, t, sizeof(*copy));
	copy->hdr.nent = nent(t);
	set_topology(copy, cpu_index, ncpus);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, copy) < 0) {
		ret = -errno;
		hv_error("KVM_SET_CPUID2 on vCPU %d failed: %s; it must happen before the vCPU's "
			 "first KVM_RUN", cpu_index, strerror(-ret));
	}
	free(copy);
	return ret;
}

int cpuid_feature_list(const struct cpuid_table *t, char *buf, size_t len)
{
	struct cpuid_table *none = calloc(1, sizeof(*none));

	if (!none)
		return -ENOMEM;
	/* Every known feature set in t is "missing" from an empty table. */
	int r = cpuid_missing_features(t, none, buf, len);
	free(none);
	for (char *c = buf; *c; c++)
		if (c[0] == ',' && c[1] == ' ')
			memmove(c, c + 1, strlen(c + 1) + 1);
	return r;
}

int cpuid_read_features(int vcpu_fd, char *buf, size_t len)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->hdr.nent = CPUID_MAX_ENTRIES;
	r = ioctl(vcpu_fd, KVM_GET_CPUID2, t) < 0 ? -errno : cpuid_feature_list(t, buf, len);
	free(t);
	return r;
}
