/* The destination side of live migration: check compatibility, take pages straight into
 * guest RAM, load the vCPU/VM/device state, then run the guest: at once, saying STARTED,
 * when both sides speak WIRE_CAP_START_ON_STATE; otherwise acknowledge and wait for COMMIT.
 * Every record is untrusted: the wire layer checks framing and CRCs, the decoders check
 * contents, and the record order is enforced. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/control.h"
#include "hv/cpu_model.h"
#include "hv/cpuid.h"
#include "hv/layout.h"
#include "hv/dev_state.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "migrate/channel.h"
#include "migrate/cpu_state.h"
#include "migrate/dest_policy.h"
#include "migrate/device_state.h"
#include "migrate/disk_copy.h"
#include "migrate/migrate.h"
#include "migrate/page_codec.h"
#include "migrate/postcopy_dst.h"
#include "migrate/prefault.h"
#include "migrate/wire.h"

/* The source streams continuously; silence this long means it is gone. */
#define INCOMING_IDLE_TIMEOUT_MS 60000
/* After HELLO the source must keep up at least this rate, measured over a window: a peer
 * that trickles bytes (each read returning before the idle timeout) is cut too. The floor
 * is below the slowest --bandwidth 'hvctl migrate' accepts (4 KiB/s). */
#define INCOMING_RATE_WINDOW_MS 20000
#define INCOMING_MIN_BYTES_PER_S 1024

struct incoming {
	struct wire_conn conn;       /* framing, over the guard below */
	struct wire_conn *transport; /* the bytes: TCP or TLS */
	struct deadline hello_by;
	bool hello_valid;            /* a HELLO parsed: from here the peer is no stray */
	bool hello_late, too_slow;   /* why the guard ended a read */
	uint64_t window_t0, window_bytes;
	char guard_err[160];
	struct machine *m;
	bool machine_up;
	struct page_codec_dec dec;
	struct prefault prefault;
	struct wire_hello *hello;
	struct cpuid_table *src_cpuid;
	enum cpu_model cpu_model; /* the source guest's, checked */
	struct vcpu_state *vcpus; /* one per vCPU */
	bool *vcpu_seen;
	struct vm_kvm_state vm_state;
	bool vm_seen;
	struct device_state_rx *devs;
	bool devices_paused;
	struct dest_copy copy;       /* --storage copy: the images created here */
	struct disk_copy_dst disks;  /* and their writer */
	uint8_t *buf;
	size_t buf_cap;
	char err[1024];
	char peer_err[256];   /* if set, what the source is told instead of err (policy refusals) */
	bool peer_gone;
	bool one_way;         /* a snapshot file: nobody to answer */
	bool replied;         /* a refusal already went out as HELLO_REPLY */
	uint32_t abort_code;  /* what kind of failure an ABORT reports */
	bool start_on_state;  /* the source offered WIRE_CAP_START_ON_STATE: no ACK, no COMMIT */
	uint64_t t_end_of_state; /* when END_OF_STATE arrived (STARTED reports the time since) */
	bool postcopy;           /* the source asked for post-copy and this host can (pc is open) */
	struct postcopy_dst pc;
};

/* The first failure is the one reported (hv/log.h). */
#define failf(in, ...) hv_fail((in)->err, sizeof((in)->err), __VA_ARGS__)

/* An ACK to the source; a snapshot has nobody to acknowledge. */
static int ack(struct incoming *in)
{
	return in->one_way ? 0 : wire_send(&in->conn, WIRE_ACK, NULL, 0);
}

static int fail_wire(struct incoming *in, int r, const char *what)
{
	if (r == WIRE_E_IO || r == WIRE_E_EOF)
		in->peer_gone = true;
	if (r == WIRE_E_EOF)
		return failf(in, "%s: the source closed the connection", what);
	return failf(in, "%s: %s", what, in->conn.err[0] ? in->conn.err : wire_strerror(r));
}

