/* hvctl inspect FILE: what a snapshot holds (its header, the VM's shape, memory, vCPU and
 * device state), read and checked as a restore would read it, without starting anything. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/parse.h"
#include "hv/printable.h"
#include "migrate/device_state.h"
#include "migrate/page_codec.h"
#include "migrate/snapshot.h"
#include "migrate/wire.h"
#include "tools/hvctl.h"

static void inspect_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl inspect FILE\n"
		"\n"
		"Shows what the snapshot FILE ('hvctl save') holds: when and from which VM it\n"
		"was saved, the guest's memory, vCPUs, CPU model and devices, and whether the\n"
		"file is complete and undamaged (every record and its CRC read, as 'hvctl\n"
		"restore' would). Starts nothing. Exit status 0 if it would restore, 1 if not.\n");
}

/* Every page decoded into one scratch page: the content is not needed, only the check. */
static uint8_t *scratch_page(void *opaque, uint64_t gfn)
{
	(void)gfn;
	return opaque;
}

struct summary {
	struct wire_hello *hello;
	uint64_t pages, page_bytes, records, end;
	unsigned vcpus, devices;
	char device_names[256];
	bool committed;
};

/* Reads the stream to its COMMIT. 0, or -1 with one line in err. */
static int read_stream(int fd, struct summary *s, char *err, size_t errlen)
{
	static uint8_t page[PAGE_CODEC_PAGE_SIZE];
	struct wire_conn c;
	struct wire_buf buf = { 0 };
	struct wire_order order;
	struct page_codec_dec dec;
	int r = -1;

	wire_conn_init_fd(&c, fd);
	wire_order_init(&order);
	page_codec_dec_init(&dec);
	while (!s->committed) {
		struct wire_record rec;
		int w = wire_recv(&c, &buf, &rec);
		if (w < 0) {
			hv_errf(err, errlen, "%s", c.err[0] ? c.err : wire_strerror(w));
			goto out;
		}
		s->records++;
		if (wire_order_check(&order, rec.hdr.type) < 0) {
			hv_errf(err, errlen, "%s record out of order at byte %llu", wire_type_name(rec.hdr.type),
				(unsigned long long)rec.offset);
			goto out;
		}
		switch (rec.hdr.type) {
		case WIRE_HELLO:
			if (wire_parse_hello(rec.payload, rec.len, s->hello, err, errlen) < 0)
				goto out;
			break;
		case WIRE_PAGES:
			if (page_codec_decode(&dec, rec.payload, rec.len, s->hello->mem_size / PAGE_CODEC_PAGE_SIZE,
					      scratch_page, page) < 0) {
				hv_errf(err, errlen, "%s", dec.err);
				goto out;
			}
			s->page_bytes += rec.len;
			break;
		case WIRE_CPU_STATE:
			s->vcpus++;
			break;
		case WIRE_DEVICE_STATE: {
			struct wire_device_state d;
			if (wire_parse_device_state(rec.payload, rec.len, &d, err, errlen) < 0)
				goto out;
			size_t used = strlen(s->device_names);
			snprintf(s->device_names + used, sizeof(s->device_names) - used, "%s%s",
				 used ? ", " : "", d.name);
			s->devices++;
			break;
		}
		case WIRE_COMMIT:
			s->committed = true;
			s->end = c.rx_bytes;
			break;
		case WIRE_ABORT:
			hv_errf(err, errlen, "the save was abandoned (an ABORT record)");
			goto out;
		default:
			break;
		}
	}
	s->pages = dec.stats.raw_pages + dec.stats.zlib_pages + dec.stats.zstd_pages;
	char extra;
	if (read(fd, &extra, 1) != 0) {
		hv_errf(err, errlen, "bytes follow the end of the stream");
		goto out;
	}
	r = 0;
out:
	wire_buf_free(&buf);
	page_codec_dec_fini(&dec);
	return r;
}

int hvctl_cmd_inspect(int argc, char **argv)
{
	struct snapshot_header h;
	struct source_devices *src = calloc(1, sizeof(*src));
	struct summary s = { .hello = calloc(1, sizeof(struct wire_hello)) };
	char err[1024], when[40] = "?", shown[VIRTIO_DISK_PATH_MAX];
	int rc = 1;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		inspect_usage(stdout);
		rc = 0;
		goto out;
	}
	if (argc != 2 || argv[1][0] == '-') {
		hv_error("usage: hvctl inspect FILE; see hvctl inspect --help");
		rc = 2;
		goto out;
	}
	if (!src || !s.hello) {
		hv_error("out of memory");
		goto out;
	}
	int fd = snapshot_open(argv[1], &h, err, sizeof(err));
	if (fd < 0) {
		hv_error("%s", err);
		goto out;
	}
	int r = read_stream(fd, &s, err, sizeof(err));
	close(fd);
	if (r < 0) {
		hv_error("'%s' would not restore: %s", argv[1], err);
		goto out;
	}
	time_t t = (time_t)h.created;
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf("snapshot %s\n", argv[1]);
	printf("  saved           %s, from VM '%s'\n", when, h.name);
	printf("  guest           %llu MiB RAM, %u vCPU%s, CPU model %s, %s when saved\n",
	       (unsigned long long)(s.hello->mem_size >> 20), s.hello->vcpus, s.hello->vcpus == 1 ? "" : "s",
	       s.hello->cpu_model[0] ? s.hello->cpu_model : "host", s.hello->paused ? "paused" : "running");
	printf("  memory          %llu pages, %.1f MiB (zero, untouched pages: not stored)\n",
	       (unsigned long long)s.pages, (double)s.page_bytes / (1 << 20));
	printf("  state           %u vCPU%s, %u device%s (%s)\n", s.vcpus, s.vcpus == 1 ? "" : "s", s.devices,
	       s.devices == 1 ? "" : "s", s.device_names);
	if (device_state_parse_list(s.hello->devices_json[0] ? s.hello->devices_json : "[]", src, err,
				    sizeof(err)) == 0) {
		/* The path is the file's: what a crafted file holds never reaches the terminal raw. */
		for (int i = 0; i < src->ndisks; i++)
			printf("  disk%d           %s (%llu MiB, %s; restore: --disk)\n", i,
			       printable(shown, sizeof(shown), src->disks[i].path),
			       (unsigned long long)(src->disks[i].sectors >> 11), src->disks[i].ro ? "ro" : "rw");
		for (int i = 0; i < src->nnics; i++) {
			char mac[18];
			format_mac(src->macs[i], mac);
			printf("  net%d            MAC %s (restore: --net tap=IF)\n", i, mac);
		}
	}
	printf("  stream          protocol %u, %llu records, complete (%llu bytes)\n",
	       s.hello->protocol, (unsigned long long)s.records, (unsigned long long)s.end);
	rc = 0;
out:
	free(src);
	free(s.hello);
	return rc;
}
