/* Typed, sized sections of saved state (state_enc.h). */
#include "hv/state_enc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---- */

void state_out_init(struct state_out *o)
{
	memset(o, 0, sizeof(*o));
	o->sec = SIZE_MAX;
}

void state_out_free(struct state_out *o)
{
	free(o->buf);
	state_out_init(o);
}

static uint8_t *room(struct state_out *o, size_t n)
{
	if (o->nomem)
		return NULL;
	if (n > SIZE_MAX / 4 - o->len) {
		o->nomem = true;
		return NULL;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *b = realloc(o->buf, cap);
		if (!b) {
			o->nomem = true;
			return NULL;
		}
		o->buf = b;
		o->cap = cap;
	}
	uint8_t *p = o->buf + o->len;
	o->len += n;
	return p;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void state_out_le(struct state_out *o, uint64_t v, unsigned n)
{
	uint8_t *p = room(o, n);

	if (p)
		put_le(p, v, (int)n);
}

void state_out_begin(struct state_out *o, unsigned id)
{
	size_t at = o->len;
	uint8_t *p = room(o, STATE_ENC_SEC_HDR);

	if (!p)
		return;
	put_le(p, id, 2);
	put_le(p + 2, 0, 2);
	put_le(p + 4, 0, 4); /* the size, once the section ends */
	o->sec = at;
}

void state_out_end(struct state_out *o)
{
	if (!o->nomem && o->sec != SIZE_MAX)
		put_le(o->buf + o->sec + 4, o->len - o->sec - STATE_ENC_SEC_HDR, 4);
	o->sec = SIZE_MAX;
}

void state_out_u8(struct state_out *o, uint8_t v)
{
	state_out_le(o, v, 1);
}

void state_out_u16(struct state_out *o, uint16_t v)
{
	state_out_le(o, v, 2);
}

void state_out_u32(struct state_out *o, uint32_t v)
{
	state_out_le(o, v, 4);
}

void state_out_u64(struct state_out *o, uint64_t v)
{
	state_out_le(o, v, 8);
}

void state_out_bytes(struct state_out *o, const void *p, size_t n)
{
	uint8_t *d = room(o, n);

	if (d && n)
		memcpy(d, p, n);
}

int state_out_error(const struct state_out *o)
{
	return o->nomem ? -ENOMEM : 0;
}

/* ---- reading ---- */

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void state_in_init(struct state_in *in, const void *p, size_t len)
{
	in->p = p;
	in->len = len;
	in->off = 0;
	in->seen = 0;
}

int state_in_next(struct state_in *in, struct state_sec *s, char *err, size_t errlen)
{
	size_t left = in->len - in->off;

	if (!left)
		return 0;
	if (left < STATE_ENC_SEC_HDR) {
		snprintf(err, errlen, "%zu bytes after the last section, too few for a header", left);
		return -1;
	}
	const uint8_t *h = in->p + in->off;
	unsigned id = (unsigned)get_le(h, 2);
	uint64_t size = get_le(h + 4, 4);
	if (id == 0 || id > STATE_ENC_MAX_ID || get_le(h + 2, 2)) {
		snprintf(err, errlen, "section id %u (reserved 0x%04x) at byte %zu is not valid", id,
			 (unsigned)get_le(h + 2, 2), in->off);
		return -1;
	}
	if (size > left - STATE_ENC_SEC_HDR) {
		snprintf(err, errlen, "section %u says %llu bytes, only %zu are left", id,
			 (unsigned long long)size, left - STATE_ENC_SEC_HDR);
		return -1;
	}
	if (in->seen & (1ull << id)) {
		snprintf(err, errlen, "section %u appears twice", id);
		return -1;
	}
	in->seen |= 1ull << id;
	*s = (struct state_sec){ .id = id, .p = h + STATE_ENC_SEC_HDR, .len = (size_t)size };
	in->off += STATE_ENC_SEC_HDR + (size_t)size;
	return 1;
}

unsigned state_in_missing(const struct state_in *in, uint64_t needed)
{
	uint64_t lack = needed & ~in->seen;

	for (unsigned id = 1; id <= STATE_ENC_MAX_ID; id++)
		if (lack & (1ull << id))
			return id;
	return 0;
}

/* The next n bytes of the section, or NULL (and short_read) if it has fewer. */
static const uint8_t *take(struct state_sec *s, size_t n)
{
	if (s->short_read || n > s->len - s->off) {
		s->short_read = true;
		return NULL;
	}
	const uint8_t *p = s->p + s->off;
	s->off += n;
	return p;
}

uint64_t state_sec_le(struct state_sec *s, unsigned n)
{
	const uint8_t *p = take(s, n);

	return p ? get_le(p, (int)n) : 0;
}

uint8_t state_sec_u8(struct state_sec *s)
{
	return (uint8_t)state_sec_le(s, 1);
}

uint16_t state_sec_u16(struct state_sec *s)
{
	return (uint16_t)state_sec_le(s, 2);
}

uint32_t state_sec_u32(struct state_sec *s)
{
	return (uint32_t)state_sec_le(s, 4);
}

uint64_t state_sec_u64(struct state_sec *s)
{
	return state_sec_le(s, 8);
}

void state_sec_bytes(struct state_sec *s, void *dst, size_t n)
{
	const uint8_t *p = take(s, n);

	if (p)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

int state_sec_end(const struct state_sec *s, const char *what, char *err, size_t errlen)
{
	if (!s->short_read && s->off == s->len)
		return 0;
	if (s->short_read)
		snprintf(err, errlen, "%s (section %u): %zu bytes, too short", what, s->id, s->len);
	else
		snprintf(err, errlen, "%s (section %u): %zu bytes, %zu expected", what, s->id, s->len,
			 s->off);
	return -1;
}
