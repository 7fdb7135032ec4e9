/* Where the guest's serial console goes: stdio, a file, a PTY (for hvctl console), or nowhere. */
#ifndef HV_CONSOLE_H
#define HV_CONSOLE_H

struct console {
	int out_fd, in_fd; /* -1 when absent */
	int pty_slave_fd;  /* held open so the master never sees a hang-up */
	char pty_path[64];
	int owns_fds;
};

/* spec: "stdio", "file:PATH", "pty" or "none". 0, or -1 with one hv_error line. */
int console_open(struct console *c, const char *spec);
void console_close(struct console *c);

#endif
