/* The one encoding of saved state: of every device, of the vCPUs and of the VM's irqchips, PIT
 * and clock (docs/migration-protocol.md, 3.5 and 5). A blob is a run of typed, sized sections
 *     u16 id, u16 reserved (0), u32 size, then size bytes of body,
 * and a body is fields written one by one, fixed width, little endian; never a host
 * struct, so padding and field order of the C code are not the format.
 *
 * Decoding is strict, as state comes from a peer: a section must fit in the blob, its id
 * must be 1..STATE_ENC_MAX_ID and appear at most once, every read must stay inside the
 * section, and a section must be read to its last byte (state_sec_end). The caller says
 * which ids it knows and which it needs (state_in_missing). */
#ifndef HV_STATE_ENC_H
#define HV_STATE_ENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_ENC_SEC_HDR 8
#define STATE_ENC_MAX_ID 63 /* ids fit a 64-bit "seen" mask */

/* Writing: a growable buffer. A failed allocation is remembered, and the later calls do
 * nothing; state_out_error says so once at the end. */
struct state_out {
	uint8_t *buf;
	size_t len, cap;
	size_t sec; /* offset of the open section's header, or SIZE_MAX */
	bool nomem;
};

void state_out_init(struct state_out *o);
void state_out_free(struct state_out *o);
/* Opens section `id` (1..STATE_ENC_MAX_ID); state_out_end closes it. */
void state_out_begin(struct state_out *o, unsigned id);
void state_out_end(struct state_out *o);
void state_out_u8(struct state_out *o, uint8_t v);
void state_out_u16(struct state_out *o, uint16_t v);
void state_out_u32(struct state_out *o, uint32_t v);
void state_out_u64(struct state_out *o, uint64_t v);
/* The low n bytes (1..8) of v: for writers whose field widths are data (a table of fields). */
void state_out_le(struct state_out *o, uint64_t v, unsigned n);
void state_out_bytes(struct state_out *o, const void *p, size_t n);
/* 0, or -ENOMEM if anything could not be written. */
int state_out_error(const struct state_out *o);

/* Reading a blob: state_in_next hands out one section after the other. */
struct state_in {
	const uint8_t *p;
	size_t len, off;
	uint64_t seen; /* bit id: that section was handed out */
};
struct state_sec {
	unsigned id;
	const uint8_t *p;
	size_t len, off;
	bool short_read; /* a read ran past the end (it returned zeros) */
};

void state_in_init(struct state_in *in, const void *p, size_t len);
/* 1 and the next section in s; 0 at the end of the blob; -1 with one line in err when the
 * blob is malformed (a section past the end, id 0 or too large, reserved bits set, an id
 * seen before). */
int state_in_next(struct state_in *in, struct state_sec *s, char *err, size_t errlen);
/* The lowest id in `needed` (bit per id) that was not handed out, or 0 if none. */
unsigned state_in_missing(const struct state_in *in, uint64_t needed);

uint8_t state_sec_u8(struct state_sec *s);
uint16_t state_sec_u16(struct state_sec *s);
uint32_t state_sec_u32(struct state_sec *s);
uint64_t state_sec_u64(struct state_sec *s);
/* The next n bytes (1..8) as a little-endian integer. */
uint64_t state_sec_le(struct state_sec *s, unsigned n);
void state_sec_bytes(struct state_sec *s, void *dst, size_t n);
/* The section was read exactly to its end: 0, or -1 with one line in err naming `what`,
 * the size it has and the size it should have. */
int state_sec_end(const struct state_sec *s, const char *what, char *err, size_t errlen);

#endif
