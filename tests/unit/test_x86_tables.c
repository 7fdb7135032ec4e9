/* e820 maps for several RAM sizes; the MP table parsed back the way a guest would. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/guest_mem.h"
#include "hv/layout.h"
#include "hv/x86_tables.h"
#include "quiet_stderr.h"

/* ---- e820 ---- */

/* e820_build only reads the sizes: no RAM is needed to describe 5 GiB. */
static int e820_for(uint64_t size, struct e820_entry *out)
{
	struct guest_mem m = { .fd = -1, .pagemap_fd = -1, .size = size };

	m.low_size = size < MMIO_HOLE_START ? size : MMIO_HOLE_START;
	m.high_size = size - m.low_size;
	return e820_build(&m, out);
}

static void check_entry(const struct e820_entry *e, uint64_t addr, uint64_t end, uint32_t type)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->size, end - addr);
	assert_int_equal(e->type, type);
}

/* Sorted, non-overlapping, non-empty: what every consumer assumes. */
static void check_well_formed(const struct e820_entry *e, int n)
{
	assert_true(n >= 1 && n <= E820_MAX);
	for (int i = 0; i < n; i++) {
		assert_true(e[i].size > 0);
		if (i)
			assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size);
	}
}

static void test_e820_64m(void **state)
{
	struct e820_entry e[E820_MAX];
	int n = e820_for(64 * MiB, e);

	(void)state;
	assert_int_equal(n, 3);
	check_well_formed(e, n);
	check_entry(&e[0], 0, EBDA_START, E820_RAM);
	check_entry(&e[1], EBDA_START, BIOS_END, E820_RESERVED);
	check_entry(&e[2], BIOS_END, 64 * MiB, E820_RAM);
}

static void test_e820_3g(void **state)
{
	struct e820_entry e[E820_MAX];
	int n = e820_for(3 * GiB, e);

	(void)state;
	assert_int_equal(n, 3);
	check_well_formed(e, n);
	check_entry(&e[2], BIOS_END, MMIO_HOLE_START, E820_RAM);
}

static void test_e820_5g(void **state)
{
	struct e820_entry e[E820_MAX];
	int n = e820_for(5 * GiB, e);
	uint64_t ram = 0;

	(void)state;
	assert_int_equal(n, 4);
	check_well_formed(e, n);
	check_entry(&e[2], BIOS_END, MMIO_HOLE_START, E820_RAM);
	check_entry(&e[3], HIGH_RAM_START, HIGH_RAM_START + 2 * GiB, E820_RAM);
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM)
			ram += e[i].size;
	/* All RAM but the 385 KiB hidden under the EBDA/BIOS reservation. */
	assert_int_equal(ram, 5 * GiB - (BIOS_END - EBDA_START));
}

static void test_e820_just_over_3g(void **state)
{
	struct e820_entry e[E820_MAX];
	int n = e820_for(3 * GiB + 4 * KiB, e);

	(void)state;
	assert_int_equal(n, 4);
	check_entry(&e[3], HIGH_RAM_START, HIGH_RAM_START + 4 * KiB, E820_RAM);
}

static void test_e820_tiny(void **state)
{
	struct e820_entry e[E820_MAX];
	int n;

	(void)state;
	n = e820_for(1 * MiB, e); /* nothing above 1 MiB */
	assert_int_equal(n, 2);
	check_well_formed(e, n);
	check_entry(&e[0], 0, EBDA_START, E820_RAM);
	check_entry(&e[1], EBDA_START, BIOS_END, E820_RESERVED);

	n = e820_for(512 * KiB, e); /* below the EBDA */
	assert_int_equal(n, 2);
	check_well_formed(e, n);
	check_entry(&e[0], 0, 512 * KiB, E820_RAM);
	check_entry(&e[1], EBDA_START, BIOS_END, E820_RESERVED);

	n = e820_for(2 * MiB, e);
	assert_int_equal(n, 3);
	check_entry(&e[2], BIOS_END, 2 * MiB, E820_RAM);
}

