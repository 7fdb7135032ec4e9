/* hv-guest: the self-verifying page workload (see touch.h for the page format). */
#include "touch.h"

#include "cmdline.h"
#include "layout.h"
#include "lib.h"
#include "print.h"
#include "sys.h"
#include "time.h"

#define WORDS 512
#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xd1b54a32d192ed03ULL

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static inline uint64_t page_seed(uint64_t i, uint64_t g)
{
	return mix64(i * K1 + mix64(g));
}

uint64_t touch_expected(uint64_t i, uint64_t g, unsigned w, int full)
{
	if (g == 0)
		return 0;
	if (w == 0)
		return i;
	if (w == 1)
		return g;
	return full ? mix64(page_seed(i, g) + w * K2) : 0;
}

int touch_param_fill(const char *prog)
{
	char v[16];

	if (!cmdline_get("fill", v, sizeof(v)) || strcmp(v, "full") == 0)
		return 1;
	if (strcmp(v, "stamp") == 0)
		return 0;
	kprintf("%s: bad parameter fill=%s (full or stamp)\n", prog, v);
	guest_exit(EXIT_BADPARAM);
}

void touch_init(struct touch *t, uint64_t base, uint64_t npages, uint64_t first, int full,
		int cpu, uint64_t rate_mibps)
{
	memset(t, 0, sizeof(*t));
	t->base = (uint64_t *)(uintptr_t)base;
	t->npages = npages;
	t->first = first;
	t->full = full;
	t->cpu = cpu;
	t->gen = 1;
	t->pps = rate_mibps * 256; /* 4 KiB pages per MiB */
	gap_start(&t->gap);
}

void touch_inject(struct touch *t, uint64_t index)
{
	if (index >= t->first && index < t->first + t->npages)
		t->base[(index - t->first) * WORDS + (t->full ? 7 : 1)] ^= 1;
}

__attribute__((noinline, noreturn)) static void corrupt(struct touch *t, uint64_t i, uint64_t g,
							unsigned w, uint64_t found)
{
	uint64_t exp = touch_expected(i, g, w, t->full);

	if (t->cpu >= 0)
		kprintf("CORRUPT page=%lu gen=%lu word=%u found=0x%016lx expected=0x%016lx cpu=%d\n",
			i, g, w, found, exp, t->cpu);
	else
		kprintf("CORRUPT page=%lu gen=%lu word=%u found=0x%016lx expected=0x%016lx\n", i,
			g, w, found, exp);
	guest_exit(EXIT_CORRUPT);
}

static void throttle(struct touch *t)
{
	for (;;) {
		uint64_t now = ticks;
		uint64_t allowed = (now - t->rate_t0) * t->pps / timer_hz + t->pps / timer_hz + 1;
		uint64_t done = t->pages - t->rate_p0;
		if (done < allowed) {
			/* More than two ticks behind (a pause, or a rate above what the CPU can
			 * do): restart the budget instead of bursting to catch up. */
			if (allowed - done > 2 * (t->pps / timer_hz) + 2) {
				t->rate_t0 = now;
				t->rate_p0 = t->pages;
			}
			return;
		}
		gap_mark(&t->gap);
		cpu_relax();
	}
}

void touch_step(struct touch *t)
{
	if (t->pps)
		throttle(t);

	volatile uint64_t *p = t->base + t->cursor * WORDS; /* never cached in registers */
	uint64_t i = t->first + t->cursor;
	uint64_t gold = t->gen - 1, gnew = t->gen;

	/* The stamp: words 0 and 1. */
	if (p[0] != (gold ? i : 0))
		corrupt(t, i, gold, 0, p[0]);
	if (p[1] != gold)
		corrupt(t, i, gold, 1, p[1]);
	p[0] = i;
	p[1] = gnew;

	if (t->full) {
		uint64_t sn = page_seed(i, gnew);
		if (gold) {
			uint64_t so = page_seed(i, gold);
			for (unsigned w = 2; w < WORDS; w++) {
				if (p[w] != mix64(so + w * K2))
					corrupt(t, i, gold, w, p[w]);
				p[w] = mix64(sn + w * K2);
			}
		} else {
			for (unsigned w = 2; w < WORDS; w++) {
				if (p[w])
					corrupt(t, i, gold, w, p[w]);
				p[w] = mix64(sn + w * K2);
			}
		}
	}

	t->pages++;
	if (++t->cursor == t->npages) {
		t->cursor = 0;
		t->gen++;
	}
	gap_mark(&t->gap);
}
