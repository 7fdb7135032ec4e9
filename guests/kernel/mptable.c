/* hv-guest: finds the CPUs in the Intel MP table. Runs at CPL3: low memory and the BIOS
 * area are identity-mapped and user-accessible.
 *  floating pointer "_MP_": 16-byte aligned, in the first KiB of the EBDA, the last KiB of
 *  base memory, or 0xF0000-0xFFFFF; config table "PCMP" with 20-byte processor entries
 *  (type 0: APIC ID at +1, flags at +3: bit 0 enabled, bit 1 BSP) and 8-byte others.
 *  (hv writes one at 0xF0000; SeaBIOS lists only the first CPU of each package.) */
#include "mptable.h"

#include "lib.h"

static int checksum_ok(const uint8_t *p, unsigned len)
{
	uint8_t sum = 0;

	for (unsigned i = 0; i < len; i++)
		sum += p[i];
	return sum == 0;
}

static const uint8_t *scan(uint64_t start, uint64_t len)
{
	for (uint64_t a = ALIGN_UP(start, 16); a + 16 <= start + len; a += 16) {
		const uint8_t *p = (const uint8_t *)(uintptr_t)a;
		if (memcmp(p, "_MP_", 4) == 0 && p[8] >= 1 && checksum_ok(p, 16U * p[8]))
			return p;
	}
	return 0;
}

static const uint8_t *find_fp(void)
{
	/* BIOS data area: EBDA segment at 0x40e, base memory size (KiB) at 0x413. Without a
	 * BIOS (hv, qboot) both are 0; then 0x9FC00 (639 KiB, as Linux also scans). */
	uint64_t ebda = (uint64_t)*(volatile const uint16_t *)(uintptr_t)0x40e << 4;
	uint64_t basekb = *(volatile const uint16_t *)(uintptr_t)0x413;
	const uint8_t *fp = 0;

	if (ebda >= 0x80000 && ebda < 0xa0000)
		fp = scan(ebda, 1024);
	if (!fp && basekb >= 512 && basekb <= 640)
		fp = scan(basekb * 1024 - 1024, 1024);
	if (!fp)
		fp = scan(639 * 1024, 1024);
	if (!fp)
		fp = scan(0xf0000, 0x10000);
	return fp;
}

int mptable_cpus(uint8_t *apic_ids, int max)
{
	const uint8_t *fp = find_fp();
	int n = 0;

	if (!fp)
		return 0;
	uint32_t cfg_addr;
	memcpy(&cfg_addr, fp + 4, 4);
	if (!cfg_addr) {
		/* Default configurations (feature byte 1 != 0) have two CPUs, APIC IDs 0, 1. */
		if (!fp[11] || max < 2)
			return 0;
		apic_ids[0] = 0;
		apic_ids[1] = 1;
		return 2;
	}
	const uint8_t *cfg = (const uint8_t *)(uintptr_t)cfg_addr;
	uint16_t len, count;
	memcpy(&len, cfg + 4, 2);
	memcpy(&count, cfg + 34, 2);
	if (memcmp(cfg, "PCMP", 4) != 0 || len < 44 || !checksum_ok(cfg, len))
		return 0;

	const uint8_t *e = cfg + 44, *end = cfg + len;
	/* Some firmware (qboot) leaves the entry count 0: then the length bounds the walk. */
	for (unsigned i = 0; (!count || i < count) && e < end; i++) {
		if (e[0] == 0) {
			if (e + 20 > end)
				break;
			if ((e[3] & 1) && n < max) {
				if (e[3] & 2) { /* BSP first */
					memmove(apic_ids + 1, apic_ids, (size_t)n);
					apic_ids[0] = e[1];
				} else {
					apic_ids[n] = e[1];
				}
				n++;
			}
			e += 20;
		} else if (e[0] <= 4) {
			e += 8;
		} else {
			break; /* unknown entry type: its length is unknown */
		}
	}
	return n;
}
