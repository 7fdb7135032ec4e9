/* What the host agent runs for a remote caller: the commands, the paths, the options that
 * are the agent's own, the TAPs, and what it adds (tools/agent_policy.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tools/agent_policy.h"

static struct agent_config cfg(void)
{
	struct agent_config c = { .dir = "/srv/hv", .taps = { "tap=tap0" }, .ntaps = 1 };

	strcpy(c.tls.psk_file, "/etc/hv/key");
	return c;
}

static int plan(int argc, char *const argv[], struct agent_exec_plan *p, char *err)
{
	struct agent_config c = cfg();

	return agent_policy_plan(&c, argc, argv, 512ull << 20, p, err, 256);
}

static bool has(const struct agent_exec_plan *p, const char *a, const char *b)
{
	for (int i = 0; i + (b != NULL) < p->argc; i++)
		if (!strcmp(p->argv[i], a) && (!b || !strcmp(p->argv[i + 1], b)))
			return true;
	return false;
}

static void test_plain_commands_pass_unchanged(void **state)
{
	char *argv[] = { "status", "vm1", "--json" }, err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(3, argv, &p, err), 0);
	assert_int_equal(p.argc, 3);
	assert_string_equal(p.argv[2], "--json");
	assert_null(p.argv[3]);
	assert_false(p.starts_vm);
}

static void test_paths_are_refused(void **state)
{
	char *cases[][4] = {
		{ "run", "--kernel", "/etc/shadow", "--name=x" }, { "save", "vm1", "../x", NULL },
		{ "run", "--kernel=/boot/vmlinuz", "--name", "x" }, { "save", "vm1", "..", NULL },
		{ "run", "--console", "file:../../log", "--name=x" }, { "report", "a.json", "sub/b.html", NULL },
	};
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = cases[i][3] ? 4 : 3;
		assert_int_equal(plan(argc, cases[i], &p, err), -1);
		assert_non_null(strstr(err, "plain names"));
	}
}

static void test_agent_only_options_even_abbreviated(void **state)
{
	char *cases[][3] = {
		{ "migrate", "vm1", "--psk=/tmp/k" }, { "restore", "s.hvs", "--shared-storage" },
		{ "restore", "s.hvs", "--shared" }, { "run", "--ins", "x" }, { "migrate", "vm1", "--tls-c" },
	};
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(plan(3, cases[i], &p, err), -1);
		assert_true(strstr(err, "agent's to give") || strstr(err, "plain names"));
	}
}

static void test_commands_refused_with_reason(void **state)
{
	char *cases[] = { "console", "keygen", "serve", "receive", "rm" };
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { cases[i], "x" };
		assert_int_equal(plan(2, argv, &p, err), -1);
	}
	char *argv[] = { "console", "x" };
	plan(2, argv, &p, err);
	assert_non_null(strstr(err, "terminal"));
}

static void test_only_the_agents_taps(void **state)
{
	char *ok[] = { "run", "--kernel", "k.elf", "--name", "a", "--net", "tap=tap0,mac=52:54:00:00:00:01" };
	char *bad[] = { "run", "--kernel", "k.elf", "--name", "a", "--net", "tap=eth0" };
	char *bad_eq[] = { "run", "--kernel", "k.elf", "--name", "a", "--ne=tap=tap00" };
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(7, ok, &p, err), 0);
	assert_int_equal(plan(7, bad, &p, err), -1);
	assert_non_null(strstr(err, "TAPs"));
	assert_int_equal(plan(6, bad_eq, &p, err), -1);
}

static void test_run_detaches_and_needs_a_name(void **state)
{
	char *named[] = { "run", "--kernel", "k.elf", "--name=web" };
	char *unnamed[] = { "run", "--kernel", "k.elf" };
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(3, unnamed, &p, err), -1);
	assert_non_null(strstr(err, "--name"));
	assert_int_equal(plan(4, named, &p, err), 0);
	assert_true(p.starts_vm);
	assert_string_equal(p.vm_name, "web");
	assert_true(has(&p, "--detach", NULL));
	assert_false(has(&p, "--psk", NULL));
}

static void test_restore_gets_the_agents_policy(void **state)
{
	char *argv[] = { "restore", "snap.hvs", "--name", "db" };
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(4, argv, &p, err), 0);
	assert_true(has(&p, "--disk-dir", "/srv/hv"));
	assert_true(has(&p, "--net", "tap=tap0"));
	assert_true(has(&p, "--max-mem", "536870912"));
	assert_true(has(&p, "--detach", NULL));
}

static void test_migrate_gets_the_agents_key(void **state)
{
	char *argv[] = { "migrate", "vm1", "10.0.0.2:4444", "--json" };
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(4, argv, &p, err), 0);
	assert_true(has(&p, "--psk", "/etc/hv/key"));
}

static void test_hostile_arguments(void **state)
{
	char esc[] = "vm\033[2J", big[AGENT_MAX_ARG_LEN + 2];
	char *with_esc[] = { "status", esc };
	char *many[AGENT_MAX_ARGS + 1];
	char err[256];
	struct agent_exec_plan p;

	(void)state;
	assert_int_equal(plan(2, with_esc, &p, err), -1);
	assert_null(strchr(err, '\033'));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	char *too_long[] = { "status", big };
	assert_int_equal(plan(2, too_long, &p, err), -1);
	for (int i = 0; i <= AGENT_MAX_ARGS; i++)
		many[i] = "list";
	assert_int_equal(plan(AGENT_MAX_ARGS + 1, many, &p, err), -1);
	assert_int_equal(plan(0, many, &p, err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_commands_pass_unchanged),
		cmocka_unit_test(test_paths_are_refused),
		cmocka_unit_test(test_agent_only_options_even_abbreviated),
		cmocka_unit_test(test_commands_refused_with_reason),
		cmocka_unit_test(test_only_the_agents_taps),
		cmocka_unit_test(test_run_detaches_and_needs_a_name),
		cmocka_unit_test(test_restore_gets_the_agents_policy),
		cmocka_unit_test(test_migrate_gets_the_agents_key),
		cmocka_unit_test(test_hostile_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
