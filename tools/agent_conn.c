/* The host agent's connection: JSON lines over TCP, inside TLS when a key is configured. */
#include "tools/agent_conn.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/control_proto.h"
#include "hv/printable.h"
#include "migrate/channel.h"
#include "migrate/tls.h"

int agent_address(const char *arg, char *out, size_t outlen, char *err, size_t errlen)
{
	char host[256], port[32], e[256];
	bool has_port = strchr(arg, ':') && (arg[0] != '[' || strstr(arg, "]:"));

	int n = has_port ? snprintf(out, outlen, "%s", arg) : snprintf(out, outlen, "%s:%s", arg, AGENT_DEFAULT_PORT);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "host '%.40s...' is too long", arg);
		return -1;
	}
	if (channel_parse_hostport(out, host, sizeof(host), port, sizeof(port), e, sizeof(e)) < 0 || !host[0]) {
		char p[64];
		snprintf(err, errlen, "'%s' is not an agent's address: use HOST or HOST:PORT (default port %s)",
			 printable(p, sizeof(p), arg), AGENT_DEFAULT_PORT);
		return -1;
	}
	return 0;
}

static void conn_init(struct agent_conn *c, int fd, struct tls_session *tls)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->tls = tls;
	c->next_id = 1;
	if (tls)
		tls_session_conn(tls, &c->io);
	else
		wire_conn_init_fd(&c->io, fd);
}

void agent_conn_accepted(struct agent_conn *c, int fd, struct tls_session *tls, const char *peer)
{
	conn_init(c, fd, tls);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
}

void agent_conn_close(struct agent_conn *c)
{
	tls_session_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

int agent_conn_write(struct agent_conn *c, const char *p, size_t len)
{
	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = c->io.ops->writev(c->io.opaque, &iov, 1);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int agent_conn_send(struct agent_conn *c, struct json_object *obj)
{
	size_t len;
	char *line = ctl_format_line_alloc(obj, &len);

	if (!line)
		return -1;
	int r = agent_conn_write(c, line, len);
	free(line);
	return r;
}

int agent_conn_read_line(struct agent_conn *c, int timeout_ms, char **line)
{
	channel_set_recv_timeout(c->fd, timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			*line = malloc(n + 1);
			if (!*line)
				return -1;
			memcpy(*line, c->buf, n);
			(*line)[n] = 0;
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return 1;
		}
		if (c->len >= AGENT_MAX_LINE)
			return -1;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b = realloc(c->buf, cap);
			if (!b)
				return -1;
			c->buf = b;
			c->cap = cap;
		}
		struct iovec iov = { .iov_base = c->buf + c->len, .iov_len = c->cap - c->len };
		ssize_t n = c->io.ops->readv(c->io.opaque, &iov, 1);
		if (n == -EINTR)
			continue;
		if (n == 0)
			return 0;
		if (n < 0) {
			const char *why = c->io.ops->strerror ? c->io.ops->strerror(c->io.opaque, (int)-n) : NULL;
			snprintf(c->io_err, sizeof(c->io_err), "%s", why ? why : strerror((int)-n));
			return -1;
		}
		c->len += (size_t)n;
	}
}

struct json_object *agent_conn_request(struct agent_conn *c, struct json_object *req, int timeout_ms,
				       void (*on_event)(struct json_object *ev, void *opaque), void *opaque,
				       char *err, size_t errlen)
{
	int id = c->next_id++;

	json_object_object_add(req, "id", json_object_new_int(id));
	if (agent_conn_send(c, req) < 0) {
		snprintf(err, errlen, "the agent at %s closed the connection", c->peer);
		return NULL;
	}
	for (;;) {
		char *line;
		int r = agent_conn_read_line(c, timeout_ms, &line);
		if (r <= 0) {
			if (r < 0 && c->io_err[0])
				snprintf(err, errlen, "lost the agent at %s: %s", c->peer, c->io_err);
			else
				snprintf(err, errlen, r == 0 ? "the agent at %s closed the connection"
							     : "no answer from the agent at %s (timed out or connection lost)",
					 c->peer);
			return NULL;
		}
		struct json_object *obj = json_tokener_parse(line);
		free(line);
		if (!obj || !json_object_is_type(obj, json_type_object)) {
			json_object_put(obj);
			snprintf(err, errlen, "the agent at %s sent something that is not a JSON object", c->peer);
			return NULL;
		}
		struct json_object *v;
		if (json_object_object_get_ex(obj, "id", &v) && json_object_get_int(v) == id)
			return obj;
		if (on_event && json_object_object_get_ex(obj, "event", NULL))
			on_event(obj, opaque);
		json_object_put(obj);
	}
}

int agent_connect(struct agent_conn *c, const char *addr, struct tls_context *ctx, int timeout_ms,
		  char *err, size_t errlen)
{
	char host[256], port[32], e[400];

	conn_init(c, -1, NULL);
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
	/* An agent that dies mid-call must end the call with a message, not this process. */
	signal(SIGPIPE, SIG_IGN);
	if (channel_parse_hostport(addr, host, sizeof(host), port, sizeof(port), e, sizeof(e)) < 0) {
		snprintf(err, errlen, "%s", e);
		return -1;
	}
	int fd = channel_connect(addr, timeout_ms, e, sizeof(e));
	if (fd < 0) {
		if (!strncmp(e, "connection refused", 18))
			snprintf(err, errlen, "connection refused by %s: is 'hvctl serve' running there?", addr);
		else
			snprintf(err, errlen, "%s", e);
		return -1;
	}
	struct tls_session *s = NULL;
	if (ctx) {
		s = tls_handshake(ctx, fd, host, deadline_in_ms(timeout_ms), e, sizeof(e));
		if (!s) {
			close(fd);
			snprintf(err, errlen, "agent %s: %s", addr, e);
			return -1;
		}
	}
	conn_init(c, fd, s);
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
	channel_set_send_timeout(fd, timeout_ms);

	struct json_object *req = json_object_new_object(), *v;
	json_object_object_add(req, "cmd", json_object_new_string("hello"));
	struct json_object *reply = agent_conn_request(c, req, timeout_ms, NULL, NULL, e, sizeof(e));
	json_object_put(req);
	if (!reply) {
		if (ctx && c->io_err[0])
			snprintf(err, errlen, "agent %s refused this side: %s (is this host's certificate valid and "
				 "signed by the agent's --tls-ca?)", addr, c->io_err);
		else if (ctx)
			snprintf(err, errlen, "%s did not answer as an hv agent: is 'hvctl serve' listening there?", addr);
		else
			snprintf(err, errlen, "%s did not answer without a key: give the agent's --psk FILE or "
				 "--tls-cert/--tls-key/--tls-ca (or is 'hvctl serve' not listening there?)", addr);
		agent_conn_close(c);
		return -1;
	}
	bool ok = json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v) &&
		  json_object_object_get_ex(reply, "agent", &v) && !strcmp(json_object_get_string(v), "hv");
	if (!ok) {
		char why[200] = "it is not an hv agent";
		if (json_object_object_get_ex(reply, "error", &v))
			printable(why, sizeof(why), json_object_get_string(v));
		snprintf(err, errlen, "agent %s: %s", addr, why);
		json_object_put(reply);
		agent_conn_close(c);
		return -1;
	}
	json_object_put(reply);
	return 0;
}
