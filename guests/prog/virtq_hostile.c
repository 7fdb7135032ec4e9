/* hv-guest: prog=virtq_hostile. A hostile driver: feeds the first virtio-blk disk (and
 * the first virtio-net NIC, if there is one) malformed virtqueues and checks that the
 * device answers each with DEVICE_NEEDS_RESET (status bit 0x40), a clean error status, or
 * (a queue size no split queue can have) by not taking the value at all,
 * that other devices keep working meanwhile, and that a reset brings the device back.
 * The VMM surviving all of it is shown by this program getting to its exit.
 *
 * Output, one line per case:
 *   virtq_hostile: case=<name> expect=<needs_reset|IOERR|UNSUPP|ignored> got=<...> status=0x<s> others=<ok|none|FAIL> recovered=<0|1> <ok|FAIL>
 * then `virtq_hostile: cases=<n> passed=<k>`; exit 0 if every case passed, else 7.
 * Parameters: only=NAME (run one case). */
#include "cmdline.h"
#include "inet.h"
#include "layout.h"
#include "lib.h"
#include "mem.h"
#include "print.h"
#include "progs.h"
#include "sys.h"
#include "time.h"
#include "virtio_blk.h"
#include "virtio_net.h"

static const char *me = "virtq_hostile";
static struct vblk blk, blk2;
static struct vnet nic;
static int have_blk2, have_nic;
static uint8_t *scratch; /* 4 pages: header/status, data, indirect table, spare */

#define OUTSIDE_RAM 0xF0000000ULL /* in the MMIO hole: never RAM */
#define FAR_AWAY 0x7fff00000000ULL

struct blkhdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint64_t hdr_addr(uint32_t type, uint64_t sector)
{
	struct blkhdr *h = (struct blkhdr *)scratch;
	h->type = type;
	h->reserved = 0;
	h->sector = sector;
	return (uint64_t)(uintptr_t)h;
}

#define STATUS_ADDR ((uint64_t)(uintptr_t)(scratch + 64))
#define DATA_ADDR ((uint64_t)(uintptr_t)(scratch + 4096))
#define TABLE_ADDR ((uint64_t)(uintptr_t)(scratch + 8192))

static struct virtq *bq(void)
{
	return &blk.dev.vq[0];
}

/* ---- the cases: each starts from a freshly initialised disk (queue 0, size 256) ---- */

static void c_desc_outside_ram(void)
{
	vq_raw_desc(bq(), 0, OUTSIDE_RAM, 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	vq_raw_avail(bq(), 0);
}

static void c_desc_far_away(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, FAR_AWAY, 4096, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	vq_raw_avail(bq(), 0);
}

static void c_addr_wraps(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, 0xfffffffffffff000ULL, 0x2000, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	vq_raw_avail(bq(), 0);
}

static void c_oversize_len(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, DATA_ADDR, 0xfffff000u, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	vq_raw_avail(bq(), 0);
}

static void c_chain_loop(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, DATA_ADDR, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, STATUS_ADDR, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vq_raw_avail(bq(), 0);
}

static void c_self_loop(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 0);
	vq_raw_avail(bq(), 0);
}

static void c_next_out_of_range(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 999);
	vq_raw_avail(bq(), 0);
}

static void c_head_out_of_range(void)
{
	vq_raw_avail(bq(), 300);
}

static void c_avail_idx_jump(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	vq_raw_avail_idx(bq(), 1000);
}

static void c_no_status_byte(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_IN, 0), 16, 0, 0);
	vq_raw_avail(bq(), 0);
}

static void c_readable_after_writable(void)
{
	vq_raw_desc(bq(), 0, hdr_addr(VBLK_T_OUT, 0), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, STATUS_ADDR, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, DATA_ADDR, 512, 0, 0);
	vq_raw_avail(bq(), 0);
}

