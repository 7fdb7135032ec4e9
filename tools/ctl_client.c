/* A client connection to one VM's control socket (docs/control-protocol.md): requests
 * carry an "id"; the reply is the line with the same id, events in between are skipped. */
#include "tools/ctl_client.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv/control_proto.h"
#include "hv/log.h"
#include "hv/rundir.h"

#define MAX_REPLY (16u << 20)

void ctl_conn_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = c->cap = 0;
}

void ctl_no_such_vm(const char *name)
{
	hv_error("no VM named '%s' is running (see 'hvctl list')", name);
}

/* Connects to NAME's socket. CTL_CONN_ABSENT when no VM of that name is running (also for a
 * stale socket left by a crashed VM). Messages only when !quiet. */
int ctl_conn_open(struct ctl_conn *c, const char *name, bool quiet)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->name = name;
	c->next_id = 1;
	if (!rundir_path())
		return CTL_CONN_FAILED;
	if (rundir_socket_path(name, addr.sun_path, sizeof(addr.sun_path)) < 0) {
		/* No VM could have bound a path this long. */
		if (!quiet)
			ctl_no_such_vm(name);
		return CTL_CONN_ABSENT;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		if (!quiet)
			hv_error("cannot create a socket: %s", strerror(errno));
		return CTL_CONN_FAILED;
	}
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;
		ctl_conn_close(c);
		if (err == ENOENT || err == ECONNREFUSED) {
			if (!quiet)
				ctl_no_such_vm(name);
			return CTL_CONN_ABSENT;
		}
		if (!quiet)
			hv_error("cannot connect to VM '%s' at %s: %s; run hvctl as the user that started the VM, with the same HV_RUN_DIR",
				 name, addr.sun_path, strerror(err));
		return CTL_CONN_FAILED;
	}
	return CTL_CONN_OK;
}

int ctl_conn_read_line(struct ctl_conn *c, struct deadline deadline, char **line)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			*line = malloc(n + 1);
			if (!*line)
				return -1;
			memcpy(*line, c->buf, n);
			(*line)[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return 1;
		}
		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *p = cap <= MAX_REPLY ? realloc(c->buf, cap) : NULL;
			if (!p)
				return -1;
			c->buf = p;
			c->cap = cap;
		}
		if (deadline_passed(deadline))
			return -2;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = poll(&pfd, 1, deadline_left_ms(deadline));
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		c->len += (size_t)n;
	}
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct json_object *ctl_conn_request(struct ctl_conn *c, struct json_object *req, int timeout_ms,
				     bool quiet)
{
	int id = c->next_id++;
	struct json_object *cmdv;
	const char *cmd = json_object_object_get_ex(req, "cmd", &cmdv) ? json_object_get_string(cmdv) : "?";
	size_t len;

	json_object_object_add(req, "id", json_object_new_int(id));
	char *line = ctl_format_line_alloc(req, &len);
	if (!line || send_all(c->fd, line, len) < 0) {
		free(line);
		if (!quiet)
			hv_error("VM '%s' closed its control connection (it is probably ending)", c->name);
		return NULL;
	}
	free(line);

	struct deadline deadline = deadline_in_ms(timeout_ms);
	for (;;) {
		int r = ctl_conn_read_line(c, deadline, &line);
		if (r <= 0) {
			if (quiet)
				return NULL;
			if (r == -2)
				hv_error("VM '%s' did not answer '%s' within %d s; it may be hung", c->name,
					 cmd, timeout_ms / 1000);
			else
				hv_error("VM '%s' closed its control connection before answering '%s' (it is probably ending)",
					 c->name, cmd);
			return NULL;
		}
		struct json_object *o = json_tokener_parse(line);
		free(line);
		struct json_object *v;
		if (!o || !json_object_is_type(o, json_type_object)) {
			if (o)
				json_object_put(o);
			if (!quiet)
				hv_error("VM '%s' sent a reply that is not a JSON object; is it a different hv version?",
					 c->name);
			return NULL;
		}
		if (!json_object_object_get_ex(o, "event", NULL) &&
		    json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_int) &&
		    json_object_get_int(v) == id)
			return o;
		json_object_put(o); /* an event, or a reply to something else */
	}
}

struct json_object *ctl_conn_call(struct ctl_conn *c, const char *cmd, int timeout_ms, bool quiet)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	struct json_object *r = ctl_conn_request(c, req, timeout_ms, quiet);
	json_object_put(req);
	return r;
}

bool ctl_reply_ok(struct json_object *r, const char *name)
{
	struct json_object *v;

	if (json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v))
		return true;
	const char *msg = json_object_object_get_ex(r, "error", &v) ? json_object_get_string(v) :
								      "request refused";
	hv_error("VM '%s': %s", name, msg);
	return false;
}
