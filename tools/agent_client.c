/* Calling a host agent (see agent_client.h). */
#include "tools/agent_client.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hv/printable.h"
#include "migrate/tls.h"

int agent_open(struct agent_conn *c, const char *host, const struct tls_options *tls, char *err, size_t errlen)
{
	char addr[300];
	struct tls_context *ctx = NULL;

	c->fd = -1;
	c->buf = NULL;
	c->tls = NULL;
	if (agent_address(host, addr, sizeof(addr), err, errlen) < 0)
		return -1;
	if (tls && tls_options_any(tls)) {
		ctx = tls_context_new(tls, TLS_CLIENT, err, errlen);
		if (!ctx)
			return -1;
	}
	int r = agent_connect(c, addr, ctx, AGENT_CONNECT_MS, err, errlen);
	tls_context_free(ctx); /* the session keeps what it needs */
	return r;
}

/* The reason of an ok:false reply, printable, into err. */
static void reply_error(const struct agent_conn *c, struct json_object *reply, const char *verb, char *err,
			size_t errlen)
{
	struct json_object *v;
	char why[300] = "it gave no reason";

	if (json_object_object_get_ex(reply, "error", &v))
		printable(why, sizeof(why), json_object_get_string(v));
	snprintf(err, errlen, "agent %s%s: %s", c->peer, verb, why);
}

struct json_object *agent_call(struct agent_conn *c, const char *cmd, struct json_object *args, char *err,
			       size_t errlen)
{
	struct json_object *req = json_object_new_object(), *v;

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (args) {
		json_object_object_foreach(args, k, val)
			json_object_object_add(req, k, json_object_get(val));
	}
	struct json_object *reply = agent_conn_request(c, req, AGENT_REPLY_MS, NULL, NULL, err, errlen);
	json_object_put(req);
	if (!reply)
		return NULL;
	if (json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v))
		return reply;
	reply_error(c, reply, "", err, errlen);
	json_object_put(reply);
	return NULL;
}

struct exec_sink {
	FILE *out, *errf;
	char **captured;
	size_t cap_len;
};

/* Output of the remote command: printable ASCII and line breaks only. */
static void write_clean(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		fputc(ch == '\n' || ch == '\t' || ch == '\r' || (ch >= 0x20 && ch < 0x7f) ? ch : '?', f);
	}
	fflush(f);
}

static void on_output(struct json_object *ev, void *opaque)
{
	struct exec_sink *s = opaque;
	struct json_object *fd, *data;

	if (!json_object_object_get_ex(ev, "fd", &fd) || !json_object_object_get_ex(ev, "data", &data) ||
	    !json_object_is_type(data, json_type_string))
		return;
	const char *d = json_object_get_string(data);
	size_t n = (size_t)json_object_get_string_len(data);
	if (json_object_get_int(fd) == 2) {
		if (s->errf)
			write_clean(s->errf, d, n);
	} else if (s->out) {
		write_clean(s->out, d, n);
	} else if (s->captured && s->cap_len + n < (64u << 20)) {
		char *b = realloc(*s->captured, s->cap_len + n + 1);
		if (b) {
			memcpy(b + s->cap_len, d, n);
			s->cap_len += n;
			b[s->cap_len] = 0;
			*s->captured = b;
		}
	}
}

int agent_exec(struct agent_conn *c, int argc, const char *const *argv, FILE *out, char **captured, FILE *errf,
	       char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object(), *arr = json_object_new_array(), *v;
	struct exec_sink sink = { .out = out, .errf = errf, .captured = captured };

	if (captured)
		*captured = NULL;
	for (int i = 0; i < argc; i++)
		json_object_array_add(arr, json_object_new_string(argv[i]));
	json_object_object_add(req, "cmd", json_object_new_string("exec"));
	json_object_object_add(req, "argv", arr);
	/* No limit between two lines: a migration's command may stay silent for a long round. */
	struct json_object *reply = agent_conn_request(c, req, -1, on_output, &sink, err, errlen);
	json_object_put(req);
	if (!reply)
		return -1;
	if (!json_object_object_get_ex(reply, "ok", &v) || !json_object_get_boolean(v)) {
		reply_error(c, reply, " refused", err, errlen);
		json_object_put(reply);
		return AGENT_EXEC_REFUSED;
	}
	int st = json_object_object_get_ex(reply, "status", &v) ? json_object_get_int(v) : -1;
	json_object_put(reply);
	if (st < 0)
		snprintf(err, errlen, "agent %s did not say how the command ended", c->peer);
	return st;
}

struct json_object *agent_list_vm(struct json_object *list, const char *name)
{
	struct json_object *vms, *v;

	if (!list || !json_object_object_get_ex(list, "vms", &vms) || !json_object_is_type(vms, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i);
		if (json_object_object_get_ex(vm, "name", &v) && json_object_is_type(v, json_type_string) &&
		    !strcmp(json_object_get_string(v), name))
			return vm;
	}
	return NULL;
}

int agent_receive(struct agent_conn *c, const char *name, char *listen, size_t len, char *err, size_t errlen)
{
	struct json_object *args = json_object_new_object(), *v;

	json_object_object_add(args, "name", json_object_new_string(name));
	struct json_object *reply = agent_call(c, "receive", args, err, errlen);
	json_object_put(args);
	if (!reply)
		return -1;
	int r = 0;
	if (!json_object_object_get_ex(reply, "listen", &v) || !json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) >= len) {
		snprintf(err, errlen, "agent %s did not say where its receiver listens", c->peer);
		r = -1;
	} else {
		printable(listen, len, json_object_get_string(v));
	}
	json_object_put(reply);
	return r;
}

void agent_cancel_receive(struct agent_conn *c, const char *name)
{
	struct json_object *args = json_object_new_object(), *reply;
	char err[300];

	json_object_object_add(args, "name", json_object_new_string(name));
	reply = agent_call(c, "cancel-receive", args, err, sizeof(err));
	json_object_put(args);
	json_object_put(reply);
}
