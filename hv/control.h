/* The per-VM control socket: a UNIX stream socket speaking JSON lines
 * (docs/control-protocol.md). Served by its own thread. */
#ifndef HV_CONTROL_H
#define HV_CONTROL_H

#include "hv/control_proto.h"

struct vm;
struct control_server;
struct json_object;

/* Binds rundir_socket_path(vm->name) and starts the server thread. NULL on failure
 * (with an hv_error line). Registers itself as the VM's state listener for events.
 * The caller must hold the name's lock (rundir_claim_name): a socket file left at that path
 * is stale and is replaced. */
struct control_server *control_start(struct vm *vm);

/* A VM that is still arriving (`hvctl receive`): the socket exists before the VM does, so
 * the waiting VM can be listed, inspected and stopped.
 *
 * control_start_incoming binds the socket for `name` (its lock held by the caller) with no
 * VM yet; its state is the phase given to control_set_incoming ("incoming" while waiting for
 * a source, "migrating" while the guest arrives). "pause"/"resume" are refused meanwhile,
 * "stop" calls the stop handler. control_attach_vm hands it the VM once it exists (the
 * phase still decides the state until it is cleared with control_set_incoming(cs, NULL,...)
 * when the guest runs). control_rename moves the socket to a new name whose lock the caller
 * holds (the old socket file is removed before it returns; connected clients stay).
 * All are safe from any thread. */
struct control_server *control_start_incoming(const char *name);
void control_set_incoming(struct control_server *cs, const char *phase, const char *listen_addr,
			  const char *peer);
/* While a guest arrives: how far the source says it is (its PROGRESS records), shown by
 * status as "arriving". Cleared by control_set_incoming. */
void control_set_arrival(struct control_server *cs, uint32_t round, uint64_t pages_sent,
			 uint64_t ram_pages, uint64_t bytes);
void control_set_stop_handler(struct control_server *cs, void (*fn)(void *opaque), void *opaque);
void control_attach_vm(struct control_server *cs, struct vm *vm);
int control_rename(struct control_server *cs, const char *name);
/* Unregisters the listener, sends queued events to subscribers (briefly, without blocking
 * on slow clients), removes the socket file, closes clients and stops the thread.
 * Call it before vm_destroy; nothing else may call vm_pause/vm_resume on this VM meanwhile. */
void control_stop(struct control_server *cs);

/* The PTY that the serial console is attached to: reported as "console_pty" by "status"
 * (hvctl console opens it). NULL or "" for none. Safe from any thread. */
void control_set_console_path(struct control_server *cs, const char *pty_path);
/* How many disks and NICs the VM has: status says (an evacuation decides from it whether
 * a VM's disks travel). */
void control_set_devices(struct control_server *cs, int disks, int nics);

/* Adds a command (e.g. "migrate"). The handler runs on the server thread with call->ctx ==
 * cs: it must not block for long (start a thread for long jobs and report through
 * control_emit_event). 0, or -1 with an hv_error line (duplicate name, table full).
 * Safe from any thread. */
int control_register_command(struct control_server *cs, const char *name, ctl_handler_fn fn,
			     void *opaque);
/* The VM this server controls (for handlers: call->ctx is the server). */
struct vm *control_vm(struct control_server *cs);

/* Queues an event object (must have an "event" field) for every subscribed client and wakes
 * the server thread; never blocks on clients. Does not take ownership of ev. Safe from any
 * thread, including vCPU threads and VM state listeners. */
void control_emit_event(struct control_server *cs, struct json_object *ev);

#endif
