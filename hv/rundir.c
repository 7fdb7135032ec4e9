#include "hv/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/log.h"

/* Longest name: 63 characters (VM_NAME_MAX in vm.h is 64 with the NUL). */
#define NAME_MAX_LEN 63

/* Recomputed on every call (HV_RUN_DIR may change, tests do change it); one buffer per thread
 * so that callers in different threads never see each other's writes. */
static _Thread_local char run_dir[PATH_MAX];

/* mkdir -p with mode 0700 for the directories it creates. 0 or -errno. */
static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

const char *rundir_path(void)
{
	const char *env = getenv("HV_RUN_DIR");
	int is_default = !env || !env[0];
	int n;

	if (!is_default)
		n = snprintf(run_dir, sizeof(run_dir), "%s", env);
	else if (geteuid() == 0)
		n = snprintf(run_dir, sizeof(run_dir), "/run/hv");
	else
		n = snprintf(run_dir, sizeof(run_dir), "/tmp/hv-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= sizeof(run_dir)) {
		hv_error("HV_RUN_DIR is too long; set it to a shorter directory path");
		return NULL;
	}
	while (n > 1 && run_dir[n - 1] == '/')
		run_dir[--n] = '\0';

	int r = mkdir_p(run_dir);
	if (r < 0) {
		hv_error("cannot create the run directory %s: %s; set HV_RUN_DIR to a writable directory",
			 run_dir, strerror(-r));
		return NULL;
	}
	struct stat st;
	if (lstat(run_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		hv_error("the run directory %s is not a directory; remove it or set HV_RUN_DIR", run_dir);
		return NULL;
	}
	/* Anyone who can write here can replace a VM's socket or lock and so take over its
	 * control (or deny it a name): the directory must be private to its owner. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		hv_error("the run directory %s is writable by group or others (mode %04o); run 'chmod go-w %s' or set HV_RUN_DIR to a private directory",
			 run_dir, (unsigned)(st.st_mode & 07777), run_dir);
		return NULL;
	}
	/* /tmp is shared: someone else could have created our directory to spy on sockets. */
	if (is_default && st.st_uid != geteuid()) {
		hv_error("the run directory %s belongs to uid %u, not to you; remove it or set HV_RUN_DIR to a private directory",
			 run_dir, (unsigned)st.st_uid);
		return NULL;
	}
	return run_dir;
}

int rundir_valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	/* A leading '-' would read as an option to hvctl, a leading '.' hides the files. */
	if (name[0] == '-' || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* 0; -1 if the run directory is unusable (reported); -2 if the path does not fit. */
static int name_path(const char *name, const char *suffix, char *buf, size_t len)
{
	const char *dir = rundir_path();

	if (!dir)
		return -1;
	int n = snprintf(buf, len, "%s/%s%s", dir, name, suffix);
	return n < 0 || (size_t)n >= len ? -2 : 0;
}

int rundir_socket_path(const char *name, char *buf, size_t len)
{
	return name_path(name, ".sock", buf, len) < 0 ? -1 : 0;
}

int rundir_log_path(const char *name, char *buf, size_t len)
{
	return name_path(name, ".log", buf, len) < 0 ? -1 : 0;
}

int rundir_claim_name(const char *name)
{
	char path[PATH_MAX];

	if (!rundir_valid_name(name)) {
		hv_error("'%s' is not a valid VM name: use 1 to %d letters, digits, '-', '_' or '.', not starting with '-' or '.'",
			 name ? name : "", NAME_MAX_LEN);
		return -1;
	}
	int r = name_path(name, ".lock", path, sizeof(path));
	if (r < 0) {
		if (r == -2)
			hv_error("the run directory path is too long for VM '%s'; set HV_RUN_DIR to a shorter path",
				 name);
		return -1;
	}
	/* The releasing VM unlinks the lock file while holding the lock; if we locked a file
	 * that was unlinked meanwhile, the lock protects nothing: open the new file and retry. */
	for (int attempt = 0; attempt < 100; attempt++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			hv_error("cannot create the lock file %s: %s; check the permissions of the run directory or set HV_RUN_DIR",
				 path, strerror(errno));
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			close(fd);
			if (err == EWOULDBLOCK) {
				hv_error("a VM named '%s' is already running; pick another --name or stop it with 'hvctl stop %s'",
					 name, name);
			} else {
				hv_error("cannot lock %s: %s", path, strerror(err));
			}
			return -1;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			/* For people looking at the run directory: who holds it. */
			char pid[24];
			int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
			if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0) {
				/* informational only */
			}
			return fd;
		}
		close(fd);
	}
	hv_error("cannot take the lock for VM '%s': its lock file keeps changing; try again", name);
	return -1;
}

void rundir_release_name(const char *name, int lock_fd)
{
	char path[PATH_MAX];

	if (lock_fd < 0)
		return;
	if (rundir_valid_name(name)) {
		if (name_path(name, ".sock", path, sizeof(path)) == 0)
			unlink(path);
		/* Unlinked while still locked: see the retry in rundir_claim_name. */
		if (name_path(name, ".lock", path, sizeof(path)) == 0)
			unlink(path);
	}
	close(lock_fd);
}
