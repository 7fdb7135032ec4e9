/* Snapshot files (migrate/snapshot.c): the header as written and read back, every damaged
 * header refused, and the file discipline `hvctl save` relies on (a temporary name, never
 * over an existing file, nothing left behind on failure). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "migrate/snapshot.h"

static const struct snapshot_header sample = {
	.created = 1764979200, .mem_size = 1ull << 30, .vcpus = 4, .name = "web-01"
};

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-snapshot-test-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vm.snap", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Files in the fixture's directory. */
static int entries(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void test_header_round_trip(void **state)
{
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	struct snapshot_header h;
	char err[256];

	snapshot_header_encode(b, &sample);
	assert_memory_equal(b, "hvSNAPSH", 8);
	assert_int_equal(snapshot_header_decode(b, &h, "f", err, sizeof(err)), 0);
	assert_int_equal(h.version, SNAPSHOT_VERSION);
	assert_int_equal(h.created, sample.created);
	assert_int_equal(h.mem_size, sample.mem_size);
	assert_int_equal(h.vcpus, sample.vcpus);
	assert_string_equal(h.name, sample.name);
}

/* Any one bit flipped anywhere in the header: refused with one line, never taken as valid. */
static void test_every_flipped_bit_is_refused(void **state)
{
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	struct snapshot_header h;
	char err[256];

	snapshot_header_encode(b, &sample);
	for (int i = 0; i < SNAPSHOT_HEADER_SIZE * 8; i++) {
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
		err[0] = '\0';
		assert_int_equal(snapshot_header_decode(b, &h, "f", err, sizeof(err)), -1);
		assert_non_null(strstr(err, "'f'"));
		assert_null(strchr(err, '\n'));
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
}

/* A header whose CRC was made to match is still refused where this hv writes only zeros. */
static void test_reserved_bytes_must_be_zero(void **state)
{
	static const int offsets[] = { 36, 39, 40 + 63, 104, 123 };
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	struct snapshot_header h;
	char err[256];

	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		snapshot_header_encode(b, &sample);
		b[offsets[i]] = 'x';
		uint32_t crc = (uint32_t)crc32(0, b, 124);
		for (int k = 0; k < 4; k++)
			b[124 + k] = (uint8_t)(crc >> (8 * k));
		assert_int_equal(snapshot_header_decode(b, &h, "f", err, sizeof(err)), -1);
		assert_non_null(strstr(err, "damaged"));
	}
}

/* An escape in a crafted name never reaches the terminal of whoever inspects the file. */
static void test_name_is_made_printable(void **state)
{
	struct snapshot_header in = sample, h;
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	char err[256];

	snprintf(in.name, sizeof(in.name), "a\033[2Jb");
	snapshot_header_encode(b, &in);
	assert_int_equal(snapshot_header_decode(b, &h, "f", err, sizeof(err)), 0);
	assert_null(strchr(h.name, '\033'));
}

static void test_open_refuses_what_is_not_a_snapshot(void **state)
{
	struct fixture *f = *state;
	uint8_t b[SNAPSHOT_HEADER_SIZE];
	struct snapshot_header h;
	char err[256];

	assert_int_equal(snapshot_open(f->path, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(snapshot_open(f->dir, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	write_file(f->path, "", 0);
	assert_int_equal(snapshot_open(f->path, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	snapshot_header_encode(b, &sample);
	write_file(f->path, b, 100);
	assert_int_equal(snapshot_open(f->path, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "shorter"));
	b[8] = 9; /* version 9 */
	write_file(f->path, b, sizeof(b));
	assert_int_equal(snapshot_open(f->path, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "version 9, this hv reads version 1"));
	memset(b, '#', sizeof(b)); /* a text file as long as a header */
	write_file(f->path, b, sizeof(b));
	assert_int_equal(snapshot_open(f->path, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an hv snapshot"));
}

static void test_written_file_reads_back(void **state)
{
	struct fixture *f = *state;
	struct snapshot_out o;
	struct snapshot_header h;
	char err[256], body[6];
	int fd;

	assert_int_equal(snapshot_create(&o, f->path, &sample, err, sizeof(err)), 0);
	assert_int_equal(access(f->path, F_OK), -1); /* not under its name before the commit */
	assert_int_equal(write(o.fd, "stream", 6), 6);
	assert_int_equal(snapshot_commit(&o, err, sizeof(err)), 0);
	assert_int_equal(entries(f), 1); /* no temporary file left */
	fd = snapshot_open(f->path, &h, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(read(fd, body, sizeof(body)), 6);
	assert_memory_equal(body, "stream", 6);
	close(fd);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_existing_file_is_never_replaced(void **state)
{
	struct fixture *f = *state;
	struct snapshot_out o;
	char err[256], got[8] = { 0 };
	int fd;

	write_file(f->path, "mine", 4);
	assert_int_equal(snapshot_create(&o, f->path, &sample, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exists"));
	fd = open(f->path, O_RDONLY);
	assert_int_equal(read(fd, got, sizeof(got)), 4);
	close(fd);
	assert_string_equal(got, "mine");
	assert_int_equal(entries(f), 1);
}

static void test_discard_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct snapshot_out o;
	char err[256];

	assert_int_equal(snapshot_create(&o, f->path, &sample, err, sizeof(err)), 0);
	assert_int_equal(entries(f), 1); /* the temporary file */
	snapshot_discard(&o);
	assert_int_equal(entries(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_every_flipped_bit_is_refused),
		cmocka_unit_test(test_reserved_bytes_must_be_zero),
		cmocka_unit_test(test_name_is_made_printable),
		cmocka_unit_test_setup_teardown(test_open_refuses_what_is_not_a_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_file_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_file_is_never_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_leaves_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
