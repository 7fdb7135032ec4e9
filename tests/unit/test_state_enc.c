/* The one encoding of saved state (hv/state_enc.h): what is written reads back field by
 * field, little endian, and every malformed blob is refused with a line that says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hv/state_enc.h"

static void two_sections(struct state_out *o)
{
	state_out_init(o);
	state_out_begin(o, 1);
	state_out_u8(o, 0xab);
	state_out_u16(o, 0x1234);
	state_out_u32(o, 0xdeadbeef);
	state_out_u64(o, 0x0102030405060708ull);
	state_out_end(o);
	state_out_begin(o, 63);
	state_out_bytes(o, "hv", 2);
	state_out_end(o);
}

static void test_round_trip_little_endian(void **state)
{
	(void)state;
	struct state_out o;
	struct state_in in;
	struct state_sec s;
	char err[200] = "";
	uint8_t two[2];

	two_sections(&o);
	assert_int_equal(state_out_error(&o), 0);
	assert_int_equal(o.len, 8 + 15 + 8 + 2);
	static const uint8_t head[] = { 1, 0, 0, 0, 15, 0, 0, 0, 0xab, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde,
					8, 7, 6, 5, 4, 3, 2, 1, 63, 0, 0, 0, 2, 0, 0, 0, 'h', 'v' };
	assert_memory_equal(o.buf, head, sizeof(head));

	state_in_init(&in, o.buf, o.len);
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 1);
	assert_int_equal(s.id, 1);
	assert_int_equal(state_sec_u8(&s), 0xab);
	assert_int_equal(state_sec_u16(&s), 0x1234);
	assert_int_equal(state_sec_u32(&s), 0xdeadbeef);
	assert_true(state_sec_u64(&s) == 0x0102030405060708ull);
	assert_int_equal(state_sec_end(&s, "first", err, sizeof(err)), 0);
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 1);
	assert_int_equal(s.id, 63);
	state_sec_bytes(&s, two, 2);
	assert_memory_equal(two, "hv", 2);
	assert_int_equal(state_sec_end(&s, "second", err, sizeof(err)), 0);
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 0);
	assert_int_equal(state_in_missing(&in, 1ull << 1 | 1ull << 63), 0);
	assert_int_equal(state_in_missing(&in, 1ull << 1 | 1ull << 5), 5);
	state_out_free(&o);
}

/* state_out_le / state_sec_le: a width given as data, as the field tables of cpu_state use it. */
static void test_width_as_data(void **state)
{
	(void)state;
	struct state_out o;
	struct state_in in;
	struct state_sec s;
	char err[200] = "";
	static const uint8_t body[] = { 0xab, 0x34, 0x12, 0x03, 0x02, 0x01, 0xef, 0xbe, 0xad, 0xde };

	state_out_init(&o);
	state_out_begin(&o, 7);
	state_out_le(&o, 0xab, 1);
	state_out_le(&o, 0xff1234, 2); /* only the low bytes */
	state_out_le(&o, 0x010203, 3);
	state_out_le(&o, 0xdeadbeef, 4);
	state_out_end(&o);
	assert_int_equal(state_out_error(&o), 0);
	assert_int_equal(o.len, 8 + sizeof(body));
	assert_memory_equal(o.buf + 8, body, sizeof(body));

	state_in_init(&in, o.buf, o.len);
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 1);
	assert_int_equal(state_sec_le(&s, 1), 0xab);
	assert_int_equal(state_sec_le(&s, 2), 0x1234);
	assert_int_equal(state_sec_le(&s, 3), 0x010203);
	assert_int_equal(state_sec_le(&s, 4), 0xdeadbeef);
	assert_int_equal(state_sec_end(&s, "widths", err, sizeof(err)), 0);
	assert_int_equal(state_sec_le(&s, 8), 0); /* past the end: zero, and the section is short */
	assert_int_equal(state_sec_end(&s, "widths", err, sizeof(err)), -1);
	state_out_free(&o);
}

/* Walks a blob to its end; the first refusal's return value (-1), or 0. */
static int walk(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	struct state_in in;
	struct state_sec s;
	int r;

	state_in_init(&in, p, len);
	while ((r = state_in_next(&in, &s, err, errlen)) > 0)
		;
	return r;
}

static void test_every_cut_of_a_header_is_refused(void **state)
{
	(void)state;
	struct state_out o;
	char err[200];

	two_sections(&o);
	/* Cut inside the first header or inside a body: refused (between sections is a
	 * shorter valid blob, which the caller's "missing" check catches). */
	for (size_t n = 1; n < o.len; n++) {
		err[0] = '\0';
		int r = walk(o.buf, n, err, sizeof(err));
		if (n == 8 + 15)
			assert_int_equal(r, 0);
		else {
			assert_int_equal(r, -1);
			assert_true(strlen(err) > 10);
		}
	}
	state_out_free(&o);
}

static void test_bad_ids_and_repeats_are_refused(void **state)
{
	(void)state;
	struct state_out o;
	char err[200];

	two_sections(&o);
	uint8_t *b = o.buf;
	b[0] = 0; /* id 0 */
	assert_int_equal(walk(b, o.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "section id 0"));
	b[0] = 64; /* past the largest id */
	assert_int_equal(walk(b, o.len, err, sizeof(err)), -1);
	b[0] = 1;
	b[2] = 1; /* reserved bits */
	assert_int_equal(walk(b, o.len, err, sizeof(err)), -1);
	b[2] = 0;
	b[8 + 15] = 1; /* the second section says it is the first again */
	assert_int_equal(walk(b, o.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "appears twice"));
	b[8 + 15] = 63;
	b[4] = 0xff; /* the first section claims more than the blob has */
	assert_int_equal(walk(b, o.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "only"));
	state_out_free(&o);
}

static void test_a_section_must_be_read_exactly(void **state)
{
	(void)state;
	struct state_out o;
	struct state_in in;
	struct state_sec s;
	char err[200];

	two_sections(&o);
	state_in_init(&in, o.buf, o.len);
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 1);
	state_sec_u64(&s); /* 8 of 15 bytes */
	assert_int_equal(state_sec_end(&s, "regs", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "regs (section 1): 15 bytes, 8 expected"));
	assert_int_equal(state_in_next(&in, &s, err, sizeof(err)), 1);
	assert_int_equal(state_sec_u32(&s), 0); /* past the end: zero, and remembered */
	assert_true(s.short_read);
	assert_int_equal(state_sec_end(&s, "name", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	state_out_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_little_endian),
		cmocka_unit_test(test_width_as_data),
		cmocka_unit_test(test_every_cut_of_a_header_is_refused),
		cmocka_unit_test(test_bad_ids_and_repeats_are_refused),
		cmocka_unit_test(test_a_section_must_be_read_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
