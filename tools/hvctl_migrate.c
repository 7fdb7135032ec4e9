/* hvctl migrate and hvctl save: asks a VM (over its control socket) to migrate itself, to
 * another host or into a snapshot file, then shows the progress: a live bar on a TTY, JSON
 * events with --json, and a final summary. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/parse.h"
#include "migrate/compress_pool.h"
#include "hv/printable.h"
#include "migrate/migrate_json.h"
#include "migrate/snapshot.h"
#include "tools/ctl_client.h"
#include "tools/hvctl.h"
#include "tools/hvctl_remote.h"
#include "tools/migrate_bar.h"
#include "tools/migrate_event.h"
#include "tools/migrate_explain.h"
#include "tools/migrate_report.h"
#include "tools/placement.h"
#include "tools/tls_opts.h"

struct migrate_opts {
	const char *name;
	struct migrate_params p; /* what the VM is asked for: defaults from migrate_params_default */
	int json, cancel, explain;
	const char *report; /* --report FILE.html */
	const char *file; /* hvctl save: the snapshot file, absolute (p.uri is "file:" and it) */
	const char *to, *hosts; /* the destination is an agent: --to HOST|auto, --hosts A,B */
};

/* The directory part of path (slash: its last '/', or NULL): "/" for "/x", "." for "x". */
static void dir_of(const char *path, const char *slash, char *dir, size_t len)
{
	snprintf(dir, len, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
}

/* --report FILE: its directory must exist (checked before anything moves, so that a typo
 * does not lose the report of a migration that took an hour). */
static int report_path_check(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (!path[0] || (slash && !slash[1])) {
		hv_error("--report '%s' names a directory; give a file name such as report.html", path);
		return -1;
	}
	dir_of(path, slash, dir, sizeof(dir));
	if (access(dir, W_OK) < 0) {
		hv_error("--report '%s': cannot write in directory '%s' (%s)", path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* --compress NAME, for migrate and save. */
static int parse_compress(const char *arg, struct migrate_params *p)
{
	int n = migrate_choice(arg, migrate_compress_names, MIGRATE_COMPRESS_COUNT);
	char list[64];

	if (n < 0) {
		hv_error("--compress '%s': use %s", arg,
			 migrate_choice_list(migrate_compress_names, MIGRATE_COMPRESS_COUNT, list, sizeof(list)));
		return -1;
	}
	p->compress = (enum migrate_compress)n;
	return 0;
}

static void migrate_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl migrate NAME HOST:PORT|HOST [--downtime MS] [--bandwidth RATE]\n"
		"         [--compress auto|zstd|zlib|hybrid|none] [--compress-threads N]\n"
		"         [--max-rounds N] [--on-timeout force|cancel]\n"
		"         [--auto-converge [--max-throttle PCT]]\n"
		"         [--postcopy | --postcopy-after N] [--dirty-log get|clear]\n"
		"         [--offline] [--json | --explain]\n"
		"         [--report FILE.html] [--storage shared|copy [--dest-disk PATH]...]\n"
		"         [--psk FILE | --tls-cert F --tls-key F --tls-ca F\n"
		"          [--tls-server-name N]]\n"
		"       hvctl migrate NAME --to HOST|auto [--hosts A,B,...] [options]\n"
		"       hvctl migrate --cancel NAME\n"
		"\n"
		"Live-migrates VM NAME to 'hvctl receive --listen HOST:PORT', or, given a HOST\n"
		"without a port (or --to HOST), to the agent there ('hvctl serve'), which\n"
		"starts the receiver itself. --to auto --hosts A,B,... picks the agent with\n"
		"the most memory to spare that can take the VM, and prints why. Pre-copy rounds\n"
		"run until the rest fits in --downtime (default 30 ms) or --max-rounds\n"
		"(default 30) is reached; then --on-timeout decides (default force). A\n"
		"path whose round trips alone exceed --downtime is named at once (a note),\n"
		"and pre-copy aims for that cost plus the limit; with cancel, a round trip\n"
		"the kernel sees that long ends the migration before anything is sent.\n"
		"--auto-converge slows a guest that dirties memory as fast as the link\n"
		"sends it: after two rounds behind, its vCPUs are held back 20%% of the time,\n"
		"10%% more each round still behind, at most --max-throttle (default 99).\n"
		"--postcopy starts the guest there after the first full pass of its memory\n"
		"unless pre-copy converged (--postcopy-after N: after N rounds, always); the\n"
		"pages it still lacks follow, those it touches first. A failure after that\n"
		"loses the guest on both hosts (exit status 4).\n"
		"--dirty-log clear re-arms KVM's dirty log chunk by chunk as pages are sent\n"
		"(default get: all of it when collected).\n"
		"--bandwidth caps the stream (bytes/s, K/M/G suffixes). --compress auto (the\n"
		"default) compresses with zstd (zlib for a destination without it) only\n"
		"while the link is the bottleneck; zstd and zlib always; none never.\n"
		"--compress-threads N compresses on N threads; hybrid (threads: the CPUs\n"
		"less one) sends a batch raw when every thread is busy: never slower than\n"
		"none, and faster wherever the threads save bytes.\n"
		"On any failure before the state is sent, the VM keeps running here.\n"
		"--offline moves a paused VM (hvctl pause NAME) without pre-copy rounds:\n"
		"its memory is sent once; it arrives paused.\n"
		"--storage copy sends the disks too (shared-nothing), into new images the\n"
		"destination creates (its --disk or --disk-dir; --dest-disk asks for a path\n"
		"in its --disk-dir, one per disk). Default: shared, the destination opens\n"
		"the same image (its --disk, --disk-dir or --shared-storage).\n"
		"--explain narrates each round in plain language; --report writes an HTML\n"
		"page with a chart of every round ('hvctl report' makes one from --json).\n"
		"--psk FILE (from 'hvctl keygen', the destination's file) or certificates\n"
		"(--tls-ca signed the destination's, which must name HOST or\n"
		"--tls-server-name) run the migration over TLS 1.3, the destination\n"
		"authenticated before anything of the VM is sent.\n"
		"Exit status: 0 migrated, 1 failed (the reason on stderr), 2 bad usage, 3 the\n"
		"link failed once the destination could start the guest: the VM stays paused\n"
		"here until you check the destination; 4 post-copy failed: the guest is lost.\n");
}

static int parse_opts(int argc, char **argv, struct migrate_opts *o)
{
	static const struct option longopts[] = {
		{ "downtime", required_argument, NULL, 'd' }, { "bandwidth", required_argument, NULL, 'b' },
		{ "compress", required_argument, NULL, 'c' }, { "max-rounds", required_argument, NULL, 'r' },
		{ "on-timeout", required_argument, NULL, 'o' }, { "json", no_argument, NULL, 'j' },
		{ "cancel", no_argument, NULL, 'x' }, { "help", no_argument, NULL, 'h' },
		{ "offline", no_argument, NULL, 'f' }, { "explain", no_argument, NULL, 'e' },
		{ "report", required_argument, NULL, 'R' }, { "storage", required_argument, NULL, 'S' },
		{ "dest-disk", required_argument, NULL, 'D' },
		{ "to", required_argument, NULL, 'T' }, { "hosts", required_argument, NULL, 'H' },
		{ "auto-converge", no_argument, NULL, 'A' }, { "max-throttle", required_argument, NULL, 'M' },
		{ "postcopy", no_argument, NULL, 'P' }, { "postcopy-after", required_argument, NULL, 'p' },
		{ "compress-threads", required_argument, NULL, 'C' },
		{ "dirty-log", required_argument, NULL, 'L' },
		TLS_LONGOPTS, { "tls-server-name", required_argument, NULL, TLS_OPT_SERVER_NAME },
		{ NULL, 0, NULL, 0 },
	};
	int c, ndest = 0;
	long n;

	migrate_params_default(&o->p);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int trc;
		if (hvctl_parse_tls_opt(c, optarg, &o->p.tls, &trc)) {
			if (trc >= 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'd':
			if (parse_int(optarg, 1, MIGRATE_MAX_DOWNTIME_LIMIT_MS, &n) < 0) {
				hv_error("--downtime '%s' is not a number of milliseconds (1-%d)", optarg,
					 MIGRATE_MAX_DOWNTIME_LIMIT_MS);
				return -1;
			}
			o->p.downtime_ms = (uint32_t)n;
			break;
		case 'r':
			if (parse_int(optarg, 1, MIGRATE_MAX_ROUNDS_LIMIT, &n) < 0) {
				hv_error("--max-rounds '%s' is not a number from 1 to %d", optarg, MIGRATE_MAX_ROUNDS_LIMIT);
				return -1;
			}
			o->p.max_rounds = (uint32_t)n;
			break;
		case 'b':
			if (parse_size(optarg, &o->p.bandwidth) < 0 || o->p.bandwidth < MIGRATE_MIN_BANDWIDTH) {
				hv_error("--bandwidth '%s' is not a rate in bytes/s (e.g. 100M)", optarg);
				return -1;
			}
			break;
		case 'c':
			if (parse_compress(optarg, &o->p) < 0)
				return -1;
			break;
		case 'o':
			if ((n = migrate_choice(optarg, migrate_on_timeout_names, 2)) < 0) {
				hv_error("--on-timeout '%s': use force or cancel", optarg);
				return -1;
			}
			o->p.on_timeout = (enum migrate_on_timeout)n;
			break;
		case 'A': o->p.auto_converge = true; break;
		case 'P': o->p.postcopy_after = 1; break;
		case 'L':
			if (strcmp(optarg, "get") && strcmp(optarg, "clear")) {
				hv_error("--dirty-log '%s': use get (re-armed when collected) or clear (re-armed "
					 "chunk by chunk as it is sent)", optarg);
				return -1;
			}
			o->p.dirty_clear = !strcmp(optarg, "clear");
			break;
		case 'C':
			if (parse_int(optarg, 1, COMPRESS_POOL_MAX, &n) < 0) {
				hv_error("--compress-threads '%s' is not a number from 1 to %d", optarg, COMPRESS_POOL_MAX);
				return -1;
			}
			o->p.compress_threads = (uint32_t)n;
			break;
		case 'p':
			if (parse_int(optarg, 1, MIGRATE_MAX_ROUNDS_LIMIT, &n) < 0) {
				hv_error("--postcopy-after '%s' is not a number of rounds from 1 to %d", optarg,
					 MIGRATE_MAX_ROUNDS_LIMIT);
				return -1;
			}
			o->p.postcopy_after = (uint32_t)n;
			o->p.postcopy_forced = true;
			break;
		case 'M':
			if (parse_int(optarg, 1, MIGRATE_DEFAULT_MAX_THROTTLE, &n) < 0) {
				hv_error("--max-throttle '%s' is not a percentage from 1 to %d", optarg,
					 MIGRATE_DEFAULT_MAX_THROTTLE);
				return -1;
			}
			o->p.max_throttle_pct = (uint32_t)n;
			o->p.auto_converge = true; /* a ceiling for the throttle asks for one */
			break;
		case 'j': o->json = 1; break;
		case 'e': o->explain = 1; break;
		case 'R': o->report = optarg; break;
		case 'f': o->p.offline = true; break;
		case 'S':
			if (strcmp(optarg, "shared") && strcmp(optarg, "copy")) {
				hv_error("--storage '%s': use shared (both hosts see the disk) or copy (it travels)", optarg);
				return -1;
			}
			o->p.storage_copy = !strcmp(optarg, "copy");
			break;
		case 'D':
			if (ndest == MIGRATE_DISKS_MAX || !optarg[0] ||
			    (size_t)snprintf(o->p.dest_disk[ndest], sizeof(o->p.dest_disk[ndest]), "%s", optarg) >=
				    sizeof(o->p.dest_disk[ndest])) {
				hv_error("--dest-disk '%.40s': at most %d, one per disk, each a path shorter than %d bytes",
					 optarg, MIGRATE_DISKS_MAX, MIGRATE_PATH_MAX);
				return -1;
			}
			ndest++;
			break;
		case 'x': o->cancel = 1; break;
		case 'T': o->to = optarg; break;
		case 'H': o->hosts = optarg; break;
		case 'h': migrate_usage(stdout); exit(0);
		default:
			hv_error("hvctl migrate: unknown or incomplete option '%s'; see hvctl migrate --help",
				 argv[optind - 1]);
			return -1;
		}
	}
	if (o->json && o->explain) {
		hv_error("hvctl migrate: --json and --explain both write to standard output; use one");
		return -1;
	}
	if (o->report && report_path_check(o->report) < 0)
		return -1;
	if (ndest && !o->p.storage_copy) {
		hv_error("hvctl migrate: --dest-disk names where a copied disk goes; add --storage copy");
		return -1;
	}
	if (o->hosts && !o->to) {
		hv_error("hvctl migrate: --hosts is the list for --to auto; add --to auto");
		return -1;
	}
	int need = o->cancel || o->to ? 1 : 2;
	if (argc - optind != need) {
		hv_error(o->cancel ? "usage: hvctl migrate --cancel NAME"
				   : o->to ? "usage: hvctl migrate NAME --to HOST|auto [options]: --to names the destination"
					   : "usage: hvctl migrate NAME HOST:PORT [options]; see hvctl migrate --help");
		return -1;
	}
	o->name = argv[optind];
	if (!o->cancel && !o->to && destination_is_agent(argv[optind + 1]))
		o->to = argv[optind + 1];
	if (!o->cancel && !o->to && (size_t)snprintf(o->p.uri, sizeof(o->p.uri), "%s", argv[optind + 1]) >= sizeof(o->p.uri)) {
		hv_error("HOST:PORT '%.40s...' is too long", argv[optind + 1]);
		return -1;
	}
	return 0;
}

/* The terminal's width now (it may have been resized since the last redraw); 80 if unknown. */
static int terminal_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Redraws the progress line in place: carriage return, the line, erase to its end. */
static void draw_bar(struct json_object *ev)
{
	struct migrate_bar_in in = {
		.phase = event_str(ev, "phase"),
		.round = event_num(ev, "round"),
		.round_pages = event_num(ev, "round_pages"),
		.round_done_pages = event_num(ev, "round_done_pages"),
		.round_bytes = event_num(ev, "round_bytes"),
		.round_elapsed_ms = event_num(ev, "round_elapsed_ms"),
		.rate_mibs = event_num(ev, "rate_mibs"),
		.dirty_rate_mibs = event_num(ev, "dirty_rate_mibs"),
		.wire_bytes = event_num(ev, "wire_bytes"),
		.expected_downtime_ms = event_num(ev, "expected_downtime_ms"),
	};
	char line[512];

	migrate_bar_format(&in, terminal_columns(), line, sizeof(line));
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
}

/* The compressed pages by compressor, when there are any (an older VM process reports no
 * zstd_pages: 0). */
static void print_compressed(struct json_object *ev)
{
	if (event_num(ev, "zstd_pages") + event_num(ev, "zlib_pages") > 0)
		printf("  compressed      %.0f pages with zstd, %.0f with zlib\n", event_num(ev, "zstd_pages"),
		       event_num(ev, "zlib_pages"));
}

static void print_summary(struct json_object *ev, const char *name, const char *uri, const char *file)
{
	char bytes[32];
	double compressed = event_num(ev, "zlib_pages") + event_num(ev, "zstd_pages");

	migrate_bar_bytes(bytes, sizeof(bytes), event_num(ev, "wire_bytes"));
	if (file) {
		printf("saved %s to %s\n", name, file);
		printf("  total time      %.1f ms\n", event_num(ev, "elapsed_ms"));
		printf("  guest paused    %.1f ms\n", event_num(ev, "downtime_ms"));
		printf("  file size       %s\n", bytes);
		printf("  pages           %.0f raw, %.0f compressed (zero pages take no space)\n",
		       event_num(ev, "raw_pages"), compressed);
		print_compressed(ev);
		return;
	}
	printf("migrated %s to %s\n", name, uri);
	printf("  total time      %.1f ms\n", event_num(ev, "elapsed_ms"));
	printf("  downtime        %.1f ms\n", event_num(ev, "downtime_ms"));
	printf("  rounds          %.0f\n", event_num(ev, "round") + 1);
	printf("  on the wire     %s\n", bytes);
	printf("  pages           %.0f zero, %.0f raw, %.0f compressed\n", event_num(ev, "zero_pages"),
	       event_num(ev, "raw_pages"), compressed);
	print_compressed(ev);
	if (event_num(ev, "disk_blocks_sent") > 0) {
		char disk[32];
		migrate_bar_bytes(disk, sizeof(disk), event_num(ev, "disk_bytes"));
		printf("  disks copied    %s of data in %.0f blocks of 64 KiB\n", disk, event_num(ev, "disk_blocks_sent"));
	}
	printf("  security        %s\n", !strcmp(event_str(ev, "security"), "none") ? "none (plain TCP)" : event_str(ev, "security"));
	struct json_object *pc = event_member(ev, "postcopy");
	if (pc)
		printf("  post-copy       %.0f pages after it started there (%.0f on request) in %.0f ms\n",
		       event_num(pc, "pages"), event_num(pc, "requested_pages"), event_num(pc, "ms"));
	if (event_num(ev, "max_throttle_pct") > 0)
		printf("  throttled       up to %.0f%% of the guest's CPU time (--auto-converge)\n",
		       event_num(ev, "max_throttle_pct"));
	if (event_flag(ev, "paused"))
		printf("  state there     paused, as it was here ('hvctl resume %s' on the destination)\n", name);
}

static int do_cancel(const char *name, const char *cmd)
{
	struct ctl_conn c;

	if (ctl_conn_open(&c, name, false) != CTL_CONN_OK)
		return 1;
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	struct json_object *reply = ctl_conn_request(&c, req, 5000, false);
	json_object_put(req);
	int r = reply && ctl_reply_ok(reply, name) ? 0 : 1;
	if (reply)
		json_object_put(reply);
	ctl_conn_close(&c);
	return r;
}

/* Starts the VM's migration job and follows it to its end: 0 done, 1 failed, 3 unknown. */
static int run_job(const struct migrate_opts *op)
{
	const struct migrate_opts o = *op;
	const char *what = o.file ? "save" : "migration";
	struct ctl_conn c;

	if (ctl_conn_open(&c, o.name, false) != CTL_CONN_OK)
		return 1;

	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("subscribe"));
	struct json_object *reply = ctl_conn_request(&c, req, 5000, false);
	json_object_put(req);
	if (!reply || !ctl_reply_ok(reply, o.name)) {
		if (reply)
			json_object_put(reply);
		ctl_conn_close(&c);
		return 1;
	}
	json_object_put(reply);

	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("migrate"));
	migrate_params_to_json(&o.p, req);
	reply = ctl_conn_request(&c, req, 5000, false);
	json_object_put(req);
	if (!reply || !ctl_reply_ok(reply, o.name)) {
		if (reply)
			json_object_put(reply);
		ctl_conn_close(&c);
		return 1;
	}
	json_object_put(reply);

	bool tty = !o.json && !o.explain && isatty(STDERR_FILENO);
	struct migrate_explain explain = { .limit_ms = o.p.downtime_ms, .max_rounds = o.p.max_rounds };
	struct migrate_report *report = o.report ? migrate_report_new() : NULL;
	int result = 1;
	bool warned = false;
	for (;;) {
		char *line;
		/* Rounds can be long on a slow link and the engine reports at least once per round;
		 * the VM closing the connection (it ended) is what ends a wait for nothing. */
		int r = ctl_conn_read_line(&c, deadline_never(), &line);
		if (r <= 0) {
			if (tty)
				fputc('\n', stderr);
			hv_error("VM '%s' closed its control connection before the %s finished", o.name, what);
			break;
		}
		struct json_object *ev = json_tokener_parse(line);
		if (!ev) {
			free(line);
			continue;
		}
		const char *kind = event_str(ev, "event");
		if (o.json && !strncmp(kind, "migration", 9))
			printf("%s\n", line);
		/* A note, not a failure: standard output, with the summary (--json: in the event). */
		if (!warned && !o.json && event_str(ev, "warning")[0]) {
			char w[256];
			if (tty)
				fputs("\r\033[K", stderr);
			/* wrapped for an 80-column terminal, like the summary under it */
			placement_print_wrapped(stdout, printable(w, sizeof(w), event_str(ev, "warning")), 74,
						printf("note: "));
			fflush(stdout);
			warned = true;
		}
		free(line);
		if (report)
			migrate_report_add(report, ev);
		if (o.explain) {
			char said[MIGRATE_EXPLAIN_MAX];
			if (migrate_explain_event(&explain, ev, said, sizeof(said)))
				printf("%s\n", said);
			fflush(stdout);
		}
		if (!strcmp(kind, "migration")) {
			if (tty)
				draw_bar(ev);
		} else if (!strcmp(kind, "migration-done")) {
			if (tty)
				fputc('\n', stderr);
			if (!o.json)
				print_summary(ev, o.name, o.p.uri, o.file);
			result = 0;
			json_object_put(ev);
			break;
		} else if (!strcmp(kind, "migration-failed")) {
			if (tty)
				fputc('\n', stderr);
			if (event_flag(ev, "outcome_unknown") || event_flag(ev, "postcopy_lost")) {
				hv_error("migration of '%s': %s", o.name, event_str(ev, "error"));
				result = event_flag(ev, "postcopy_lost") ? 4 : 3;
			} else {
				hv_error("%s of '%s' failed: %s; the VM %s here", what, o.name, event_str(ev, "error"),
					 o.file ? "goes on as it was" : "keeps running");
			}
			json_object_put(ev);
			break;
		}
		json_object_put(ev);
	}
	if (report && migrate_report_complete(report)) {
		/* The exit status stays the migration's: a report that could not be written is
		 * one more line on stderr, the VM is where the migration put it. */
		if (migrate_report_save(report, o.report) == 0 && !o.json)
			printf("  report          %s\n", o.report);
	}
	migrate_report_free(report);
	fflush(stdout);
	ctl_conn_close(&c);
	return result;
}

