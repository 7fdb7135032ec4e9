/* The control server: one thread, poll() over the listening socket, up to MAX_CLIENTS
 * connections and an eventfd that wakes it for events and for stopping. Requests go through
 * the command table of control_proto.c; every write to a client is non-blocking, so a slow or
 * stuck client can never hold up the VM or the other clients. */
#include "hv/control.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/log.h"
#include "hv/rundir.h"
#include "hv/vm.h"

#define MAX_CLIENTS 16
#define OUT_MAX (1u << 20)           /* unsent output beyond this drops the client */
#define OUT_BACKPRESSURE (64u << 10) /* stop reading requests while this much is unsent */
#define MAX_QUEUED_EVENTS 1024
#define FINAL_FLUSH_MS 250 /* control_stop: time given to subscribers to take their events */
#define IN_CAP (CTL_MAX_LINE + 1) /* a full line plus its '\n' */

struct event {
	struct event *next;
	size_t len;
	char line[];
};

struct client {
	int fd; /* -1: free slot */
	char *in;
	size_t in_len;
	char *out;
	size_t out_off, out_len, out_cap;
	bool subscribed;
	bool eof;     /* the peer will send nothing more */
	bool closing; /* close once the output is sent */
};

struct control_server {
	int listen_fd, wake_fd;
	pthread_t thread;
	struct ctl_table table;

	pthread_mutex_t lock; /* guards the fields below */
	struct vm *vm;        /* NULL while a received VM has not arrived */
	char name[VM_NAME_MAX];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int new_listen_fd;    /* control_rename: the server thread switches to it */
	char phase[16];       /* "incoming"/"migrating" until a received guest runs, else "" */
	char listen_addr[128], peer[160];
	bool arrival_known;   /* the source's last PROGRESS, while migrating */
	uint32_t arrival_round;
	uint64_t arrival_pages, arrival_ram_pages, arrival_bytes;
	void (*stop_fn)(void *opaque);
	void *stop_opaque;
	bool stopping;
	char console_pty[128];
	int disks, nics; /* control_set_devices */
	struct event *ev_head, *ev_tail;
	int ev_count;
	bool ev_overflow_warned;

