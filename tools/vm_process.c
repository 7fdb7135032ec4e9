#include "tools/vm_process.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/rundir.h"
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

const char *vm_process_log_path(const char *given, bool detach, const char *name, char *buf, size_t len)
{
	if (given)
		return given;
	if (detach && rundir_log_path(name, buf, len) == 0)
		return buf;
	return NULL;
}

/* Opens the log for appending: a regular file (not through a symlink), readable by us only. */
static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	struct stat st;

	if (fd < 0) {
		hv_warn("cannot open the log '%s': %s; messages go nowhere", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fchmod(fd, 0600) < 0) {
		hv_warn("the log '%s' is not a regular file; messages go nowhere", path);
		close(fd);
		return -1;
	}
	/* One line that says which process the lines after it come from. */
	char head[96], when[32] = "?";
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	int n = snprintf(head, sizeof(head), "--- %s, pid %d\n", when, (int)getpid());
	if (n > 0 && write(fd, head, (size_t)n) < 0)
		hv_debug("log: header not written");
	return fd;
}

void vm_process_detach_done(const char *log_path)
{
	bool detached = detach_ready_fd >= 0;
	int log = log_path ? open_log(log_path) : -1;

	if (detached) {
		if (write(detach_ready_fd, "1", 1) < 0)
			hv_debug("detach: parent went away");
		close(detach_ready_fd);
		detach_ready_fd = -1;
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	if (log >= 0) {
		dup2(log, STDERR_FILENO);
		close(log);
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
