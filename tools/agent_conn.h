/* One connection of the host agent's protocol (docs/agent.md): JSON lines, as on a VM's
 * control socket, over TCP, inside TLS 1.3 authenticated by the migration key or
 * certificates (migrate/tls.h) unless both ends run without them on loopback. Used by
 * 'hvctl serve' (the agent) and by the hvctl commands that call one. */
#ifndef TOOLS_AGENT_CONN_H
#define TOOLS_AGENT_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "hv/clock.h"
#include "migrate/wire.h"

struct json_object;
struct tls_context;
struct tls_session;
struct tls_options;

#define AGENT_DEFAULT_PORT "7460"
/* Longest line either side accepts (exec output comes in chunks well below this). */
#define AGENT_MAX_LINE (1u << 20)

struct agent_conn {
	int fd;
	struct tls_session *tls;
	struct wire_conn io;
	char *buf;
	size_t len, cap;
	int next_id;
	char peer[160]; /* "HOST:PORT" as the caller named it (client) or as accepted (agent) */
	char io_err[256]; /* what the last failed read said (TLS: an alert), else "" */
};

/* "HOST" or "HOST:PORT" (an agent's address; default port 7460) into "HOST:PORT" form. -1
 * with a message in err if it does not parse. */
int agent_address(const char *arg, char *out, size_t outlen, char *err, size_t errlen);

/* Client: connects to the agent at addr (agent_address form), runs the TLS handshake with
 * ctx (NULL: plain, only for a loopback agent started without a key) and checks that the
 * peer is an hv agent. 0, or -1 with one line in err naming the host, the cause and the fix. */
int agent_connect(struct agent_conn *c, const char *addr, struct tls_context *ctx, int timeout_ms,
		  char *err, size_t errlen);
/* Agent: wraps an accepted socket whose handshake (if any) is done. */
void agent_conn_accepted(struct agent_conn *c, int fd, struct tls_session *tls, const char *peer);
void agent_conn_close(struct agent_conn *c);

/* Sends len bytes (a whole line), however many writes it takes. 0, or -1 (the peer is gone). */
int agent_conn_write(struct agent_conn *c, const char *p, size_t len);
/* Sends obj as one line. 0, or -1 (the peer is gone). */
int agent_conn_send(struct agent_conn *c, struct json_object *obj);
/* The next line (NUL-terminated, malloc'd) into *line: 1, 0 at the end of the connection,
 * -1 on a read error, a line over AGENT_MAX_LINE, or timeout_ms (-1: none) without one. */
int agent_conn_read_line(struct agent_conn *c, int timeout_ms, char **line);
/* Sends req with an "id" and returns the reply with that id (events before it go to
 * on_event, when not NULL). NULL with a message in err if the connection failed, the reply
 * was not JSON, or timeout_ms passed between two lines. */
struct json_object *agent_conn_request(struct agent_conn *c, struct json_object *req, int timeout_ms,
				       void (*on_event)(struct json_object *ev, void *opaque), void *opaque,
				       char *err, size_t errlen);

#endif