/* The destination is an agent: it starts a receiver (on the host --to auto chose), the
 * VM migrates to it; a receiver no source reached is stopped again. */
static int migrate_to_agent(struct migrate_opts *o)
{
	struct ctl_conn c;
	struct json_object *st;
	struct placement_vm vm = { .name = o->name };
	struct agent_target t;

	if (ctl_conn_open(&c, o->name, false) != CTL_CONN_OK)
		return 1;
	st = ctl_conn_call(&c, "status", 5000, false);
	ctl_conn_close(&c);
	if (!st || !ctl_reply_ok(st, o->name)) {
		json_object_put(st);
		return 1;
	}
	vm.mem = (uint64_t)event_num(st, "mem");
	vm.cpu_features = event_str(st, "cpu_features");
	int r = agent_target_prepare(o->to, o->hosts, &o->p.tls, &vm, o->json ? stderr : stdout, &t);
	json_object_put(st);
	if (r < 0)
		return 1;
	snprintf(o->p.uri, sizeof(o->p.uri), "%.250s", t.listen);
	r = run_job(o);
	agent_target_finish(&t, o->name, r);
	return r;
}

int hvctl_cmd_migrate(int argc, char **argv)
{
	static struct migrate_opts o; /* static: the TLS paths make it ~5 KiB */

	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	if (o.cancel)
		return do_cancel(o.name, "migrate-cancel");
	if (o.to)
		return migrate_to_agent(&o);
	return run_job(&o);
}

