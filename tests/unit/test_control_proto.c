/* The control protocol: the codec and dispatch of hv/control_proto.c, and the server of
 * hv/control.c over a real UNIX socket against a VM without vCPUs (no KVM needed: with
 * ncpus == 0, vm_pause/vm_resume/vm_request_stop only touch the VM's fields and lock). */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/control.h"
#include "hv/control_proto.h"
#include "hv/rundir.h"
#include "hv/vm.h"

/* ---- helpers ---- */

static int h_echo(struct ctl_call *call, void *opaque)
{
	json_object_object_add(call->resp, "echo", json_object_new_string(call->req->cmd));
	if (opaque)
		(*(int *)opaque)++;
	return 0;
}

static int h_fail(struct ctl_call *call, void *opaque)
{
	snprintf(call->err, sizeof(call->err), "cannot frob: the frobnicator is %s", "busy");
	return -1;
}

static int h_fail_silent(struct ctl_call *call, void *opaque)
{
	return -1;
}

static int h_sub(struct ctl_call *call, void *opaque)
{
	call->subscribe = 1;
	return 0;
}

/* Reads an argument of the request. */
static int h_add(struct ctl_call *call, void *opaque)
{
	struct json_object *a, *b;

	if (!json_object_object_get_ex(call->req->obj, "a", &a) ||
	    !json_object_object_get_ex(call->req->obj, "b", &b)) {
		snprintf(call->err, sizeof(call->err), "add needs \"a\" and \"b\"");
		return -1;
	}
	json_object_object_add(call->resp, "sum",
			       json_object_new_int64(json_object_get_int64(a) +
						     json_object_get_int64(b)));
	return 0;
}

static void make_table(struct ctl_table *t)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(ctl_table_add(t, "echo", h_echo, NULL), 0);
	assert_int_equal(ctl_table_add(t, "fail", h_fail, NULL), 0);
	assert_int_equal(ctl_table_add(t, "failsilent", h_fail_silent, NULL), 0);
	assert_int_equal(ctl_table_add(t, "sub", h_sub, NULL), 0);
	assert_int_equal(ctl_table_add(t, "add", h_add, NULL), 0);
}

/* Dispatches a line; returns the parsed response (checks it is exactly one line). */
static struct json_object *dispatch(const struct ctl_table *t, const char *line, int *sub)
{
	size_t len = 0;
	int s = -1;
	char *out = ctl_handle_line(t, NULL, line, strlen(line), &len, &s);

	assert_non_null(out);
	assert_true(len > 1);
	assert_int_equal(out[len - 1], '\n');
	assert_null(memchr(out, '\n', len - 1));
	assert_int_equal(strlen(out), len);
	assert_true(s == 0 || s == 1);
	if (sub)
		*sub = s;
	struct json_object *o = json_tokener_parse(out);
	free(out);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static int is_ok(struct json_object *o)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, "ok", &v));
	assert_true(json_object_is_type(v, json_type_boolean));
	return json_object_get_boolean(v);
}

static const char *str_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void assert_error_contains(struct json_object *o, const char *needle)
{
	assert_false(is_ok(o));
	const char *e = str_field(o, "error");
	assert_non_null(e);
	if (!strstr(e, needle))
		fail_msg("error '%s' does not contain '%s'", e, needle);
}

/* ---- parsing ---- */

static void test_parse_valid(void **state)
{
	struct ctl_request r;
	char err[CTL_ERR_MAX] = "";
	const char *line = "{\"cmd\":\"status\"}";

	assert_int_equal(ctl_parse_request(line, strlen(line), &r, err, sizeof(err)), 0);
	assert_string_equal(r.cmd, "status");
	assert_int_equal(r.has_id, 0);
	ctl_request_free(&r);

	/* Whitespace around, a CR (from a terminal), extra arguments, no NUL terminator. */
	const char buf[] = "  { \"id\" : 3, \"cmd\" : \"pause\", \"x\": [1, {\"y\": null}] }\t\r"
			   "GARBAGE-NOT-PART-OF-THE-LINE";
	size_t len = strlen(buf) - strlen("GARBAGE-NOT-PART-OF-THE-LINE");
	assert_int_equal(ctl_parse_request(buf, len, &r, err, sizeof(err)), 0);
	assert_string_equal(r.cmd, "pause");
	assert_int_equal(r.has_id, 1);
	assert_int_equal(json_object_get_int(r.id), 3);
	ctl_request_free(&r);
	assert_null(r.obj);
}