static uint8_t *page_ptr(void *opaque, uint64_t gfn)
{
	struct guest_mem *mem = opaque;

	if (gfn >= guest_mem_pages(mem))
		return NULL;
	return mem->host + gfn * PAGE_SIZE;
}

/* The transport, bounded in time: the whole HELLO by in->hello_by, then a minimum rate. */
static ssize_t guarded_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct incoming *in = opaque;
	struct wire_conn *t = in->transport;

	if (!in->hello_valid) {
		int left = deadline_left_ms(in->hello_by);
		if (left == 0) {
			in->hello_late = true;
			return -ETIMEDOUT;
		}
		if (t->fd >= 0)
			channel_set_recv_timeout(t->fd, left < 0 ? INCOMING_IDLE_TIMEOUT_MS : left);
	}
	ssize_t r = t->ops->readv(t->opaque, iov, iovcnt);
	if (!in->hello_valid) {
		if (r == -EAGAIN && deadline_passed(in->hello_by)) {
			in->hello_late = true;
			return -ETIMEDOUT;
		}
		return r;
	}
	if (r > 0) {
		uint64_t now = clock_now_ns();
		in->window_bytes += (uint64_t)r;
		if (now - in->window_t0 >= (uint64_t)INCOMING_RATE_WINDOW_MS * 1000000) {
			if (in->window_bytes < (uint64_t)INCOMING_MIN_BYTES_PER_S * (INCOMING_RATE_WINDOW_MS / 1000)) {
				in->too_slow = true;
				snprintf(in->guard_err, sizeof(in->guard_err),
					 "the source sent %llu bytes in %d s, below the minimum of %d bytes/s",
					 (unsigned long long)in->window_bytes, INCOMING_RATE_WINDOW_MS / 1000,
					 INCOMING_MIN_BYTES_PER_S);
				return -ETIMEDOUT;
			}
			in->window_t0 = now;
			in->window_bytes = 0;
		}
	}
	return r;
}

static ssize_t guarded_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct incoming *in = opaque;

	return in->transport->ops->writev(in->transport->opaque, iov, iovcnt);
}

static const char *guarded_strerror(void *opaque, int err)
{
	struct incoming *in = opaque;
	struct wire_conn *t = in->transport;

	if (err == ETIMEDOUT && in->hello_late)
		return "no complete HELLO within 10 s of connecting";
	if (err == ETIMEDOUT && in->too_slow)
		return in->guard_err;
	return t->ops->strerror ? t->ops->strerror(t->opaque, err) : NULL;
}

static size_t guarded_pending(void *opaque)
{
	struct wire_conn *t = ((struct incoming *)opaque)->transport;

	return t->ops->pending ? t->ops->pending(t->opaque) : 0;
}

static const struct wire_conn_ops guarded_ops = {
	.readv = guarded_readv,
	.writev = guarded_writev,
	.strerror = guarded_strerror,
	.pending = guarded_pending,
};

/* The HELLO is in: the peer is the real source (or was refused); the rate floor applies. */
static void hello_received(struct incoming *in)
{
	in->hello_valid = true;
	in->window_t0 = clock_now_ns();
	in->window_bytes = 0;
	if (in->transport->fd >= 0)
		channel_set_recv_timeout(in->transport->fd, INCOMING_IDLE_TIMEOUT_MS);
}

/* The source's guest saw these CPUID bits; what this host provides under the guest's CPU
 * model, at most the operator's `ceiling`, must have every one of them. */
