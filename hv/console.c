#include "hv/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "hv/log.h"

static int open_pty(struct console *c)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    ptsname_r(master, c->pty_path, sizeof(c->pty_path)) != 0) {
		hv_error("cannot create a PTY for the console: %s", strerror(errno));
		if (master >= 0)
			close(master);
		return -1;
	}
	int slave = open(c->pty_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		hv_error("cannot open %s: %s", c->pty_path, strerror(errno));
		close(master);
		return -1;
	}
	/* Raw: the guest does its own echo and line editing. */
	struct termios t;
	if (tcgetattr(slave, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(slave, TCSANOW, &t);
	}
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	c->out_fd = c->in_fd = master;
	c->pty_slave_fd = slave;
	return 0;
}

int console_open(struct console *c, const char *spec)
{
	memset(c, 0, sizeof(*c));
	c->out_fd = c->in_fd = c->pty_slave_fd = -1;
	if (!spec || !strcmp(spec, "stdio")) {
		c->out_fd = STDOUT_FILENO;
		c->in_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : -1;
		return 0;
	}
	if (!strcmp(spec, "none"))
		return 0;
	c->owns_fds = 1;
	if (!strcmp(spec, "pty"))
		return open_pty(c);
	if (!strncmp(spec, "file:", 5) && spec[5]) {
		c->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (c->out_fd < 0) {
			hv_error("cannot open console file '%s': %s", spec + 5, strerror(errno));
			return -1;
		}
		return 0;
	}
	hv_error("unknown --console '%s'; use stdio, file:PATH, pty or none", spec);
	return -1;
}

void console_close(struct console *c)
{
	if (c->owns_fds) {
		if (c->out_fd >= 0)
			close(c->out_fd);
		if (c->in_fd >= 0 && c->in_fd != c->out_fd)
			close(c->in_fd);
		if (c->pty_slave_fd >= 0)
			close(c->pty_slave_fd);
	}
	c->out_fd = c->in_fd = c->pty_slave_fd = -1;
}
