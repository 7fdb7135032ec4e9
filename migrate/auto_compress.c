#include "migrate/auto_compress.h"

/* Below this link rate zlib might win, so it is worth a probe. */
#define PROBE_BELOW_BPS (400.0 * 1024 * 1024)
#define PROBE_BATCHES 8      /* batches a probe lasts before it is judged */
#define REPROBE_BATCHES 1024 /* raw batches before zlib is tried again */
#define WIN_MARGIN 1.10      /* zlib must be this much faster to be chosen */
/* The link rate is trusted to end a probe early only after this many measured sends: the
 * first ones mostly fill socket buffers and a shaper's burst, and read far too fast. */
#define LINK_TRUSTED_SAMPLES 16

static double ewma(double old, double sample)
{
	return old <= 0 ? sample : old * 0.75 + sample * 0.25;
}

void auto_compress_init(struct auto_compress *ac, enum migrate_compress mode)
{
	*ac = (struct auto_compress){ .mode = mode, .may_probe = true };
	ac->zlib_allowed = mode != MIGRATE_COMPRESS_NONE;
	ac->use_zlib = mode == MIGRATE_COMPRESS_ZLIB;
}

void auto_compress_account(struct auto_compress *ac, uint64_t wire_bytes, uint64_t send_ns,
			   uint64_t deflate_in, uint64_t deflate_out, uint64_t encode_ns)
{
	ac->last_ratio = 0;
	if (deflate_in) {
		ac->last_ratio = (double)deflate_out / (double)deflate_in;
		ac->zlib_bps = ewma(ac->zlib_bps, (double)deflate_in * 1e9 / (double)(encode_ns ? encode_ns : 1));
		ac->zlib_ratio = ewma(ac->zlib_ratio, ac->last_ratio);
	}
	/* Only a send that had to wait says how fast the link drains; one that returned at once
	 * merely filled the socket buffer (with zlib on, the link may be idle half the time). */
	if (wire_bytes && send_ns > 200000) {
		ac->link_bps = ewma(ac->link_bps, (double)wire_bytes * 1e9 / (double)send_ns);
		ac->link_samples++;
	}
	ac->batches_since_switch++;
}

void auto_compress_decide(struct auto_compress *ac)
{
	if (ac->mode != MIGRATE_COMPRESS_AUTO || !ac->zlib_allowed || ac->link_bps <= 0)
		return;
	if (ac->use_zlib) {
		if (ac->last_ratio <= 0)
			return; /* nothing went through deflate (all zero pages): nothing learnt */
		/* Saving less than 1 - 1/WIN_MARGIN of the bytes, zlib cannot win even on a free
		 * CPU; and with zlib the page rate can never exceed zlib's own rate, so zlib slower
		 * than the link cannot win either. Either ends the probe after one batch. */
		bool hopeless = ac->last_ratio * WIN_MARGIN > 1.0 ||
				(ac->link_samples >= LINK_TRUSTED_SAMPLES &&
				 ac->zlib_bps < ac->link_bps * WIN_MARGIN);
		if (!hopeless && ac->batches_since_switch < PROBE_BATCHES)
			return;
		/* Page bytes per second with zlib: compress, then send the smaller result. */
		if (hopeless ||
		    1.0 / (1.0 / ac->zlib_bps + ac->zlib_ratio / ac->link_bps) < ac->link_bps * WIN_MARGIN) {
			ac->use_zlib = false;
			ac->batches_since_switch = 0;
		}
		return;
	}
	if (ac->may_probe && ac->link_bps < PROBE_BELOW_BPS &&
	    (ac->zlib_bps <= 0 || ac->batches_since_switch >= REPROBE_BATCHES)) {
		ac->use_zlib = true;
		ac->batches_since_switch = 0;
	}
}

void auto_compress_settle(struct auto_compress *ac)
{
	ac->may_probe = false;
	if (ac->mode == MIGRATE_COMPRESS_AUTO && ac->use_zlib && ac->batches_since_switch < PROBE_BATCHES) {
		ac->use_zlib = false; /* an unfinished probe: not proven to pay */
		ac->batches_since_switch = 0;
	}
}

double auto_compress_wire_ratio(const struct auto_compress *ac)
{
	return ac->use_zlib && ac->zlib_ratio > 0 ? ac->zlib_ratio : 1.0;
}
