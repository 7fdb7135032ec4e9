/* CPU models (EVC-like baselines): which CPUID a guest sees, so that it can move between
 * unlike hosts. `host` is KVM's CPUID through cpuid_filter (hv/cpuid.h); the named models are
 * the x86-64 psABI microarchitecture levels: the level's instruction-set features, plus the
 * system features every x86-64 host has (paging, APIC, MSRs, TSC), and nothing else. The
 * vendor, family and cache leaves stay as KVM gives them; the XSAVE leaf lists only the
 * state components the level's features use. */
#ifndef HV_CPU_MODEL_H
#define HV_CPU_MODEL_H

#include <stddef.h>

struct cpuid_table;

/* Ordered: a higher level contains every lower one. */
enum cpu_model {
	CPU_MODEL_HOST,
	CPU_MODEL_X86_64_V1,
	CPU_MODEL_X86_64_V2,
	CPU_MODEL_X86_64_V3,
	CPU_MODEL_X86_64_V4,
	CPU_MODEL_COUNT
};

/* "host", "x86-64-v1" ... -> model. 0, or -1 if unknown (no message). */
int cpu_model_parse(const char *name, enum cpu_model *out);
const char *cpu_model_name(enum cpu_model m);

/* Turns KVM_GET_SUPPORTED_CPUID's table into the guest's CPUID under model m. Pure. */
void cpu_model_build(struct cpuid_table *t, enum cpu_model m);
/* Clears whatever model m does not contain: a destination that offers at most m (its
 * ceiling). host: no change. Pure. */
void cpu_model_limit(struct cpuid_table *t, enum cpu_model m);
/* The features of model m that `supported` (KVM_GET_SUPPORTED_CPUID, unfiltered) lacks, as
 * "sse4_2, popcnt" into buf (see cpuid_missing_features); returns how many, 0 for host. */
int cpu_model_missing(const struct cpuid_table *supported, enum cpu_model m, char *buf,
		      size_t len);
/* The highest named model that `supported` can offer, at most `ceiling` (host: no ceiling);
 * CPU_MODEL_HOST if it offers none. */
enum cpu_model cpu_model_best(const struct cpuid_table *supported, enum cpu_model ceiling);

#endif
