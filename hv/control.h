/* The per-VM control socket: a UNIX stream socket speaking JSON lines
 * (docs/control-protocol.md). Served by its own thread. */
#ifndef HV_CONTROL_H
#define HV_CONTROL_H

struct vm;
struct control_server;

/* Binds rundir_socket_path(vm->name) and starts the server thread. NULL on failure
 * (with an hv_error line). Registers itself as the VM's state listener for events. */
struct control_server *control_start(struct vm *vm);
/* Stops the thread, closes clients, unlinks the socket. */
void control_stop(struct control_server *cs);

#endif
