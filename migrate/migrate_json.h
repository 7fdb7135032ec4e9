/* The migrate command and its events as JSON (docs/control-protocol.md): one schema, used by
 * 'hvctl migrate' (which writes the request) and the VM process (which reads it and writes
 * the events), with one range check and the defaults of migrate_params_default. */
#ifndef MIGRATE_MIGRATE_JSON_H
#define MIGRATE_MIGRATE_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "migrate/migrate.h"

#define MIGRATE_MAX_DOWNTIME_LIMIT_MS 3600000
#define MIGRATE_MAX_ROUNDS_LIMIT 10000
#define MIGRATE_MIN_BANDWIDTH 4096 /* bytes/s; 0 is "no cap" */

/* The names of the choices, indexed by the enums. */
extern const char *const migrate_compress_names[MIGRATE_COMPRESS_COUNT];
extern const char *const migrate_on_timeout_names[2];
/* The index of s in names[0..n), or -1. */
int migrate_choice(const char *s, const char *const *names, int n);
/* "a, b or c" from names[0..n), into buf (truncated to len); returns buf. */
const char *migrate_choice_list(const char *const *names, int n, char *buf, size_t len);

/* Members of the request for p (without "cmd"), every one written. */
void migrate_params_to_json(const struct migrate_params *p, struct json_object *req);
/* p from a request: defaults for what is missing, every member checked ('uri' required;
 * 'max_downtime_ms', or 'downtime_ms' from older clients). 0, or -1 with err naming the
 * member and its range. TLS files are named, not loaded. */
int migrate_params_from_json(struct json_object *req, struct migrate_params *p, char *err, size_t errlen);
/* An event ("migration", "migration-done", "migration-failed") with st's numbers. */
struct json_object *migrate_stats_to_json(const char *event, const struct migrate_stats *st);

#endif