	/* Server thread only. */
	struct client clients[MAX_CLIENTS];
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

static void wake(struct control_server *cs)
{
	uint64_t one = 1;

	/* Fails only when the counter is saturated, and then the thread is awake anyway. */
	if (write(cs->wake_fd, &one, sizeof(one)) < 0) {
	}
}

/* ---- events ---- */

void control_emit_event(struct control_server *cs, struct json_object *ev)
{
	size_t len;
	char *line = ctl_format_line_alloc(ev, &len);
	struct event *e = line ? malloc(sizeof(*e) + len) : NULL;

	if (!e) {
		free(line);
		hv_warn("control: out of memory queueing an event");
		return;
	}
	e->next = NULL;
	e->len = len;
	memcpy(e->line, line, len);
	free(line);

	pthread_mutex_lock(&cs->lock);
	if (cs->ev_count >= MAX_QUEUED_EVENTS) {
		/* The server thread is not keeping up (it is inside a long handler): drop. */
		bool warn = !cs->ev_overflow_warned;
		cs->ev_overflow_warned = true;
		pthread_mutex_unlock(&cs->lock);
		free(e);
		if (warn)
			hv_warn("control: event queue full, dropping events");
		return;
	}
	if (cs->ev_tail)
		cs->ev_tail->next = e;
	else
		cs->ev_head = e;
	cs->ev_tail = e;
	cs->ev_count++;
	pthread_mutex_unlock(&cs->lock);
	wake(cs);
}

static void on_vm_state(void *opaque, struct vm *vm, enum vm_state state)
{
	struct control_server *cs = opaque;
	uint64_t t = wall_ms();
	struct json_object *ev = ctl_event_state_new(vm_state_name(state), t);

	if (ev) {
		control_emit_event(cs, ev);
		json_object_put(ev);
	}
	if (state != VM_STOPPED)
		return;
	char reason[sizeof(vm->exit_reason)];
	pthread_mutex_lock(&vm->lock);
	int status = vm->exit_status;
	memcpy(reason, vm->exit_reason, sizeof(reason));
	pthread_mutex_unlock(&vm->lock);
	reason[sizeof(reason) - 1] = '\0';
	ev = ctl_event_stopped_new(status, reason, t);
	if (ev) {
		control_emit_event(cs, ev);
		json_object_put(ev);
	}
}

/* ---- clients ---- */

static void client_close(struct client *c)
{
	if (c->fd >= 0 && c->closing) {
		/* Closing with unread input makes the peer's read fail with ECONNRESET, and
		 * it might then miss our last words: discard what has arrived. */
		char junk[4096];
		for (int i = 0; i < 256 && recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++) {
		}
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static size_t client_pending(const struct client *c)
{
	return c->out_len - c->out_off;
}

/* Appends to the client's output. -1 if that would exceed OUT_MAX (drop the client). */
static int client_queue(struct client *c, const char *data, size_t len)
{
	if (client_pending(c) + len > OUT_MAX)
		return -1;
	if (c->out_off && c->out_len + len > c->out_cap) {
		memmove(c->out, c->out + c->out_off, client_pending(c));
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p)
			return -1;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

/* Sends what the socket takes without blocking. -1 if the peer is gone. */
static int client_flush(struct client *c)
{
	while (client_pending(c)) {
		ssize_t n = send(c->fd, c->out + c->out_off, client_pending(c),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static int queue_error(struct client *c, const char *msg)
{
	struct json_object *o = ctl_error_new(NULL, msg);
	size_t len;
	char *line = o ? ctl_format_line_alloc(o, &len) : NULL;
	int r = line ? client_queue(c, line, len) : -1;

	free(line);
	if (o)
		json_object_put(o);
	return r;
}

/* One request line (without '\n'). -1 if the client must be dropped. */
static int handle_line(struct control_server *cs, struct client *c, char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return 0; /* blank lines are ignored (handy when typing into socat) */

	size_t out_len;
	int subscribe;
	char *out = ctl_handle_line(&cs->table, cs, line, len, &out_len, &subscribe);
	if (!out)
		return -1;
	int r = client_queue(c, out, out_len);
	free(out);
	if (subscribe)
		c->subscribed = true;
	return r;
}

/* Handles every complete line in the input buffer. -1: drop the client. */
static int process_input(struct control_server *cs, struct client *c)
{
	size_t start = 0;

	while (!c->closing && start < c->in_len) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		if (handle_line(cs, c, c->in + start, len) < 0)
			return -1;
		start += len + 1;
	}
	if (c->closing) {
		c->in_len = 0;
		return 0;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->in_len > CTL_MAX_LINE) {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "request line longer than %d bytes; closing the connection", CTL_MAX_LINE);
		c->in_len = 0;
		c->closing = true;
		return queue_error(c, msg);
	}
	if (c->eof && c->in_len) {
		/* A last request without its '\n': answer it anyway. */
		size_t len = c->in_len;
		c->in_len = 0;
		return handle_line(cs, c, c->in, len);
	}
	return 0;
}

static int client_read(struct control_server *cs, struct client *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (n == 0)
		c->eof = true;
	c->in_len += (size_t)n;
	return process_input(cs, c);
}

static void accept_client(struct control_server *cs)
{
	int fd = accept4(cs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	struct client *c = NULL;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (cs->clients[i].fd < 0) {
			c = &cs->clients[i];
			break;
		}
	}
	if (c)
		c->in = malloc(IN_CAP);
	if (!c || !c->in) {
		static const char busy[] =
			"{\"ok\":false,\"error\":\"too many control connections; close one and retry\"}\n";
		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		}
		close(fd);
		if (c)
			client_close(c);
		return;
	}
	c->fd = fd;
	hv_debug("control: client connected");
}

/* Moves queued events to every subscribed client. Returns whether the server is stopping. */
static bool take_events(struct control_server *cs)
{
	pthread_mutex_lock(&cs->lock);
	struct event *e = cs->ev_head;
	cs->ev_head = cs->ev_tail = NULL;
	cs->ev_count = 0;
	bool stopping = cs->stopping;
	pthread_mutex_unlock(&cs->lock);

	while (e) {
		struct event *next = e->next;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &cs->clients[i];
			if (c->fd < 0 || !c->subscribed || c->closing)
				continue;
			if (client_queue(c, e->line, e->len) < 0) {
				hv_warn("control: dropping a subscriber that does not read its events");
				client_close(c);
			}
		}
		free(e);
		e = next;
	}
	return stopping;
}

/* Done with a client once nothing more will be said to it. */
static bool client_finished(const struct client *c)
{
	if (client_pending(c))
		return false;
	return c->closing || (c->eof && !c->subscribed);
}

static void serve(struct control_server *cs)
{
	struct pollfd pfd[2 + MAX_CLIENTS];
	int owner[2 + MAX_CLIENTS];

	for (;;) {
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = cs->wake_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = cs->listen_fd, .events = POLLIN };
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &cs->clients[i];
			if (c->fd < 0)
				continue;
			short ev = 0;
			if (!c->eof && !c->closing && client_pending(c) < OUT_BACKPRESSURE)
				ev |= POLLIN;
			if (client_pending(c))
				ev |= POLLOUT;
			owner[n] = i;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			hv_error("control socket: poll failed: %s", strerror(errno));
			return;
		}
		if (pfd[0].revents) {
			uint64_t v;
			if (read(cs->wake_fd, &v, sizeof(v)) < 0) {
			}
			if (take_events(cs))
				return;
			pthread_mutex_lock(&cs->lock);
			int nfd = cs->new_listen_fd;
			cs->new_listen_fd = -1;
			pthread_mutex_unlock(&cs->lock);
			if (nfd >= 0) {
				/* Renamed: pfd[1] is stale now, so start the next poll afresh. */
				close(cs->listen_fd);
				cs->listen_fd = nfd;
				continue;
			}
		}
		if (pfd[1].revents & POLLIN)
			accept_client(cs);
		for (int k = 2; k < n; k++) {
			struct client *c = &cs->clients[owner[k]];
			if (c->fd != pfd[k].fd)
				continue; /* dropped meanwhile */
			short re = pfd[k].revents;
			int bad = 0;
			if ((re & (POLLIN | POLLHUP)) && (pfd[k].events & POLLIN))
				bad = client_read(cs, c) < 0;
			else if (re & (POLLERR | POLLNVAL | POLLHUP))
				bad = 1;
			if (!bad && client_pending(c))
				bad = client_flush(c) < 0;
			if (bad || client_finished(c)) {
				hv_debug("control: client disconnected");
				client_close(c);
			}
		}
	}
}

/* After stopping: give clients a moment to take what is queued for them, then close all. */
static void final_flush(struct control_server *cs)
{
	struct deadline deadline = deadline_in_ms(FINAL_FLUSH_MS);

	for (;;) {
		struct pollfd pfd[MAX_CLIENTS];
		int owner[MAX_CLIENTS], n = 0;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &cs->clients[i];
			if (c->fd >= 0 && client_pending(c) && client_flush(c) < 0)
				client_close(c);
			if (c->fd >= 0 && client_pending(c)) {
				owner[n] = i;
				pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
			}
		}
		if (!n || deadline_passed(deadline))
			break;
		if (poll(pfd, (nfds_t)n, deadline_left_ms(deadline)) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < n; k++)
			if (pfd[k].revents & (POLLERR | POLLHUP | POLLNVAL))
				client_close(&cs->clients[owner[k]]);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (cs->clients[i].fd >= 0)
			client_close(&cs->clients[i]);
}

static void *server_thread(void *arg)
{
	struct control_server *cs = arg;

	serve(cs);
	/* The socket disappears before the clients see EOF, so that "hvctl stop", which waits
	 * for EOF, finds no socket left behind. */
	pthread_mutex_lock(&cs->lock);
	unlink(cs->path);
	if (cs->new_listen_fd >= 0)
		close(cs->new_listen_fd);
	cs->new_listen_fd = -1;
	pthread_mutex_unlock(&cs->lock);
	close(cs->listen_fd);
	cs->listen_fd = -1;
	take_events(cs);
	final_flush(cs);
	return NULL;
}

/* ---- built-in commands ---- */

/* The VM, or NULL while a received one has not arrived; with the phase that overrides its
 * state meanwhile ("" once it runs). Once attached, a VM stays until control_stop. */
static struct vm *server_vm(struct control_server *cs, char phase[16])
{
	pthread_mutex_lock(&cs->lock);
	struct vm *vm = cs->vm;
	if (phase)
		memcpy(phase, cs->phase, sizeof(cs->phase));
	pthread_mutex_unlock(&cs->lock);
	return vm;
}

static struct vm *call_vm(struct ctl_call *call, char phase[16])
{
	return server_vm(call->ctx, phase);
}

static const char *state_name(struct vm *vm, const char *phase)
{
	return phase[0] ? phase : vm_state_name(vm_get_state(vm));
}

static int cmd_status(struct ctl_call *call, void *opaque)
{
	struct control_server *cs = call->ctx;
	char phase[16];
	struct vm *vm = server_vm(cs, phase);
	struct json_object *r = call->resp;
	enum vm_state state = VM_CREATED;
	uint64_t started = 0;

	if (vm) {
		pthread_mutex_lock(&vm->lock);
		state = vm->state;
		started = vm->started_ns;
		pthread_mutex_unlock(&vm->lock);
	}
	uint64_t now = clock_now_ns();
	uint64_t uptime_ms = state != VM_CREATED && started && now > started ?
				     (now - started) / 1000000ULL : 0;

	pthread_mutex_lock(&cs->lock);
	json_object_object_add(r, "name", json_object_new_string(cs->name));
	pthread_mutex_unlock(&cs->lock);
	if (vm)
		json_object_object_add(r, "uuid", json_object_new_string(vm->uuid));
	json_object_object_add(r, "state", json_object_new_string(phase[0] ? phase : vm_state_name(state)));
	json_object_object_add(r, "cpus", json_object_new_int(vm ? vm->ncpus : 0));
	json_object_object_add(r, "mem", json_object_new_int64(vm ? (int64_t)vm->mem.size : 0));
	if (vm) {
		json_object_object_add(r, "cpu_model", json_object_new_string(cpu_model_name(vm->cpu_model)));
		pthread_mutex_lock(&vm->lock);
		json_object_object_add(r, "cpu_features", json_object_new_string(vm->cpu_features));
		json_object_object_add(r, "cpu_features_set", json_object_new_string(vm->cpu_features_set));
		pthread_mutex_unlock(&vm->lock);
	}
	json_object_object_add(r, "uptime_ms", json_object_new_int64((int64_t)uptime_ms));
	json_object_object_add(r, "pid", json_object_new_int((int)getpid()));
	pthread_mutex_lock(&cs->lock);
	if (cs->console_pty[0])
		json_object_object_add(r, "console_pty", json_object_new_string(cs->console_pty));
	if (vm) {
		json_object_object_add(r, "disks", json_object_new_int(cs->disks));
		json_object_object_add(r, "nics", json_object_new_int(cs->nics));
	}
	if (cs->phase[0] && cs->listen_addr[0])
		json_object_object_add(r, "listen", json_object_new_string(cs->listen_addr));
	if (cs->phase[0] && cs->peer[0])
		json_object_object_add(r, "source", json_object_new_string(cs->peer));
	if (cs->phase[0] && cs->arrival_known) {
		struct json_object *a = json_object_new_object();
		json_object_object_add(a, "round", json_object_new_int64(cs->arrival_round));
		json_object_object_add(a, "pages_sent", json_object_new_int64((int64_t)cs->arrival_pages));
		json_object_object_add(a, "ram_pages", json_object_new_int64((int64_t)cs->arrival_ram_pages));
		json_object_object_add(a, "bytes", json_object_new_int64((int64_t)cs->arrival_bytes));
		json_object_object_add(r, "arriving", a);
	}
	pthread_mutex_unlock(&cs->lock);
	return 0;
}

/* Why a pause/resume cannot happen in the current state, or NULL. */
static const char *not_running_why(enum vm_state s)
{
	if (s == VM_CREATED)
		return "the VM has not started yet";
	if (s == VM_STOPPED)
		return "the VM has stopped";
	return NULL;
}

/* Pause/resume make no sense while the guest is still arriving. */
static const char *arriving_why(const char *phase)
{
	if (!strcmp(phase, "incoming"))
		return "the VM is waiting for an incoming migration (state incoming)";
	return "the VM is still arriving by migration (state migrating); wait until it runs";
}

static int cmd_pause(struct ctl_call *call, void *opaque)
{
	char phase[16];
	struct vm *vm = call_vm(call, phase);
	const char *why = phase[0] || !vm ? arriving_why(phase) : not_running_why(vm_get_state(vm));

	if (!why && vm_pause(vm) < 0)
		why = "the VM is stopping";
	if (why) {
		snprintf(call->err, sizeof(call->err), "cannot pause: %s", why);
		return -1;
	}
	json_object_object_add(call->resp, "state", json_object_new_string("paused"));
	return 0;
}

static int cmd_resume(struct ctl_call *call, void *opaque)
{
	char phase[16];
	struct vm *vm = call_vm(call, phase);
	const char *why = phase[0] || !vm ? arriving_why(phase) : not_running_why(vm_get_state(vm));

	if (!why && vm_resume(vm) < 0)
		why = "the VM is stopping";
	if (why) {
		snprintf(call->err, sizeof(call->err), "cannot resume: %s", why);
		return -1;
	}
	json_object_object_add(call->resp, "state", json_object_new_string("running"));
	return 0;
}

static int cmd_stop(struct ctl_call *call, void *opaque)
{
	struct control_server *cs = call->ctx;

	pthread_mutex_lock(&cs->lock);
	void (*fn)(void *) = cs->stop_fn;
	void *fn_opaque = cs->stop_opaque;
	struct vm *vm = cs->vm;
	pthread_mutex_unlock(&cs->lock);
	/* A VM still arriving is ended by whoever receives it (it also tells the source). */
	if (fn)
		fn(fn_opaque);
	else if (vm)
		vm_request_stop(vm, 0, "stopped by hvctl");
	return 0;
}

static int cmd_subscribe(struct ctl_call *call, void *opaque)
{
	char phase[16];
	struct vm *vm = call_vm(call, phase);

	call->subscribe = 1;
	json_object_object_add(call->resp, "state",
			       json_object_new_string(vm ? state_name(vm, phase) : phase));
	return 0;
}

static int cmd_commands(struct ctl_call *call, void *opaque)
{
	struct control_server *cs = call->ctx;
	struct json_object *a = json_object_new_array();
	int n = ctl_table_count(&cs->table);

	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(ctl_table_at(&cs->table, i)->name));
	json_object_object_add(call->resp, "commands", a);
	return 0;
}

