/* hv-guest: CPU discovery and AP startup. CPUs come from the MP table or the ACPI MADT,
 * whichever lists more. The BSP (at CPL3) copies the real-mode trampoline to a free page
 * below 1 MiB and starts each AP in turn with INIT-SIPI-SIPI; the AP goes real ->
 * protected -> long mode (entry.S long_ap), loads its own TSS (SEL_TSS0 + 16*i, RSP0 =
 * its kernel stack) and drops to CPL3 in ap_main(). APs have no timer. */
#include "smp.h"

#include "acpi.h"
#include "lapic.h"
#include "lib.h"
#include "mem.h"
#include "mptable.h"
#include "print.h"
#include "sys.h"
#include "time.h"

extern const char tramp_start[], tramp_end[];

/* Read by entry.S long_ap (CPL0). In .data: the BSP's .bss clearing must not race them. */
__attribute__((section(".data"))) volatile uint32_t ap_boot_cpu;
__attribute__((section(".data"))) uint64_t ap_ustack_top[MAX_CPUS];

int smp_ncpus = 1;
const char *smp_source = "none";
int smp_found_mptable, smp_found_madt;
uint8_t smp_apic_id[MAX_CPUS];
static volatile int ap_started[MAX_CPUS];
static void (*ap_fn)(int cpu);

void ap_main(int cpu);

/* Keeps the first occurrence of each APIC ID; returns the new count. */
static int dedup(uint8_t *ids, int n)
{
	int m = 0;

	for (int i = 0; i < n; i++) {
		int seen = 0;
		for (int j = 0; j < m; j++)
			seen |= ids[j] == ids[i];
		if (!seen)
			ids[m++] = ids[i];
	}
	return m;
}

void smp_init(void)
{
	static uint8_t madt_ids[MAX_CPUS];
	int n = dedup(smp_apic_id, mptable_cpus(smp_apic_id, MAX_CPUS));
	int m = dedup(madt_ids, acpi_cpus(boot.rsdp, madt_ids, MAX_CPUS));
	uint32_t me = lapic_id();

	smp_found_mptable = n;
	smp_found_madt = m;
	smp_source = n ? "mptable" : "none";
	if (m > n) {
		memcpy(smp_apic_id, madt_ids, sizeof(madt_ids));
		n = m;
		smp_source = "acpi";
	}
	if (n <= 0) {
		smp_ncpus = 1;
		smp_apic_id[0] = (uint8_t)me;
		return;
	}
	smp_ncpus = n;
	/* Trust the LAPIC over the table's order or BSP flag: our own APIC ID goes first. */
	for (int i = 1; i < n; i++) {
		if (smp_apic_id[i] == me) {
			smp_apic_id[i] = smp_apic_id[0];
			smp_apic_id[0] = (uint8_t)me;
		}
	}
}

void ap_main(int cpu)
{
	ap_started[cpu] = 1;
	ap_fn(cpu);
	cpu_stop();
}

/* Waits up to `nticks` timer ticks for AP `cpu` to reach CPL3. */
static int wait_started(int cpu, uint64_t nticks)
{
	uint64_t t0 = ticks;

	while (!ap_started[cpu]) {
		if (ticks - t0 >= nticks)
			return 0;
		cpu_relax();
	}
	return 1;
}

int smp_start(void (*fn)(int cpu))
{
	int running = 1;

	if (smp_ncpus == 1)
		return 1;
	uint64_t page = mem_low_page(&boot);
	if (!page) {
		kprintf("smp: no free page below 1 MiB for the AP trampoline\n");
		return 1;
	}
	memcpy((void *)(uintptr_t)page, tramp_start, (size_t)(tramp_end - tramp_start));
	ap_fn = fn;

	for (int i = 1; i < smp_ncpus; i++) {
		uint64_t stack = mem_alloc(USTACK_SIZE, PAGE_SIZE);
		if (!stack) {
			kprintf("smp: out of memory for CPU %d's stack\n", i);
			break;
		}
		ap_ustack_top[i] = stack + USTACK_SIZE;
		ap_boot_cpu = (uint32_t)i;
		ap_started[i] = 0;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);

		uint32_t apic = smp_apic_id[i];
		lapic_ipi(apic, 0x4500);                            /* INIT, assert */
		lapic_ipi(apic, 0x4600 | (uint32_t)(page >> 12));   /* STARTUP */
		if (!wait_started(i, 2)) {
			lapic_ipi(apic, 0x4600 | (uint32_t)(page >> 12)); /* second STARTUP */
			if (!wait_started(i, 3 * timer_hz)) {
				kprintf("smp: CPU %d (APIC ID %u) did not start\n", i, apic);
				break;
			}
		}
		running++;
	}
	return running;
}