static int check_cpu(struct incoming *in, enum cpu_model ceiling)
{
	struct wire_hello *h = in->hello;
	struct cpuid_table *want = in->src_cpuid, *have = NULL, *supported = NULL;
	enum cpu_model model = CPU_MODEL_HOST;
	char missing[400];
	int r = -1;

	if (h->cpu_model[0] && cpu_model_parse(h->cpu_model, &model) < 0)
		return failf(in, "the source VM has CPU model '%s', which this hv does not know; "
			     "use the same hv version on both hosts", h->cpu_model);
	memset(want, 0, sizeof(*want));
	for (uint32_t i = 0; i < h->ncpuid && i < CPUID_MAX_ENTRIES; i++) {
		struct kvm_cpuid_entry2 *e = &want->entries[i];
		e->function = h->cpuid[i].function;
		e->index = h->cpuid[i].index;
		e->eax = h->cpuid[i].eax;
		e->ebx = h->cpuid[i].ebx;
		e->ecx = h->cpuid[i].ecx;
		e->edx = h->cpuid[i].edx;
		/* Sub-leaf-indexed leaves carry the flag; the lookups below need it. */
		if (e->function == 4 || e->function == 7 || e->function == 0xb || e->function == 0xd ||
		    e->function == 0x1f || e->function == 0x8000001d)
			e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	}
	want->hdr.nent = h->ncpuid;

	have = malloc(sizeof(*have));
	supported = calloc(1, sizeof(*supported));
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (!have || !supported || kvm < 0) {
		failf(in, "cannot open /dev/kvm on the destination");
		goto out;
	}
	if (cpuid_get_supported(kvm, supported) < 0) {
		failf(in, "KVM_GET_SUPPORTED_CPUID failed on the destination");
		goto out;
	}
	memcpy(have, supported, sizeof(*have));
	cpu_model_build(have, model);
	cpu_model_limit(have, ceiling);
	if (cpuid_missing_features(want, have, missing, sizeof(missing)) > 0) {
		enum cpu_model best = cpu_model_best(supported, ceiling);

		if (best == CPU_MODEL_HOST)
			failf(in, "destination CPU lacks %s; no named CPU model fits this "
			      "destination ('hvctl cpu-models' there lists them)", missing);
		else
			failf(in, "destination CPU lacks %s; start the VM with --cpu-model %s or "
			      "lower", missing, cpu_model_name(best));
		goto out;
	}
	in->cpu_model = model;
	r = 0;
out:
	if (kvm >= 0)
		close(kvm);
	free(have);
	free(supported);
	return r;
}

static int fail_policy(struct incoming *in, const struct dest_refusal *r)
{
	snprintf(in->peer_err, sizeof(in->peer_err), "%s", r->peer);
	return failf(in, "%s", r->detail);
}