static void test_parse_malformed(void **state)
{
	static const struct {
		const char *line;
		const char *why;
	} cases[] = {
		{ "{", "unexpected end of data" },
		{ "{\"cmd\":", "unexpected end of data" },
		{ "{\"cmd\":}", "unexpected character at byte 7" },
		{ "not json", "" },
		{ "{'cmd':'status'}", "" },
		{ "{\"cmd\":\"status\",}", "" },
		{ "[1,2]", "must be a JSON object" },
		{ "\"status\"", "must be a JSON object" },
		{ "42", "" },
		{ "null", "must be a JSON object" },
		{ "{}", "missing \"cmd\"" },
		{ "{\"id\":3}", "missing \"cmd\"" },
		{ "{\"cmd\":5}", "\"cmd\" must be a string" },
		{ "{\"cmd\":null}", "\"cmd\" must be a string" },
		{ "{\"cmd\":[\"status\"]}", "\"cmd\" must be a string" },
		{ "{\"cmd\":\"status\"} x", "unexpected character at byte 17" },
		{ "{\"cmd\":\"status\"}{\"cmd\":\"stop\"}", "" },
		{ "{\"cmd\":\"sta\xff\xfeus\"}", "" },
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_request r;
		char err[CTL_ERR_MAX] = "";
		int rc = ctl_parse_request(cases[i].line, strlen(cases[i].line), &r, err, sizeof(err));
		if (rc != -1)
			fail_msg("'%s' was accepted", cases[i].line);
		if (strncmp(err, "malformed request: ", 19) || !strstr(err, cases[i].why))
			fail_msg("'%s': error '%s' lacks '%s'", cases[i].line, err, cases[i].why);
		ctl_request_free(&r);
	}

	/* A NUL inside the line. */
	struct ctl_request r;
	char err[CTL_ERR_MAX];
	const char nul[] = "{\"cmd\":\"st\0atus\"}";
	assert_int_equal(ctl_parse_request(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	ctl_request_free(&r);

	/* Nesting deeper than json-c's limit is an error, not a crash. */
	char deep[2 * 200 + 32];
	size_t n = 0;
	n += (size_t)sprintf(deep, "{\"cmd\":\"x\",\"a\":");
	for (int i = 0; i < 200; i++)
		deep[n++] = '[';
	for (int i = 0; i < 200; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	assert_int_equal(ctl_parse_request(deep, n, &r, err, sizeof(err)), -1);
	ctl_request_free(&r);
}

static void test_parse_keeps_id_of_bad_request(void **state)
{
	struct ctl_table t;
	make_table(&t);

	struct json_object *o = dispatch(&t, "{\"id\":\"abc\",\"cmd\":7}", NULL);
	assert_error_contains(o, "malformed request: \"cmd\" must be a string");
	assert_string_equal(str_field(o, "id"), "abc");
	json_object_put(o);

	o = dispatch(&t, "{\"id\":9}", NULL);
	assert_error_contains(o, "missing \"cmd\"");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 9);
	json_object_put(o);

	/* Unparseable: no id to give back. */
	o = dispatch(&t, "{\"id\":9,", NULL);
	assert_error_contains(o, "malformed request:");
	assert_false(json_object_object_get_ex(o, "id", NULL));
	json_object_put(o);
}

static void test_oversized(void **state)
{
	struct ctl_request r;
	char err[CTL_ERR_MAX];
	/* Exactly CTL_MAX_LINE bytes is fine; one more is not. */
	size_t len = CTL_MAX_LINE;
	char *line = malloc(len + 2);
	const char *head = "{\"cmd\":\"echo\",\"pad\":\"";
	memset(line, 'x', len + 1);
	memcpy(line, head, strlen(head));
	memcpy(line + len - 2, "\"}", 2);
	assert_int_equal(ctl_parse_request(line, len, &r, err, sizeof(err)), 0);
	assert_string_equal(r.cmd, "echo");
	ctl_request_free(&r);

	memcpy(line + len - 2, "xx\"}", 4);
	assert_int_equal(ctl_parse_request(line, len + 2, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 65536 bytes"));
	ctl_request_free(&r);
	free(line);
}

/* ---- dispatch ---- */

static void test_ids_of_every_json_type(void **state)
{
	static const char *ids[] = {
		"1", "0", "-17", "9007199254740993", "1.5", "\"req-1\"", "\"\"", "true", "false",
		"null", "[1,\"two\",null]", "{\"a\":{\"b\":[1,2]}}", "\"quote\\\" and \\n newline\"",
	};
	struct ctl_table t;
	make_table(&t);

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char line[256];
		snprintf(line, sizeof(line), "{\"cmd\":\"echo\",\"id\":%s}", ids[i]);
		struct json_object *o = dispatch(&t, line, NULL);
		struct json_object *want = json_tokener_parse(ids[i]), *got;
		assert_true(is_ok(o));
		assert_true(json_object_object_get_ex(o, "id", &got));
		if (!json_object_equal(want, got))
			fail_msg("id %s came back as %s", ids[i], json_object_to_json_string(got));
		json_object_put(want);
		json_object_put(o);

		/* Same for an error response. */
		snprintf(line, sizeof(line), "{\"cmd\":\"nope\",\"id\":%s}", ids[i]);
		o = dispatch(&t, line, NULL);
		want = json_tokener_parse(ids[i]);
		assert_false(is_ok(o));
		assert_true(json_object_object_get_ex(o, "id", &got));
		assert_true(json_object_equal(want, got));
		json_object_put(want);
		json_object_put(o);
	}

	/* No id in, no id out. */
	struct json_object *o = dispatch(&t, "{\"cmd\":\"echo\"}", NULL);
	assert_false(json_object_object_get_ex(o, "id", NULL));
	json_object_put(o);
}

static void test_response_shape(void **state)
{
	struct ctl_table t;
	size_t len;
	int sub;
	make_table(&t);

	/* "id" first, then "ok", then the handler's fields. */
	char *out = ctl_handle_line(&t, NULL, "{\"id\":1,\"cmd\":\"echo\"}", 21, &len, &sub);
	assert_string_equal(out, "{\"id\":1,\"ok\":true,\"echo\":\"echo\"}\n");
	free(out);
	out = ctl_handle_line(&t, NULL, "{\"cmd\":\"fail\",\"id\":2}", 21, &len, &sub);
	assert_string_equal(out,
			    "{\"id\":2,\"ok\":false,\"error\":\"cannot frob: the frobnicator is busy\"}\n");
	free(out);
}

static void test_dispatch_commands(void **state)
{
	struct ctl_table t;
	int sub, calls = 0;
	make_table(&t);
	assert_int_equal(ctl_table_add(&t, "count", h_echo, &calls), 0);

	struct json_object *o = dispatch(&t, "{\"cmd\":\"count\"}", &sub);
	assert_true(is_ok(o));
	assert_int_equal(sub, 0);
	assert_int_equal(calls, 1);
	json_object_put(o);

	o = dispatch(&t, "{\"cmd\":\"frobnicate\",\"id\":4}", NULL);
	assert_error_contains(o, "unknown command 'frobnicate'");
	json_object_put(o);

	/* A command name is matched exactly. */
	o = dispatch(&t, "{\"cmd\":\"ECHO\"}", NULL);
	assert_error_contains(o, "unknown command 'ECHO'");
	json_object_put(o);
	o = dispatch(&t, "{\"cmd\":\"\"}", NULL);
	assert_error_contains(o, "unknown command ''");
	json_object_put(o);

	/* Strange command names stay inside the JSON string. */
	o = dispatch(&t, "{\"cmd\":\"a\\\"b\\nc\"}", NULL);
	assert_error_contains(o, "unknown command 'a\"b\nc'");
	json_object_put(o);

	o = dispatch(&t, "{\"cmd\":\"fail\"}", NULL);
	assert_error_contains(o, "cannot frob: the frobnicator is busy");
	json_object_put(o);
	o = dispatch(&t, "{\"cmd\":\"failsilent\"}", NULL);
	assert_error_contains(o, "command failed");
	json_object_put(o);

	o = dispatch(&t, "{\"cmd\":\"sub\"}", &sub);
	assert_true(is_ok(o));
	assert_int_equal(sub, 1);
	json_object_put(o);

	o = dispatch(&t, "{\"cmd\":\"add\",\"a\":40,\"b\":2}", NULL);
	assert_true(is_ok(o));
	assert_int_equal(json_object_get_int(json_object_object_get(o, "sum")), 42);
	json_object_put(o);
	o = dispatch(&t, "{\"cmd\":\"add\",\"a\":40}", NULL);
	assert_error_contains(o, "add needs");
	json_object_put(o);
}

static void test_table(void **state)
{
	struct ctl_table t;
	char name[CTL_CMD_NAME_MAX + 8];

	memset(&t, 0, sizeof(t));
	assert_int_equal(ctl_table_count(&t), 0);
	assert_null(ctl_table_find(&t, "echo"));
	assert_int_equal(ctl_table_add(&t, "echo", h_echo, NULL), 0);
	assert_int_equal(ctl_table_add(&t, "echo", h_fail, NULL), -1); /* duplicate */
	assert_int_equal(ctl_table_add(&t, "", h_echo, NULL), -1);
	assert_int_equal(ctl_table_add(&t, NULL, h_echo, NULL), -1);
	assert_int_equal(ctl_table_add(&t, "nofn", NULL, NULL), -1);
	memset(name, 'n', CTL_CMD_NAME_MAX);
	name[CTL_CMD_NAME_MAX] = '\0';
	assert_int_equal(ctl_table_add(&t, name, h_echo, NULL), -1); /* too long */
	name[CTL_CMD_NAME_MAX - 1] = '\0';
	assert_int_equal(ctl_table_add(&t, name, h_echo, NULL), 0); /* longest allowed */
	assert_ptr_equal(ctl_table_find(&t, "echo")->fn, h_echo);
	assert_int_equal(ctl_table_count(&t), 2);
	assert_string_equal(ctl_table_at(&t, 0)->name, "echo");
	assert_null(ctl_table_at(&t, 2));
	assert_null(ctl_table_at(&t, -1));
	for (int i = 2; i < CTL_MAX_COMMANDS; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(ctl_table_add(&t, name, h_echo, NULL), 0);
	}
	assert_int_equal(ctl_table_add(&t, "onemore", h_echo, NULL), -1); /* full */
	assert_int_equal(ctl_table_count(&t), CTL_MAX_COMMANDS);
	assert_non_null(ctl_table_find(&t, "c31"));
}

/* ---- events and formatting ---- */

static void test_state_event(void **state)
{
	char buf[256];
	struct json_object *ev = ctl_event_state_new("paused", 1700000000123ULL);
	int n = ctl_format_line(ev, buf, sizeof(buf));
	json_object_put(ev);

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_string_equal(buf, "{\"event\":\"state\",\"state\":\"paused\",\"time_ms\":1700000000123}\n");
	struct json_object *o = json_tokener_parse(buf);
	assert_string_equal(str_field(o, "event"), "state");
	assert_string_equal(str_field(o, "state"), "paused");
	assert_int_equal(json_object_get_int64(json_object_object_get(o, "time_ms")),
			 1700000000123LL);
	json_object_put(o);
}

static void test_stopped_event_round_trip(void **state)
{
	const char *reason = "guest said \"bye\"\nthen left\t/ \\ \x01 end";
	struct json_object *ev = ctl_event_stopped_new(126, reason, 42);
	size_t len;
	char *line = ctl_format_line_alloc(ev, &len);

	assert_non_null(line);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1)); /* one line whatever the reason says */
	struct json_object *o = json_tokener_parse(line);
	assert_non_null(o);
	assert_true(json_object_equal(o, ev));
	assert_string_equal(str_field(o, "event"), "stopped");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "status")), 126);
	assert_string_equal(str_field(o, "reason"), reason);
	json_object_put(o);
	json_object_put(ev);
	free(line);

	ev = ctl_event_stopped_new(0, NULL, 1);
	line = ctl_format_line_alloc(ev, &len);
	assert_string_equal(line, "{\"event\":\"stopped\",\"status\":0,\"reason\":\"\",\"time_ms\":1}\n");
	free(line);
	json_object_put(ev);
}

