/* Authenticated, encrypted migration connections: TLS 1.3 (OpenSSL) on a connected TCP
 * socket, authenticated either by a pre-shared key (both hosts hold the same key file) or by
 * certificates (both sides present one signed by a CA the other trusts; the source also
 * checks the destination's name). Nothing of the stream is read before the peer is
 * authenticated: the handshake completes first. docs/hvctl.md shows how to set both up. */
#ifndef MIGRATE_TLS_H
#define MIGRATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "hv/clock.h"

struct wire_conn;
struct tls_context;
struct tls_session;

#define TLS_PATH_MAX 1024
#define TLS_PSK_BYTES 32
/* The first byte a TLS client sends (a handshake record): tells a TLS peer from a plain one. */
#define TLS_FIRST_BYTE 0x16
/* The destination gives a peer this long from accept to a finished handshake (and HELLO). */
#define TLS_HANDSHAKE_TIMEOUT_MS 10000
/* The source waits longer: it may queue behind a stray the destination is still serving. */
#define TLS_SOURCE_WAIT_MS 30000

/* Absolute paths (the VM process loads them; its working directory is not the caller's). */
struct tls_options {
	char psk_file[TLS_PATH_MAX];  /* 'hvctl keygen' output: 64 hex digits, mode 0600 */
	char cert_file[TLS_PATH_MAX]; /* PEM: this host's certificate (and chain) */
	char key_file[TLS_PATH_MAX];  /* PEM: its private key, mode 0600 */
	char ca_file[TLS_PATH_MAX];   /* PEM: the CA that signs the peers' certificates */
	char server_name[256];        /* source: the name the destination's certificate must
	                               * carry (default: the host part of HOST:PORT) */
};

enum tls_role { TLS_CLIENT, TLS_SERVER };

/* True if any authentication is configured. */
bool tls_options_any(const struct tls_options *o);
/* Checks the combination (a key, or certificate + key + CA) and loads every file. NULL with
 * one line in err naming the file, the cause and the fix. */
struct tls_context *tls_context_new(const struct tls_options *o, enum tls_role role, char *err,
				    size_t errlen);
void tls_context_free(struct tls_context *ctx);

/* Runs the handshake on connected socket fd, finished (peer authenticated) by `by`. The
 * client checks the server's certificate against host (a DNS name or an IP address). NULL
 * with one line in err saying what failed and what to check. */
struct tls_session *tls_handshake(struct tls_context *ctx, int fd, const char *host,
				  struct deadline by, char *err, size_t errlen);
/* Makes c move its bytes through the session (c->fd is the socket, for timeouts). */
void tls_session_conn(struct tls_session *s, struct wire_conn *c);
/* E.g. "TLS 1.3, TLS_AES_128_GCM_SHA256, pre-shared key". */
void tls_session_describe(const struct tls_session *s, char *out, size_t outlen);
/* Sends close_notify (without waiting for the peer's) and frees; the socket stays open. */
void tls_session_free(struct tls_session *s);

/* Writes a fresh random key to path, a new file of mode 0600. 0, or -1 with a message. */
int tls_keygen(const char *path, char *err, size_t errlen);

#endif
