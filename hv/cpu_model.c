/* CPU models: the x86-64 psABI levels as CPUID masks (see hv/cpu_model.h). */
#include "hv/cpu_model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hv/cpuid.h"

enum { EAX, EBX, ECX, EDX };

/* What each level adds to the one below (x86-64 psABI, "microarchitecture levels"). lm and
 * syscall are the 64-bit baseline itself; lzcnt is "abm" in /proc/cpuinfo. */
static const char *const level_v1[] = { "lm", "fpu", "cx8", "cmov", "mmx", "fxsr", "sse",
					"sse2", "syscall", NULL };
static const char *const level_v2[] = { "cx16", "lahf_lm", "popcnt", "pni", "sse4_1",
					"sse4_2", "ssse3", NULL };
/* xsave: AVX state needs it (the psABI names only OSXSAVE, which the guest OS sets). */
static const char *const level_v3[] = { "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm",
					"movbe", "xsave", NULL };
static const char *const level_v4[] = { "avx512f", "avx512bw", "avx512cd", "avx512dq",
					"avx512vl", NULL };

/* Kept under every named model when the host has them, required by none: the system
 * features of every x86-64 host (not instruction-set extensions), which guest kernels use
 * to set up paging, interrupts and time. */
static const char *const system_features[] = { "vme", "de", "pse", "tsc", "msr", "pae",
					       "mce", "apic", "sep", "mtrr", "pge", "mca",
					       "pat", "pse36", "clflush", "x2apic",
					       "tsc_deadline_timer", "nx", NULL };
/* Allowed from v3 on, required by none: CR4.OSXSAVE as the guest sets it (KVM tracks it). */
static const char *const v3_os_features[] = { "osxsave", NULL };

static const struct {
	const char *name;
	const char *const *adds;
} models[CPU_MODEL_COUNT] = {
	[CPU_MODEL_HOST] = { "host", NULL },
	[CPU_MODEL_X86_64_V1] = { "x86-64-v1", level_v1 },
	[CPU_MODEL_X86_64_V2] = { "x86-64-v2", level_v2 },
	[CPU_MODEL_X86_64_V3] = { "x86-64-v3", level_v3 },
	[CPU_MODEL_X86_64_V4] = { "x86-64-v4", level_v4 },
};

/* The feature registers a named model masks bit by bit; other feature leaves are cleared
 * whole (mask_entry). */
static const struct cpuid_bit masked_regs[] = {
	{ 1, 0, ECX, 0 }, { 1, 0, EDX, 0 }, { 7, 0, EBX, 0 }, { 7, 0, ECX, 0 },
	{ 7, 0, EDX, 0 }, { 0x80000001, 0, ECX, 0 }, { 0x80000001, 0, EDX, 0 },
};

#define CPUID_HYPERVISOR_BIT 31 /* leaf 1 ECX */
#define CPUID_HTT_BIT 28        /* leaf 1 EDX: set by the topology code */
#define CPUID_XSAVE_BIT 26     /* leaf 1 ECX */
#define LEAF_XSAVE 0xd
#define XSAVE_LEGACY_SIZE 576   /* FXSAVE area + XSAVE header */
#define XCR0_V3 0x07u           /* x87, SSE, AVX */
#define XCR0_V4 0xe7u           /* + opmask, ZMM_Hi256, Hi16_ZMM */

int cpu_model_parse(const char *name, enum cpu_model *out)
{
	for (int m = 0; m < CPU_MODEL_COUNT; m++) {
		if (!strcmp(name, models[m].name)) {
			*out = (enum cpu_model)m;
			return 0;
		}
	}
	return -1;
}

const char *cpu_model_name(enum cpu_model m)
{
	return m >= 0 && m < CPU_MODEL_COUNT ? models[m].name : "?";
}

static uint32_t names_mask(const char *const *names, const struct cpuid_bit *slot)
{
	uint32_t mask = 0;
	struct cpuid_bit b;

	for (; names && *names; names++)
		if (cpuid_feature_bit(*names, &b) == 0 && b.function == slot->function &&
		    b.index == slot->index && b.reg == slot->reg)
			mask |= 1u << b.bit;
	return mask;
}

/* The bits model m lets through in one masked register. */
static uint32_t allowed_mask(enum cpu_model m, const struct cpuid_bit *slot)
{
	uint32_t mask = names_mask(system_features, slot);

	for (int l = CPU_MODEL_X86_64_V1; l <= (int)m; l++)
		mask |= names_mask(models[l].adds, slot);
	if (m >= CPU_MODEL_X86_64_V3)
		mask |= names_mask(v3_os_features, slot);
	if (slot->function == 1 && slot->reg == ECX)
		mask |= 1u << CPUID_HYPERVISOR_BIT;
	if (slot->function == 1 && slot->reg == EDX)
		mask |= 1u << CPUID_HTT_BIT;
	return mask;
}

