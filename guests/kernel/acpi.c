/* hv-guest: ACPI MADT parsing, at CPL3 (tables are identity-mapped, user-accessible).
 *  RSDP "RSD PTR " (16-byte aligned: first KiB of the EBDA, 0xE0000-0xFFFFF) -> XSDT
 *  (revision >= 2) or RSDT -> "APIC" -> entries: type 0 (local APIC: APIC ID at +3,
 *  flags at +4, bit 0 enabled) and type 9 (local x2APIC: ID at +4, flags at +8). */
#include "acpi.h"

#include "lib.h"

#define FOURGIB 0x100000000ULL

static int sum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;

	for (uint32_t i = 0; i < len; i++)
		s += p[i];
	return s == 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static const uint8_t *rsdp_at(uint64_t a)
{
	const uint8_t *p = (const uint8_t *)(uintptr_t)a;

	if (a + 36 > FOURGIB || memcmp(p, "RSD PTR ", 8) != 0 || !sum_ok(p, 20))
		return 0;
	return p;
}

static const uint8_t *find_rsdp(uint64_t hint)
{
	const uint8_t *r;

	if (hint && (r = rsdp_at(hint)))
		return r;
	uint64_t ebda = (uint64_t)*(volatile const uint16_t *)(uintptr_t)0x40e << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		for (uint64_t a = ebda; a < ebda + 1024; a += 16)
			if ((r = rsdp_at(a)))
				return r;
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if ((r = rsdp_at(a)))
			return r;
	return 0;
}

/* A table header at `a` with the right checksum, or NULL. */
static const uint8_t *table_at(uint64_t a)
{
	const uint8_t *t = (const uint8_t *)(uintptr_t)a;

	if (!a || a + 36 > FOURGIB)
		return 0;
	uint32_t len = rd32(t + 4);
	if (len < 36 || a + len > FOURGIB || !sum_ok(t, len))
		return 0;
	return t;
}

static const uint8_t *find_madt(const uint8_t *rsdp)
{
	const uint8_t *sdt = 0;
	unsigned esz = 4;

	if (rsdp[15] >= 2 && (sdt = table_at(rd64(rsdp + 24))) && !memcmp(sdt, "XSDT", 4))
		esz = 8;
	else if (!(sdt = table_at(rd32(rsdp + 16))) || memcmp(sdt, "RSDT", 4) != 0)
		return 0;
	uint32_t len = rd32(sdt + 4);
	for (uint32_t off = 36; off + esz <= len; off += esz) {
		uint64_t a = esz == 8 ? rd64(sdt + off) : rd32(sdt + off);
		const uint8_t *t = table_at(a);
		if (t && !memcmp(t, "APIC", 4))
			return t;
	}
	return 0;
}

int acpi_cpus(uint64_t rsdp_hint, uint8_t *apic_ids, int max)
{
	const uint8_t *rsdp = find_rsdp(rsdp_hint);
	const uint8_t *madt = rsdp ? find_madt(rsdp) : 0;
	int n = 0;

	if (!madt)
		return 0;
	uint32_t len = rd32(madt + 4);
	for (uint32_t off = 44; off + 2 <= len && n < max;) {
		const uint8_t *e = madt + off;
		if (e[1] < 2 || off + e[1] > len)
			break;
		if (e[0] == 0 && e[1] >= 8 && (rd32(e + 4) & 1))
			apic_ids[n++] = e[3];
		else if (e[0] == 9 && e[1] >= 16 && (rd32(e + 8) & 1) && rd32(e + 4) <= 0xff)
			apic_ids[n++] = (uint8_t)rd32(e + 4);
		off += e[1];
	}
	return n;
}
