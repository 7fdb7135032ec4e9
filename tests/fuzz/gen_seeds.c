/* Writes a seed corpus for fuzz_stream into the directory argv[1]: valid streams made with the
 * real encoders (a whole migration as the destination sees it, a reply stream, single records),
 * each file being one mode byte followed by the stream. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/state_enc.h"
#include "migrate/cpu_state.h"
#include "migrate/page_codec.h"
#include "migrate/snapshot.h"
#include "migrate/wire.h"
#include "tests/unit/page_batch.h"
#include "tests/fuzz/fuzz_common.h"

static uint8_t seed_guest[FUZZ_GUEST_PAGES * WIRE_PAGE_SIZE];

static int seed_open(const char *dir, const char *name, uint8_t mode, struct wire_conn *c)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "gen_seeds: cannot create %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (write(fd, &mode, 1) != 1)
		exit(1);
	if (mode & FUZZ_MODE_SNAPSHOT) {
		struct snapshot_header h = { .created = 1764979200, .mem_size = FUZZ_GUEST_PAGES * WIRE_PAGE_SIZE,
					     .vcpus = 1, .name = "seed" };
		uint8_t b[SNAPSHOT_HEADER_SIZE];

		snapshot_header_encode(b, &h);
		if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			exit(1);
	}
	wire_conn_init_fd(c, fd);
	return fd;
}

static void seed_check(int rc, const struct wire_conn *c)
{
	if (rc) {
		fprintf(stderr, "gen_seeds: %s\n", c->err);
		exit(1);
	}
}

static void seed_pages(struct wire_conn *c, struct page_codec_enc *e, uint64_t first, unsigned n,
		       enum page_codec_compress z, bool stable)
{
	uint64_t gfns[16];
	const uint8_t *pages[16];

	for (unsigned i = 0; i < n; i++) {
		gfns[i] = first + i;
		pages[i] = seed_guest + (first + i) * WIRE_PAGE_SIZE;
	}
	seed_check(page_codec_send(e, c, gfns, pages, n, z, stable), c);
}

/* The source side of a whole migration. */
static void seed_migration(const char *dir, const char *name, uint8_t mode)
{
	struct wire_conn c;
	struct page_codec_enc e;
	static struct wire_hello h;
	static struct vcpu_state vs;
	struct vm_kvm_state vm;
	struct wire_round_end re = { 0, WIRE_ROUND_END_SYNC, 30, 10, 10, 10, 50000, 3, 1000 };
	struct wire_progress pr = { 1, WIRE_PHASE_MEMORY, 64, 30, 34, 50000, 12 };
	struct wire_end_of_state eos = { 1, 1 };
	static uint8_t blob[CPU_STATE_VCPU_BLOB_MAX];
	size_t blen;
	int fd = seed_open(dir, name, mode, &c);

	memset(&h, 0, sizeof(h));
	h.protocol = WIRE_VERSION;
	strcpy(h.name, "fuzz");
	strcpy(h.uuid, "6f1d3c2a-9b7e-4c1d-8e2f-0a1b2c3d4e5f");
	h.mem_size = FUZZ_GUEST_PAGES * WIRE_PAGE_SIZE;
	h.vcpus = 1;
	h.caps = WIRE_CAP_ZLIB | WIRE_CAP_ZSTD;
	h.ncpuid = 2;
	h.cpuid[0] = (struct wire_cpuid_word){ 0, 0, 0xd, 1, 2, 3 };
	h.cpuid[1] = (struct wire_cpuid_word){ 7, 0, 0, 0x219c91a9, 0, 0 };
	strcpy(h.devices_json, "[{\"type\":\"serial\",\"name\":\"com1\"}]");
	h.storage_copy = true; /* and disk blocks: data, zeros */
	h.ncopy_to = 1;
	seed_check(wire_send_hello(&c, &h), &c);
	static uint8_t block[4096];
	memset(block, 0x5a, sizeof(block));
	seed_check(wire_send_disk_data(&c, 0, 0, 8192, block, sizeof(block)), &c);
	seed_check(wire_send_disk_data(&c, 1, WIRE_DISK_ZERO, 65536, NULL, 65536), &c);

	page_codec_enc_init(&e);
	seed_pages(&c, &e, 0, 4, PAGE_CODEC_COMPRESS_NONE, false);   /* raw, live */
	seed_pages(&c, &e, 4, 4, PAGE_CODEC_COMPRESS_ZLIB, false);   /* zlib */
	seed_pages(&c, &e, 4, 8, PAGE_CODEC_COMPRESS_ZSTD, false);   /* zstd: text, patterned */
	seed_pages(&c, &e, 9, 4, PAGE_CODEC_COMPRESS_ZSTD, false);   /* zstd: patterned, zero */
	seed_pages(&c, &e, 20, 3, PAGE_CODEC_COMPRESS_NONE, false);  /* zero pages only */
	seed_check(wire_send_round_end(&c, &re), &c);
	seed_check(wire_send_progress(&c, &pr), &c);
	seed_pages(&c, &e, 8, 2, PAGE_CODEC_COMPRESS_NONE, true);    /* raw, stable */

	memset(&vs, 0, sizeof(vs));
	vs.have = CPU_STATE_HAVE_SREGS2 | CPU_STATE_HAVE_XSAVE | CPU_STATE_HAVE_TSC_KHZ;
	vs.xsave_size = 4096;
	vs.tsc_khz = 2000000;
	vs.nmsrs = 2;
	vs.msrs[0].index = 0x10;
	vs.msrs[1].index = 0x6e0;
	vs.regs.rip = 0x1000;
	if (cpu_state_encode_vcpu(&vs, blob, sizeof(blob), &blen) == 0)
		seed_check(wire_send(&c, WIRE_CPU_STATE, blob, blen), &c);
	memset(&vm, 0, sizeof(vm));
	vm.have = CPU_STATE_HAVE_PIT;
	vm.pic_slave.chip_id = 1;
	vm.ioapic.chip_id = 2;
	if (cpu_state_encode_vm(&vm, blob, sizeof(blob), &blen) == 0)
		seed_check(wire_send(&c, WIRE_VM_STATE, blob, blen), &c);
	/* A serial port's state as devices/serial.c saves it: one section of 77 bytes. */
	struct state_out so;
	state_out_init(&so);
	state_out_begin(&so, 1);
	for (int i = 0; i < 77; i++)
		state_out_u8(&so, (uint8_t)(i == 2 ? 0x03 : 0));
	state_out_end(&so);
	seed_check(wire_send_device_state(&c, "com1", 2, so.buf, so.len), &c);
	state_out_free(&so);
	seed_check(wire_send_end_of_state(&c, &eos), &c);
	seed_check(wire_send(&c, WIRE_COMMIT, NULL, 0), &c);
	page_codec_enc_fini(&e);
	close(fd);
}

