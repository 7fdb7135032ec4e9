/* blkverify: checks on the host that a disk image holds what the guest's prog=blkcheck
 * wrote (guests/README.md, "prog=blkcheck"): every 4 KiB block b in [0, BLOCKS) at
 * generation GEN, 64-bit little-endian words
 *   word 0 = b, word 1 = GEN,
 *   word w (2..511) = mix64(mix64(b * 0x9e3779b97f4a7c15 + mix64(GEN)) + w * 0xd1b54a32d192ed03)
 * With --zero-rest, every byte after block BLOCKS must be zero (never written).
 *
 * usage: blkverify IMAGE BLOCKS GEN [--zero-rest]
 * Prints `blkverify: blocks=<n> ok=<n> bad=<n>` (and up to 10 `BAD block=...` lines);
 * exit 0 if all blocks verify, 1 if any does not, 2 on a usage or I/O error. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 4096
#define WORDS (BLOCK / 8)
#define CHUNK (256 * BLOCK)
#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xd1b54a32d192ed03ULL

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || !*s || *end || *s == '-')
		return -1;
	*v = x;
	return 0;
}

/* Reads exactly len bytes at off; 0, or -1 (short file or error). */
static int read_at(int fd, uint8_t *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t r = pread(fd, buf, len, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		buf += r;
		len -= (size_t)r;
		off += r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t blocks, gen, bad = 0, ok = 0;
	int zero_rest = argc == 5 && !strcmp(argv[4], "--zero-rest");

	if ((argc != 4 && !zero_rest) || parse_u64(argv[2], &blocks) < 0 || parse_u64(argv[3], &gen) < 0) {
		fprintf(stderr, "usage: blkverify IMAGE BLOCKS GEN [--zero-rest]\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "blkverify: cannot open '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	if ((uint64_t)st.st_size / BLOCK < blocks) {
		fprintf(stderr, "blkverify: '%s' has only %llu blocks of 4 KiB, not %llu\n", argv[1],
			(unsigned long long)(st.st_size / BLOCK), (unsigned long long)blocks);
		return 2;
	}
	static uint8_t buf[CHUNK];
	for (uint64_t b0 = 0; b0 < blocks; b0 += CHUNK / BLOCK) {
		uint64_t n = blocks - b0 < CHUNK / BLOCK ? blocks - b0 : CHUNK / BLOCK;
		if (read_at(fd, buf, n * BLOCK, (off_t)(b0 * BLOCK)) < 0) {
			fprintf(stderr, "blkverify: read error in '%s' at block %llu\n", argv[1],
				(unsigned long long)b0);
			return 2;
		}
		for (uint64_t k = 0; k < n; k++) {
			uint64_t b = b0 + k, seed = mix64(b * K1 + mix64(gen));
			const uint8_t *p = buf + k * BLOCK;
			int good = 1;
			for (unsigned w = 0; w < WORDS; w++) {
				uint64_t exp = w == 0 ? b : w == 1 ? gen : mix64(seed + w * K2);
				uint64_t got = le64(p + 8 * w);
				if (got != exp) {
					if (bad < 10)
						printf("BAD block=%" PRIu64 " word=%u found=0x%016" PRIx64
						       " expected=0x%016" PRIx64 " (block says gen=%" PRIu64 ")\n",
						       b, w, got, exp, le64(p + 8));
					good = 0;
					break;
				}
			}
			good ? ok++ : bad++;
		}
	}
	uint64_t nonzero = 0;
	if (zero_rest) {
		off_t off = (off_t)(blocks * BLOCK);
		for (; off < st.st_size; off += CHUNK) {
			size_t n = st.st_size - off < CHUNK ? (size_t)(st.st_size - off) : CHUNK;
			if (read_at(fd, buf, n, off) < 0) {
				fprintf(stderr, "blkverify: read error in '%s'\n", argv[1]);
				return 2;
			}
			for (size_t i = 0; i < n; i++)
				if (buf[i]) {
					if (!nonzero)
						printf("NONZERO offset=%llu after the checked blocks\n",
						       (unsigned long long)(off + (off_t)i));
					nonzero++;
				}
		}
	}
	close(fd);
	printf("blkverify: blocks=%" PRIu64 " ok=%" PRIu64 " bad=%" PRIu64 "%s\n", blocks, ok, bad,
	       zero_rest ? (nonzero ? " rest=nonzero" : " rest=zero") : "");
	return bad || nonzero ? 1 : 0;
}
