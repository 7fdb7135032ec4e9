/* The report of one migration (or live save): a self-contained HTML page with inline SVG
 * charts of every pre-copy round, the switchover as a timeline, the summary and a paragraph
 * on why the migration converged when it did. Built from the same events as `hvctl migrate
 * --json` (docs/control-protocol.md): `hvctl migrate --report FILE` feeds it as the events
 * arrive, `hvctl report EVENTS FILE` from a saved --json log. No I/O but the output file. */
#ifndef TOOLS_MIGRATE_REPORT_H
#define TOOLS_MIGRATE_REPORT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct migrate_report;

struct migrate_report *migrate_report_new(void);
void migrate_report_free(struct migrate_report *r);

/* One event: a "migration" event that closes a pre-copy round ("round_end") adds a row; the
 * final "migration-done" or "migration-failed" event completes the report; others are
 * ignored. Values come from a peer or a file: any value is safe. */
void migrate_report_add(struct migrate_report *r, struct json_object *ev);
/* The final event was seen. */
bool migrate_report_complete(const struct migrate_report *r);

/* The plain-language paragraph on why the migration switched over when it did (or failed). */
size_t migrate_report_why(const struct migrate_report *r, char *buf, size_t len);

/* The page. 0, or -1 if a write failed. */
int migrate_report_write(const struct migrate_report *r, FILE *f);
/* Writes the page to path: under a temporary name beside it, renamed when complete, so a
 * failure leaves no half page. 0, or -1 with one hv_error line. */
int migrate_report_save(const struct migrate_report *r, const char *path);

#endif
