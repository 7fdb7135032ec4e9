/* Calling a host agent ('hvctl serve') from hvctl: connect with this side's key, ask for
 * its resources or a receiver, run a command there with its output passed through. */
#ifndef TOOLS_AGENT_CLIENT_H
#define TOOLS_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tools/agent_conn.h"

struct json_object;
struct tls_options;

#define AGENT_CONNECT_MS 10000
#define AGENT_REPLY_MS 60000

/* Connects to the agent on host (HOST or HOST:PORT) with the key or certificates in tls
 * (none configured: a plain connection, which only a loopback agent accepts). 0, or -1 with
 * one line in err. */
int agent_open(struct agent_conn *c, const char *host, const struct tls_options *tls, char *err, size_t errlen);

/* {"cmd": cmd} plus the fields of args (may be NULL; not consumed). The reply if it says
 * ok:true (caller frees); else NULL with the agent's reason, or the failure, in err. */
struct json_object *agent_call(struct agent_conn *c, const char *cmd, struct json_object *args, char *err,
			       size_t errlen);

/* Runs an hvctl command line on the agent. Its standard output goes to out (NULL: kept in
 * *captured, malloc'd, when captured is not NULL) and its standard error to errf, each
 * byte outside printable ASCII (but newline, tab, CR) shown as '?'. The command's exit
 * status; AGENT_EXEC_REFUSED with err set if the agent refused it (nothing ran); -1 with
 * err set if the connection failed: then what the command did is unknown. */
#define AGENT_EXEC_REFUSED (-2)
int agent_exec(struct agent_conn *c, int argc, const char *const *argv, FILE *out, char **captured, FILE *errf,
	       char *err, size_t errlen);

/* In a "list" reply, the status object of VM name (owned by list), or NULL if it is not
 * there or the reply has no list. */
struct json_object *agent_list_vm(struct json_object *list, const char *name);

/* Asks the agent to receive VM name; its listening address into listen. 0, or -1. */
int agent_receive(struct agent_conn *c, const char *name, char *listen, size_t len, char *err, size_t errlen);
/* Stops a receiver started for name that no source has reached (a migration that failed
 * before it connected); one that has a source is left alone. */
void agent_cancel_receive(struct agent_conn *c, const char *name);

#endif