/* ---- hvctl save ---- */

static void save_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl save NAME FILE [--stop] [--live]\n"
		"         [--compress none|zstd|zlib|auto] [--json]\n"
		"\n"
		"Writes VM NAME's whole state (memory, vCPUs, devices) to the snapshot FILE,\n"
		"with the guest paused for it; then the VM goes on (paused if it was), or\n"
		"ends with --stop. Zero and never-touched pages take no space. FILE must not\n"
		"exist; it appears only once complete (written beside it, fsynced, renamed).\n"
		"--live writes pre-copy rounds while the guest runs and pauses it only for\n"
		"the last one, as a live migration does (a larger file, a shorter pause).\n"
		"--compress zstd makes a smaller file for a slightly longer pause, zlib a\n"
		"longer one (default none). 'hvctl restore' of a zstd file needs an hv that\n"
		"knows zstd.\n"
		"'hvctl restore FILE' starts the VM again, here or on another host. Disks are\n"
		"not in FILE: restore refuses one the VM wrote after the save (use --stop, or\n"
		"copy the image while the VM is paused).\n");
}

/* FILE as the VM process will open it: absolute (it runs in another directory). `verb`
 * says what the file is for ("save to"). */
static int absolute_path(const char *file, char *out, size_t len, const char *verb)
{
	char dir[4096], *slash = strrchr(file, '/');
	const char *base = slash ? slash + 1 : file;

	if (!base[0] || !strcmp(base, ".") || !strcmp(base, "..")) {
		hv_error("cannot %s '%s': it names a directory; give a file name", verb, file);
		return -1;
	}
	dir_of(file, slash, dir, sizeof(dir));
	char *real = realpath(dir, NULL);
	if (!real) {
		hv_error("cannot %s '%s': directory '%s' does not exist", verb, file, dir);
		return -1;
	}
	int n = snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "", base);
	free(real);
	if (n < 0 || (size_t)n >= len) {
		hv_error("cannot %s '%.40s...': the path is too long", verb, file);
		return -1;
	}
	return 0;
}

