/* Reading a migration event (docs/control-protocol.md, "Events") that came from a VM process
 * or a saved --json log: every accessor is safe on any JSON (a missing member, another type,
 * NaN or an absurd number read as 0 / "" / false / NULL). Shared by hvctl migrate's bar and
 * summary, --explain and the report. */
#ifndef TOOLS_MIGRATE_EVENT_H
#define TOOLS_MIGRATE_EVENT_H

#include <json-c/json.h>
#include <stdbool.h>

double event_num(struct json_object *ev, const char *key);
const char *event_str(struct json_object *ev, const char *key);
bool event_flag(struct json_object *ev, const char *key);
/* A member that is an object (e.g. "switchover", "params"), or NULL. */
struct json_object *event_member(struct json_object *ev, const char *key);

#endif