static void seed_replies(const char *dir)
{
	struct wire_conn c;
	struct wire_hello_reply r = { .ok = false };
	int fd = seed_open(dir, "replies", 0, &c);

	strcpy(r.error, "CPU feature avx2 missing on the destination");
	seed_check(wire_send_hello_reply(&c, &r), &c);
	r.ok = true;
	r.error[0] = '\0';
	seed_check(wire_send_hello_reply(&c, &r), &c);
	seed_check(wire_send(&c, WIRE_ACK, NULL, 0), &c);
	seed_check(wire_send_abort(&c, WIRE_ABORT_LOAD_FAILED, "KVM_SET_MSRS rejected 0x10a"), &c);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	for (size_t i = 0; i < sizeof(seed_guest); i++) {
		size_t page = i / WIRE_PAGE_SIZE;

		/* pages 0-3 random-ish, 4-7 text, 8-11 patterned, the rest zero */
		if (page < 4)
			seed_guest[i] = (uint8_t)((i * 2654435761u) >> 24);
		else if (page < 8)
			seed_guest[i] = (uint8_t)("the quick brown fox "[i % 20]);
		else if (page < 12)
			seed_guest[i] = (uint8_t)(i / 64);
	}
	seed_migration(argv[1], "migration", 0);
	seed_migration(argv[1], "migration-fixcrc", FUZZ_MODE_FIX_CRC | FUZZ_MODE_FIX_SEQ);
	seed_migration(argv[1], "snapshot", FUZZ_MODE_SNAPSHOT);
	seed_migration(argv[1], "snapshot-fixcrc", FUZZ_MODE_SNAPSHOT | FUZZ_MODE_FIX_CRC | FUZZ_MODE_FIX_SEQ);
	seed_replies(argv[1]);
	return 0;
}