static int handle_hello(struct incoming *in, const uint8_t *payload, size_t len,
			const struct machine_config *cfg)
{
	struct wire_hello *h = in->hello;
	char perr[256];

	if (wire_parse_hello(payload, len, h, perr, sizeof(perr)) < 0) {
		in->abort_code = WIRE_ABORT_CORRUPT;
		return failf(in, "bad hello: %s", perr);
	}
	hello_received(in);
	in->abort_code = WIRE_ABORT_INCOMPATIBLE;
	if (h->protocol != WIRE_VERSION)
		return failf(in, "the source speaks migration protocol %u, this hv speaks %d; use the same hv version on both hosts",
			     h->protocol, WIRE_VERSION);
	if (h->vcpus > VM_MAX_CPUS)
		return failf(in, "the source VM has %u vCPUs, this hv runs at most %d", h->vcpus, VM_MAX_CPUS);
	if (check_cpu(in, cfg->cpu_model) < 0)
		return -1;

	/* The stream describes the source; what opens here is the destination's policy. */
	static const struct dest_policy nothing; /* a receiver without one opens no device */
	const struct dest_policy *policy = cfg->incoming_policy ? cfg->incoming_policy : &nothing;
	struct dest_refusal refusal;
	if (dest_policy_memory(policy, h->mem_size, &refusal) < 0)
		return fail_policy(in, &refusal);
	struct source_devices *src = malloc(sizeof(*src));
	if (!src)
		return failf(in, "out of memory");
	struct machine_config c = *cfg;
	if (device_state_parse_list(h->devices_json, src, in->err, sizeof(in->err)) < 0) {
		free(src);
		return -1;
	}
	if (h->storage_copy && in->one_way) {
		free(src);
		return failf(in, "the snapshot asks for a copy of its disks, which a snapshot never carries");
	}
	for (uint32_t i = 0; i < h->ncopy_to && i < VIRTIO_MAX_DISKS; i++)
		in->copy.want[i] = h->copy_to[i];
	int r = dest_policy_devices(policy, src, &c, h->storage_copy ? &in->copy : NULL, &refusal);
	free(src);
	if (r < 0)
		return fail_policy(in, &refusal);
	in->disks.n = in->copy.n;
	for (int i = 0; i < in->copy.n; i++) {
		in->disks.fd[i] = in->copy.fd[i];
		in->disks.size[i] = in->copy.size[i];
	}
	if (!c.name)
		c.name = h->name;
	c.mem_size = h->mem_size;
	c.ncpus = (int)h->vcpus;
	c.cpu_model = in->cpu_model;
	/* Its errors go to the source (and our one line at the end), not to stderr now. */
	hv_clear_error();
	hv_quiet_errors(true);
	int created = machine_fill(in->m, &c);
	hv_quiet_errors(false);
	if (created < 0) {
		/* The detail names this host's files: it stays here. */
		snprintf(in->peer_err, sizeof(in->peer_err),
			 "the destination could not set up the VM; see the destination's log");
		return failf(in, "%s", hv_last_error()[0] ? hv_last_error() : "cannot create the VM");
	}
	in->machine_up = true;
	struct vm *vm = &in->m->vm;
	/* Devices stay quiet until the guest runs: their state arrives at switchover. */
	dev_registry_pause(&in->m->devs);
	in->devices_paused = true;
	in->devs = device_state_rx_new(in->m);
	if (!in->devs)
		return failf(in, "out of memory");
	/* The guest keeps the CPUID it booted with (a subset of ours, checked above). */
	for (int i = 0; i < vm->ncpus; i++)
		if (cpuid_apply(vm->vcpus[i].fd, in->src_cpuid, i, vm->ncpus) < 0)
			return failf(in, "cannot apply the source's CPUID to vCPU %d", i);
	memcpy(vm->cpuid, in->src_cpuid, sizeof(*vm->cpuid)); /* and it migrates on with it */
	vm_read_cpu_features(vm);
	prefault_start(&in->prefault, &vm->mem, h->ram, h->nram);
	in->dec.suspect = calloc((guest_mem_pages(&vm->mem) + 63) / 64, sizeof(uint64_t));
	if (!in->dec.suspect)
		return failf(in, "out of memory for the page check bitmap");
	in->vcpus = calloc((size_t)vm->ncpus, sizeof(*in->vcpus));
	in->vcpu_seen = calloc((size_t)vm->ncpus, sizeof(*in->vcpu_seen));
	if (!in->vcpus || !in->vcpu_seen)
		return failf(in, "out of memory for vCPU state");
	return 0;
}

static int handle_cpu_state(struct incoming *in, const uint8_t *p, size_t len)
{
	struct vm *vm = &in->m->vm;
	struct vcpu_state *tmp = malloc(sizeof(*tmp));
	char e[256];

	if (!tmp)
		return failf(in, "out of memory");
	if (cpu_state_decode_vcpu(p, len, tmp, e, sizeof(e)) < 0) {
		free(tmp);
		return failf(in, "bad %s", e); /* e names the vCPU state */
	}
	uint32_t i = tmp->vcpu_index;
	if (i >= (uint32_t)vm->ncpus || in->vcpu_seen[i]) {
		free(tmp);
		return failf(in, "vCPU state for index %u is out of range or repeated", i);
	}
	in->vcpus[i] = *tmp;
	in->vcpu_seen[i] = true;
	free(tmp);
	return 0;
}

static int handle_device_state(struct incoming *in, const uint8_t *p, size_t len)
{
	struct wire_device_state d;
	char e[256];

	if (wire_parse_device_state(p, len, &d, e, sizeof(e)) < 0)
		return failf(in, "bad device state: %s", e);
	if (device_state_rx_add(in->devs, d.name, d.version, d.data, d.len, e, sizeof(e)) < 0)
		return failf(in, "%s", e);
	return 0;
}

