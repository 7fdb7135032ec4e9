#include "migrate/auto_compress.h"

/* Below this link rate the candidate might win, so it is worth a probe: a little under what
 * each compressor does on the most compressible pages (tests/bench/compress.c, zero-heavy
 * memory: zlib-1 ~580 MiB/s, zstd-1 ~2.4 GiB/s), where a ratio of ~0.05 makes the page rate
 * almost the compressor's own. A zstd probe that fails costs little: incompressible pages go
 * through it at ~5 GiB/s. */
#define ZLIB_PROBE_BELOW_BPS (400.0 * 1024 * 1024)
#define ZSTD_PROBE_BELOW_BPS (2048.0 * 1024 * 1024)
#define PROBE_BATCHES 8      /* batches a probe lasts before it is judged */
#define REPROBE_BATCHES 1024 /* raw batches before the candidate is tried again */
#define WIN_MARGIN 1.10      /* compressing must be this much faster to be chosen */
/* The link rate is trusted to end a probe early only after this many measured sends: the
 * first ones mostly fill socket buffers and a shaper's burst, and read far too fast. */
#define LINK_TRUSTED_SAMPLES 16

static double ewma(double old, double sample)
{
	return old <= 0 ? sample : old * 0.75 + sample * 0.25;
}

void auto_compress_init(struct auto_compress *ac, enum migrate_compress mode)
{
	/* auto's candidate until the destination says what it speaks (a snapshot file: this
	 * hv restores it, and knows zstd). */
	static const enum page_codec_compress compressor[MIGRATE_COMPRESS_COUNT] = {
		[MIGRATE_COMPRESS_AUTO] = PAGE_CODEC_COMPRESS_ZSTD,
		[MIGRATE_COMPRESS_ZSTD] = PAGE_CODEC_COMPRESS_ZSTD,
		[MIGRATE_COMPRESS_ZLIB] = PAGE_CODEC_COMPRESS_ZLIB,
		[MIGRATE_COMPRESS_NONE] = PAGE_CODEC_COMPRESS_NONE,
		[MIGRATE_COMPRESS_HYBRID] = PAGE_CODEC_COMPRESS_ZSTD,
	};

	*ac = (struct auto_compress){ .mode = mode, .may_probe = true, .candidate = compressor[mode] };
	ac->codec = mode == MIGRATE_COMPRESS_AUTO ? PAGE_CODEC_COMPRESS_NONE : ac->candidate;
}

const char *auto_compress_peer(struct auto_compress *ac, bool zlib, bool zstd)
{
	switch (ac->mode) {
	case MIGRATE_COMPRESS_AUTO:
		ac->candidate = zstd ? PAGE_CODEC_COMPRESS_ZSTD
				     : zlib ? PAGE_CODEC_COMPRESS_ZLIB : PAGE_CODEC_COMPRESS_NONE;
		return NULL;
	case MIGRATE_COMPRESS_ZSTD:
		return zstd ? NULL : "--compress zstd: the destination's hv cannot decompress zstd; "
				     "use --compress zlib, or update hv there";
	case MIGRATE_COMPRESS_HYBRID:
		ac->candidate = ac->codec = zstd ? PAGE_CODEC_COMPRESS_ZSTD
						 : zlib ? PAGE_CODEC_COMPRESS_ZLIB : PAGE_CODEC_COMPRESS_NONE;
		return ac->codec != PAGE_CODEC_COMPRESS_NONE ? NULL
			: "--compress hybrid: the destination decompresses neither zstd nor zlib; use --compress none";
	case MIGRATE_COMPRESS_ZLIB:
		return zlib ? NULL : "--compress zlib: the destination cannot decompress zlib; use "
				     "--compress none";
	default:
		return NULL;
	}
}

void auto_compress_account(struct auto_compress *ac, uint64_t wire_bytes, uint64_t send_ns,
			   uint64_t comp_in, uint64_t comp_out, uint64_t encode_ns)
{
	ac->last_ratio = 0;
	if (comp_in) {
		ac->last_ratio = (double)comp_out / (double)comp_in;
		ac->comp_bps = ewma(ac->comp_bps, (double)comp_in * 1e9 / (double)(encode_ns ? encode_ns : 1));
		ac->comp_ratio = ewma(ac->comp_ratio, ac->last_ratio);
	}
	/* Only a send that had to wait says how fast the link drains; one that returned at once
	 * merely filled the socket buffer (while compressing, the link may be idle half the
	 * time). */
	if (wire_bytes && send_ns > 200000) {
		ac->link_bps = ewma(ac->link_bps, (double)wire_bytes * 1e9 / (double)send_ns);
		ac->link_samples++;
	}
	ac->batches_since_switch++;
}

void auto_compress_decide(struct auto_compress *ac)
{
	if (ac->mode != MIGRATE_COMPRESS_AUTO || ac->candidate == PAGE_CODEC_COMPRESS_NONE ||
	    ac->link_bps <= 0)
		return;
	if (ac->codec != PAGE_CODEC_COMPRESS_NONE) {
		if (ac->last_ratio <= 0)
			return; /* nothing went through the compressor (all zero pages): nothing learnt */
		/* Saving less than 1 - 1/WIN_MARGIN of the bytes, compressing cannot win even on a
		 * free CPU; and compressing, the page rate can never exceed the compressor's own,
		 * so a compressor slower than the link cannot win either. Either ends the probe
		 * after one batch. */
		bool hopeless = ac->last_ratio * WIN_MARGIN > 1.0 ||
				(ac->link_samples >= LINK_TRUSTED_SAMPLES &&
				 ac->comp_bps < ac->link_bps * WIN_MARGIN);
		if (!hopeless && ac->batches_since_switch < PROBE_BATCHES)
			return;
		/* Page bytes per second compressing: compress, then send the smaller result. */
		if (hopeless ||
		    1.0 / (1.0 / ac->comp_bps + ac->comp_ratio / ac->link_bps) < ac->link_bps * WIN_MARGIN) {
			ac->codec = PAGE_CODEC_COMPRESS_NONE;
			ac->batches_since_switch = 0;
		}
		return;
	}
	double probe_below = ac->candidate == PAGE_CODEC_COMPRESS_ZSTD ? ZSTD_PROBE_BELOW_BPS
								       : ZLIB_PROBE_BELOW_BPS;
	if (ac->may_probe && ac->link_bps < probe_below &&
	    (ac->comp_bps <= 0 || ac->batches_since_switch >= REPROBE_BATCHES)) {
		ac->codec = ac->candidate;
		ac->batches_since_switch = 0;
	}
}

void auto_compress_settle(struct auto_compress *ac)
{
	ac->may_probe = false;
	if (ac->mode == MIGRATE_COMPRESS_AUTO && ac->codec != PAGE_CODEC_COMPRESS_NONE &&
	    ac->batches_since_switch < PROBE_BATCHES) {
		ac->codec = PAGE_CODEC_COMPRESS_NONE; /* an unfinished probe: not proven to pay */
		ac->batches_since_switch = 0;
	}
}

double auto_compress_wire_ratio(const struct auto_compress *ac)
{
	return ac->codec != PAGE_CODEC_COMPRESS_NONE && ac->comp_ratio > 0 ? ac->comp_ratio : 1.0;
}