static void test_format_line_bounds(void **state)
{
	struct json_object *o = ctl_error_new(NULL, "x");
	const char *want = "{\"ok\":false,\"error\":\"x\"}\n";
	size_t need = strlen(want) + 1;
	char buf[64];

	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(ctl_format_line(o, buf, need - 1), -1);
	assert_int_equal(ctl_format_line(o, buf, need), (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(buf[need], 'Z');
	json_object_put(o);

	/* Slashes are not escaped (paths read naturally). */
	o = ctl_response_new(NULL);
	json_object_object_add(o, "console_pty", json_object_new_string("/dev/pts/3"));
	assert_true(ctl_format_line(o, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "{\"ok\":true,\"console_pty\":\"/dev/pts/3\"}\n");
	json_object_put(o);
}

/* ---- the server over a real socket ---- */

struct server_fixture {
	char dir[64];
	struct vm vm;
	struct control_server *cs;
	char path[108];
};

static int server_setup(void **state)
{
	struct server_fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-ctltest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	setenv("HV_RUN_DIR", f->dir, 1);
	/* A VM with no vCPUs: only its fields and lock are used. */
	snprintf(f->vm.name, sizeof(f->vm.name), "t1");
	snprintf(f->vm.uuid, sizeof(f->vm.uuid), "01234567-89ab-cdef-0123-456789abcdef");
	f->vm.mem.size = 256ull << 20;
	f->vm.kvm_fd = f->vm.vm_fd = -1;
	pthread_mutex_init(&f->vm.lock, NULL);
	pthread_cond_init(&f->vm.cond, NULL);
	f->vm.state = VM_CREATED;
	if (rundir_socket_path("t1", f->path, sizeof(f->path)) < 0)
		return -1;
	f->cs = control_start(&f->vm);
	if (!f->cs)
		return -1;
	*state = f;
	return 0;
}

static int server_teardown(void **state)
{
	struct server_fixture *f = *state;

	if (f->cs)
		control_stop(f->cs);
	pthread_mutex_destroy(&f->vm.lock);
	pthread_cond_destroy(&f->vm.cond);
	rmdir(f->dir);
	unsetenv("HV_RUN_DIR");
	free(f);
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		assert_true(n > 0);
		s += n;
		len -= (size_t)n;
	}
}

/* One line from fd within 5 s (malloc'd, without '\n'); NULL on EOF. */
static char *recv_line(int fd)
{
	char *buf = malloc(1 << 17);
	size_t n = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			fail_msg("no answer within 5 s");
		char ch;
		ssize_t r = recv(fd, &ch, 1, 0);
		/* Closed: EOF, or ECONNRESET if the server closed with our bytes unread. */
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			free(buf);
			return NULL;
		}
		assert_int_equal(r, 1);
		if (ch == '\n') {
			buf[n] = '\0';
			return buf;
		}
		buf[n++] = ch;
		assert_true(n < (1 << 17));
	}
}

