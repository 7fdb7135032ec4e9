/* TCP channels for migration: HOST:PORT parsing, connect, listen, accept. */
#ifndef MIGRATE_CHANNEL_H
#define MIGRATE_CHANNEL_H

#include <stddef.h>

/* Splits "HOST:PORT" or "[V6]:PORT" (port 0: any, for a listener). 0, or -1 with a message in err. */
int channel_parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
			   char *err, size_t errlen);
/* Connected, blocking TCP socket, or -1 with a message ("connection refused by
 * 127.0.0.1:4444: is 'hvctl receive' listening there?"). timeout_ms bounds the connect. */
int channel_connect(const char *hostport, int timeout_ms, char *err, size_t errlen);
/* Listening socket, or -1 with a message. */
int channel_listen(const char *hostport, char *err, size_t errlen);
/* Accepts one connection within timeout_ms (-1: forever). -1 with a message on failure;
 * CHANNEL_CANCELLED (no message) as soon as cancel_fd (-1: none) becomes readable. */
#define CHANNEL_CANCELLED (-2)
int channel_accept(int listen_fd, int timeout_ms, int cancel_fd, char *peer, size_t peerlen, char *err,
		   size_t errlen);
/* Timeouts for blocking reads and writes (0: none), so a stalled peer cannot hang us. */
/* The local port a socket is bound to, or -1. */
int channel_local_port(int fd);
void channel_set_recv_timeout(int fd, int timeout_ms);
void channel_set_send_timeout(int fd, int timeout_ms);

#endif
