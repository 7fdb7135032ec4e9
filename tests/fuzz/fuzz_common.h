/* Shared by the fuzz target and its seed generator: the fake guest the PAGES records land in. */
#ifndef TESTS_FUZZ_FUZZ_COMMON_H
#define TESTS_FUZZ_FUZZ_COMMON_H

#include <stdint.h>

#define FUZZ_GUEST_PAGES 64
#define FUZZ_GUEST_HOLE 13 /* a page number inside the limit with no RAM behind it */

/* The first input byte selects how the rest is treated. */
#define FUZZ_MODE_FIX_CRC 0x01 /* recompute header and payload CRCs before decoding */
#define FUZZ_MODE_FIX_SEQ 0x02 /* renumber the records 0, 1, 2, ... */
#define FUZZ_MODE_SNAPSHOT 0x04 /* a snapshot file: its 128-byte header, then the stream
				   (with FUZZ_MODE_FIX_CRC the header's CRC is rewritten too) */

#endif