static struct json_object *recv_json(int fd)
{
	char *line = recv_line(fd);

	assert_non_null(line);
	struct json_object *o = json_tokener_parse(line);
	if (!o)
		fail_msg("not JSON: %s", line);
	free(line);
	return o;
}

static struct json_object *request(int fd, const char *req)
{
	send_str(fd, req);
	return recv_json(fd);
}

static void test_server_status(void **state)
{
	struct server_fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	int fd = connect_to(f->path);
	struct json_object *o = request(fd, "{\"cmd\":\"status\",\"id\":1}\n");
	assert_true(is_ok(o));
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 1);
	assert_string_equal(str_field(o, "name"), "t1");
	assert_string_equal(str_field(o, "uuid"), "01234567-89ab-cdef-0123-456789abcdef");
	assert_string_equal(str_field(o, "state"), "created");
	assert_int_equal(json_object_get_int64(json_object_object_get(o, "mem")), 256ll << 20);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "cpus")), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "pid")), getpid());
	assert_int_equal(json_object_get_int(json_object_object_get(o, "uptime_ms")), 0);
	assert_false(json_object_object_get_ex(o, "console_pty", NULL));
	json_object_put(o);

	control_set_console_path(f->cs, "/dev/pts/77");
	o = request(fd, "{\"cmd\":\"status\"}\n");
	assert_string_equal(str_field(o, "console_pty"), "/dev/pts/77");
	json_object_put(o);

	/* Pause before start is refused with the reason. */
	o = request(fd, "{\"cmd\":\"pause\",\"id\":\"p\"}\n");
	assert_error_contains(o, "cannot pause: the VM has not started yet");
	json_object_put(o);

	o = request(fd, "{\"cmd\":\"commands\"}\n");
	assert_true(is_ok(o));
	const char *cmds = json_object_to_json_string(json_object_object_get(o, "commands"));
	assert_non_null(strstr(cmds, "\"status\""));
	assert_non_null(strstr(cmds, "\"subscribe\""));
	json_object_put(o);
	close(fd);
}

