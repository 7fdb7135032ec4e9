/* See tls.h. TLS 1.3 only. A pre-shared key is an external PSK (RFC 8446 4.2.11) with a
 * (EC)DHE exchange on top (OpenSSL's default psk_dhe_ke), so a key that leaks later does not
 * decrypt recorded streams; neither side has a certificate then, so a handshake that did
 * not use the key cannot complete. Error texts come from OpenSSL's tables, never from the
 * peer's bytes. */
#include "migrate/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrate/wire.h"

/* Both sides name the key the same way; the identity says what it is for, not whose it is. */
static const char PSK_IDENTITY[] = "hv-migration-v1";
/* TLS_AES_128_GCM_SHA256: a PSK is bound to one hash; every TLS 1.3 peer has this suite. */
static const unsigned char PSK_CIPHER[2] = { 0x13, 0x01 };
/* Writes are gathered into one buffer: one TLS record per 16 KiB instead of one per iovec. */
#define TLS_WRITE_CHUNK (64 * 1024)

struct tls_context {
	SSL_CTX *ctx;
	enum tls_role role;
	bool psk;
	unsigned char key[TLS_PSK_BYTES];
};

struct tls_session {
	SSL *ssl;
	struct tls_context *ctx;
	int fd;
	uint8_t *wbuf;
	char err[256]; /* the last failure, for wire's messages */
};

bool tls_options_any(const struct tls_options *o)
{
	return o->psk_file[0] || o->cert_file[0] || o->key_file[0] || o->ca_file[0];
}

/* The reason of the last OpenSSL error in this thread ("" if none), and clears the queue. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown error";
}

/* Opens a secret (key) file: a regular file, ours, readable by nobody else. */
static int open_secret(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", what, path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s '%s' can be read by other users (mode %04o); chmod 600 it",
			 what, path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s '%s' belongs to another user (uid %u); it must be yours",
			 what, path, (unsigned)st.st_uid);
		close(fd);
		return -1;
	}
	return fd;
}

static int load_psk(struct tls_context *c, const char *path, char *err, size_t errlen)
{
	char text[160];
	int fd = open_secret("key file", path, err, errlen);

	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read key file '%s': %s", path, strerror(errno));
		return -1;
	}
	text[n] = 0;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = 0;
	size_t len = 0;
	if (n != 2 * TLS_PSK_BYTES ||
	    !OPENSSL_hexstr2buf_ex(c->key, sizeof(c->key), &len, text, '\0') || len != TLS_PSK_BYTES) {
		ERR_clear_error();
		snprintf(err, errlen, "key file '%s' is not a key (%d hex digits); make one with 'hvctl keygen FILE'",
			 path, 2 * TLS_PSK_BYTES);
		return -1;
	}
	return 0;
}

static SSL_SESSION *psk_session(SSL *ssl, const struct tls_context *c)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, PSK_CIPHER);
	SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;

	if (s && SSL_SESSION_set1_master_key(s, c->key, sizeof(c->key)) &&
	    SSL_SESSION_set_cipher(s, cipher) && SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
		return s;
	SSL_SESSION_free(s);
	return NULL;
}

