/* hv-guest: prog=cpuid. Prints the CPU features the guest sees, read with CPUID executed at
 * CPL0 (the system call; on PVM only CPL0 CPUID is intercepted, so this is what the VMM's
 * CPUID table says) and at CPL3 (on PVM: the outer host's values), so that tests can check a
 * CPU model's mask. Lines: `cpuid: cpl0 features: fpu cx8 ...` and `cpuid: cpl3 ...`.
 * secs=N stays idle N seconds after READY and prints the CPL0 line again (`cpuid: after`):
 * the CPUID a migrated guest sees on its destination. */
#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"

enum { EAX, EBX, ECX, EDX };

/* The bits of the x86-64 psABI levels and a few more that tell models apart; names as
 * Linux's /proc/cpuinfo (and hv's cpuid.c) spell them. */
static const struct {
	uint32_t leaf, subleaf;
	uint8_t reg, bit;
	const char *name;
} bits[] = {
	{ 1, 0, EDX, 0, "fpu" },        { 1, 0, EDX, 8, "cx8" },
	{ 1, 0, EDX, 15, "cmov" },      { 1, 0, EDX, 23, "mmx" },
	{ 1, 0, EDX, 24, "fxsr" },      { 1, 0, EDX, 25, "sse" },
	{ 1, 0, EDX, 26, "sse2" },      { 1, 0, ECX, 0, "pni" },
	{ 1, 0, ECX, 9, "ssse3" },      { 1, 0, ECX, 12, "fma" },
	{ 1, 0, ECX, 13, "cx16" },      { 1, 0, ECX, 19, "sse4_1" },
	{ 1, 0, ECX, 20, "sse4_2" },    { 1, 0, ECX, 22, "movbe" },
	{ 1, 0, ECX, 23, "popcnt" },    { 1, 0, ECX, 26, "xsave" },
	{ 1, 0, ECX, 28, "avx" },       { 1, 0, ECX, 29, "f16c" },
	{ 1, 0, ECX, 30, "rdrand" },    { 7, 0, EBX, 3, "bmi1" },
	{ 7, 0, EBX, 5, "avx2" },       { 7, 0, EBX, 8, "bmi2" },
	{ 7, 0, EBX, 16, "avx512f" },   { 7, 0, EBX, 17, "avx512dq" },
	{ 7, 0, EBX, 23, "clflushopt" }, { 7, 0, EBX, 28, "avx512cd" },
	{ 7, 0, EBX, 30, "avx512bw" },  { 7, 0, EBX, 31, "avx512vl" },
	{ 0x80000001, 0, ECX, 0, "lahf_lm" }, { 0x80000001, 0, ECX, 5, "abm" },
	{ 0x80000001, 0, EDX, 11, "syscall" }, { 0x80000001, 0, EDX, 29, "lm" },
};

static void cpuid_cpl3(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(subleaf));
}

static void print_features(const char *what, void (*read)(uint32_t, uint32_t, uint32_t[4]))
{
	char line[512];
	size_t used = 0;
	uint32_t max_basic[4], max_ext[4], r[4];

	read(0, 0, max_basic);
	read(0x80000000, 0, max_ext);
	for (unsigned i = 0; i < ARRAY_SIZE(bits); i++) {
		uint32_t top = bits[i].leaf >= 0x80000000 ? max_ext[0] : max_basic[0];

		if (bits[i].leaf > top)
			continue;
		read(bits[i].leaf, bits[i].subleaf, r);
		if (!(r[bits[i].reg] & (1u << bits[i].bit)))
			continue;
		int n = ksnprintf(line + used, sizeof(line) - used, " %s", bits[i].name);
		if (n > 0 && (size_t)n < sizeof(line) - used)
			used += (size_t)n;
	}
	line[used] = '\0';
	kprintf("cpuid: %s features:%s\n", what, line);
	uint32_t l1[4], l7[4] = { 0 }, e1[4] = { 0 };
	read(1, 0, l1);
	if (max_basic[0] >= 7)
		read(7, 0, l7);
	if (max_ext[0] >= 0x80000001)
		read(0x80000001, 0, e1);
	kprintf("cpuid: %s raw 1.ecx=%08x 1.edx=%08x 7.ebx=%08x 7.ecx=%08x 7.edx=%08x "
		"80000001.ecx=%08x 80000001.edx=%08x\n", what, l1[ECX], l1[EDX], l7[EBX], l7[ECX],
		l7[EDX], e1[ECX], e1[EDX]);
}

int prog_cpuid(void)
{
	uint64_t secs = param_uint("cpuid", "secs", 0);

	print_features("cpl0", cpuid_cpl0);
	print_features("cpl3", cpuid_cpl3);
	kprintf("READY\n");
	if (!secs)
		return EXIT_OK;
	uint64_t start = ticks;
	while (ticks - start < secs * timer_hz)
		sys_wait();
	print_features("after", cpuid_cpl0);
	return EXIT_OK;
}