static void mask_entry(struct kvm_cpuid_entry2 *e, enum cpu_model m)
{
	for (size_t i = 0; i < sizeof(masked_regs) / sizeof(masked_regs[0]); i++) {
		const struct cpuid_bit *slot = &masked_regs[i];

		if (e->function == slot->function && e->index == slot->index)
			*cpuid_reg(e, slot->reg) &= allowed_mask(m, slot);
	}
	switch (e->function) {
	case 7:
		if (e->index > 0) /* more feature flags (AVX-VNNI, AMX, ...): none in a level */
			e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x80000008: /* AMD feature flags (IBPB, WBNOINVD, ...); keep address sizes */
		e->ebx = 0;
		break;
	case 0x12: /* SGX */
	case 0x14: /* processor trace */
	case 0x19: /* key locker */
	case 0x1d: /* AMX tiles */
	case 0x1e:
	case 0x24: /* AVX10 */
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	default:
		break;
	}
}

/* The XSAVE leaf lists only the state components the model's features use, with sizes
 * that match. */
static void mask_xsave(struct cpuid_table *t, enum cpu_model m)
{
	struct kvm_cpuid_entry2 *l1 = cpuid_find(t, 1, 0);
	struct kvm_cpuid_entry2 *sub0 = cpuid_find(t, LEAF_XSAVE, 0);
	uint32_t xcr0 = 0, max_size = XSAVE_LEGACY_SIZE;

	if (l1 && (l1->ecx & (1u << CPUID_XSAVE_BIT)) && sub0)
		xcr0 = sub0->eax & (m >= CPU_MODEL_X86_64_V4 ? XCR0_V4 : XCR0_V3);
	for (uint32_t i = 0; i < t->hdr.nent && i < CPUID_MAX_ENTRIES; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function != LEAF_XSAVE || e->index < 2)
			continue;
		if (e->index < 32 && (xcr0 & (1u << e->index))) {
			if (e->eax + e->ebx > max_size)
				max_size = e->eax + e->ebx;
		} else {
			e->eax = e->ebx = e->ecx = e->edx = 0;
		}
	}
	for (uint32_t i = 0; i < t->hdr.nent && i < CPUID_MAX_ENTRIES; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function != LEAF_XSAVE || e->index >= 2)
			continue;
		if (!xcr0 || e->index == 1) { /* subleaf 1: XSAVEOPT/XSAVEC/XSAVES, in no level */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			continue;
		}
		e->eax = xcr0;
		e->edx = 0;
		e->ebx = XSAVE_LEGACY_SIZE; /* KVM recomputes it from the guest's XCR0 */
		e->ecx = max_size;
	}
}

void cpu_model_limit(struct cpuid_table *t, enum cpu_model m)
{
	if (m == CPU_MODEL_HOST)
		return;
	for (uint32_t i = 0; i < t->hdr.nent && i < CPUID_MAX_ENTRIES; i++)
		mask_entry(&t->entries[i], m);
	mask_xsave(t, m);
}

void cpu_model_build(struct cpuid_table *t, enum cpu_model m)
{
	/* host keeps today's filter. A named model gives the guest its level's instructions
	 * as KVM supports them, even those cpuid_filter hides: the operator chose the level. */
	if (m == CPU_MODEL_HOST) {
		cpuid_filter(t);
		return;
	}
	cpu_model_limit(t, m);
	struct kvm_cpuid_entry2 *e = cpuid_find(t, 1, 0);
	if (e)
		e->ecx |= 1u << CPUID_HYPERVISOR_BIT;
}

int cpu_model_missing(const struct cpuid_table *supported, enum cpu_model m, char *buf,
		      size_t len)
{
	struct cpuid_table *want = calloc(1, sizeof(*want));
	struct cpuid_bit b;
	int n;

	if (len)
		buf[0] = '\0';
	if (m == CPU_MODEL_HOST || !want) {
		free(want);
		return 0;
	}
	for (int l = CPU_MODEL_X86_64_V1; l <= (int)m; l++) {
		for (const char *const *name = models[l].adds; *name; name++) {
			if (cpuid_feature_bit(*name, &b) < 0)
				continue;
			struct kvm_cpuid_entry2 *e = cpuid_find(want, b.function, b.index);
			if (!e && want->hdr.nent < CPUID_MAX_ENTRIES) {
				e = &want->entries[want->hdr.nent++];
				e->function = b.function;
				e->index = b.index;
				e->flags = b.function == 7 ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
			}
			if (e)
				*cpuid_reg(e, b.reg) |= 1u << b.bit;
		}
	}
	n = cpuid_missing_features(want, supported, buf, len);
	free(want);
	return n;
}

enum cpu_model cpu_model_best(const struct cpuid_table *supported, enum cpu_model ceiling)
{
	char unused[8];

	for (int m = CPU_MODEL_X86_64_V4; m >= CPU_MODEL_X86_64_V1; m--) {
		if (ceiling != CPU_MODEL_HOST && m > (int)ceiling)
			continue;
		if (cpu_model_missing(supported, (enum cpu_model)m, unused, sizeof(unused)) == 0)
			return (enum cpu_model)m;
	}
	return CPU_MODEL_HOST;
}