static const struct {
	const char *name;
	ctl_handler_fn fn;
} builtin_commands[] = {
	{ "status", cmd_status },
	{ "pause", cmd_pause },
	{ "resume", cmd_resume },
	{ "stop", cmd_stop },
	{ "subscribe", cmd_subscribe },
	{ "commands", cmd_commands },
};

/* ---- life cycle ---- */

int control_register_command(struct control_server *cs, const char *name, ctl_handler_fn fn,
			     void *opaque)
{
	pthread_mutex_lock(&cs->lock);
	int r = ctl_table_add(&cs->table, name, fn, opaque);
	pthread_mutex_unlock(&cs->lock);
	if (r < 0)
		hv_error("control: cannot add command '%s' (duplicate, too long, or table full)", name);
	return r;
}

struct vm *control_vm(struct control_server *cs)
{
	return server_vm(cs, NULL);
}

void control_set_console_path(struct control_server *cs, const char *pty_path)
{
	pthread_mutex_lock(&cs->lock);
	snprintf(cs->console_pty, sizeof(cs->console_pty), "%s", pty_path ? pty_path : "");
	pthread_mutex_unlock(&cs->lock);
}

void control_set_devices(struct control_server *cs, int disks, int nics)
{
	pthread_mutex_lock(&cs->lock);
	cs->disks = disks;
	cs->nics = nics;
	pthread_mutex_unlock(&cs->lock);
}