static int psk_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
			   SSL_SESSION **sess)
{
	const struct tls_context *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *s = psk_session(ssl, c);

	/* After a HelloRetryRequest the key must match the hash the server chose. */
	if (s && md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	*sess = s;
	*id = (const unsigned char *)PSK_IDENTITY;
	*idlen = strlen(PSK_IDENTITY);
	return s ? 1 : 0;
}

static int psk_find_session(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	const struct tls_context *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	*sess = NULL;
	if (idlen == strlen(PSK_IDENTITY) && !memcmp(id, PSK_IDENTITY, idlen))
		*sess = psk_session(ssl, c);
	return 1; /* an unknown identity: no PSK, and without a certificate the handshake fails */
}

static int load_certificates(struct tls_context *c, const struct tls_options *o, char *err,
			     size_t errlen)
{
	if (!o->cert_file[0] || !o->key_file[0] || !o->ca_file[0]) {
		snprintf(err, errlen, "certificates need all of --tls-cert, --tls-key and --tls-ca");
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert_file) != 1) {
		snprintf(err, errlen, "cannot load certificate '%s': %s (PEM expected)", o->cert_file, ssl_reason());
		return -1;
	}
	int fd = open_secret("private key", o->key_file, err, errlen);
	if (fd < 0)
		return -1;
	close(fd);
	if (SSL_CTX_use_PrivateKey_file(c->ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "cannot load private key '%s': %s (PEM expected)", o->key_file, ssl_reason());
		return -1;
	}
	if (SSL_CTX_check_private_key(c->ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "private key '%s' does not belong to certificate '%s'", o->key_file,
			 o->cert_file);
		return -1;
	}
	if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
		snprintf(err, errlen, "cannot load CA certificate '%s': %s (PEM expected)", o->ca_file, ssl_reason());
		return -1;
	}
	/* The destination insists on the source's certificate too: both ends are authenticated. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | (c->role == TLS_SERVER ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	return 0;
}

struct tls_context *tls_context_new(const struct tls_options *o, enum tls_role role, char *err,
				    size_t errlen)
{
	struct tls_context *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->role = role;
	c->psk = o->psk_file[0] != 0;
	if (c->psk && (o->cert_file[0] || o->key_file[0] || o->ca_file[0])) {
		snprintf(err, errlen, "use either --psk or --tls-cert/--tls-key/--tls-ca, not both");
		goto fail;
	}
	c->ctx = SSL_CTX_new(role == TLS_SERVER ? TLS_server_method() : TLS_client_method());
	if (!c->ctx || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION)) {
		snprintf(err, errlen, "cannot set up TLS: %s", ssl_reason());
		goto fail;
	}
	SSL_CTX_set_app_data(c->ctx, c);
	/* One connection per migration: no tickets, no session cache, nothing to resume. */
	SSL_CTX_set_num_tickets(c->ctx, 0);
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
	if (c->psk) {
		if (load_psk(c, o->psk_file, err, errlen) < 0)
			goto fail;
		/* The server would prefer AES-256-GCM-SHA384, whose hash the key is not bound to,
		 * and then drop the key: offer only the suites of the key's hash. */
		if (!SSL_CTX_set_ciphersuites(c->ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")) {
			snprintf(err, errlen, "cannot set up TLS: %s", ssl_reason());
			goto fail;
		}
		if (role == TLS_SERVER)
			SSL_CTX_set_psk_find_session_callback(c->ctx, psk_find_session);
		else
			SSL_CTX_set_psk_use_session_callback(c->ctx, psk_use_session);
	} else if (load_certificates(c, o, err, errlen) < 0) {
		goto fail;
	}
	return c;
fail:
	tls_context_free(c);
	return NULL;
}

void tls_context_free(struct tls_context *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	OPENSSL_cleanse(c->key, sizeof(c->key));
	free(c);
}

/* One line for a failed handshake: what the peer or we refused, and the likely fix. */
static void describe_handshake_failure(SSL *ssl, const struct tls_context *c, int ssl_err, int sys_errno,
				       char *err, size_t errlen)
{
	const char *peer = c->role == TLS_SERVER ? "the source" : "the destination";
	unsigned long e = ERR_peek_last_error();
	int reason = e && ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
	const char *text = e ? ERR_reason_error_string(e) : NULL;
	long verify = SSL_get_verify_result(ssl);

	ERR_clear_error();
	if (!text)
		text = "unknown error";
	if (!c->psk && verify != X509_V_OK) {
		snprintf(err, errlen, "%s's certificate was refused: %s%s", peer,
			 X509_verify_cert_error_string(verify),
			 verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
				 ? " (its name differs from the one connected to; see --tls-server-name)"
				 : " (check --tls-ca and the certificate's dates)");
	} else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
		   reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_HTTP_REQUEST) {
		snprintf(err, errlen, "%s does not speak TLS; start it with the same --psk or --tls-* options", peer);
	} else if (reason == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC) {
		snprintf(err, errlen, "the TLS handshake was altered in transit (bad record MAC)");
	} else if (reason > SSL_AD_REASON_OFFSET) {
		/* The peer sent an alert: it refused us. */
		snprintf(err, errlen, "%s refused the TLS handshake (%s)%s", peer, text,
			 c->psk ? ": the pre-shared keys differ; use the same --psk file on both hosts"
				: ": check that its --tls-ca signed this host's certificate");
	} else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN ||
		   reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		snprintf(err, errlen, "%s closed the connection during the TLS handshake%s%s", peer,
			 sys_errno ? ": " : "", sys_errno ? strerror(sys_errno) : "; does it use TLS with the same key or CA?");
	} else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		snprintf(err, errlen, "the source presented no certificate (start 'hvctl migrate' with "
			 "--tls-cert/--tls-key/--tls-ca)");
	} else if (c->psk && c->role == TLS_SERVER && reason == SSL_R_NO_SHARED_CIPHER) {
		snprintf(err, errlen, "the source offered no pre-shared key (start 'hvctl migrate' with --psk)");
	} else {
		snprintf(err, errlen, "TLS handshake with %s failed: %s%s", peer, text,
			 c->psk ? " (is the same --psk file used on both hosts?)" : "");
	}
}

