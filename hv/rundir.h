/* Where running VMs are found: $HV_RUN_DIR, else /run/hv (root) or /tmp/hv-$UID.
 * Each VM has NAME.sock (its control socket) and NAME.lock (flock'd while it runs); a
 * detached one writes its log to NAME.log, which stays after it ends. */
#ifndef HV_RUNDIR_H
#define HV_RUNDIR_H

#include <stddef.h>

/* The directory, created (0700) if missing. NULL with an hv_error line on failure, and
 * when it is writable by group or others (a stranger could swap the sockets). */
const char *rundir_path(void);
/* "<rundir>/<name>.sock" into buf. -1 if it does not fit. */
int rundir_socket_path(const char *name, char *buf, size_t len);
/* "<rundir>/<name>.log" into buf. -1 if it does not fit. */
int rundir_log_path(const char *name, char *buf, size_t len);
/* Checks the name (letters, digits, '-', '_', '.', 1..63 chars) and takes its lock.
 * Returns the lock fd (keep it open while the VM runs) or -1 with an hv_error line
 * ("a VM named X is already running ..."). */
int rundir_claim_name(const char *name);
/* Releases the lock and removes the socket file. */
void rundir_release_name(const char *name, int lock_fd);
/* 1 if `name` is a valid VM name. */
int rundir_valid_name(const char *name);

#endif