static void test_server_bad_requests_keep_connection(void **state)
{
	struct server_fixture *f = *state;
	int fd = connect_to(f->path);

	struct json_object *o = request(fd, "this is not json\n");
	assert_error_contains(o, "malformed request:");
	json_object_put(o);
	o = request(fd, "{\"cmd\":\"fly\",\"id\":[1]}\n");
	assert_error_contains(o, "unknown command 'fly'");
	json_object_put(o);
	/* Blank lines are ignored; CRLF works; two requests in one write. */
	o = request(fd, "\n  \r\n{\"cmd\":\"status\",\"id\":1}\r\n{\"cmd\":\"status\",\"id\":2}\n");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 1);
	json_object_put(o);
	o = recv_json(fd);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 2);
	json_object_put(o);
	/* A request split over several writes. */
	send_str(fd, "{\"cmd\":\"st");
	usleep(20000);
	o = request(fd, "atus\",\"id\":3}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	close(fd);
}

static void test_server_oversized_line_closes(void **state)
{
	struct server_fixture *f = *state;
	int fd = connect_to(f->path);
	size_t len = CTL_MAX_LINE + 100;
	char *big = malloc(len + 1);

	memset(big, ' ', len);
	big[len] = '\0';
	send_str(fd, big);
	free(big);
	struct json_object *o = recv_json(fd);
	assert_error_contains(o, "longer than 65536 bytes");
	json_object_put(o);
	assert_null(recv_line(fd)); /* closed */
	close(fd);

	/* The server still serves others. */
	fd = connect_to(f->path);
	o = request(fd, "{\"cmd\":\"status\"}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	close(fd);
}

static void test_server_events(void **state)
{
	struct server_fixture *f = *state;
	int sub = connect_to(f->path), other = connect_to(f->path);

	struct json_object *o = request(sub, "{\"cmd\":\"subscribe\",\"id\":1}\n");
	assert_true(is_ok(o));
	assert_string_equal(str_field(o, "state"), "created");
	json_object_put(o);

	/* Start the vCPU-less VM the way vm_start would, then drive it over the socket. */
	pthread_mutex_lock(&f->vm.lock);
	f->vm.state = VM_RUNNING;
	f->vm.started_ns = 1;
	pthread_mutex_unlock(&f->vm.lock);

	o = request(other, "{\"cmd\":\"pause\",\"id\":2}\n");
	assert_true(is_ok(o));
	assert_string_equal(str_field(o, "state"), "paused");
	json_object_put(o);
	o = recv_json(sub);
	assert_string_equal(str_field(o, "event"), "state");
	assert_string_equal(str_field(o, "state"), "paused");
	assert_true(json_object_get_int64(json_object_object_get(o, "time_ms")) > 1600000000000LL);
	json_object_put(o);

	o = request(other, "{\"cmd\":\"pause\"}\n"); /* idempotent, no second event */
	assert_true(is_ok(o));
	json_object_put(o);
	o = request(other, "{\"cmd\":\"resume\"}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	o = recv_json(sub);
	assert_string_equal(str_field(o, "state"), "running");
	json_object_put(o);

	o = request(other, "{\"cmd\":\"status\"}\n");
	assert_string_equal(str_field(o, "state"), "running");
	assert_true(json_object_get_int64(json_object_object_get(o, "uptime_ms")) > 0);
	json_object_put(o);

	/* stop: the request is recorded; the stopped events come when the VM has ended
	 * (vm_wait's notification, simulated here). */
	o = request(other, "{\"cmd\":\"stop\",\"id\":3}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	pthread_mutex_lock(&f->vm.lock);
	assert_true(f->vm.stop_requested);
	assert_int_equal(f->vm.exit_status, 0);
	assert_string_equal(f->vm.exit_reason, "stopped by hvctl");
	f->vm.state = VM_STOPPED;
	vm_state_listener_fn fn = f->vm.listener;
	void *opaque = f->vm.listener_opaque;
	pthread_mutex_unlock(&f->vm.lock);
	assert_non_null(fn);
	fn(opaque, &f->vm, VM_STOPPED);

	o = recv_json(sub);
	assert_string_equal(str_field(o, "event"), "state");
	assert_string_equal(str_field(o, "state"), "stopped");
	json_object_put(o);
	o = recv_json(sub);
	assert_string_equal(str_field(o, "event"), "stopped");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "status")), 0);
	assert_string_equal(str_field(o, "reason"), "stopped by hvctl");
	json_object_put(o);

	o = request(other, "{\"cmd\":\"resume\"}\n");
	assert_error_contains(o, "cannot resume: the VM has stopped");
	json_object_put(o);

	/* The non-subscriber got no events: its next line is the answer to its request. */
	o = request(other, "{\"cmd\":\"status\",\"id\":99}\n");
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 99);
	json_object_put(o);

	/* control_stop: socket removed, then EOF on every connection. */
	control_stop(f->cs);
	f->cs = NULL;
	assert_null(recv_line(sub));
	assert_null(recv_line(other));
	struct stat st;
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(f->vm.listener);
	close(sub);
	close(other);
}

