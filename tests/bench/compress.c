/* The page compressors on the kinds of memory a guest holds: zlib level 1 and zstd at its fast
 * levels, each batch of 256 pages compressed as one stream (zlib) or one frame (zstd), as
 * migrate/page_codec.c does. This is what chose the codec's zstd level.
 * Prints a Markdown table per mix: compression and decompression rates (MiB of page bytes per
 * second of this thread's CPU time, so that a busy host does not skew it) and the ratio of
 * compressed to raw bytes, where a batch that does not shrink counts as raw (the codec sends
 * it raw); then the page rate each would give over links of 10, 100 and 1024 MiB/s.
 * usage: compress [MIB]   MIB: page bytes per mix (default 64) */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define PAGE 4096
#define BATCH_PAGES 256
#define BATCH (BATCH_PAGES * PAGE)
#define MIB (1024.0 * 1024.0)
#define LIBDIR "/usr/lib/x86_64-linux-gnu"

enum mix { TEXT, RANDOM, HEAP, SPARSE, CODE, MIXED, NMIX };
static const char *const mix_names[NMIX] = {
	"text (log-like lines)", "random (encrypted or compressed data)", "heap (pointers, small integers)",
	"zero-heavy (a few short runs in zero pages)", "code (the shared libraries in " LIBDIR ")",
	"mixed (the five in turn)",
};
static const char *const mix_short[NMIX] = { "text", "random", "heap", "zero-heavy", "code", "mixed" };

struct codec {
	const char *name;
	int zstd;  /* 0: zlib */
	int level;
};
static const struct codec codecs[] = {
	{ "zlib 1", 0, 1 },  { "zstd -8", 1, -8 }, { "zstd -4", 1, -4 }, { "zstd -2", 1, -2 },
	{ "zstd -1", 1, -1 }, { "zstd 1", 1, 1 },  { "zstd 2", 1, 2 },   { "zstd 3", 1, 3 },
};
#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_text(uint8_t *p)
{
	static const char *const words[] = {
		"migration ", "page ", "dirty ", "round ", "guest ", "the ", "of ", "host ", "log ",
		"kernel: ", "eth0 ", "link ", "up ", "user ", "session ", "opened ", "for ", "root ",
		"systemd[1]: ", "Started ", "service ", "error ", "0x7f3a ", "12:04:31 ", "\n",
	};
	for (size_t i = 0; i < PAGE;) {
		const char *w = words[rng() % (sizeof(words) / sizeof(words[0]))];
		size_t n = strlen(w);
		if (n > PAGE - i)
			n = PAGE - i;
		memcpy(p + i, w, n);
		i += n;
	}
}

static void fill_random(uint8_t *p)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = rng();
		memcpy(p + i, &v, 8);
	}
}

/* Structs of a heap: a pointer or two into one region, small counters, flags, padding. */
static void fill_heap(uint8_t *p)
{
	uint64_t base = 0x00007f3a12000000ULL + (rng() & 0xfff000);

	for (size_t i = 0; i < PAGE; i += 32) {
		uint64_t w[4] = { base + (rng() & 0xffff8), rng() % 64, rng() & 1 ? base + (rng() & 0xfff8) : 0,
				  0x100000001ULL * (rng() % 4) };
		memcpy(p + i, w, 32);
	}
}

static void fill_sparse(uint8_t *p)
{
	memset(p, 0, PAGE);
	for (uint64_t runs = 1 + rng() % 4; runs > 0; runs--) {
		size_t len = 16 + rng() % 112, off = rng() % (PAGE - len);
		for (size_t i = 0; i < len; i++)
			p[off + i] = (uint8_t)rng();
	}
}

/* Code and read-only data, as a guest's page cache holds them: the non-zero pages of the
 * shared libraries of this host (a zero page never reaches a compressor). */
static uint8_t *code;
static size_t code_pages;

