/* --compress auto: zlib only while the link, not the CPU, is the bottleneck.
 * zlib level 1 does ~50-100 MiB/s per core while loopback TCP moves GiB/s, so compressing
 * pays only on slow links, and only for compressible memory. The sender measures both sides
 * per batch (time blocked in the socket, time in zlib, compression ratio) and compares the
 * page rate each choice would give.
 *
 * The invariant (docs/migration.md): auto is never slower than none by more than noise, on
 * any memory. A probe of zlib lasts one batch when zlib cannot win (the batch did not shrink
 * by 10%, or zlib alone is slower than a link rate measured often enough to be trusted), at
 * most PROBE_BATCHES otherwise, and a
 * failed probe is not repeated for REPROBE_BATCHES batches: a probe costs at most one
 * batch's compression per GiB sent raw. */
#ifndef MIGRATE_AUTO_COMPRESS_H
#define MIGRATE_AUTO_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "migrate/migrate.h"

struct auto_compress {
	enum migrate_compress mode;
	bool zlib_allowed; /* mode allows it and the destination speaks it */
	bool use_zlib;     /* current choice */
	double link_bps;   /* bytes/s the socket accepts while it is the bottleneck (EWMA) */
	uint32_t link_samples; /* sends that fed link_bps: the first few see socket buffers fill */
	double zlib_bps;   /* page bytes/s zlib consumes (EWMA); 0 until measured */
	double zlib_ratio; /* compressed/raw (EWMA); 0 until measured */
	double last_ratio; /* compressed/raw of the last batch; 0 if it was not compressed */
	bool may_probe;    /* false once the guest is paused: no experiments in the downtime */
	uint32_t batches_since_switch;
};

void auto_compress_init(struct auto_compress *ac, enum migrate_compress mode);
/* One batch: wire bytes and the time the send took; page bytes that deflate was given and
 * what it produced (page_codec_stats.deflate_*: attempts that fell back to raw count too,
 * with their output as the raw size), and the time encoding took. */
void auto_compress_account(struct auto_compress *ac, uint64_t wire_bytes, uint64_t send_ns,
			   uint64_t deflate_in, uint64_t deflate_out, uint64_t encode_ns);
/* Re-decides use_zlib (auto mode only). */
void auto_compress_decide(struct auto_compress *ac);
/* The guest is paused: from now on keep the choice that is known to pay; an unfinished
 * probe of zlib ends (raw), and no new one starts. */
void auto_compress_settle(struct auto_compress *ac);
/* Expected wire bytes per page byte under the current choice (for downtime estimates). */
double auto_compress_wire_ratio(const struct auto_compress *ac);

#endif
