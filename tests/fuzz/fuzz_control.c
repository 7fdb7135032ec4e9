/* libFuzzer target for the control-socket protocol (hv/control_proto.c): one request line
 * as a local client sends it, through ctl_handle_line with a command table like the VM's.
 * The handlers read their arguments the way the real ones do (strings, integers, nested
 * objects) and echo one back, so that parsing, dispatch, error replies and formatting are
 * all reached. The reply must always be one line ending in '\n' with no other newline. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hv/control_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every argument, as a handler that checks its options does, and echoes a string. */
static int read_args(struct ctl_call *call, void *opaque)
{
	json_object_object_foreach(call->req->obj, key, val) {
		if (json_object_is_type(val, json_type_string)) {
			json_object_object_add(call->resp, "echo",
					       json_object_new_string_len(json_object_get_string(val),
									  json_object_get_string_len(val)));
		} else if (json_object_is_type(val, json_type_int) && json_object_get_int64(val) < 0) {
			snprintf(call->err, sizeof(call->err), "'%s' must not be negative", key);
			return -1;
		}
	}
	call->subscribe = opaque != NULL;
	return 0;
}

static int refuse(struct ctl_call *call, void *opaque)
{
	snprintf(call->err, sizeof(call->err), "cannot do that now");
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_table t;
	static int ready;
	size_t len = 0;
	int subscribe = 0;

	if (!ready) {
		ctl_table_add(&t, "status", read_args, NULL);
		ctl_table_add(&t, "migrate", read_args, NULL);
		ctl_table_add(&t, "subscribe", read_args, &t);
		ctl_table_add(&t, "pause", refuse, NULL);
		ready = 1;
	}
	char *reply = ctl_handle_line(&t, NULL, (const char *)data, size, &len, &subscribe);
	if (!reply)
		return 0; /* out of memory */
	if (len == 0 || reply[len - 1] != '\n' || memchr(reply, '\n', len - 1))
		abort();
	free(reply);
	return 0;
}