/* Everything arrived: cross-check, then load it all into KVM in the documented order. */
static int load_state(struct incoming *in, const uint8_t *p, size_t len)
{
	in->abort_code = WIRE_ABORT_LOAD_FAILED;
	struct vm *vm = &in->m->vm;
	struct wire_end_of_state eos;
	char e[256];

	if (wire_parse_end_of_state(p, len, &eos, e, sizeof(e)) < 0)
		return failf(in, "bad end of state: %s", e);
	if (eos.vcpus != (uint32_t)vm->ncpus)
		return failf(in, "source sent state for %u vCPUs, the VM has %d", eos.vcpus, vm->ncpus);
	for (int i = 0; i < vm->ncpus; i++)
		if (!in->vcpu_seen[i])
			return failf(in, "no state arrived for vCPU %d", i);
	if (!in->vm_seen)
		return failf(in, "VM state missing");
	if (in->dec.suspect_pages) {
		in->abort_code = WIRE_ABORT_CORRUPT;
		return failf(in, "stream corrupt: %llu pages arrived damaged (their hash did not match) and were not sent again",
			     (unsigned long long)in->dec.suspect_pages);
	}
	int *fds = calloc((size_t)vm->ncpus, sizeof(int));
	if (!fds)
		return failf(in, "out of memory");
	for (int i = 0; i < vm->ncpus; i++)
		fds[i] = vm->vcpus[i].fd;
	int r = cpu_state_restore_all(vm->vm_fd, vm->kvm_fd, fds, in->vcpus, (unsigned)vm->ncpus,
				      &in->vm_state, e, sizeof(e));
	free(fds);
	if (r < 0)
		return failf(in, "loading vCPU/VM state: %s", e);
	int ndev = device_state_rx_apply(in->devs, e, sizeof(e));
	if (ndev < 0)
		return failf(in, "loading device state: %s", e);
	if (eos.devices != (uint32_t)ndev)
		return failf(in, "source sent state for %u devices, the VM has %d", eos.devices, ndev);
	return 0;
}

/* Reads a whole small record's payload into in->buf (sized for the largest state record). */
static int read_payload(struct incoming *in, struct wire_rx *rx)
{
	/* The wire layer has already bounded the length by the record type's limit. */
	if (rx->hdr.length > in->buf_cap) {
		uint8_t *nb = realloc(in->buf, rx->hdr.length);
		if (!nb)
			return failf(in, "out of memory for a %u-byte record", rx->hdr.length);
		in->buf = nb;
		in->buf_cap = rx->hdr.length;
	}
	int r = wire_recv_payload(&in->conn, rx, in->buf, rx->hdr.length);
	if (r >= 0)
		r = wire_recv_end(&in->conn, rx);
	return r < 0 ? fail_wire(in, r, "reading the stream") : 0;
}

/* The source asks for post-copy: only with the switchover that starts on the state, and
 * only if this host can fill RAM page by page. The reason goes to the source as it is (it
 * names no file of ours). */
static int open_postcopy(struct incoming *in)
{
	char e[sizeof(in->peer_err) - 1];

	in->abort_code = WIRE_ABORT_INCOMPATIBLE;
	if (!in->start_on_state)
		return failf(in, "post-copy was asked for without the switchover that starts on the state");
	if (postcopy_dst_open(&in->pc, &in->m->vm.mem, e, sizeof(e)) < 0) {
		snprintf(in->peer_err, sizeof(in->peer_err), "%s", e);
		return failf(in, "%s", e);
	}
	in->postcopy = true;
	return 0;
}

/* DISCARD: pages that come after the guest starts. A page among them that arrived damaged
 * in pre-copy comes again, whole. */
