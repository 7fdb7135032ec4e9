#include "migrate/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hv/clock.h"

int channel_parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
			   char *err, size_t errlen)
{
	const char *colon;
	size_t hl;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':') {
			snprintf(err, errlen, "'%s' is not HOST:PORT (IPv6 as [ADDR]:PORT)", s);
			return -1;
		}
		hl = (size_t)(end - s - 1);
		s++;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(err, errlen, "'%s' is not HOST:PORT", s);
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	const char *p = colon + 1;
	char *endp;
	long n = strtol(p, &endp, 10);
	if (!*p || *endp || n < 0 || n > 65535) {
		snprintf(err, errlen, "'%s' is not a valid port (1-65535; 0 to listen on any)", p);
		return -1;
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, errlen, "host part of '%s' is empty or too long", s);
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = 0;
	snprintf(port, portlen, "%ld", n);
	return 0;
}

/* Records are written whole (writev); Nagle would only hold back the small ones at the end
 * of a phase (END_OF_STATE, ACK, COMMIT) for a delayed ACK, costing ~40 ms of downtime. */
static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static struct addrinfo *resolve(const char *hostport, int passive, char *err, size_t errlen)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;

	if (channel_parse_hostport(hostport, host, sizeof(host), port, sizeof(port), err, errlen) < 0)
		return NULL;
	if (!passive && !strcmp(port, "0")) {
		snprintf(err, errlen, "'%s': port 0 cannot be connected to; give the port it listens on", hostport);
		return NULL;
	}
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	int r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(r));
		return NULL;
	}
	return res;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	int flags = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	int r = connect(fd, sa, len);
	if (r < 0 && errno == EINPROGRESS) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		r = poll(&pfd, 1, timeout_ms);
		if (r == 0) {
			errno = ETIMEDOUT;
			r = -1;
		} else if (r > 0) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			errno = soerr;
			r = soerr ? -1 : 0;
		}
	}
	fcntl(fd, F_SETFL, flags);
	return r;
}

int channel_connect(const char *hostport, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo *res = resolve(hostport, 0, err, errlen);
	int fd = -1, last_err = 0;

	if (!res)
		return -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last_err = errno;
			continue;
		}
		if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0)
			break;
		last_err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		set_nodelay(fd);
	if (fd < 0) {
		if (last_err == ECONNREFUSED)
			snprintf(err, errlen, "connection refused by %s: is 'hvctl receive --listen %s' running there?",
				 hostport, hostport);
		else
			snprintf(err, errlen, "cannot connect to %s: %s", hostport, strerror(last_err));
		return -1;
	}
	return fd;
}

int channel_listen(const char *hostport, char *err, size_t errlen)
{
	struct addrinfo *res = resolve(hostport, 1, err, errlen);
	int fd = -1, last_err = 0;

	if (!res)
		return -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last_err = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4) == 0)
			break;
		last_err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (last_err == EADDRINUSE)
			snprintf(err, errlen, "cannot listen on %s: the port is in use; pick another port", hostport);
		else
			snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(last_err));
		return -1;
	}
	return fd;
}

int channel_accept(int listen_fd, int timeout_ms, int cancel_fd, char *peer, size_t peerlen,
		   char *err, size_t errlen)
{
	struct pollfd pfd[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = cancel_fd, .events = POLLIN } };
	struct deadline deadline = deadline_in_ms(timeout_ms);
	int r;

	do
		r = poll(pfd, cancel_fd >= 0 ? 2 : 1, deadline_left_ms(deadline));
	while (r < 0 && errno == EINTR);
	if (cancel_fd >= 0 && pfd[1].revents)
		return CHANNEL_CANCELLED;
	if (r == 0) {
		snprintf(err, errlen, "no incoming migration within %d s", timeout_ms / 1000);
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "accept failed: %s", strerror(errno));
		return -1;
	}
	char h[128] = "?", p[16] = "?";
	getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(peer, peerlen, "%s:%s", h, p);
	set_nodelay(fd);
	return fd;
}

int channel_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char p[16];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, p, sizeof(p), NI_NUMERICSERV) != 0)
		return -1;
	return atoi(p);
}

void channel_set_recv_timeout(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

void channel_set_send_timeout(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}
