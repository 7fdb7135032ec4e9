/* A client connection to one VM's control socket, shared by the hvctl subcommands. */
#ifndef TOOLS_CTL_CLIENT_H
#define TOOLS_CTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/clock.h"

struct json_object;

struct ctl_conn {
	int fd;
	const char *name;
	char *buf;
	size_t len, cap;
	int next_id;
};

enum { CTL_CONN_OK = 0, CTL_CONN_ABSENT = 1, CTL_CONN_FAILED = 2 };

/* Connects to NAME's socket. CTL_CONN_ABSENT when no VM of that name is running (also for a
 * stale socket left by a crashed VM). Messages only when !quiet. */
int ctl_conn_open(struct ctl_conn *c, const char *name, bool quiet);
void ctl_conn_close(struct ctl_conn *c);
/* Next line from the VM (NUL-terminated, malloc'd). 1 got a line, 0 end of connection,
 * -1 read error, -2 the deadline passed (deadline_never() waits as long as the VM lives). */
int ctl_conn_read_line(struct ctl_conn *c, struct deadline deadline, char **line);
/* Sends req (adding an "id") and returns the reply with that id, or NULL (with a message
 * unless quiet). An ok:false reply is returned as well: see ctl_reply_ok. */
struct json_object *ctl_conn_request(struct ctl_conn *c, struct json_object *req, int timeout_ms,
				     bool quiet);
/* ctl_conn_request of {"cmd": cmd}. */
struct json_object *ctl_conn_call(struct ctl_conn *c, const char *cmd, int timeout_ms, bool quiet);
/* true if the reply says ok:true; otherwise prints the VM's error and returns false. */
bool ctl_reply_ok(struct json_object *reply, const char *name);
void ctl_no_such_vm(const char *name);

#endif
