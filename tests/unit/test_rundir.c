/* The run directory: where it is, VM names, and the per-name lock (hv/rundir.c). */
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

#include <cmocka.h>

#include "hv/rundir.h"

struct fixture {
	char dir[64];
	char sub[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-rundir-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* A directory that does not exist yet, two levels deep: rundir_path creates it. */
	snprintf(f->sub, sizeof(f->sub), "%s/a/run", f->dir);
	setenv("HV_RUN_DIR", f->sub, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	unsetenv("HV_RUN_DIR");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Runs fn with stderr captured into buf (the hv_error line). */
static void capture_stderr(char *buf, size_t len, void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/hv-rundir-stderr-XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

static void test_path_created_private(void **state)
{
	struct fixture *f = *state;
	const char *p = rundir_path();
	struct stat st;

	assert_non_null(p);
	assert_string_equal(p, f->sub);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Existing directory: fine too. Trailing slashes do not end up in paths. */
	char with_slash[160];
	snprintf(with_slash, sizeof(with_slash), "%s//", f->sub);
	setenv("HV_RUN_DIR", with_slash, 1);
	assert_string_equal(rundir_path(), f->sub);
}

static void test_default_path(void **state)
{
	char want[64];

	unsetenv("HV_RUN_DIR");
	if (geteuid() == 0)
		snprintf(want, sizeof(want), "/run/hv");
	else
		snprintf(want, sizeof(want), "/tmp/hv-%u", (unsigned)geteuid());
	const char *p = rundir_path();
	assert_non_null(p);
	assert_string_equal(p, want);
	/* An empty HV_RUN_DIR counts as unset. */
	setenv("HV_RUN_DIR", "", 1);
	assert_string_equal(rundir_path(), want);
}

static void call_rundir_path(void *arg)
{
	*(const char **)arg = rundir_path();
}

static void test_path_not_a_directory(void **state)
{
	struct fixture *f = *state;
	char file[160], buf[512];
	const char *r = "unset";

	snprintf(file, sizeof(file), "%s/file", f->dir);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	setenv("HV_RUN_DIR", file, 1);
	capture_stderr(buf, sizeof(buf), call_rundir_path, &r);
	assert_null(r);
	assert_non_null(strstr(buf, "HV_RUN_DIR"));
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1); /* one line */
}

/* A run directory others can write to is refused (they could swap a VM's socket), with one
 * line that names the fix. */
static void test_path_writable_by_others(void **state)
{
	struct fixture *f = *state;
	char open_dir[160], buf[512];
	const char *r = "unset";

	snprintf(open_dir, sizeof(open_dir), "%s/open", f->dir);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	setenv("HV_RUN_DIR", open_dir, 1);
	capture_stderr(buf, sizeof(buf), call_rundir_path, &r);
	assert_null(r);
	assert_non_null(strstr(buf, "writable by group or others"));
	assert_non_null(strstr(buf, "chmod go-w"));
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1); /* one line */
	assert_int_equal(chmod(open_dir, 0770), 0);
	capture_stderr(buf, sizeof(buf), call_rundir_path, &r);
	assert_null(r);
	/* Private again: accepted. */
	assert_int_equal(chmod(open_dir, 0755), 0);
	assert_string_equal(rundir_path(), open_dir);
}

static void test_socket_path(void **state)
{
	struct fixture *f = *state;
	char buf[256], want[256];

	assert_int_equal(rundir_socket_path("vm1", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/vm1.sock", f->sub);
	assert_string_equal(buf, want);
	assert_int_equal(rundir_socket_path("vm1", buf, strlen(want)), -1);
	assert_int_equal(rundir_socket_path("vm1", buf, strlen(want) + 1), 0);
}

static void test_valid_names(void **state)
{
	char n63[64], n64[65];

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';
	assert_true(rundir_valid_name("vm1"));
	assert_true(rundir_valid_name("a"));
	assert_true(rundir_valid_name("Web-01_test.v2"));
	assert_true(rundir_valid_name("9"));
	assert_true(rundir_valid_name(n63));

	assert_false(rundir_valid_name(NULL));
	assert_false(rundir_valid_name(""));
	assert_false(rundir_valid_name(n64));
	assert_false(rundir_valid_name("../x"));
	assert_false(rundir_valid_name(".."));
	assert_false(rundir_valid_name("."));
	assert_false(rundir_valid_name(".hidden"));
	assert_false(rundir_valid_name("a/b"));
	assert_false(rundir_valid_name("/abs"));
	assert_false(rundir_valid_name("a b"));
	assert_false(rundir_valid_name(" a"));
	assert_false(rundir_valid_name("a\tb"));
	assert_false(rundir_valid_name("a\nb"));
	assert_false(rundir_valid_name("-rf"));
	assert_false(rundir_valid_name("a:b"));
	assert_false(rundir_valid_name("a*"));
	assert_false(rundir_valid_name("caf\xc3\xa9"));
}

static void claim_vm1(void *arg)
{
	*(int *)arg = rundir_claim_name("vm1");
}

static void test_claim_release(void **state)
{
	struct fixture *f = *state;
	char lock[256], sock[256], err[512];
	struct stat st;

	int fd = rundir_claim_name("vm1");
	assert_true(fd >= 0);
	snprintf(lock, sizeof(lock), "%s/vm1.lock", f->sub);
	assert_int_equal(stat(lock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Second claim of the same name while the first is held. */
	int fd2 = 123;
	capture_stderr(err, sizeof(err), claim_vm1, &fd2);
	assert_int_equal(fd2, -1);
	assert_non_null(strstr(err, "a VM named 'vm1' is already running"));
	assert_non_null(strstr(err, "hvctl stop vm1"));
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */

	/* Another name is independent. */
	int other = rundir_claim_name("vm2");
	assert_true(other >= 0);

	/* Release removes the socket and the lock file; the name can be claimed again. */
	assert_int_equal(rundir_socket_path("vm1", sock, sizeof(sock)), 0);
	int s = open(sock, O_CREAT | O_WRONLY, 0600);
	assert_true(s >= 0);
	close(s);
	rundir_release_name("vm1", fd);
	assert_int_equal(access(sock, F_OK), -1);
	assert_int_equal(access(lock, F_OK), -1);
	fd = rundir_claim_name("vm1");
	assert_true(fd >= 0);
	rundir_release_name("vm1", fd);
	rundir_release_name("vm2", other);
	rundir_release_name("vm2", -1); /* harmless */
}

/* A lock file left by a VM that died (nobody holds it) does not block the name. */
static void test_claim_after_crash(void **state)
{
	struct fixture *f = *state;
	char lock[256];

	assert_non_null(rundir_path());
	snprintf(lock, sizeof(lock), "%s/crashed.lock", f->sub);
	int fd = open(lock, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	fd = rundir_claim_name("crashed");
	assert_true(fd >= 0);
	rundir_release_name("crashed", fd);
}

static void claim_bad(void *arg)
{
	*(int *)arg = rundir_claim_name("../x");
}

static void test_claim_invalid_names(void **state)
{
	static const char *bad[] = { "", "../x", "a/b", "a b", ".x", "-x" };
	char n64[65], err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rundir_claim_name(bad[i]), -1);
	memset(n64, 'n', 64);
	n64[64] = '\0';
	assert_int_equal(rundir_claim_name(n64), -1);
	assert_int_equal(rundir_claim_name(NULL), -1);

	int r = 0;
	capture_stderr(err, sizeof(err), claim_bad, &r);
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "'../x' is not a valid VM name"));
	/* Nothing was created outside the run directory. */
	struct fixture *f = *state;
	char outside[256];
	snprintf(outside, sizeof(outside), "%s/a/x.lock", f->dir);
	assert_int_equal(access(outside, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_path_created_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_not_a_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_writable_by_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_path, setup, teardown),
		cmocka_unit_test(test_valid_names),
		cmocka_unit_test_setup_teardown(test_claim_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_invalid_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