int hvctl_cmd_save(int argc, char **argv)
{
	static struct migrate_opts o;
	static char file[sizeof(o.p.uri) - sizeof(SNAPSHOT_URI_PREFIX) + 1];
	static const struct option longopts[] = {
		{ "stop", no_argument, NULL, 's' }, { "compress", required_argument, NULL, 'c' },
		{ "live", no_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(&o, 0, sizeof(o));
	migrate_params_default(&o.p);
	/* A disk is no slow link: zlib would make the pause several times longer (measured
	 * 287 MiB in 6.9 s with auto, 513 MiB in 1.5 s raw). */
	o.p.compress = MIGRATE_COMPRESS_NONE;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.p.stop = true; break;
		case 'l': o.p.live = true; break;
		case 'j': o.json = 1; break;
		case 'c':
			if (parse_compress(optarg, &o.p) < 0)
				return 2;
			break;
		case 'h': save_usage(stdout); return 0;
		default:
			hv_error("hvctl save: unknown or incomplete option '%s'; see hvctl save --help",
				 argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != 2) {
		hv_error("usage: hvctl save NAME FILE [--stop]; see hvctl save --help");
		return 2;
	}
	o.name = argv[optind];
	if (absolute_path(argv[optind + 1], file, sizeof(file), "save to") < 0)
		return 1;
	o.file = file;
	snprintf(o.p.uri, sizeof(o.p.uri), "%s%s", SNAPSHOT_URI_PREFIX, file);
	return run_job(&o);
}

/* ---- hvctl move-disk ---- */

static void move_disk_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl move-disk NAME DISK NEWPATH [--json]\n"
		"       hvctl move-disk --cancel NAME\n"
		"\n"
		"Moves disk DISK (disk0, disk1, ... or 0, 1, ...) of the running VM NAME to a\n"
		"new image NEWPATH on this host, while the guest uses it: its data is copied,\n"
		"then what the guest wrote meanwhile, in rounds, until the rest is small; then\n"
		"the disk switches to the new image between two requests (the guest waits a\n"
		"few ms, never sees an error). NEWPATH must not exist. The old image is left\n"
		"as it was at the switch, and named at the end: remove it once you no longer\n"
		"need it. On failure or --cancel the new image is removed and the disk stays.\n"
		"--json prints the progress events as JSON lines.\n");
}

