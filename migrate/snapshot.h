/* Snapshot files: the migration stream (docs/migration-protocol.md) written to a file behind
 * a small header, so that `hvctl save` and `hvctl restore` are a migration to and from a
 * file (docs/migration-protocol.md, 9). The file is written under a temporary name next to
 * it, fsynced and renamed into place, so a crash or a full disk never leaves a half file
 * under its name; an existing file is never replaced. */
#ifndef MIGRATE_SNAPSHOT_H
#define MIGRATE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_HEADER_SIZE 128
#define SNAPSHOT_VERSION 1
#define SNAPSHOT_URI_PREFIX "file:"

struct snapshot_header {
	uint32_t version;   /* of the file header; the stream after it has its own */
	uint64_t created;   /* seconds since the epoch */
	uint64_t mem_size;  /* bytes of guest RAM */
	uint32_t vcpus;
	char name[64];      /* the VM's, printable */
};

/* A file being written: its final path and the temporary one beside it. */
struct snapshot_out {
	int fd;
	char path[4096], tmp[4096 + 16];
};

/* Creates the temporary file (mode 0600) and writes the header. 0, or -1 with one line in
 * err (FILE exists, its directory is missing or not writable, ...). */
int snapshot_create(struct snapshot_out *o, const char *path, const struct snapshot_header *h,
		    char *err, size_t errlen);
/* Everything written: fsync, rename into place (never over an existing file), fsync the
 * directory. 0, or -1 with one line in err; the temporary file is gone either way. */
int snapshot_commit(struct snapshot_out *o, char *err, size_t errlen);
/* Failed: removes the temporary file. */
void snapshot_discard(struct snapshot_out *o);

/* The 128-byte header as written, and as read back: decode checks it whole (magic, version,
 * size, reserved bytes zero, CRC) and names `path` in its one line in err if it is not a
 * snapshot header. 0 or -1. */
void snapshot_header_encode(uint8_t b[SNAPSHOT_HEADER_SIZE], const struct snapshot_header *h);
int snapshot_header_decode(const uint8_t b[SNAPSHOT_HEADER_SIZE], struct snapshot_header *h,
			   const char *path, char *err, size_t errlen);

/* Opens a snapshot for reading and checks its header; the fd is then at the stream. The fd,
 * or -1 with one line in err (missing, not a regular file, empty, not a snapshot, another
 * version, a damaged header). */
int snapshot_open(const char *path, struct snapshot_header *h, char *err, size_t errlen);

#endif
