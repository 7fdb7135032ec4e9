/* Live migration: the pre-copy engine (source) and the incoming side (destination).
 * docs/migration-protocol.md describes the stream; docs/migration.md the engine. */
#ifndef MIGRATE_MIGRATE_H
#define MIGRATE_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hv/clock.h"
#include "migrate/tls.h"

struct dev_announce;

struct vm;
struct wire_conn;
struct machine;
struct machine_config;

/* --compress; migrate_compress_names (migrate_json.h) has their names, in this order. */
enum migrate_compress {
	MIGRATE_COMPRESS_AUTO,
	MIGRATE_COMPRESS_ZSTD,
	MIGRATE_COMPRESS_ZLIB,
	MIGRATE_COMPRESS_NONE,
	MIGRATE_COMPRESS_HYBRID, /* compressor threads; a batch none is free for goes raw */
	MIGRATE_COMPRESS_COUNT
};
enum migrate_on_timeout { MIGRATE_ON_TIMEOUT_FORCE, MIGRATE_ON_TIMEOUT_CANCEL };

#define MIGRATE_DISKS_MAX 4
#define MIGRATE_PATH_MAX 1024
#define MIGRATE_DEFAULT_DOWNTIME_MS 30
#define MIGRATE_DEFAULT_MAX_ROUNDS 30
#define MIGRATE_DEFAULT_MAX_THROTTLE 99 /* percent, as QEMU's max-cpu-throttle */

struct migrate_params {
	char uri[256];           /* HOST:PORT of 'hvctl receive' */
	uint32_t downtime_ms;    /* switch over when the last round fits in this */
	uint32_t max_rounds;     /* pre-copy rounds before on_timeout applies */
	uint64_t bandwidth;      /* bytes/s cap on the stream; 0 = none */
	enum migrate_compress compress;
	enum migrate_on_timeout on_timeout;
	struct tls_options tls;  /* none set: plain TCP */
	bool offline;            /* a paused VM, moved without pre-copy rounds: memory once */
	bool stop;               /* uri "file:PATH" (hvctl save): stop the VM once saved */
	bool live;               /* hvctl save --live: pre-copy rounds into the file, then pause */
	bool storage_copy;       /* --storage copy: the disks travel with the guest */
	bool auto_converge;      /* throttle a guest that outruns the link (convergence_throttle) */
	uint32_t max_throttle_pct; /* never hold the vCPUs back more than this (1..99) */
	uint32_t postcopy_after; /* post-copy after this many rounds unless converged; 0: never */
	bool postcopy_forced;    /* --postcopy-after: after them even if pre-copy converged */
	bool dirty_clear;        /* --dirty-log clear (migrate/dirty.h) */
	uint32_t compress_threads; /* compressor threads; 0: the sending thread compresses (hybrid:
				    * compress_pool_default_threads) */
	char dest_disk[MIGRATE_DISKS_MAX][MIGRATE_PATH_MAX]; /* --dest-disk, per disk ("": theirs) */
};

void migrate_params_default(struct migrate_params *p);

enum migrate_phase {
	MIGRATE_PHASE_CONNECT,
	MIGRATE_PHASE_PRECOPY,
	MIGRATE_PHASE_SWITCHOVER,
	MIGRATE_PHASE_POSTCOPY, /* the guest runs there; its last pages follow */
	MIGRATE_PHASE_DONE,
	MIGRATE_PHASE_FAILED,
};
const char *migrate_phase_name(enum migrate_phase p);