static void print_move(struct json_object *ev, bool tty)
{
	char copied[32], size[32], line[160];

	migrate_bar_bytes(copied, sizeof(copied), event_num(ev, "copied_bytes"));
	migrate_bar_bytes(size, sizeof(size), event_num(ev, "size"));
	if (!tty)
		return;
	/* The peer's numbers are any numbers: the percentage stays 0-100. */
	double total = event_num(ev, "round_bytes"), done = event_num(ev, "round_done_bytes");
	int pct = !(total > 0) ? 100 : !(done > 0) ? 0 : done >= total ? 100 : (int)(done * 100 / total);
	snprintf(line, sizeof(line), "%s: %s, round %.0f %3d%%, %s of data copied (a %s disk), %.0f MiB/s",
		 event_str(ev, "disk"), event_str(ev, "phase"), event_num(ev, "round"), pct, copied, size,
		 event_num(ev, "rate_mibs"));
	int cols = terminal_columns();
	if (cols > 1 && (int)strlen(line) >= cols)
		line[cols - 1] = 0;
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
}

static int follow_move(struct ctl_conn *c, const char *name, bool json)
{
	bool tty = !json && isatty(STDERR_FILENO);

	for (;;) {
		char *line, copied[32];
		if (ctl_conn_read_line(c, deadline_never(), &line) <= 0) {
			if (tty)
				fputc('\n', stderr);
			hv_error("VM '%s' closed its control connection before the disk move finished", name);
			return 1;
		}
		struct json_object *ev = json_tokener_parse(line);
		const char *kind = ev ? event_str(ev, "event") : "";
		if (json && !strncmp(kind, "move-disk", 9))
			printf("%s\n", line);
		free(line);
		if (!strcmp(kind, "move-disk")) {
			print_move(ev, tty);
		} else if (!strcmp(kind, "move-disk-done") || !strcmp(kind, "move-disk-failed")) {
			bool ok = !strcmp(kind, "move-disk-done");
			if (tty)
				fputc('\n', stderr);
			if (!ok)
				hv_error("moving %s of '%s' failed: %s; the disk stays at %s", event_str(ev, "disk"), name,
					 event_str(ev, "error"), event_str(ev, "old_path"));
			else if (!json) {
				migrate_bar_bytes(copied, sizeof(copied), event_num(ev, "copied_bytes"));
				printf("moved %s of %s to %s\n", event_str(ev, "disk"), name, event_str(ev, "new_path"));
				printf("  total time      %.1f ms\n", event_num(ev, "elapsed_ms"));
				printf("  copied          %s of data in %.0f rounds\n", copied, event_num(ev, "round") + 1);
				printf("  guest I/O wait  %.1f ms (the switch)\n", event_num(ev, "stall_ms"));
				printf("  old image       %s (left as it was; remove it when no longer needed)\n",
				       event_str(ev, "old_path"));
			}
			json_object_put(ev);
			return ok ? 0 : 1;
		}
		if (ev)
			json_object_put(ev);
	}
}