/* ---- MP table ---- */

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static void check_mptable(int ncpus)
{
	struct guest_mem m;
	const uint8_t *mpf, *mpc, *p, *end;
	uint16_t count;
	int cpus = 0, buses = 0, ioapics = 0, lints = 0;
	int irq_pin[16];

	assert_int_equal(guest_mem_create(&m, 2 * MiB), 0);
	assert_int_equal(mptable_write(&m, ncpus), 0);

	/* Found the way Linux finds it: "_MP_" on a 16-byte boundary in 0xF0000-0xFFFFF. */
	mpf = guest_mem_ptr(&m, MPTABLE_ADDR, 16);
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(MPTABLE_ADDR % 16, 0);
	assert_true(MPTABLE_ADDR >= 0xf0000 && MPTABLE_ADDR < BIOS_END);
	assert_int_equal(mpf[8], 1);
	assert_int_equal(mpf[9], 4);
	assert_int_equal(sum(mpf, 16), 0);
	assert_int_equal(mpf[11], 0); /* a configuration table is present */

	mpc = guest_mem_ptr(&m, rd32(mpf + 4), 44);
	assert_non_null(mpc);
	assert_memory_equal(mpc, "PCMP", 4);
	assert_int_equal(mpc[6], 4);
	assert_memory_equal(mpc + 8, "HV      ", 8);
	assert_memory_equal(mpc + 16, "HV-VM       ", 12);
	assert_int_equal(rd32(mpc + 36), LAPIC_ADDR);
	assert_int_equal(rd16(mpc + 40), 0); /* no extended table */
	assert_true(rd32(mpf + 4) + rd16(mpc + 4) <= BIOS_END);
	mpc = guest_mem_ptr(&m, rd32(mpf + 4), rd16(mpc + 4));
	assert_non_null(mpc);
	assert_int_equal(sum(mpc, rd16(mpc + 4)), 0);
	count = rd16(mpc + 34);
	assert_int_equal(count, ncpus + 1 + 1 + 15 + 2);

	for (int i = 0; i < 16; i++)
		irq_pin[i] = -1;
	p = mpc + 44;
	end = mpc + rd16(mpc + 4);
	for (int i = 0; i < count; i++) {
		assert_true(p < end);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], cpus); /* APIC ids 0..n-1 */
			assert_int_equal(p[3] & 1, 1);
			assert_int_equal(!!(p[3] & 2), cpus == 0);
			assert_int_not_equal(rd32(p + 4), 0);
			cpus++;
			p += 20;
			break;
		case 1:
			assert_memory_equal(p + 2, "ISA   ", 6);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], ncpus);
			assert_int_equal(p[2], 0x11);
			assert_int_equal(p[3], 1);
			assert_int_equal(rd32(p + 4), IOAPIC_ADDR);
			ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(p[1], 0); /* INT */
			assert_int_equal(p[4], 0); /* the ISA bus */
			assert_int_equal(p[6], ncpus);
			assert_true(p[5] < 16);
			assert_int_equal(irq_pin[p[5]], -1);
			irq_pin[p[5]] = p[7];
			p += 8;
			break;
		case 4:
			assert_int_equal(p[6], 0xff);
			assert_int_equal(p[1], lints == 0 ? 3 : 1); /* ExtINT on LINT0, NMI on LINT1 */
			assert_int_equal(p[7], lints);
			lints++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(cpus, ncpus);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(lints, 2);
	assert_int_equal(irq_pin[0], 2);
	assert_int_equal(irq_pin[2], -1);
	for (int i = 1; i < 16; i++)
		if (i != 2)
			assert_int_equal(irq_pin[i], i);
	guest_mem_destroy(&m);
}

static void test_mptable_1(void **state) { (void)state; check_mptable(1); }
static void test_mptable_2(void **state) { (void)state; check_mptable(2); }
static void test_mptable_8(void **state) { (void)state; check_mptable(8); }
static void test_mptable_64(void **state) { (void)state; check_mptable(64); }
static void test_mptable_254(void **state) { (void)state; check_mptable(254); }

static void test_mptable_errors(void **state)
{
	struct guest_mem m;
	int saved;

	(void)state;
	assert_int_equal(guest_mem_create(&m, 2 * MiB), 0);
	saved = quiet_begin(false);
	assert_int_equal(mptable_write(&m, 0), -1);
	assert_int_equal(mptable_write(&m, -3), -1);
	assert_int_equal(mptable_write(&m, 255), -1);
	quiet_end(saved);
	guest_mem_destroy(&m);

	/* RAM that does not reach the BIOS area. */
	assert_int_equal(guest_mem_create(&m, 512 * KiB), 0);
	saved = quiet_begin(false);
	assert_int_equal(mptable_write(&m, 1), -1);
	quiet_end(saved);
	guest_mem_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_64m),
		cmocka_unit_test(test_e820_3g),
		cmocka_unit_test(test_e820_5g),
		cmocka_unit_test(test_e820_just_over_3g),
		cmocka_unit_test(test_e820_tiny),
		cmocka_unit_test(test_mptable_1),
		cmocka_unit_test(test_mptable_2),
		cmocka_unit_test(test_mptable_8),
		cmocka_unit_test(test_mptable_64),
		cmocka_unit_test(test_mptable_254),
		cmocka_unit_test(test_mptable_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
