/* See syscall_filter.h. The default action is SCMP_ACT_TRAP rather than killing outright: the
 * SIGSYS handler tells the user which call was refused, which is what a bug report needs. */
#include "hv/syscall_filter.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/vm.h"

/* Everything the VM process does after set-up. ioctl stays open: KVM and TAP need many
 * requests, and the fds that accept them were opened before the filter. */
static const char *const allowed[] = {
	/* I/O on disks, TAPs, sockets, pipes, eventfds, the console */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
	"preadv2", "pwritev2", "lseek", "fsync", "fdatasync", "fallocate", "ftruncate",
	"sendfile", "copy_file_range", "ioctl", "fcntl", "close", "dup", "dup2", "dup3",
	"pipe2", "eventfd2", "flock", "openat", "open", "fstat", "newfstatat", "statx",
	"stat", "lstat", "fstatfs", "statfs", "readlink", "readlinkat", "access", "faccessat",
	"faccessat2", "getdents64", "unlink", "unlinkat", "rename", "renameat", "renameat2",
	"link", "linkat", /* a snapshot gets its name (hvctl save) */
	"mkdir", "mkdirat", "fchmod", "umask", "getcwd",
	/* waiting */
	"poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
	"epoll_pwait", "futex", "nanosleep", "clock_nanosleep", "sched_yield", "timerfd_create",
	"timerfd_settime", "timerfd_gettime",
	/* the control socket and migration (both ends, name resolution included) */
	"socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "shutdown",
	"setsockopt", "getsockopt", "getsockname", "getpeername", "sendto", "recvfrom",
	"sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
	/* memory: guest RAM, allocator, threads' stacks */
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mlock", "munlock",
	"membarrier",
	/* threads (clone is allowed for threads only, below), signals, time, identity */
	"set_robust_list", "get_robust_list", "rseq", "set_tid_address", "sched_getaffinity",
	"sched_setaffinity", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"rt_sigtimedwait", "rt_sigpending", "sigaltstack", "tgkill", "tkill", "getpid",
	"gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "clock_gettime",
	"clock_getres", "gettimeofday", "time", "getrandom", "uname", "sysinfo", "prctl",
	"getrusage", "getrlimit", "prlimit64", "getpriority", "restart_syscall",
	"exit", "exit_group",
};

#define NAMES 512
/* Names of the system calls, resolved before the filter (the handler may not allocate). */
static char names[NAMES][24];

static void refused(int sig, siginfo_t *si, void *uc)
{
	char line[200];
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < NAMES && names[nr][0] ? names[nr] : "?";
	int n = snprintf(line, sizeof(line),
			 "hv: error: system call %d (%s) refused by the seccomp filter; this is a bug in hv (report it); HV_SECCOMP=0 runs without the filter\n",
			 nr, name);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing more we can do */
	}
	_exit(HV_EXIT_SYSCALL_REFUSED);
}

static int add_rules(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture (e.g. a legacy alias) */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0)
			return -1;
	}
	/* clone for new threads only: a new process could exec anything. glibc tries clone3
	 * first, whose flags sit behind a pointer the filter cannot read: ENOSYS makes it fall
	 * back to clone. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0)
		return -1;
	return 0;
}

int syscall_filter_install(void)
{
	const char *env = getenv("HV_SECCOMP");

	if (env && !strcmp(env, "0")) {
		hv_warn("HV_SECCOMP=0: the VM process runs without its system-call filter");
		return 0;
	}
	for (int nr = 0; nr < NAMES; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (s)
			snprintf(names[nr], sizeof(names[nr]), "%s", s);
		free(s);
	}
	struct sigaction sa = { .sa_sigaction = refused, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		hv_error("cannot install the SIGSYS handler: %s", strerror(errno));
		return -1;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int r = ctx ? 0 : -ENOMEM;
	if (!r && add_rules(ctx) < 0)
		r = -EINVAL;
	/* Every thread that exists now gets the filter too (vCPUs, devices, control). */
	if (!r)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!r)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		hv_error("cannot install the system-call filter: %s; HV_SECCOMP=0 runs without it",
			 strerror(-r));
		return -1;
	}
	env = getenv("HV_SECCOMP_SELFTEST");
	if (env && !strcmp(env, "1")) {
		char *argv[] = { "true", NULL };
		execve("/bin/true", argv, environ);
	}
	return 0;
}
