/* The network behind a fuzzed NIC: the NIC's TAP is one end of an AF_UNIX SOCK_DGRAM
 * socketpair (a TAP's semantics, one frame per read and per write, without root or a real
 * network), and a thread reads the other end as the host's network would, so that the NIC's
 * transmit never waits for room. It checks what the guest sent: every frame starts with the
 * clean, all-zero virtio-net header that the device promises the TAP. */
#ifndef TESTS_FUZZ_FUZZ_NETWORK_H
#define TESTS_FUZZ_FUZZ_NETWORK_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_net.h"

struct fuzz_network {
	int tap;  /* the NIC's end, for virtio_net_create_fd */
	int wire; /* ours: frames from the network go in here */
	int stop_fd;
	pthread_t thread;
	uint8_t frame[256 * 1024]; /* more than a datagram on a socketpair can carry */
};

static inline void *fuzz_network_thread(void *arg)
{
	static const uint8_t clean[VIRTIO_NET_HDR_LEN];
	struct fuzz_network *n = arg;
	struct pollfd p[2] = { { .fd = n->wire, .events = POLLIN }, { .fd = n->stop_fd, .events = POLLIN } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if (p[0].revents & POLLIN) {
			ssize_t len = recv(n->wire, n->frame, sizeof(n->frame), MSG_DONTWAIT | MSG_TRUNC);
			if (len >= 0 && (len < VIRTIO_NET_HDR_LEN || memcmp(n->frame, clean, sizeof(clean)))) {
				fprintf(stderr, "fuzz: the TAP got a %zd-byte frame without a clean header\n", len);
				abort();
			}
			continue; /* read everything before looking at stop */
		}
		if (p[0].revents)
			p[0].fd = -1; /* the NIC's end is closed: only stop is left */
		if (p[1].revents)
			return NULL;
	}
}

/* Makes the pair and starts the reader; aborts if it cannot. */
static inline void fuzz_network_start(struct fuzz_network *n)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	n->tap = sv[0];
	n->wire = sv[1];
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0 || pthread_create(&n->thread, NULL, fuzz_network_thread, n) != 0)
		abort();
}

/* A frame from the network, for the NIC's next receive; a full socket drops it, as a TAP's
 * queue does. */
static inline void fuzz_network_send(struct fuzz_network *n, const void *frame, size_t len)
{
	if (send(n->wire, frame, len, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != EMSGSIZE)
		abort();
}

/* After the NIC is destroyed (it closed its end). */
static inline void fuzz_network_stop(struct fuzz_network *n)
{
	uint64_t one = 1;

	if (write(n->stop_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	pthread_join(n->thread, NULL);
	close(n->stop_fd);
	close(n->wire);
}

#endif