/* Waits for fd to be ready as SSL wants; 0, or -1 when the deadline passed. */
static int wait_ready(int fd, int ssl_err, struct deadline by)
{
	struct pollfd p = { .fd = fd, .events = ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN };

	for (;;) {
		int left = deadline_left_ms(by);
		if (left == 0)
			return -1;
		int r = poll(&p, 1, left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int set_expected_host(SSL *ssl, const char *host)
{
	unsigned char addr[16];
	bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;

	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
	/* Names only: SNI must not carry an IP address. */
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

struct tls_session *tls_handshake(struct tls_context *c, int fd, const char *host, struct deadline by,
				  char *err, size_t errlen)
{
	struct tls_session *s = calloc(1, sizeof(*s));
	int flags = fcntl(fd, F_GETFL);

	ERR_clear_error();
	if (!s || !(s->wbuf = malloc(TLS_WRITE_CHUNK)) || !(s->ssl = SSL_new(c->ctx)) ||
	    SSL_set_fd(s->ssl, fd) != 1) {
		snprintf(err, errlen, "cannot set up TLS: %s", ssl_reason());
		goto fail;
	}
	s->ctx = c;
	s->fd = fd;
	if (c->role == TLS_CLIENT && !c->psk && (!host || set_expected_host(s->ssl, host) < 0)) {
		snprintf(err, errlen, "cannot check the destination's name '%s'", host ? host : "");
		goto fail;
	}
	/* Non-blocking for the handshake only, so the deadline bounds it as a whole: a peer
	 * that trickles bytes cannot stretch it. */
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	for (;;) {
		errno = 0;
		int r = c->role == TLS_SERVER ? SSL_accept(s->ssl) : SSL_connect(s->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (wait_ready(fd, e, by) == 0)
				continue;
			ERR_clear_error();
			snprintf(err, errlen, "the TLS handshake did not finish within %d s",
				 (c->role == TLS_SERVER ? TLS_HANDSHAKE_TIMEOUT_MS : TLS_SOURCE_WAIT_MS) / 1000);
		} else {
			describe_handshake_failure(s->ssl, c, e, errno, err, errlen);
		}
		fcntl(fd, F_SETFL, flags);
		goto fail;
	}
	fcntl(fd, F_SETFL, flags);
	/* A PSK context has no certificate, so a completed handshake used the key; check anyway. */
	if (c->psk && !SSL_session_reused(s->ssl)) {
		snprintf(err, errlen, "the destination answered with a certificate, not the pre-shared key: "
			 "give 'hvctl receive' the same --psk");
		goto fail;
	}
	return s;
fail:
	if (s) {
		SSL_free(s->ssl);
		free(s->wbuf);
		free(s);
	}
	return NULL;
}

/* Maps a failed SSL_read/SSL_write to -errno for the wire layer, keeping the cause. */
static ssize_t io_failure(struct tls_session *s, int r)
{
	int e = SSL_get_error(s->ssl, r);
	int sys = errno;
	unsigned long ee = ERR_peek_last_error();
	int reason = ee && ERR_GET_LIB(ee) == ERR_LIB_SSL ? ERR_GET_REASON(ee) : 0;
	const char *text = ee ? ERR_reason_error_string(ee) : NULL;

	ERR_clear_error();
	s->err[0] = 0;
	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN; /* the socket's timeout expired */
	case SSL_ERROR_SYSCALL:
		return sys ? -sys : 0;
	}
	if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return 0;
	if (reason == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)
		snprintf(s->err, sizeof(s->err), "the stream was altered in transit (TLS record authentication failed)");
	else if (reason == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC)
		snprintf(s->err, sizeof(s->err), "the peer found the stream altered in transit (TLS record "
			 "authentication failed there)");
	else if (reason > SSL_AD_REASON_OFFSET)
		snprintf(s->err, sizeof(s->err), "the peer ended TLS with an alert (%s)", text ? text : "?");
	else
		snprintf(s->err, sizeof(s->err), "TLS error: %s", text ? text : "unknown");
	return -EPROTO;
}

static ssize_t tls_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct tls_session *s = opaque;
	size_t got = 0;
	int i = 0;

	while (i < iovcnt && iov[i].iov_len == 0)
		i++;
	if (i == iovcnt)
		return 0;
	errno = 0;
	int r = SSL_read_ex(s->ssl, iov[i].iov_base, iov[i].iov_len, &got);
	return r == 1 ? (ssize_t)got : io_failure(s, r);
}

static ssize_t tls_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct tls_session *s = opaque;
	const void *src;
	size_t len = 0, written = 0;

	/* A big iovec goes as it is; small ones are gathered first. */
	if (iovcnt == 1 || iov[0].iov_len >= TLS_WRITE_CHUNK) {
		src = iov[0].iov_base;
		len = iov[0].iov_len;
	} else {
		for (int i = 0; i < iovcnt && len < TLS_WRITE_CHUNK; i++) {
			size_t n = iov[i].iov_len;
			if (n > TLS_WRITE_CHUNK - len)
				n = TLS_WRITE_CHUNK - len;
			memcpy(s->wbuf + len, iov[i].iov_base, n);
			len += n;
		}
		src = s->wbuf;
	}
	if (len == 0)
		return 0;
	errno = 0;
	int r = SSL_write_ex(s->ssl, src, len, &written);
	return r == 1 ? (ssize_t)written : io_failure(s, r);
}

static const char *tls_strerror(void *opaque, int err)
{
	struct tls_session *s = opaque;

	return err == EPROTO && s->err[0] ? s->err : NULL;
}

static size_t tls_pending(void *opaque)
{
	struct tls_session *s = opaque;

	return (size_t)SSL_pending(s->ssl);
}

static const struct wire_conn_ops tls_ops = {
	.readv = tls_readv,
	.writev = tls_writev,
	.strerror = tls_strerror,
	.pending = tls_pending,
};

void tls_session_conn(struct tls_session *s, struct wire_conn *c)
{
	wire_conn_init(c, &tls_ops, s);
	c->fd = s->fd;
}

void tls_session_describe(const struct tls_session *s, char *out, size_t outlen)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);

	snprintf(out, outlen, "%s, %s, %s", SSL_get_version(s->ssl), cipher ? SSL_CIPHER_get_name(cipher) : "?",
		 s->ctx->psk ? "pre-shared key" : "certificates");
}

