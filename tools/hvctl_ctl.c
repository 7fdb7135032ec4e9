/* hvctl list/status/pause/resume/stop/console: clients of the per-VM control socket
 * (docs/control-protocol.md). Each request is one JSON line with an "id"; the reply is the
 * line with the same "id" (event lines in between are skipped). */
#include "tools/hvctl_ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hv/control_proto.h"
#include "hv/log.h"
#include "hv/parse.h"
#include "hv/rundir.h"
#include "tools/ctl_client.h"

#define REQUEST_TIMEOUT_MS 10000
#define LIST_TIMEOUT_MS 2000 /* a VM that does not answer this fast is left out of the list */
#define STOP_TIMEOUT_S 10
#define DETACH_CHAR 0x1d /* Ctrl-] */


static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- argument parsing shared by the subcommands ---- */

#define OPT_NAME 1u    /* takes one VM name */
#define OPT_JSON 2u    /* --json */
#define OPT_TIMEOUT 4u /* --timeout SECS */

struct args {
	const char *name;
	bool json;
	long timeout;
};

struct cmd_spec {
	const char *usage;
	const char *help;
	unsigned opts;
};

/* -1: go on; otherwise the exit status (0 after --help, 2 after bad usage). */
static int parse_args(int argc, char **argv, const struct cmd_spec *spec, struct args *a)
{
	const char *cmd = argv[0];
	bool only_names = false;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!only_names && (!strcmp(s, "--help") || !strcmp(s, "-h"))) {
			printf("usage: %s\n\n%s", spec->usage, spec->help);
			return 0;
		}
		if (!only_names && !strcmp(s, "--")) {
			only_names = true;
			continue;
		}
		if (!only_names && (spec->opts & OPT_JSON) && !strcmp(s, "--json")) {
			a->json = true;
			continue;
		}
		if (!only_names && (spec->opts & OPT_TIMEOUT) &&
		    (!strcmp(s, "--timeout") || !strncmp(s, "--timeout=", 10))) {
			const char *v = s[9] == '=' ? s + 10 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v || parse_int(v, 0, 86400, &a->timeout) < 0) {
				hv_error("hvctl %s: --timeout needs a number of seconds from 0 to 86400; usage: %s",
					 cmd, spec->usage);
				return 2;
			}
			continue;
		}
		if (!only_names && s[0] == '-' && s[1]) {
			hv_error("hvctl %s: unknown option '%s'; usage: %s", cmd, s, spec->usage);
			return 2;
		}
		if (!(spec->opts & OPT_NAME) || a->name) {
			hv_error("hvctl %s: unexpected argument '%s'; usage: %s", cmd, s, spec->usage);
			return 2;
		}
		a->name = s;
	}
	if ((spec->opts & OPT_NAME) && !a->name) {
		hv_error("hvctl %s: missing the VM name; usage: %s", cmd, spec->usage);
		return 2;
	}
	if (a->name && !rundir_valid_name(a->name)) {
		hv_error("hvctl %s: '%s' is not a valid VM name (letters, digits, '-', '_', '.'); see 'hvctl list'",
			 cmd, a->name);
		return 2;
	}
	return -1;
}

/* The reply if it says ok:true; otherwise NULL after printing the VM's error. */
static struct json_object *call_ok(struct ctl_conn *c, const char *cmd)
{
	struct json_object *r = ctl_conn_call(c, cmd, REQUEST_TIMEOUT_MS, false);

	if (r && !ctl_reply_ok(r, c->name)) {
		json_object_put(r);
		return NULL;
	}
	return r;
}

/* ---- formatting ---- */

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) :
		       NULL;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, units[u]);
}

static void fmt_uptime(char *buf, size_t len, uint64_t ms)
{
	unsigned long long s = ms / 1000;

	if (s < 60)
		snprintf(buf, len, "%llus", s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s % 86400 / 3600);
}