static int handle_discard(struct incoming *in, const uint8_t *p, size_t len)
{
	const uint8_t *entries;
	uint32_t n;
	char e[256];

	if (!in->postcopy)
		return failf(in, "stream corrupt: DISCARD in a migration without post-copy");
	if (wire_parse_discard(p, len, &n, &entries, e, sizeof(e)) < 0 ||
	    postcopy_dst_discard(&in->pc, entries, n, e, sizeof(e)) < 0)
		return failf(in, "%s", e);
	for (uint32_t i = 0; i < n && in->dec.suspect; i++) {
		uint64_t gfn = wire_get_u64(entries + 16 * i), np = wire_get_u64(entries + 16 * i + 8);
		for (uint64_t g = gfn; g < gfn + np; g++)
			if (in->dec.suspect[g / 64] & (1ull << (g % 64))) {
				in->dec.suspect[g / 64] &= ~(1ull << (g % 64));
				in->dec.suspect_pages--;
			}
	}
	return 0;
}

static int receive(struct incoming *in, const struct machine_config *cfg)
{
	struct wire_order order;
	struct wire_rx rx;

	wire_order_init(&order);
	for (;;) {
		int r = wire_recv_hdr(&in->conn, &rx);
		if (r < 0)
			return fail_wire(in, r, "reading the stream");
		if (rx.hdr.type == WIRE_ABORT) {
			struct wire_abort a;
			in->peer_gone = true;
			if (read_payload(in, &rx) == 0 &&
			    wire_parse_abort(in->buf, rx.hdr.length, &a, NULL, 0) == 0)
				return failf(in, "the source aborted the migration: %s", a.reason);
			return failf(in, "the source aborted the migration");
		}
		if (wire_order_check(&order, rx.hdr.type) < 0)
			return failf(in, "stream corrupt: %s record out of order at byte %llu",
				     wire_type_name(rx.hdr.type), (unsigned long long)rx.offset);
		if (rx.hdr.type == WIRE_PAGES) {
			r = page_codec_recv(&in->dec, &in->conn, &rx, guest_mem_pages(&in->m->vm.mem),
					    page_ptr, &in->m->vm.mem);
			if (r < 0)
				return fail_wire(in, r, "receiving pages");
			continue;
		}
		if (read_payload(in, &rx) < 0)
			return -1;
		const uint8_t *p = in->buf;
		size_t len = rx.hdr.length;
		switch (rx.hdr.type) {
		case WIRE_HELLO: {
			uint64_t t0 = clock_now_ns();
			int ok = handle_hello(in, p, len, cfg);
			uint64_t took = (clock_now_ns() - t0) / 1000;
			/* A snapshot file has nobody to tell STARTED to: it ends with COMMIT. */
			in->start_on_state = !in->one_way && (in->hello->caps & WIRE_CAP_START_ON_STATE);
			if (ok == 0 && in->hello->postcopy)
				ok = open_postcopy(in);
			struct wire_hello_reply reply = { .ok = ok == 0,
							  .caps = WIRE_CAP_ZLIB | WIRE_CAP_ZSTD | WIRE_CAP_SYNC | WIRE_CAP_DISK_COPY |
								  (in->start_on_state ? WIRE_CAP_START_ON_STATE : 0) |
								  (in->postcopy ? WIRE_CAP_POSTCOPY : 0),
							  .took_us = took > WIRE_HELLO_TOOK_MAX_US ? WIRE_HELLO_TOOK_MAX_US
												  : (uint32_t)(took ? took : 1) };
			if (ok < 0)
				snprintf(reply.error, sizeof(reply.error), "%s",
					 in->peer_err[0] ? in->peer_err : in->err);
			r = in->one_way ? 0 : wire_send_hello_reply(&in->conn, &reply);
			if (ok < 0) {
				in->replied = true;
				return -1;
			}
			if (r < 0)
				return fail_wire(in, r, "answering the hello");
			break;
		}
		case WIRE_ROUND_END: {
			struct wire_round_end re;
			char e[256];
			if (wire_parse_round_end(p, len, &re, e, sizeof(e)) < 0)
				return failf(in, "stream corrupt: %s", e);
			/* Every page before this record is in place: the source may pause the guest
			 * without our backlog adding to the downtime. */
			if ((re.flags & WIRE_ROUND_END_SYNC) &&
			    (r = ack(in)) < 0)
				return fail_wire(in, r, "answering a sync");
			break;
		}
		case WIRE_PROGRESS: {
			/* The source's numbers, shown by status: bounded values, never text. */
			struct wire_progress pr;
			char e[256];
			if (wire_parse_progress(p, len, &pr, e, sizeof(e)) < 0)
				return failf(in, "stream corrupt: %s", e);
			if (in->m->control)
				control_set_arrival(in->m->control, pr.round, pr.sent_pages, pr.total_pages,
						    pr.bytes);
			break;
		}
		case WIRE_CPU_STATE:
			if (handle_cpu_state(in, p, len) < 0)
				return -1;
			break;
		case WIRE_VM_STATE: {
			char e[256];
			if (in->vm_seen)
				return failf(in, "VM state repeated");
			if (cpu_state_decode_vm(p, len, &in->vm_state, e, sizeof(e)) < 0)
				return failf(in, "bad %s", e); /* e names the VM state */
			in->vm_seen = true;
			break;
		}
		case WIRE_DEVICE_STATE:
			if (handle_device_state(in, p, len) < 0)
				return -1;
			break;
		case WIRE_DISCARD:
			if (handle_discard(in, p, len) < 0)
				return -1;
			break;
		case WIRE_DISK_DATA:
			if (!in->hello->storage_copy)
				return failf(in, "stream corrupt: DISK_DATA in a migration without --storage copy");
			if (disk_copy_apply(&in->disks, p, len, in->err, sizeof(in->err)) < 0) {
				in->abort_code = WIRE_ABORT_IO;
				return -1;
			}
			break;
		case WIRE_END_OF_STATE:
			in->t_end_of_state = clock_now_ns();
			if (load_state(in, p, len) < 0)
				return -1;
			/* The copied disks are on stable storage before the source may let go. */
			if (disk_copy_sync(&in->disks, in->err, sizeof(in->err)) < 0)
				return -1;
			/* Post-copy: what is still to come is dropped now and fetched when touched. */
			if (in->postcopy) {
				char e[256];
				prefault_stop(&in->prefault);
				if (postcopy_dst_arm(&in->pc, e, sizeof(e)) < 0)
					return failf(in, "%s", e);
			}
			/* The source stays paused until it hears STARTED or ABORT: the guest may start
			 * here without a word more from it. */
			if (in->start_on_state)
				return 0;
			r = ack(in);
			if (r < 0)
				return fail_wire(in, r, "acknowledging the state");
			break;
		case WIRE_COMMIT:
			/* Confirm first: once the source has this, it stops for good. If the confirmation
			 * is lost, the source stays paused (never both running). */
			r = ack(in);
			if (r < 0)
				hv_warn("could not confirm the commit to the source (%s); running the guest anyway",
					in->conn.err);
			return 0;
		default:
			return failf(in, "unexpected %s record", wire_type_name(rx.hdr.type));
		}
	}
}