static void c_indirect_not_negotiated(void)
{
	volatile struct vring_desc *t = (volatile struct vring_desc *)(uintptr_t)TABLE_ADDR;
	t[0] = (struct vring_desc){ hdr_addr(VBLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0 };
	vq_raw_desc(bq(), 0, TABLE_ADDR, 32, VRING_DESC_F_INDIRECT, 0);
	vq_raw_avail(bq(), 0);
}

/* Queue set-up errors: the rings are programmed by hand before DRIVER_OK. */
static void setup_queue_by_hand(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct virtio_dev *d = &blk.dev;
	virtio_begin(d, 0);
	virtio_common_write16(d, VCOMMON_Q_SELECT, 0);
	virtio_common_write16(d, VCOMMON_Q_SIZE, size);
	virtio_common_write32(d, VCOMMON_Q_DESC, (uint32_t)desc);
	virtio_common_write32(d, VCOMMON_Q_DESC + 4, (uint32_t)(desc >> 32));
	virtio_common_write32(d, VCOMMON_Q_AVAIL, (uint32_t)avail);
	virtio_common_write32(d, VCOMMON_Q_AVAIL + 4, (uint32_t)(avail >> 32));
	virtio_common_write32(d, VCOMMON_Q_USED, (uint32_t)used);
	virtio_common_write32(d, VCOMMON_Q_USED + 4, (uint32_t)(used >> 32));
	virtio_common_write16(d, VCOMMON_Q_ENABLE, 1);
	virtio_driver_ok(d);
}

static uint64_t ring_base(void)
{
	return (uint64_t)(uintptr_t)blk.dev.vq[0].desc;
}

static void c_ring_outside_ram(void)
{
	setup_queue_by_hand(256, OUTSIDE_RAM, ring_base() + 4096, ring_base() + 8192);
}

static void c_ring_misaligned(void)
{
	setup_queue_by_hand(256, ring_base() + 8, ring_base() + 4096, ring_base() + 8192);
}

/* The size register after a bad write: the device keeps a size a split queue can have. */
static uint16_t size_read_back;

static void c_queue_size_not_pow2(void)
{
	setup_queue_by_hand(100, ring_base(), ring_base() + 4096, ring_base() + 8192);
	virtio_common_write16(&blk.dev, VCOMMON_Q_SELECT, 0);
	size_read_back = virtio_common_read16(&blk.dev, VCOMMON_Q_SIZE);
}

static void c_queue_size_too_big(void)
{
	setup_queue_by_hand(1024, ring_base(), ring_base() + 4096, ring_base() + 8192);
	virtio_common_write16(&blk.dev, VCOMMON_Q_SELECT, 0);
	size_read_back = virtio_common_read16(&blk.dev, VCOMMON_Q_SIZE);
}

/* Clean errors: well-formed chains asking for something the disk cannot do. */
static void raw_request(uint32_t type, uint64_t sector, uint32_t len)
{
	vq_raw_desc(bq(), 0, hdr_addr(type, sector), 16, VRING_DESC_F_NEXT, 1);
	vq_raw_desc(bq(), 1, DATA_ADDR, len, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_raw_desc(bq(), 2, STATUS_ADDR, 1, VRING_DESC_F_WRITE, 0);
	*(volatile uint8_t *)(uintptr_t)STATUS_ADDR = 0xaa;
	vq_raw_avail(bq(), 0);
}

static void c_read_beyond_end(void)
{
	raw_request(VBLK_T_IN, blk.capacity, 512);
}

static void c_read_straddling_end(void)
{
	raw_request(VBLK_T_IN, blk.capacity - 1, 4096);
}

static void c_huge_sector(void)
{
	raw_request(VBLK_T_IN, 0xfffffffffffffff8ULL, 4096);
}

static void c_partial_sector(void)
{
	raw_request(VBLK_T_IN, 0, 100);
}

static void c_unknown_type(void)
{
	raw_request(0x1234, 0, 512);
}

enum expect { NEEDS_RESET, S_IOERR, S_UNSUPP, IGNORED };
static const char *const expect_name[] = { "needs_reset", "IOERR", "UNSUPP", "ignored" };

static const struct {
	const char *name;
	void (*inject)(void);
	enum expect expect;
	int by_hand; /* inject does its own set-up (no vblk_init before) */
} cases[] = {
	{ "desc_outside_ram", c_desc_outside_ram, NEEDS_RESET, 0 },
	{ "desc_far_away", c_desc_far_away, NEEDS_RESET, 0 },
	{ "addr_wraps", c_addr_wraps, NEEDS_RESET, 0 },
	{ "oversize_len", c_oversize_len, NEEDS_RESET, 0 },
	{ "chain_loop", c_chain_loop, NEEDS_RESET, 0 },
	{ "self_loop", c_self_loop, NEEDS_RESET, 0 },
	{ "next_out_of_range", c_next_out_of_range, NEEDS_RESET, 0 },
	{ "head_out_of_range", c_head_out_of_range, NEEDS_RESET, 0 },
	{ "avail_idx_jump", c_avail_idx_jump, NEEDS_RESET, 0 },
	{ "no_status_byte", c_no_status_byte, NEEDS_RESET, 0 },
	{ "readable_after_writable", c_readable_after_writable, NEEDS_RESET, 0 },
	{ "indirect_not_negotiated", c_indirect_not_negotiated, NEEDS_RESET, 0 },
	{ "ring_outside_ram", c_ring_outside_ram, NEEDS_RESET, 1 },
	{ "ring_misaligned", c_ring_misaligned, NEEDS_RESET, 1 },
	{ "queue_size_not_pow2", c_queue_size_not_pow2, IGNORED, 1 },
	{ "queue_size_too_big", c_queue_size_too_big, IGNORED, 1 },
	{ "read_beyond_end", c_read_beyond_end, S_IOERR, 0 },
	{ "read_straddling_end", c_read_straddling_end, S_IOERR, 0 },
	{ "huge_sector", c_huge_sector, S_IOERR, 0 },
	{ "partial_sector", c_partial_sector, S_IOERR, 0 },
	{ "unknown_type", c_unknown_type, S_UNSUPP, 0 },
};

/* Polls the device status until NEEDS_RESET (1) or `ms` pass (0). */
static int wait_needs_reset(struct virtio_dev *d, uint64_t ms)
{
	uint64_t t0 = rdtsc(), limit = ms * tsc_per_ms;

	do {
		if (virtio_status(d) & VIRTIO_S_NEEDS_RESET)
			return 1;
		for (int i = 0; i < 200; i++)
			cpu_relax();
	} while (rdtsc() - t0 < limit);
	return 0;
}

/* The other devices still work: a read from the second disk, a frame through the NIC. */
static const char *others_ok(void)
{
	if (!have_blk2 && !have_nic)
		return "none";
	if (have_blk2 && vblk_io(&blk2, VBLK_T_IN, 0, scratch + 12288, 512) != VBLK_S_OK)
		return "FAIL";
	if (have_nic) {
		uint8_t f[64];
		uint64_t sent = nic.tx_packets;
		if (vnet_send(&nic, f, arp_build(f, 1, nic.mac, 0x0a0000fe, NULL, 0x0a0000fd)) < 0)
			return "FAIL";
		uint64_t t = ticks;
		while (nic.tx_packets == sent && ticks - t < timer_hz) {
			vnet_tx_reclaim(&nic);
			cpu_relax();
		}
		if (nic.tx_packets == sent)
			return "FAIL";
	}
	return "ok";
}

/* After a reset the disk serves a read and a write-read round trip again. */
static int recovered(void)
{
	if (vblk_init(&blk, 0) < 0)
		return 0;
	uint8_t *a = scratch + 4096, *b = scratch + 8192;
	if (vblk_io(&blk, VBLK_T_IN, 0, a, 4096) != VBLK_S_OK)
		return 0;
	if (blk.ro)
		return 1;
	/* Write the block back unchanged, read it again: the data path works both ways. */
	if (vblk_io(&blk, VBLK_T_OUT, 0, a, 4096) != VBLK_S_OK ||
	    vblk_io(&blk, VBLK_T_IN, 0, b, 4096) != VBLK_S_OK)
		return 0;
	return memcmp(a, b, 4096) == 0;
}

static int run_case(int i)
{
	char got[32];
	uint8_t st;

	if (!cases[i].by_hand && vblk_init(&blk, 0) < 0) {
		kprintf("%s: case=%s cannot initialise the disk FAIL\n", me, cases[i].name);
		return 0;
	}
	cases[i].inject();
	vq_notify(bq());
	int ok;
	if (cases[i].expect == NEEDS_RESET) {
		int nr = wait_needs_reset(&blk.dev, 2000);
		ksnprintf(got, sizeof(got), "%s", nr ? "needs_reset" : "nothing");
		ok = nr;
	} else if (cases[i].expect == IGNORED) {
		/* The bad size did not stick (the register keeps a power of two up to 256) and the
		 * device did not fail: a state the destination accepts, so it still migrates. */
		int nr = wait_needs_reset(&blk.dev, 200);
		uint16_t sz = size_read_back;
		if (nr)
			ksnprintf(got, sizeof(got), "needs_reset");
		else
			ksnprintf(got, sizeof(got), "size=%u", sz);
		ok = !nr && sz && sz <= 256 && !(sz & (sz - 1));
	} else {
		/* A clean error: the chain comes back with the status, the device stays fine. */
		uint64_t t0 = ticks;
		while (!vq_has_used(bq()) && ticks - t0 < 2 * timer_hz)
			cpu_relax();
		st = *(volatile uint8_t *)(uintptr_t)STATUS_ADDR;
		if (!vq_has_used(bq()))
			ksnprintf(got, sizeof(got), "no-completion");
		else
			ksnprintf(got, sizeof(got), "%s", vblk_status_name(st));
		ok = vq_has_used(bq()) && st == (cases[i].expect == S_IOERR ? VBLK_S_IOERR : VBLK_S_UNSUPP);
		if (virtio_status(&blk.dev) & VIRTIO_S_NEEDS_RESET) {
			ksnprintf(got, sizeof(got), "needs_reset");
			ok = 0;
		}
	}
	uint8_t status = virtio_status(&blk.dev);
	const char *others = others_ok();
	int rec = recovered();
	ok = ok && rec && others[0] != 'F';
	kprintf("%s: case=%s expect=%s got=%s status=0x%02x others=%s recovered=%d %s\n", me,
		cases[i].name, expect_name[cases[i].expect], got, status, others, rec,
		ok ? "ok" : "FAIL");
	return ok;
}

/* The NIC: a transmit chain shorter than the virtio-net header. */
static int run_net_case(void)
{
	if (vnet_init(&nic, 0) < 0)
		return 0;
	struct virtq *tq = &nic.dev.vq[1];
	vq_raw_desc(tq, 0, DATA_ADDR, 4, 0, 0);
	vq_raw_avail(tq, 0);
	vq_notify(tq);
	int nr = wait_needs_reset(&nic.dev, 2000);
	uint8_t status = virtio_status(&nic.dev);
	/* The disk is unaffected. */
	int disk_ok = vblk_io(&blk, VBLK_T_IN, 0, scratch + 12288, 512) == VBLK_S_OK;
	/* And the NIC recovers after a reset. */
	int rec = 0;
	if (vnet_init(&nic, 0) == 0) {
		uint8_t f[64];
		uint64_t t = ticks;
		vnet_send(&nic, f, arp_build(f, 1, nic.mac, 0x0a0000fe, NULL, 0x0a0000fd));
		while (!nic.tx_packets && ticks - t < timer_hz) {
			vnet_tx_reclaim(&nic);
			cpu_relax();
		}
		rec = nic.tx_packets > 0;
	}
	int ok = nr && disk_ok && rec;
	kprintf("%s: case=net_tx_shorter_than_header expect=needs_reset got=%s status=0x%02x others=%s recovered=%d %s\n",
		me, nr ? "needs_reset" : "nothing", status, disk_ok ? "ok" : "FAIL", rec,
		ok ? "ok" : "FAIL");
	return ok;
}

int prog_virtq_hostile(void)
{
	char only[40];
	int have_only = cmdline_get("only", only, sizeof(only));

	scratch = (uint8_t *)(uintptr_t)mem_alloc(4 * PAGE_SIZE, PAGE_SIZE);
	if (!scratch)
		return EXIT_BADPARAM;
	int rc = vblk_init(&blk, 0);
	if (rc == -1) {
		kprintf("%s: no virtio-blk disk (attach one with hvctl run --disk IMAGE)\n", me);
		return EXIT_BADPARAM;
	}
	if (rc < 0)
		return EXIT_DEVICE;
	have_blk2 = vblk_init(&blk2, 1) == 0;
	have_nic = vnet_init(&nic, 0) == 0;
	if (time_calibrate() < 0) {
		kprintf("%s: the LAPIC timer does not tick\n", me);
		return EXIT_PLATFORM;
	}
	kprintf("%s: disk=00:%02x.0 capacity=%lu second_disk=%d nic=%d\n", me, blk.dev.pci.slot,
		blk.capacity, have_blk2, have_nic);
	kprintf("READY\n");
	int n = 0, passed = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		if (have_only && strcmp(only, cases[i].name))
			continue;
		n++;
		passed += run_case((int)i);
	}
	if (have_nic && (!have_only || !strcmp(only, "net_tx_shorter_than_header"))) {
		n++;
		passed += run_net_case();
	}
	kprintf("%s: cases=%d passed=%d\n", me, n, passed);
	return n && passed == n ? EXIT_OK : EXIT_DEVICE;
}
