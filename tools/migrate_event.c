/* Reading migration events (migrate_event.h). */
#include "tools/migrate_event.h"

#include <math.h>

double event_num(struct json_object *ev, const char *key)
{
	struct json_object *v;
	double d;

	if (!ev || !json_object_object_get_ex(ev, key, &v))
		return 0;
	d = json_object_get_double(v);
	return isfinite(d) && d > -1e15 && d < 1e15 ? d : 0;
}

const char *event_str(struct json_object *ev, const char *key)
{
	struct json_object *v;

	if (!ev || !json_object_object_get_ex(ev, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

bool event_flag(struct json_object *ev, const char *key)
{
	struct json_object *v;

	return ev && json_object_object_get_ex(ev, key, &v) && json_object_get_boolean(v);
}

struct json_object *event_member(struct json_object *ev, const char *key)
{
	struct json_object *v;

	if (!ev || !json_object_object_get_ex(ev, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}