/* Binds and listens on NAME's socket path (written to path). The listening fd, or -1. */
static int bind_socket(const char *name, char *path, size_t pathlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (!rundir_path())
		return -1;
	if (pathlen > sizeof(addr.sun_path) || rundir_socket_path(name, path, pathlen) < 0) {
		hv_error("the control socket path for VM '%s' would be longer than %zu bytes; set HV_RUN_DIR to a shorter directory",
			 name, sizeof(addr.sun_path) - 1);
		return -1;
	}
	memcpy(addr.sun_path, path, pathlen);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		hv_error("cannot create the control socket: %s", strerror(errno));
		return -1;
	}
	/* The caller holds the name's lock, so a socket file here is a crashed VM's leftover. */
	if (unlink(path) < 0 && errno != ENOENT) {
		hv_error("cannot remove the stale control socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		hv_error("cannot bind the control socket %s: %s; check the run directory or set HV_RUN_DIR",
			 path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, 0600) < 0 || listen(fd, MAX_CLIENTS) < 0) {
		hv_error("cannot set up the control socket %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

static void free_server(struct control_server *cs)
{
	struct event *e = cs->ev_head;

	while (e) {
		struct event *next = e->next;
		free(e);
		e = next;
	}
	if (cs->listen_fd >= 0)
		close(cs->listen_fd);
	if (cs->new_listen_fd >= 0)
		close(cs->new_listen_fd);
	if (cs->wake_fd >= 0)
		close(cs->wake_fd);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

static struct control_server *start_server(const char *name, struct vm *vm)
{
	struct control_server *cs = calloc(1, sizeof(*cs));

	if (!cs) {
		hv_error("out of memory starting the control socket");
		return NULL;
	}
	cs->vm = vm;
	snprintf(cs->name, sizeof(cs->name), "%s", name);
	cs->listen_fd = cs->new_listen_fd = -1;
	pthread_mutex_init(&cs->lock, NULL);
	for (int i = 0; i < MAX_CLIENTS; i++)
		cs->clients[i].fd = -1;
	for (size_t i = 0; i < sizeof(builtin_commands) / sizeof(builtin_commands[0]); i++)
		ctl_table_add(&cs->table, builtin_commands[i].name, builtin_commands[i].fn, NULL);
	cs->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cs->wake_fd < 0) {
		hv_error("cannot create an eventfd for the control socket: %s", strerror(errno));
		free_server(cs);
		return NULL;
	}
	cs->listen_fd = bind_socket(cs->name, cs->path, sizeof(cs->path));
	if (cs->listen_fd < 0) {
		free_server(cs);
		return NULL;
	}

	/* The server thread takes no signals: they belong to the main and vCPU threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&cs->thread, NULL, server_thread, cs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		hv_error("cannot start the control thread: %s", strerror(r));
		unlink(cs->path);
		free_server(cs);
		return NULL;
	}
	if (vm)
		vm_set_listener(vm, on_vm_state, cs);
	return cs;
}

struct control_server *control_start(struct vm *vm)
{
	return start_server(vm->name, vm);
}

struct control_server *control_start_incoming(const char *name)
{
	struct control_server *cs = start_server(name, NULL);

	if (cs)
		control_set_incoming(cs, "incoming", NULL, NULL);
	return cs;
}

void control_set_incoming(struct control_server *cs, const char *phase, const char *listen_addr,
			  const char *peer)
{
	pthread_mutex_lock(&cs->lock);
	cs->arrival_known = false;
	snprintf(cs->phase, sizeof(cs->phase), "%s", phase ? phase : "");
	if (listen_addr)
		snprintf(cs->listen_addr, sizeof(cs->listen_addr), "%s", listen_addr);
	if (peer)
		snprintf(cs->peer, sizeof(cs->peer), "%s", peer);
	pthread_mutex_unlock(&cs->lock);
}

void control_set_arrival(struct control_server *cs, uint32_t round, uint64_t pages_sent,
			 uint64_t ram_pages, uint64_t bytes)
{
	pthread_mutex_lock(&cs->lock);
	cs->arrival_known = true;
	cs->arrival_round = round;
	cs->arrival_pages = pages_sent;
	cs->arrival_ram_pages = ram_pages;
	cs->arrival_bytes = bytes;
	pthread_mutex_unlock(&cs->lock);
}

void control_set_stop_handler(struct control_server *cs, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&cs->lock);
	cs->stop_fn = fn;
	cs->stop_opaque = opaque;
	pthread_mutex_unlock(&cs->lock);
}

void control_attach_vm(struct control_server *cs, struct vm *vm)
{
	pthread_mutex_lock(&cs->lock);
	cs->vm = vm;
	pthread_mutex_unlock(&cs->lock);
	vm_set_listener(vm, on_vm_state, cs);
}

int control_rename(struct control_server *cs, const char *name)
{
	char path[sizeof(cs->path)], old[sizeof(cs->path)];
	int fd = bind_socket(name, path, sizeof(path));

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&cs->lock);
	if (cs->new_listen_fd >= 0)
		close(cs->new_listen_fd);
	cs->new_listen_fd = fd;
	memcpy(old, cs->path, sizeof(old));
	memcpy(cs->path, path, sizeof(cs->path));
	snprintf(cs->name, sizeof(cs->name), "%s", name);
	/* Gone before the caller releases the old name, so that a VM taking that name next
	 * cannot have its new socket removed by us. */
	unlink(old);
	pthread_mutex_unlock(&cs->lock);
	wake(cs);
	return 0;
}

void control_stop(struct control_server *cs)
{
	if (!cs)
		return;
	struct vm *vm = server_vm(cs, NULL);
	if (vm)
		vm_set_listener(vm, NULL, NULL);
	pthread_mutex_lock(&cs->lock);
	cs->stopping = true;
	pthread_mutex_unlock(&cs->lock);
	wake(cs);
	pthread_join(cs->thread, NULL);
	free_server(cs);
}