/* The guest runs; its missing pages arrive while it does. */
static int finish_postcopy(struct incoming *in)
{
	uint64_t t0 = clock_now_ns();
	char e[320];

	if (postcopy_dst_run(&in->pc, &in->conn, &in->dec, e, sizeof(e)) < 0)
		return failf(in, "post-copy: %s", e);
	hv_info("post-copy: %llu pages arrived in %.0f ms after the guest started; it touched %llu of them "
		"first (%llu requests); %llu untouched pages read as zero",
		(unsigned long long)in->pc.placed, (double)(clock_now_ns() - t0) / 1e6,
		(unsigned long long)(in->pc.faults - in->pc.zero_faults), (unsigned long long)in->pc.requests,
		(unsigned long long)in->pc.zero_faults);
	postcopy_dst_close(&in->pc);
	in->postcopy = false;
	return 0;
}

int migrate_incoming(struct wire_conn *transport, struct machine *m, const struct machine_config *cfg,
		     const struct migrate_incoming_opts *o)
{
	struct incoming in = { .m = m, .abort_code = WIRE_ABORT_CORRUPT, .transport = transport,
			       .hello_by = o->hello_by, .one_way = o->from_file };
	const atomic_bool *stop = o->stop;
	int r = -1;

	wire_conn_init(&in.conn, &guarded_ops, &in);
	in.conn.fd = transport->fd;
	in.hello = calloc(1, sizeof(*in.hello));
	in.src_cpuid = calloc(1, sizeof(*in.src_cpuid));
	if (!in.hello || !in.src_cpuid || page_codec_dec_init(&in.dec) < 0) {
		failf(&in, "out of memory");
		goto out;
	}
	int rr = receive(&in, cfg);
	prefault_stop(&in.prefault);
	if (rr < 0 && stop && atomic_load(stop)) {
		/* Our own shutdown(SHUT_RD) ended the read: tell the source why, it keeps running. */
		snprintf(in.err, sizeof(in.err), "the destination VM was stopped (hvctl stop) while the guest arrived");
		in.abort_code = WIRE_ABORT_CANCELLED;
		in.peer_gone = in.replied = false;
	} else if (rr < 0 && !in.hello_valid) {
		r = MIGRATE_INCOMING_STRAY;
		/* A stray may not be reading: it gets a moment for the refusal, no more. */
		if (transport->fd >= 0)
			channel_set_send_timeout(transport->fd, 1000);
	}
	if (rr < 0)
		goto out;
	dev_registry_resume(&m->devs);
	in.devices_paused = false;
	bool paused = in.hello->paused || o->start_paused;
	if ((paused ? machine_start_paused(m) : machine_start(m)) < 0) {
		failf(&in, "cannot start the received VM");
		goto out;
	}
	if (o->arrived_paused)
		*o->arrived_paused = paused;
	device_state_announce(m, o->announce ? o->announce : &DEV_ANNOUNCE_DEFAULT);
	dest_copy_keep(&in.copy);
	r = 0;
	if (in.start_on_state) {
		/* The guest runs here whatever becomes of this: the source, not hearing STARTED,
		 * stays paused and says the outcome is unknown (never both running). */
		uint64_t us = (clock_now_ns() - in.t_end_of_state) / 1000;
		struct wire_started started = { .load_us = us > WIRE_STARTED_LOAD_MAX_US ? WIRE_STARTED_LOAD_MAX_US
											 : (uint32_t)us };
		if (wire_send_started(&in.conn, &started) < 0)
			hv_warn("could not tell the source that the guest runs here (%s); it runs here anyway",
				in.conn.err[0] ? in.conn.err : "connection lost");
	}
	if (in.postcopy && finish_postcopy(&in) < 0) {
		/* vCPUs and device threads wait on pages that will never come, and nothing may
		 * touch that RAM again: the process ends here, with its one line. */
		hv_error("incoming migration failed after the guest started here: %s; the guest cannot "
			 "continue on either host (its memory is split between them) and is stopped",
			 in.err);
		_exit(HV_EXIT_GUEST_CRASHED);
	}
out:
	if (r < 0) {
		if (!in.peer_gone && !in.replied && !in.one_way)
			wire_send_abort(&in.conn, in.abort_code, in.peer_err[0] ? in.peer_err : in.err);
		if (in.machine_up)
			machine_destroy(m);
		dest_copy_discard(&in.copy); /* nothing half copied stays */
		if (r == MIGRATE_INCOMING_STRAY)
			snprintf(o->stray_reason, o->stray_reason_len, "%s", in.err);
		else if (in.one_way)
			hv_error("cannot restore the snapshot: %s", in.err);
		else
			hv_error("incoming migration failed: %s", in.err);
	}
	if (in.postcopy)
		postcopy_dst_close(&in.pc);
	free(in.dec.suspect);
	in.dec.suspect = NULL;
	page_codec_dec_fini(&in.dec);
	device_state_rx_free(in.devs);
	free(in.hello);
	free(in.src_cpuid);
	free(in.vcpus);
	free(in.vcpu_seen);
	free(in.buf);
	return r;
}
