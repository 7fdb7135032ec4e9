/* One PAGES record from pages, as the pre-copy engine sends it (page_codec_encode, then one
 * wire_send_iov), for the tests and the fuzzer's seed generator. */
#ifndef TESTS_UNIT_PAGE_BATCH_H
#define TESTS_UNIT_PAGE_BATCH_H

#include <stdio.h>

#include "migrate/page_codec.h"
#include "migrate/wire.h"

static inline int page_codec_send(struct page_codec_enc *e, struct wire_conn *c, const uint64_t *gfns,
				  const uint8_t *const *pages, unsigned n,
				  enum page_codec_compress compress, bool stable)
{
	int rc = page_codec_encode(e, gfns, pages, n, compress, stable);

	if (rc) {
		snprintf(c->err, sizeof(c->err), "cannot encode a batch of %u pages", n);
		return rc;
	}
	return wire_send_iov(c, WIRE_PAGES, e->iov, e->iovcnt, e->crc_len);
}

#endif