static int h_emit(struct ctl_call *call, void *opaque)
{
	struct json_object *ev = json_object_new_object();

	json_object_object_add(ev, "event", json_object_new_string("progress"));
	json_object_object_add(ev, "pct", json_object_new_int(50));
	control_emit_event(call->ctx, ev);
	json_object_put(ev);
	call->subscribe = 1;
	return 0;
}

static void test_server_registered_command(void **state)
{
	struct server_fixture *f = *state;

	assert_int_equal(control_register_command(f->cs, "job", h_emit, NULL), 0);
	assert_int_equal(control_register_command(f->cs, "status", h_emit, NULL), -1);
	assert_ptr_equal(control_vm(f->cs), &f->vm);
	int fd = connect_to(f->path);
	struct json_object *o = request(fd, "{\"cmd\":\"job\",\"id\":5}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	o = recv_json(fd);
	assert_string_equal(str_field(o, "event"), "progress");
	json_object_put(o);
	close(fd);
}

/* A subscriber that never reads is dropped; the server and other clients carry on and
 * nobody blocks. */
static void test_server_slow_subscriber_dropped(void **state)
{
	struct server_fixture *f = *state;
	int slow = connect_to(f->path);
	int rcv = 4096;

	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	struct json_object *o = request(slow, "{\"cmd\":\"subscribe\"}\n");
	json_object_put(o);
	struct json_object *ev = json_object_new_object();
	char pad[1024];
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	json_object_object_add(ev, "event", json_object_new_string("pad"));
	json_object_object_add(ev, "pad", json_object_new_string(pad));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* ~3 MiB of events, more than the 1 MiB a client may have pending. Emitting in batches
	 * lets the server thread drain the bounded event queue. */
	for (int i = 0; i < 3000; i++) {
		control_emit_event(f->cs, ev);
		if (i % 500 == 499)
			usleep(50000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	json_object_put(ev);
	assert_true(t1.tv_sec - t0.tv_sec < 5);

	int fd = connect_to(f->path);
	o = request(fd, "{\"cmd\":\"status\"}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	close(fd);

	/* The slow one was closed: reading everything ends in EOF, not in a 5 s timeout. */
	char buf[65536];
	ssize_t n;
	size_t total = 0;
	for (;;) {
		struct pollfd p = { .fd = slow, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 5000), 1);
		n = recv(slow, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	assert_true(total < 3000u * 1100u);
	close(slow);
}

static void test_server_client_limit(void **state)
{
	struct server_fixture *f = *state;
	int fds[16];

	for (int i = 0; i < 16; i++) {
		fds[i] = connect_to(f->path);
		struct json_object *o = request(fds[i], "{\"cmd\":\"status\"}\n");
		assert_true(is_ok(o));
		json_object_put(o);
	}
	int extra = connect_to(f->path);
	struct json_object *o = recv_json(extra);
	assert_error_contains(o, "too many control connections");
	json_object_put(o);
	assert_null(recv_line(extra));
	close(extra);
	close(fds[0]);
	usleep(50000);
	extra = connect_to(f->path);
	o = request(extra, "{\"cmd\":\"status\"}\n");
	assert_true(is_ok(o));
	json_object_put(o);
	close(extra);
	for (int i = 1; i < 16; i++)
		close(fds[i]);
}

/* A client that sends its last request without '\n' and shuts down its side still gets
 * the answer. */
static void test_server_half_close(void **state)
{
	struct server_fixture *f = *state;
	int fd = connect_to(f->path);

	send_str(fd, "{\"cmd\":\"status\",\"id\":1}\n{\"cmd\":\"status\",\"id\":2}");
	shutdown(fd, SHUT_WR);
	struct json_object *o = recv_json(fd);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 1);
	json_object_put(o);
	o = recv_json(fd);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "id")), 2);
	json_object_put(o);
	assert_null(recv_line(fd));
	close(fd);
}

static void test_server_replaces_stale_socket(void **state)
{
	char dir[] = "/tmp/hv-ctltest-XXXXXX", path[108];
	struct vm vm;

	assert_non_null(mkdtemp(dir));
	setenv("HV_RUN_DIR", dir, 1);
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.name, sizeof(vm.name), "stale");
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	assert_int_equal(rundir_socket_path("stale", path, sizeof(path)), 0);
	/* A socket file whose server is gone, as a crashed VM leaves it. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s);

	struct control_server *cs = control_start(&vm);
	assert_non_null(cs);
	int fd = connect_to(path);
	struct json_object *o = request(fd, "{\"cmd\":\"status\"}\n");
	assert_string_equal(str_field(o, "name"), "stale");
	json_object_put(o);
	close(fd);
	control_stop(cs);
	assert_int_equal(access(path, F_OK), -1);
	pthread_mutex_destroy(&vm.lock);
	pthread_cond_destroy(&vm.cond);
	assert_int_equal(rmdir(dir), 0);
	unsetenv("HV_RUN_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_keeps_id_of_bad_request),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_ids_of_every_json_type),
		cmocka_unit_test(test_response_shape),
		cmocka_unit_test(test_dispatch_commands),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_state_event),
		cmocka_unit_test(test_stopped_event_round_trip),
		cmocka_unit_test(test_format_line_bounds),
		cmocka_unit_test_setup_teardown(test_server_status, server_setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_server_bad_requests_keep_connection,
						server_setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_server_oversized_line_closes, server_setup,
						server_teardown),
		cmocka_unit_test_setup_teardown(test_server_events, server_setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_server_registered_command, server_setup,
						server_teardown),
		cmocka_unit_test_setup_teardown(test_server_slow_subscriber_dropped, server_setup,
						server_teardown),
		cmocka_unit_test_setup_teardown(test_server_client_limit, server_setup,
						server_teardown),
		cmocka_unit_test_setup_teardown(test_server_half_close, server_setup,
						server_teardown),
		cmocka_unit_test(test_server_replaces_stale_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
