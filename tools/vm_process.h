/* What `hvctl run` and `hvctl receive` share as VM processes: detaching into the
 * background after start-up succeeded, and turning signals into a clean VM stop. */
#ifndef TOOLS_VM_PROCESS_H
#define TOOLS_VM_PROCESS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

struct vm;

/* Forks. In the parent, waits until the child calls vm_process_detach_done (then prints
 * `announce` if not NULL and exits 0) or dies (then exits with its status): start-up errors
 * still reach the user's terminal. Returns in the child only (0), or -1 if fork failed. */
int vm_process_detach(const char *announce);
/* Start-up succeeded: a detached child tells its parent and drops the terminal. From here
 * stderr goes to log_path (appended, created 0600) if not NULL, else (detached) nowhere. */
void vm_process_detach_done(const char *log_path);
/* The log of a VM process: `given` (--log), else for a detached one <rundir>/NAME.log,
 * else NULL (stderr stays). */
const char *vm_process_log_path(const char *given, bool detach, const char *name, char *buf, size_t len);

struct signal_watch {
	pthread_mutex_t lock; /* guards vm, fn, opaque */
	struct vm *vm;
	void (*fn)(void *opaque);
	void *opaque;
	sigset_t set;
	pthread_t thread;
	bool started;
};

/* Blocks SIGINT/SIGTERM/SIGHUP in this thread (and the threads it creates from now on);
 * call before creating any thread. */
void signal_watch_block(struct signal_watch *w);
/* Starts a thread that stops `vm` with status 128+N when signal N arrives. */
void signal_watch_start(struct signal_watch *w, struct vm *vm);
/* The same before a VM exists (hvctl receive while it waits): a signal calls fn(opaque).
 * signal_watch_set_vm switches to stopping the VM once it runs. */
void signal_watch_start_fn(struct signal_watch *w, void (*fn)(void *opaque), void *opaque);
void signal_watch_set_vm(struct signal_watch *w, struct vm *vm);
void signal_watch_stop(struct signal_watch *w);

#endif