/* Memory and vCPUs, or "-" while a VM that is arriving by migration does not know them yet. */
static void fmt_known(struct json_object *s, char *mem, size_t memlen, char *cpus, size_t cpuslen)
{
	int64_t n = get_int(s, "cpus");

	if (n <= 0) {
		snprintf(mem, memlen, "-");
		snprintf(cpus, cpuslen, "-");
		return;
	}
	fmt_size(mem, memlen, (uint64_t)get_int(s, "mem"));
	snprintf(cpus, cpuslen, "%lld", (long long)n);
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* The status reply without the protocol's "id" and "ok": the VM's description. */
static void strip_reply(struct json_object *o)
{
	json_object_object_del(o, "id");
	json_object_object_del(o, "ok");
}

/* ---- list ---- */

static const struct cmd_spec list_spec = {
	"hvctl list [--json]",
	"Lists the VMs running for this user (those with a live control socket in the\n"
	"run directory: $HV_RUN_DIR, else /run/hv for root, else /tmp/hv-$UID).\n\n"
	"  --json   print a JSON array of the VMs' status objects\n",
	OPT_JSON,
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int hvctl_cmd_list(int argc, char **argv)
{
	struct args a = { 0 };
	int r = parse_args(argc, argv, &list_spec, &a);

	if (r >= 0)
		return r;
	const char *dir = rundir_path();
	if (!dir)
		return 1;
	DIR *d = opendir(dir);
	if (!d) {
		hv_error("cannot read the run directory %s: %s; check HV_RUN_DIR", dir, strerror(errno));
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l <= 5 || strcmp(e->d_name + l - 5, ".sock"))
			continue;
		char *name = strndup(e->d_name, l - 5);
		char **p = realloc(names, (n + 1) * sizeof(*names));
		if (!name || !p) {
			free(name);
			if (p)
				names = p;
			break;
		}
		names = p;
		if (rundir_valid_name(name))
			names[n++] = name;
		else
			free(name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);

	struct json_object *all = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct ctl_conn c;
		if (ctl_conn_open(&c, names[i], true) == CTL_CONN_OK) {
			struct json_object *s = ctl_conn_call(&c, "status", LIST_TIMEOUT_MS, true);
			struct json_object *v;
			if (s && json_object_object_get_ex(s, "ok", &v) && json_object_get_boolean(v)) {
				strip_reply(s);
				json_object_array_add(all, s);
			} else if (s) {
				json_object_put(s);
			}
		}
		ctl_conn_close(&c);
		free(names[i]);
	}
	free(names);

	size_t count = json_object_array_length(all);
	if (a.json) {
		print_json(all);
	} else {
		int w = 4;
		for (size_t i = 0; i < count; i++) {
			const char *nm = get_str(json_object_array_get_idx(all, i), "name");
			if (nm && (int)strlen(nm) > w)
				w = (int)strlen(nm);
		}
		printf("%-*s  %-9s %4s %7s  %s\n", w, "NAME", "STATE", "CPUS", "MEM", "UPTIME");
		for (size_t i = 0; i < count; i++) {
			struct json_object *s = json_object_array_get_idx(all, i);
			const char *nm = get_str(s, "name"), *st = get_str(s, "state");
			char mem[32], up[32], cpus[24];
			fmt_known(s, mem, sizeof(mem), cpus, sizeof(cpus));
			fmt_uptime(up, sizeof(up), (uint64_t)get_int(s, "uptime_ms"));
			printf("%-*s  %-9s %4s %7s  %s\n", w, nm ? nm : "?", st ? st : "?", cpus, mem, up);
		}
	}
	json_object_put(all);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- status ---- */

/* One status call on a connection of its own; NULL after printing why. */
static struct json_object *fetch_status(const char *name)
{
	struct ctl_conn c;
	struct json_object *s = NULL;

	if (ctl_conn_open(&c, name, false) == CTL_CONN_OK)
		s = call_ok(&c, "status");
	ctl_conn_close(&c);
	return s;
}

static const struct cmd_spec status_spec = {
	"hvctl status NAME [--json]",
	"Shows one VM: name, UUID, state (created, running, paused, stopped; incoming\n"
	"and migrating for one that 'hvctl receive' is waiting for, with the address\n"
	"it listens on and the source), vCPUs, CPU model, memory, uptime, the process\n"
	"id of its hv, and its console PTY if it has one.\n\n"
	"  --json   print the VM's status object as one JSON line\n",
	OPT_NAME | OPT_JSON,
};

int hvctl_cmd_status(int argc, char **argv)
{
	struct args a = { 0 };
	int r = parse_args(argc, argv, &status_spec, &a);

	if (r >= 0)
		return r;
	struct json_object *s = fetch_status(a.name);
	if (!s)
		return 1;
	strip_reply(s);
	if (a.json) {
		print_json(s);
	} else {
		char mem[32], up[32], cpus[24];
		const char *pty = get_str(s, "console_pty");
		const char *listen = get_str(s, "listen"), *src = get_str(s, "source");
		fmt_known(s, mem, sizeof(mem), cpus, sizeof(cpus));
		fmt_uptime(up, sizeof(up), (uint64_t)get_int(s, "uptime_ms"));
		printf("name:    %s\n", get_str(s, "name") ? get_str(s, "name") : "?");
		printf("uuid:    %s\n", get_str(s, "uuid") ? get_str(s, "uuid") : "-");
		printf("state:   %s\n", get_str(s, "state") ? get_str(s, "state") : "?");
		if (listen)
			printf("listen:  %s\n", listen);
		if (src)
			printf("source:  %s\n", src);
		struct json_object *arr;
		if (json_object_object_get_ex(s, "arriving", &arr)) {
			/* The source's own figures: pages sent count re-sent pages too. */
			printf("arriving: round %lld, %.1f MiB of pages sent (guest RAM %.0f MiB)\n",
			       (long long)get_int(arr, "round"),
			       (double)get_int(arr, "pages_sent") * 4096 / 1048576,
			       (double)get_int(arr, "ram_pages") * 4096 / 1048576);
		}
		printf("cpus:    %s\n", cpus);
		if (get_str(s, "cpu_model"))
			printf("cpu:     %s (--json lists its features)\n", get_str(s, "cpu_model"));
		printf("memory:  %s\n", mem);
		printf("uptime:  %s\n", up);
		printf("pid:     %lld\n", (long long)get_int(s, "pid"));
		printf("console: %s\n", pty ? pty : "(no PTY)");
	}
	json_object_put(s);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- pause, resume ---- */

static int simple_command(int argc, char **argv, const struct cmd_spec *spec, const char *cmd)
{
	struct args a = { 0 };
	int r = parse_args(argc, argv, spec, &a);

	if (r >= 0)
		return r;
	struct ctl_conn c;
	if (ctl_conn_open(&c, a.name, false) != CTL_CONN_OK) {
		ctl_conn_close(&c);
		return 1;
	}
	struct json_object *reply = call_ok(&c, cmd);
	ctl_conn_close(&c);
	if (!reply)
		return 1;
	json_object_put(reply);
	return 0;
}

static const struct cmd_spec pause_spec = {
	"hvctl pause NAME",
	"Stops the VM's vCPUs; returns once none of them runs guest code. Memory and\n"
	"devices stay as they are. Pausing a paused VM does nothing.\n",
	OPT_NAME,
};

static const struct cmd_spec resume_spec = {
	"hvctl resume NAME",
	"Lets a paused VM's vCPUs run again. Resuming a running VM does nothing.\n",
	OPT_NAME,
};

int hvctl_cmd_pause(int argc, char **argv)
{
	return simple_command(argc, argv, &pause_spec, "pause");
}

int hvctl_cmd_resume(int argc, char **argv)
{
	return simple_command(argc, argv, &resume_spec, "resume");
}

/* ---- stop ---- */

static const struct cmd_spec stop_spec = {
	"hvctl stop NAME [--timeout SECS]",
	"Ends the VM (its 'hvctl run' exits with status 0) and waits until it is\n"
	"gone: its control socket removed and its name free again.\n\n"
	"  --timeout SECS   how long to wait (default 10; 0 = do not wait). Exit\n"
	"                   status 1 if the VM has not ended by then.\n",
	OPT_NAME | OPT_TIMEOUT,
};

/* 1 when nobody holds NAME's lock any more: the VM's process has cleaned up or died. */
static int name_released(const char *name)
{
	char path[PATH_MAX];
	const char *dir = rundir_path();

	if (!dir || snprintf(path, sizeof(path), "%s/%s.lock", dir, name) >= (int)sizeof(path))
		return 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT;
	/* The file is left behind only when its VM died; then nobody holds the lock. */
	int released = flock(fd, LOCK_SH | LOCK_NB) == 0;
	close(fd);
	return released;
}

int hvctl_cmd_stop(int argc, char **argv)
{
	struct args a = { .timeout = STOP_TIMEOUT_S };
	int r = parse_args(argc, argv, &stop_spec, &a);

	if (r >= 0)
		return r;
	struct ctl_conn c;
	if (ctl_conn_open(&c, a.name, false) != CTL_CONN_OK) {
		ctl_conn_close(&c);
		return 1;
	}
	struct json_object *s = call_ok(&c, "status");
	long long pid = s ? (long long)get_int(s, "pid") : 0;
	if (s)
		json_object_put(s);
	struct json_object *reply = s ? call_ok(&c, "stop") : NULL;
	if (!reply) {
		ctl_conn_close(&c);
		return 1;
	}
	json_object_put(reply);
	if (a.timeout == 0) {
		ctl_conn_close(&c);
		return 0;
	}

	/* The server closes every connection after removing the socket, when the VM ends. */
	struct deadline deadline = deadline_in_ms(a.timeout * 1000);
	char *line;
	while ((r = ctl_conn_read_line(&c, deadline, &line)) == 1)
		free(line);
	ctl_conn_close(&c);
	if (r != -2) {
		while (!name_released(a.name) && !deadline_passed(deadline))
			sleep_ms(20);
		if (name_released(a.name))
			return 0;
	}
	hv_error("VM '%s' has not ended after %ld s; wait longer with --timeout SECS, or end its hv process with 'kill %lld'",
		 a.name, a.timeout, pid);
	return 1;
}

/* ---- console ---- */

static const struct cmd_spec console_spec = {
	"hvctl console NAME",
	"Attaches the terminal to the VM's serial console (a VM started with --console\n"
	"pty). Keys go to the guest; Ctrl-] detaches (the VM keeps running). Without a\n"
	"terminal, standard input is sent to the guest and, after it ends, the guest's\n"
	"output is shown until the VM ends or hvctl is interrupted.\n",
	OPT_NAME,
};

static volatile sig_atomic_t console_interrupted;

static void on_console_signal(int sig)
{
	console_interrupted = sig;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Relays between the terminal and the PTY until Ctrl-], the VM's end or a signal. */
static int relay(int pty, bool tty)
{
	char in[4096], out[4096];
	size_t in_len = 0; /* keyboard bytes the PTY has not taken yet */
	bool stdin_open = true;

	for (;;) {
		if (console_interrupted)
			return 0;
		struct pollfd pfd[2] = {
			{ .fd = pty, .events = POLLIN | (in_len ? POLLOUT : 0) },
			{ .fd = stdin_open && !in_len ? STDIN_FILENO : -1, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			hv_error("console: poll failed: %s", strerror(errno));
			return 1;
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(pty, out, sizeof(out));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				/* EIO: the VM closed its side of the PTY. */
				if (tty)
					fprintf(stderr, "\n[the VM's console closed]\n");
				return 0;
			}
			if (write_all(STDOUT_FILENO, out, (size_t)n) < 0)
				return 1;
		}
		if (in_len && (pfd[0].revents & POLLOUT)) {
			ssize_t n = write(pty, in, in_len);
			if (n > 0) {
				memmove(in, in + n, in_len - (size_t)n);
				in_len -= (size_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return 0;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(STDIN_FILENO, in, sizeof(in));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				stdin_open = false;
				continue;
			}
			char *d = memchr(in, DETACH_CHAR, (size_t)n);
			size_t keep = d ? (size_t)(d - in) : (size_t)n;
			if (d) {
				/* Send what came before Ctrl-] as best we can, then leave. */
				if (keep && write(pty, in, keep) < 0) {
				}
				if (tty)
					fprintf(stderr, "\n[detached]\n");
				return 0;
			}
			in_len = keep;
		}
	}
}

int hvctl_cmd_console(int argc, char **argv)
{
	struct args a = { 0 };
	int r = parse_args(argc, argv, &console_spec, &a);

	if (r >= 0)
		return r;
	struct json_object *s = fetch_status(a.name);
	if (!s)
		return 1;
	const char *p = get_str(s, "console_pty");
	if (!p || !p[0]) {
		hv_error("VM '%s' has no PTY console; start it with --console pty", a.name);
		json_object_put(s);
		return 1;
	}
	char path[256];
	snprintf(path, sizeof(path), "%s", p);
	json_object_put(s);

	int pty = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (pty < 0) {
		hv_error("cannot open VM '%s''s console %s: %s; run hvctl as the user that started the VM",
			 a.name, path, strerror(errno));
		return 1;
	}

	struct sigaction sa = { .sa_handler = on_console_signal }; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	bool tty = isatty(STDIN_FILENO);
	struct termios saved;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios raw = saved;
		cfmakeraw(&raw);
		/* Keep "\n" -> "\r\n" on output: small guests print bare newlines. */
		raw.c_oflag |= OPOST | ONLCR;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
		fprintf(stderr, "[connected to VM '%s' on %s; Ctrl-] detaches]\n", a.name, path);
	} else {
		tty = false;
	}
	r = relay(pty, tty);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	close(pty);
	return r;
}
