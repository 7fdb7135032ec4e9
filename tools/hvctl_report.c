/* hvctl report EVENTS FILE.html: the HTML report of a migration from a saved
 * `hvctl migrate --json` log (tools/migrate_report.h), the page `--report` writes. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/log.h"
#include "tools/hvctl.h"
#include "tools/migrate_report.h"

static void report_usage(FILE *f)
{
	fprintf(f, "usage: hvctl report EVENTS FILE.html\n"
		   "\n"
		   "Writes the HTML report of a migration (a summary, a chart of every pre-copy\n"
		   "round, the switchover's steps, why it converged when it did) from EVENTS,\n"
		   "the output of 'hvctl migrate --json'. The page needs no network: open it in\n"
		   "any browser, or print it.\n");
}

int hvctl_cmd_report(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		report_usage(stdout);
		return 0;
	}
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		hv_error("usage: hvctl report EVENTS FILE.html; see hvctl report --help");
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in) {
		hv_error("cannot read events '%s': %s", argv[1], strerror(errno));
		return 1;
	}
	struct migrate_report *r = migrate_report_new();
	char *line = NULL;
	size_t cap = 0;
	unsigned events = 0;
	while (r && getline(&line, &cap, in) > 0) {
		struct json_object *ev = json_tokener_parse(line);
		if (!ev)
			continue; /* not an event (a summary line, a progress bar) */
		if (json_object_is_type(ev, json_type_object)) {
			migrate_report_add(r, ev);
			events++;
		}
		json_object_put(ev);
	}
	free(line);
	fclose(in);
	int rc = 1;
	if (!r)
		hv_error("out of memory");
	else if (!events)
		hv_error("'%s' holds no migration events: give the output of 'hvctl migrate --json'", argv[1]);
	else if (!migrate_report_complete(r))
		hv_error("'%s' ends before the migration did (no migration-done or migration-failed event)",
			 argv[1]);
	else if (migrate_report_save(r, argv[2]) == 0)
		rc = 0;
	migrate_report_free(r);
	return rc;
}
