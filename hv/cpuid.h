/* The guest's CPUID: what KVM supports, passed through one filter. The CPU-baseline
 * (EVC-like) work plugs into cpuid_filter. */
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

/* Lookup, NULL if absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index);

#endif