/* Progress and, at the end, the summary. */
struct migrate_stats {
	enum migrate_phase phase;
	uint32_t round;
	uint64_t ram_pages;       /* guest RAM in pages */
	uint64_t remaining_pages; /* dirty pages still to send */
	uint64_t pages_sent, zero_pages, raw_pages, zlib_pages, zstd_pages;
	/* Pages a compressor (zlib or zstd) was given, whether or not the result was sent. The
	 * event calls it "deflate_pages", its name from when zlib was the only one. */
	uint64_t deflate_pages;
	uint64_t wire_bytes;
	/* --storage copy: disk blocks (64 KiB) sent, their data bytes, and the blocks written
	 * again by the guest still to send (at a round's end). */
	uint64_t disk_blocks_sent, disk_bytes, disk_dirty_blocks;
	double rate_mbs;          /* MiB/s on the wire, last round */
	double dirty_rate_mbs;    /* MiB/s the guest dirties, last round */
	double expected_downtime_ms;
	/* The current round (the one just finished, in the report at a round's end): the pages it
	 * has to go through (round 0: the populated ones; later rounds: the dirty set collected
	 * at the round's start), how many of them it has done, and its bytes and time so far. */
	uint64_t round_pages, round_done_pages;
	uint64_t round_bytes;
	double round_elapsed_ms;
	double elapsed_ms;
	double downtime_ms;       /* source paused -> the guest runs there (docs/control-protocol.md) */
	uint32_t throttle_pct;    /* --auto-converge: the vCPUs held back this share of time now */
	uint32_t max_throttle_pct; /* and the most they were */
	/* Post-copy: pages sent after the guest started there, how many of them because it asked
	 * (in how many requests), and how long that took. */
	uint64_t postcopy_pages, postcopy_requested_pages, postcopy_requests;
	double postcopy_ms;
	bool postcopy_lost;       /* failed after the guest started there: neither copy can run */
	bool round_end;           /* this report closes a pre-copy round (one per round) */
	const char *round_next;   /* then: "round", "switchover" or "give-up" (a literal) */
	/* The switchover step by step (ms), once it has happened: pausing the vCPUs and devices,
	 * sending the last pages (last_pages of them), sending the vCPU, VM and device state, the
	 * destination loading it (until its ACK), and from COMMIT to the destination's
	 * confirmation. Downtime is the first four plus sending COMMIT. */
	struct migrate_switchover {
		bool valid;
		double pause_ms, last_pages_ms, state_ms, load_ms, confirm_ms;
		uint64_t last_pages;
	} switchover;
	bool compressing;         /* auto mode's current choice: compress (with the candidate) */
	bool outcome_unknown;     /* the link failed after COMMIT: the VM stays paused here */
	bool paused;              /* the VM was paused when the migration began: it arrives paused */
	char security[96];        /* "TLS 1.3, TLS_AES_128_GCM_SHA256, pre-shared key" or "none" */
	char warning[256];        /* set once, early: the path makes --downtime impossible */
	char error[512];
};

typedef void (*migrate_progress_fn)(void *opaque, const struct migrate_stats *st);

/* Source: migrates a running (or paused) VM. Blocks until done. On success the guest now
 * runs on the destination, the VM here stays paused for the caller to stop, and 0 is
 * returned; on failure the VM runs as before
 * (resumed if the engine paused it), st->error says why, and -1 is returned. `cancel` may be
 * set from another thread at any time before commit. */
int migrate_source(struct machine *m, const struct migrate_params *p, atomic_bool *cancel,
		   migrate_progress_fn progress, void *opaque, struct migrate_stats *st);

/* Destination: receives one migration on an accepted connection into machine m, reserved
 * with machine_reserve, built from cfg (name, console; memory and vCPUs come from the stream
 * unless set). On success the machine is created and started (running the guest) and 0 is
 * returned; on failure nothing is left and -1 is returned with one hv_error line.
 * MIGRATE_INCOMING_STRAY: the peer sent no valid HELLO (by hello_by): nothing was set up, it
 * was told why, stray_reason says why (not printed), and the caller may wait for another.
 * `stop` set (by another thread, which also shuts the socket down for reading) ends the
 * migration early: the source is told and keeps its guest. */
#define MIGRATE_INCOMING_STRAY (-2)
struct migrate_incoming_opts {
	struct deadline hello_by;
	const atomic_bool *stop;
	char *stray_reason;
	size_t stray_reason_len;
	bool *arrived_paused; /* if not NULL: set on success, the guest was paused at the source */
	bool from_file;       /* hvctl restore: a snapshot, read one way (nothing is answered) */
	bool start_paused;    /* start the vCPUs paused whatever the source's state was */
	/* How the NICs announce the guest once it runs; NULL: DEV_ANNOUNCE_DEFAULT. */
	const struct dev_announce *announce;
};
int migrate_incoming(struct wire_conn *transport, struct machine *m, const struct machine_config *cfg,
		     const struct migrate_incoming_opts *o);

#endif
