/* --compress auto: a compressor only while the link, not the CPU, is the bottleneck.
 * Compressing pays only on links slower than the compressor, and only for compressible
 * memory: zstd (level 1) does ~400-500 MiB/s of compressible pages per core (GiB/s on mostly
 * zero ones) and gives up on incompressible ones at ~5 GiB/s, zlib level 1 does ~80-140 MiB/s,
 * while loopback TCP moves GiB/s (tests/bench/compress.c). The sender measures both sides per
 * batch (time blocked in the socket, time compressing, compression ratio) and compares the
 * page rate each choice would give.
 *
 * What auto tries is the candidate: zstd if the destination speaks it, else zlib. zstd is
 * faster than zlib-1 on every mix measured and sends as few bytes or fewer, so once zstd is
 * available zlib has nothing to win and is never tried.
 *
 * The invariant (docs/migration.md): auto is never slower than none by more than noise, on
 * any memory. A probe of the candidate lasts one batch when it cannot win (the batch did not
 * shrink by 10%, or the compressor alone is slower than a link rate measured often enough to
 * be trusted), at most PROBE_BATCHES otherwise, and a failed probe is not repeated for
 * REPROBE_BATCHES batches: a probe costs at most one batch's compression per GiB sent raw. */
#ifndef MIGRATE_AUTO_COMPRESS_H
#define MIGRATE_AUTO_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "migrate/migrate.h"
#include "migrate/page_codec.h"

struct auto_compress {
	enum migrate_compress mode;
	/* What auto probes (fixed modes: their compressor); NONE if the destination speaks
	 * neither. */
	enum page_codec_compress candidate;
	enum page_codec_compress codec; /* current choice, for page_codec_encode */
	double link_bps;   /* bytes/s the socket accepts while it is the bottleneck (EWMA) */
	uint32_t link_samples; /* sends that fed link_bps: the first few see socket buffers fill */
	double comp_bps;   /* page bytes/s the compressor consumes (EWMA); 0 until measured */
	double comp_ratio; /* compressed/raw (EWMA); 0 until measured */
	double last_ratio; /* compressed/raw of the last batch; 0 if it was not compressed */
	bool may_probe;    /* false once the guest is paused: no experiments in the downtime */
	uint32_t batches_since_switch;
};

void auto_compress_init(struct auto_compress *ac, enum migrate_compress mode);
/* What the destination decompresses (its HELLO_REPLY caps): auto's candidate becomes the best
 * of them. NULL, or for a fixed mode whose compressor the destination lacks, one line saying
 * what to do instead (the migration cannot go on). */
const char *auto_compress_peer(struct auto_compress *ac, bool zlib, bool zstd);
/* One batch: wire bytes and the time the send took; page bytes that the compressor was given
 * and what it produced (page_codec_stats.compress_*: attempts that fell back to raw count
 * too, with their output as the raw size), and the time encoding took. */
void auto_compress_account(struct auto_compress *ac, uint64_t wire_bytes, uint64_t send_ns,
			   uint64_t comp_in, uint64_t comp_out, uint64_t encode_ns);
/* Re-decides codec (auto mode only). */
void auto_compress_decide(struct auto_compress *ac);
/* The guest is paused: from now on keep the choice that is known to pay; an unfinished
 * probe ends (raw), and no new one starts. */
void auto_compress_settle(struct auto_compress *ac);
/* Expected wire bytes per page byte under the current choice (for downtime estimates). */
double auto_compress_wire_ratio(const struct auto_compress *ac);

#endif