static void load_code(size_t want)
{
	DIR *d = opendir(LIBDIR);
	struct dirent *de;

	code = malloc(want * PAGE);
	while (code && d && code_pages < want && (de = readdir(d))) {
		char path[512];
		int fd;

		if (!strstr(de->d_name, ".so"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", LIBDIR, de->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		while (code_pages < want && read(fd, code + code_pages * PAGE, PAGE) == PAGE) {
			static const uint8_t zero[PAGE];
			code_pages += memcmp(code + code_pages * PAGE, zero, PAGE) != 0;
		}
		close(fd);
	}
	if (d)
		closedir(d);
}

static void fill(uint8_t *p, enum mix m, size_t index)
{
	if (m == MIXED)
		m = (enum mix)(index % (code_pages ? 5 : 4));
	switch (m) {
	case TEXT: fill_text(p); break;
	case RANDOM: fill_random(p); break;
	case HEAP: fill_heap(p); break;
	case SPARSE: fill_sparse(p); break;
	default: memcpy(p, code + index % code_pages * PAGE, PAGE); break;
	}
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct tools {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	z_stream def, inf;
	uint8_t *copy; /* zstd's input, as the codec gathers it */
};

/* Compresses one batch into out (room for less than raw, as in the codec). Returns the size,
 * or 0 if it did not shrink. */
static size_t squeeze(struct tools *t, const struct codec *c, const uint8_t *in, uint8_t *out)
{
	if (c->zstd) {
		/* The codec copies the pages side by side first (page_codec_zstd): so does this. */
		for (size_t off = 0; off < BATCH; off += PAGE)
			memcpy(t->copy + off, in + off, PAGE);
		size_t n = ZSTD_compressCCtx(t->cctx, out, BATCH - 1, t->copy, BATCH, c->level);
		return ZSTD_isError(n) ? 0 : n;
	}
	deflateReset(&t->def);
	t->def.next_in = (Bytef *)in;
	t->def.avail_in = BATCH;
	t->def.next_out = out;
	t->def.avail_out = BATCH - 1;
	return deflate(&t->def, Z_FINISH) == Z_STREAM_END ? t->def.total_out : 0;
}

static int unsqueeze(struct tools *t, const struct codec *c, const uint8_t *in, size_t len, uint8_t *out)
{
	if (c->zstd)
		return ZSTD_decompressDCtx(t->dctx, out, BATCH, in, len) == BATCH ? 0 : -1;
	inflateReset(&t->inf);
	t->inf.next_in = (Bytef *)in;
	t->inf.avail_in = (uInt)len;
	t->inf.next_out = out;
	t->inf.avail_out = BATCH;
	return inflate(&t->inf, Z_FINISH) == Z_STREAM_END && t->inf.avail_out == 0 ? 0 : -1;
}

/* Page MiB/s through compression at comp MiB/s, then a link of link MiB/s. */
static double page_rate(double comp, double ratio, double link)
{
	return 1.0 / (1.0 / comp + ratio / link);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, nbatch = mib * MIB / BATCH;
	uint8_t *mem = malloc(nbatch * BATCH), *out = malloc(BATCH), *back = malloc(BATCH);
	struct tools t = { .cctx = ZSTD_createCCtx(), .dctx = ZSTD_createDCtx(), .copy = malloc(BATCH) };

	if (nbatch == 0 || !mem || !out || !back || !t.cctx || !t.dctx || !t.copy ||
	    deflateInit(&t.def, 1) != Z_OK || inflateInit(&t.inf) != Z_OK) {
		fprintf(stderr, "compress: usage: compress [MIB] (at least 1), or out of memory\n");
		return 2;
	}
	double comp_of[NMIX][NCODECS] = { { 0 } }, ratio_of[NMIX][NCODECS] = { { 0 } };

	load_code(nbatch * BATCH_PAGES);
	printf("zlib %s, zstd %s; %zu MiB per mix, in batches of %d pages. comp, dec: MiB/s of\n"
	       "page bytes per CPU second; ratio: bytes sent / page bytes (a batch that does not\n"
	       "shrink goes raw); at 10, 100, 1024: the page rate in MiB/s through the compressor\n"
	       "and a link of that many MiB/s (raw: the link's own).\n\n",
	       zlibVersion(), ZSTD_versionString(), mib, BATCH_PAGES);
	for (int m = 0; m < NMIX; m++) {
		if (m == CODE && !code_pages) {
			printf("### %s: none found, skipped\n\n", mix_names[m]);
			continue;
		}
		for (size_t i = 0; i < nbatch * BATCH_PAGES; i++)
			fill(mem + i * PAGE, (enum mix)m, i);
		printf("### %s\n\n", mix_names[m]);
		printf("| codec   |  comp |   dec | ratio | at 10 | at 100 | at 1024 |\n");
		printf("|---------|------:|------:|------:|------:|-------:|--------:|\n");
		for (size_t k = 0; k < NCODECS; k++) {
			const struct codec *c = &codecs[k];
			double tc = 0, td = 0, sent = 0, expanded = 0;

			for (size_t b = 0; b < nbatch; b++) {
				const uint8_t *in = mem + b * BATCH;
				double t0 = cpu_s();
				size_t n = squeeze(&t, c, in, out);
				double t1 = cpu_s();
				tc += t1 - t0;
				sent += n ? (double)n : BATCH;
				if (!n)
					continue;
				if (unsqueeze(&t, c, out, n, back) < 0 || memcmp(back, in, BATCH)) {
					fprintf(stderr, "compress: %s did not give the batch back\n", c->name);
					return 1;
				}
				td += cpu_s() - t1;
				expanded += BATCH;
			}
			double comp = (double)nbatch * BATCH / MIB / tc, ratio = sent / ((double)nbatch * BATCH);
			comp_of[m][k] = comp;
			ratio_of[m][k] = ratio;
			char dec[16] = "-";
			if (td > 0)
				snprintf(dec, sizeof(dec), "%.0f", expanded / MIB / td);
			printf("| %-7s | %5.0f | %5s | %5.3f | %5.1f | %6.0f | %7.0f |\n", c->name, comp, dec, ratio,
			       page_rate(comp, ratio, 10), page_rate(comp, ratio, 100), page_rate(comp, ratio, 1024));
		}
		printf("\n");
	}
	/* All of it on one screen: compression MiB/s / ratio, per mix. */
	printf("### Summary: comp MiB/s / ratio\n\n| codec   |");
	for (int m = 0; m < NMIX; m++)
		printf(" %13s |", mix_short[m]);
	printf("\n|---------|");
	for (int m = 0; m < NMIX; m++)
		printf("--------------:|");
	printf("\n");
	for (size_t k = 0; k < NCODECS; k++) {
		printf("| %-7s |", codecs[k].name);
		for (int m = 0; m < NMIX; m++)
			if (comp_of[m][k] > 0)
				printf(" %5.0f / %.3f |", comp_of[m][k], ratio_of[m][k]);
			else
				printf(" %13s |", "-");
		printf("\n");
	}
	deflateEnd(&t.def);
	inflateEnd(&t.inf);
	ZSTD_freeCCtx(t.cctx);
	ZSTD_freeDCtx(t.dctx);
	free(t.copy);
	free(mem);
	free(code);
	free(out);
	free(back);
	return 0;
}
