/* The host agent's state file: what a restarted agent reads back, and what it refuses to
 * read (a damaged or hostile file is never half-loaded). */
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

#include "tools/agent_state.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/hv-agent-state-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_missing_file_is_empty(void **state)
{
	static struct agent_state st;
	char path[128], err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(agent_state_load(&st, path, err, sizeof(err)), 0);
	assert_int_equal(st.n, 0);
}

static void test_round_trip_and_atomic_replace(void **state)
{
	static struct agent_state st, back;
	char path[128], err[512];
	struct stat sb;

	(void)state;
	snprintf(path, sizeof(path), "%s/hv-agent.json", dir);
	assert_int_equal(agent_state_load(&st, path, err, sizeof(err)), 0);
	assert_int_equal(agent_state_add(&st, "web", "receive", 1700000000), 0);
	assert_int_equal(agent_state_add(&st, "db-1", "run", 1700000001), 0);
	assert_int_equal(agent_state_add(&st, "web", "restore", 1700000002), 0); /* replaces */
	assert_int_equal(st.n, 2);
	assert_int_equal(agent_state_save(&st, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	assert_int_not_equal(access(tmp, F_OK), 0);

	assert_int_equal(agent_state_load(&back, path, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(agent_state_find(&back, "db-1"), 1);
	assert_string_equal(back.vms[0].origin, "restore");
	assert_int_equal(back.vms[0].since, 1700000002);
	agent_state_remove(&back, "web");
	assert_int_equal(back.n, 1);
	assert_string_equal(back.vms[0].name, "db-1");
	assert_int_equal(agent_state_find(&back, "web"), -1);
}

static void test_bad_files_are_refused_whole(void **state)
{
	static struct agent_state st;
	const char *bad[] = {
		"", "[]", "{\"version\":2,\"vms\":[]}", "{\"version\":1}", "{\"version\":1,\"vms\":{}}",
		"{\"version\":1,\"vms\":[{\"name\":\"ok\",\"origin\":\"run\",\"since\":1},{\"name\":\"../x\",\"origin\":\"run\",\"since\":1}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"stolen\",\"since\":1}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"run\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"a\\u001b[2J\",\"origin\":\"run\",\"since\":1}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"run\",\"since\":1}",
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(agent_state_parse(&st, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
		assert_int_equal(st.n, 0);
		assert_null(strchr(err, '\033'));
	}
	/* More VMs than a state holds. */
	size_t cap = 64 * (AGENT_STATE_MAX_VMS + 2);
	char *big = malloc(cap);
	size_t len = (size_t)snprintf(big, cap, "{\"version\":1,\"vms\":[");
	for (int i = 0; i <= AGENT_STATE_MAX_VMS; i++)
		len += (size_t)snprintf(big + len, cap - len, "%s{\"name\":\"v%d\",\"origin\":\"run\",\"since\":1}",
					i ? "," : "", i);
	len += (size_t)snprintf(big + len, cap - len, "]}");
	assert_int_equal(agent_state_parse(&st, big, len, err, sizeof(err)), -1);
	free(big);
}

static void test_damaged_file_names_the_fix(void **state)
{
	static struct agent_state st;
	char path[128], err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/damaged.json", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"version\":1,\"vms\":[", 20), 20);
	close(fd);
	assert_int_equal(agent_state_load(&st, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "damaged"));
	assert_non_null(strstr(err, "move it away"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_file_is_empty),
		cmocka_unit_test(test_round_trip_and_atomic_replace),
		cmocka_unit_test(test_bad_files_are_refused_whole),
		cmocka_unit_test(test_damaged_file_names_the_fix),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
