/* The control protocol codec (docs/control-protocol.md): JSON lines over a UNIX stream socket.
 * Pure functions: parse a request line, build responses and events, serialise them as lines,
 * and dispatch a line through a command table. No sockets and no VM here, so all of it is
 * unit-tested (tests/unit/test_control_proto.c). JSON is handled by json-c. */
#ifndef HV_CONTROL_PROTO_H
#define HV_CONTROL_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Longest request line (without its '\n'); a longer one closes the connection. */
#define CTL_MAX_LINE (64 * 1024)
#define CTL_ERR_MAX 256
#define CTL_CMD_NAME_MAX 32
#define CTL_MAX_COMMANDS 32

/* One parsed request: {"cmd": "...", "id": <any JSON>, ...arguments}. */
struct ctl_request {
	struct json_object *obj; /* the whole request object (owned); arguments are read from it */
	const char *cmd;         /* points into obj; NULL if the request could not be parsed */
	struct json_object *id;  /* points into obj (json-c's NULL for a JSON null) */
	int has_id;              /* the request had an "id", echoed back in the response */
};

/* Parses one line (len bytes, no '\n'; need not be NUL-terminated). 0 on success. -1 on a
 * malformed request, with err set to "malformed request: <why>"; req->id/has_id are still
 * set when the line was a JSON object with an "id", so that the error can carry it.
 * Always call ctl_request_free afterwards. */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, char *err,
		      size_t errlen);
void ctl_request_free(struct ctl_request *req);

/* New response objects (caller owns them; json_object_put to free): {"id":..,"ok":true} and
 * {"id":..,"ok":false,"error":msg}. "id" is the request's (shared reference), present only
 * when the request had one; req may be NULL. Handlers add result fields to ok:true ones. */
struct json_object *ctl_response_new(const struct ctl_request *req);
struct json_object *ctl_error_new(const struct ctl_request *req, const char *msg);
/* {"event":"state","state":STATE,"time_ms":T} */
struct json_object *ctl_event_state_new(const char *state, uint64_t time_ms);
/* {"event":"stopped","status":S,"reason":R,"time_ms":T} */
struct json_object *ctl_event_stopped_new(int status, const char *reason, uint64_t time_ms);

/* obj as one line ending in '\n' (json-c's compact form; never contains a raw newline).
 * ctl_format_line writes into buf and returns the length, or -1 if it does not fit
 * (including a terminating NUL). ctl_format_line_alloc returns a malloc'd line, or NULL. */
int ctl_format_line(struct json_object *obj, char *buf, size_t len);
char *ctl_format_line_alloc(struct json_object *obj, size_t *len);

/* A command handler. It reads arguments from call->req->obj, adds result fields to
 * call->resp and returns 0, or writes a message to call->err and returns -1 (the response
 * becomes {"ok":false,"error":err}). Setting call->subscribe makes the connection that
 * sent the request receive events from then on. */
struct ctl_call {
	void *ctx; /* the dispatcher's context (the control server) */
	const struct ctl_request *req;
	struct json_object *resp;
	int subscribe;
	char err[CTL_ERR_MAX];
};
typedef int (*ctl_handler_fn)(struct ctl_call *call, void *opaque);

struct ctl_command {
	char name[CTL_CMD_NAME_MAX];
	ctl_handler_fn fn;
	void *opaque;
};

/* Command table, append-only: ctl_table_add may run while other threads look up (the count
 * is published after the entry is written); concurrent ctl_table_add calls must be serialised
 * by the caller. Zero-initialise before use. */
struct ctl_table {
	struct ctl_command cmds[CTL_MAX_COMMANDS];
	atomic_int n;
};

/* 0, or -1 if the name is empty/too long/already present or the table is full. */
int ctl_table_add(struct ctl_table *t, const char *name, ctl_handler_fn fn, void *opaque);
const struct ctl_command *ctl_table_find(const struct ctl_table *t, const char *name);
/* Number of commands and the i-th one (in the order they were added). */
int ctl_table_count(const struct ctl_table *t);
const struct ctl_command *ctl_table_at(const struct ctl_table *t, int i);

/* Handles one request line: parse, look up, run the handler with ctx, build the response.
 * Returns the response line (malloc'd, ending in '\n', length in *out_len), or NULL only when
 * out of memory. *subscribe is set to 1 if the handler asked for events. */
char *ctl_handle_line(const struct ctl_table *t, void *ctx, const char *line, size_t len,
		      size_t *out_len, int *subscribe);

#endif