int hvctl_cmd_move_disk(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' }, { "cancel", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	static char path[1024];
	char disk[16];
	int c, json = 0, cancel = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'x': cancel = 1; break;
		case 'h': move_disk_usage(stdout); return 0;
		default:
			hv_error("hvctl move-disk: unknown or incomplete option '%s'; see hvctl move-disk --help",
				 argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != (cancel ? 1 : 3)) {
		hv_error(cancel ? "usage: hvctl move-disk --cancel NAME"
				: "usage: hvctl move-disk NAME DISK NEWPATH; see hvctl move-disk --help");
		return 2;
	}
	const char *name = argv[optind];
	if (cancel)
		return do_cancel(name, "move-disk-cancel");
	const char *d = argv[optind + 1];
	long n;
	if (!strncmp(d, "disk", 4))
		d += 4;
	if (parse_int(d, 0, 15, &n) < 0) {
		hv_error("disk '%s': name it disk0, disk1, ... (or 0, 1, ...)", argv[optind + 1]);
		return 2;
	}
	snprintf(disk, sizeof(disk), "disk%ld", n);
	if (absolute_path(argv[optind + 2], path, sizeof(path), "move the disk to") < 0)
		return 1;

	struct ctl_conn conn;
	if (ctl_conn_open(&conn, name, false) != CTL_CONN_OK)
		return 1;
	int rc = 1;
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("subscribe"));
	struct json_object *reply = ctl_conn_request(&conn, req, 5000, false);
	json_object_put(req);
	if (reply && ctl_reply_ok(reply, name)) {
		json_object_put(reply);
		req = json_object_new_object();
		json_object_object_add(req, "cmd", json_object_new_string("move-disk"));
		json_object_object_add(req, "disk", json_object_new_string(disk));
		json_object_object_add(req, "path", json_object_new_string(path));
		reply = ctl_conn_request(&conn, req, 5000, false);
		json_object_put(req);
		if (reply && ctl_reply_ok(reply, name))
			rc = follow_move(&conn, name, json);
	}
	if (reply)
		json_object_put(reply);
	ctl_conn_close(&conn);
	return rc;
}
