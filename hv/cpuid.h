/* The guest's CPUID: what KVM supports, passed through one filter (the `host` CPU model);
 * the named baselines (EVC-like) live in hv/cpu_model.h and use the feature names here. */
#ifndef HV_CPUID_H
#define HV_CPUID_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256

struct cpuid_table {
	struct kvm_cpuid2 hdr;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

/* KVM_GET_SUPPORTED_CPUID on the /dev/kvm fd. 0 or -errno. */
int cpuid_get_supported(int kvm_fd, struct cpuid_table *t);

/* Removes what guests must not use on this platform (cmpxchg16b, xsave, avx, ...), sets the
 * hypervisor bit. Pure function over the table. */
void cpuid_filter(struct cpuid_table *t);

/* Per-vCPU fix-ups (APIC IDs, topology count), then KVM_SET_CPUID2 on vcpu_fd. */
int cpuid_apply(int vcpu_fd, const struct cpuid_table *t, int cpu_index, int ncpus);

/* Names of the known feature bits set in `want` but clear or absent in `have`, as
 * "avx2, sse4_2" into buf (always NUL-terminated if len > 0, truncated if short); returns
 * how many. For CPU-baseline checks: want = the guest's CPUID, have = the destination's. */
int cpuid_missing_features(const struct cpuid_table *want, const struct cpuid_table *have,
			   char *buf, size_t len);

/* The names of the known features set in t, space-separated ("fpu cx8 ... lm"), into buf.
 * The count, or -errno. */
int cpuid_feature_list(const struct cpuid_table *t, char *buf, size_t len);
/* KVM_GET_CPUID2 on vcpu_fd: the CPUID KVM holds for that vCPU, as the names of the known
 * features set ("fpu cx8 ... lm", space-separated) into buf. The count, or -errno. */
int cpuid_read_features(int vcpu_fd, char *buf, size_t len);

/* Lookup, NULL if absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index);

/* One named feature bit: CPUID.(function, index).reg[bit], reg 0-3 = EAX, EBX, ECX, EDX. */
struct cpuid_bit {
	uint32_t function, index;
	uint8_t reg, bit;
};

/* The bit of a feature by its /proc/cpuinfo name ("avx2"). 0, or -1 if unknown. */
int cpuid_feature_bit(const char *name, struct cpuid_bit *out);
/* The register `reg` (0-3 as in struct cpuid_bit) of an entry. */
uint32_t *cpuid_reg(struct kvm_cpuid_entry2 *e, uint8_t reg);

#endif
