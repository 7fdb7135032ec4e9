/* The system-call filter (seccomp, libseccomp) of a VM process: once the VM is set up, only
 * what the vCPU loop, the devices (disk, TAP, console), the control socket, migration and a
 * clean exit need stays allowed. Any other system call stops the process with one line naming
 * it and exit status HV_EXIT_SYSCALL_REFUSED (vm.h). */
#ifndef HV_SYSCALL_FILTER_H
#define HV_SYSCALL_FILTER_H

/* Installs the filter on every thread of the process (threads created later inherit it).
 * HV_SECCOMP=0 in the environment skips it (for debugging; says so once on stderr).
 * HV_SECCOMP_SELFTEST=1 is a test hook: right after installing, the process makes a
 * forbidden call (execve), which the filter must stop. 0, or -1 with an hv_error line. */
int syscall_filter_install(void);

#endif
