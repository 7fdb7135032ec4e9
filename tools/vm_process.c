#include "tools/vm_process.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/vm.h"

static int detach_ready_fd = -1;

int vm_process_detach(const char *announce)
{
	int ready[2];

	if (pipe2(ready, O_CLOEXEC) < 0) {
		hv_error("cannot create a pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		hv_error("cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(ready[0]);
		detach_ready_fd = ready[1];
		setsid();
		return 0;
	}
	close(ready[1]);
	char c;
	ssize_t n = read(ready[0], &c, 1);
	close(ready[0]);
	if (n == 1) {
		if (announce)
			printf("%s\n", announce);
		exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		exit(HV_EXIT_START_FAILED);
	exit(WIFEXITED(st) ? WEXITSTATUS(st) : HV_EXIT_START_FAILED);
}

void vm_process_detach_done(void)
{
	if (detach_ready_fd < 0)
		return;
	if (write(detach_ready_fd, "1", 1) < 0)
		hv_debug("detach: parent went away");
	close(detach_ready_fd);
	detach_ready_fd = -1;
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

void signal_watch_block(struct signal_watch *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	sigemptyset(&w->set);
	sigaddset(&w->set, SIGINT);
	sigaddset(&w->set, SIGTERM);
	sigaddset(&w->set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &w->set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* SIGINT/SIGTERM/SIGHUP end the VM cleanly instead of killing the process mid-write. */
static void *signal_thread(void *arg)
{
	struct signal_watch *w = arg;
	int sig;

	while (sigwait(&w->set, &sig) == 0) {
		char why[64];
		snprintf(why, sizeof(why), "stopped by signal %d", sig);
		int old;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		pthread_mutex_lock(&w->lock);
		if (w->vm)
			vm_request_stop(w->vm, 128 + sig, why);
		else if (w->fn)
			w->fn(w->opaque);
		pthread_mutex_unlock(&w->lock);
		pthread_setcancelstate(old, NULL);
	}
	return NULL;
}

void signal_watch_start(struct signal_watch *w, struct vm *vm)
{
	w->vm = vm;
	w->started = pthread_create(&w->thread, NULL, signal_thread, w) == 0;
}

void signal_watch_start_fn(struct signal_watch *w, void (*fn)(void *opaque), void *opaque)
{
	w->fn = fn;
	w->opaque = opaque;
	w->started = pthread_create(&w->thread, NULL, signal_thread, w) == 0;
}

void signal_watch_set_vm(struct signal_watch *w, struct vm *vm)
{
	pthread_mutex_lock(&w->lock);
	w->vm = vm;
	pthread_mutex_unlock(&w->lock);
}

void signal_watch_stop(struct signal_watch *w)
{
	if (w->started) {
		/* sigwait is a cancellation point; the lock is never held across it. */
		pthread_cancel(w->thread);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
}
