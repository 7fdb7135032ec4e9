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
/* In a detached child: tells the parent that start-up succeeded, drops the terminal. */
void vm_process_detach_done(void);

struct signal_watch {
	struct vm *vm;
	sigset_t set;
	pthread_t thread;
	bool started;
};

/* Blocks SIGINT/SIGTERM/SIGHUP in this thread (and the threads it creates from now on);
 * call before creating any thread. */
void signal_watch_block(struct signal_watch *w);
/* Starts a thread that stops `vm` with status 128+N when signal N arrives. */
void signal_watch_start(struct signal_watch *w, struct vm *vm);
void signal_watch_stop(struct signal_watch *w);

#endif
