#include "hv/control_proto.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static int malformed(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "malformed request: %s", why);
	return -1;
}

int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, char *err,
		      size_t errlen)
{
	memset(req, 0, sizeof(*req));
	if (len > CTL_MAX_LINE) {
		char why[96];
		snprintf(why, sizeof(why), "longer than %d bytes", CTL_MAX_LINE);
		return malformed(err, errlen, why);
	}
	if (memchr(line, '\0', len))
		return malformed(err, errlen, "contains a NUL byte");

	/* json-c wants the terminating NUL to know that the input ends (a bare number). */
	char *text = malloc(len + 1);
	struct json_tokener *tok = text ? json_tokener_new() : NULL;
	if (!tok) {
		free(text);
		return malformed(err, errlen, "out of memory");
	}
	memcpy(text, line, len);
	text[len] = '\0';
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	free(text);

	if (jerr == json_tokener_continue)
		return malformed(err, errlen, "the line ends inside a JSON value");
	if (jerr != json_tokener_success) {
		char why[128];
		snprintf(why, sizeof(why), "%s at byte %zu", json_tokener_error_desc(jerr), end);
		return malformed(err, errlen, why);
	}
	req->obj = obj; /* NULL for a JSON null */
	for (size_t i = end; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return malformed(err, errlen, "unexpected text after the JSON object");
	if (!json_object_is_type(obj, json_type_object))
		return malformed(err, errlen, "a request must be a JSON object");

	struct json_object *v;
	if (json_object_object_get_ex(obj, "id", &v)) {
		req->has_id = 1;
		req->id = v; /* NULL for a JSON null */
	}
	if (!json_object_object_get_ex(obj, "cmd", &v))
		return malformed(err, errlen, "missing \"cmd\"");
	if (!json_object_is_type(v, json_type_string))
		return malformed(err, errlen, "\"cmd\" must be a string");
	req->cmd = json_object_get_string(v);
	return 0;
}

void ctl_request_free(struct ctl_request *req)
{
	if (req->obj)
		json_object_put(req->obj);
	memset(req, 0, sizeof(*req));
}

static struct json_object *response_base(const struct ctl_request *req, int ok)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	/* json-c's JSON null is a NULL pointer: json_object_get(NULL) adds "id":null. */
	if (req && req->has_id)
		json_object_object_add(o, "id", json_object_get(req->id));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	return o;
}

struct json_object *ctl_response_new(const struct ctl_request *req)
{
	return response_base(req, 1);
}

struct json_object *ctl_error_new(const struct ctl_request *req, const char *msg)
{
	struct json_object *o = response_base(req, 0);

	if (o)
		json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

struct json_object *ctl_event_state_new(const char *state, uint64_t time_ms)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "event", json_object_new_string("state"));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "time_ms", json_object_new_int64((int64_t)time_ms));
	return o;
}

struct json_object *ctl_event_stopped_new(int status, const char *reason, uint64_t time_ms)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "event", json_object_new_string("stopped"));
	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(o, "reason", json_object_new_string(reason ? reason : ""));
	json_object_object_add(o, "time_ms", json_object_new_int64((int64_t)time_ms));
	return o;
}

int ctl_format_line(struct json_object *obj, char *buf, size_t len)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(obj, JSON_FLAGS, &n);

	if (!s || n + 2 > len || n + 1 > INT_MAX)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return (int)(n + 1);
}

char *ctl_format_line_alloc(struct json_object *obj, size_t *len)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(obj, JSON_FLAGS, &n);
	char *line;

	if (!s || !(line = malloc(n + 2)))
		return NULL;
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

int ctl_table_add(struct ctl_table *t, const char *name, ctl_handler_fn fn, void *opaque)
{
	int n = atomic_load_explicit(&t->n, memory_order_relaxed);

	if (!name || !name[0] || strlen(name) >= CTL_CMD_NAME_MAX || !fn ||
	    n >= CTL_MAX_COMMANDS || ctl_table_find(t, name))
		return -1;
	struct ctl_command *c = &t->cmds[n];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->fn = fn;
	c->opaque = opaque;
	atomic_store_explicit(&t->n, n + 1, memory_order_release);
	return 0;
}

int ctl_table_count(const struct ctl_table *t)
{
	return atomic_load_explicit(&((struct ctl_table *)t)->n, memory_order_acquire);
}

const struct ctl_command *ctl_table_at(const struct ctl_table *t, int i)
{
	return i >= 0 && i < ctl_table_count(t) ? &t->cmds[i] : NULL;
}

const struct ctl_command *ctl_table_find(const struct ctl_table *t, const char *name)
{
	int n = ctl_table_count(t);

	for (int i = 0; i < n; i++)
		if (!strcmp(t->cmds[i].name, name))
			return &t->cmds[i];
	return NULL;
}

char *ctl_handle_line(const struct ctl_table *t, void *ctx, const char *line, size_t len,
		      size_t *out_len, int *subscribe)
{
	struct ctl_request req;
	struct json_object *resp = NULL;
	char err[CTL_ERR_MAX];
	const struct ctl_command *c;

	*subscribe = 0;
	if (ctl_parse_request(line, len, &req, err, sizeof(err)) < 0) {
		resp = ctl_error_new(&req, err);
	} else if (!(c = ctl_table_find(t, req.cmd))) {
		snprintf(err, sizeof(err), "unknown command '%.64s'", req.cmd);
		resp = ctl_error_new(&req, err);
	} else {
		struct ctl_call call = { .ctx = ctx, .req = &req, .resp = ctl_response_new(&req) };
		if (!call.resp) {
			ctl_request_free(&req);
			return NULL;
		}
		if (c->fn(&call, c->opaque) < 0) {
			json_object_put(call.resp);
			resp = ctl_error_new(&req, call.err[0] ? call.err : "command failed");
		} else {
			resp = call.resp;
			*subscribe = call.subscribe;
		}
	}
	char *out = resp ? ctl_format_line_alloc(resp, out_len) : NULL;
	if (resp)
		json_object_put(resp);
	ctl_request_free(&req);
	return out;
}