void tls_session_free(struct tls_session *s)
{
	if (!s)
		return;
	/* One close_notify; the peer's is not awaited (the socket may be half dead). */
	int flags = fcntl(s->fd, F_GETFL);
	fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
	SSL_shutdown(s->ssl);
	fcntl(s->fd, F_SETFL, flags);
	ERR_clear_error();
	SSL_free(s->ssl);
	free(s->wbuf);
	free(s);
}

int tls_keygen(const char *path, char *err, size_t errlen)
{
	unsigned char key[TLS_PSK_BYTES];
	char text[2 * TLS_PSK_BYTES + 2];

	if (RAND_priv_bytes(key, sizeof(key)) != 1) {
		snprintf(err, errlen, "no random bytes for a key: %s", ssl_reason());
		return -1;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(text + 2 * i, 3, "%02x", key[i]);
	OPENSSL_cleanse(key, sizeof(key));
	text[2 * TLS_PSK_BYTES] = '\n';
	text[2 * TLS_PSK_BYTES + 1] = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			snprintf(err, errlen, "'%s' already exists; a key is never overwritten (remove it first)", path);
		else
			snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
		OPENSSL_cleanse(text, sizeof(text));
		return -1;
	}
	/* The mode asked for is subject to umask: make sure it is exactly 0600. */
	size_t len = strlen(text);
	int ok = fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	int saved = errno;
	OPENSSL_cleanse(text, sizeof(text));
	if (close(fd) < 0 && ok) {
		ok = 0;
		saved = errno;
	}
	if (!ok) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(saved ? saved : EIO));
		unlink(path);
		return -1;
	}
	return 0;
}
