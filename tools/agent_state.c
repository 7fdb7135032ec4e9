/* The host agent's state file (see agent_state.h). */
#include "tools/agent_state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/rundir.h"

#define STATE_VERSION 1
#define STATE_MAX_BYTES (1u << 20)

static const char *const origins[] = { "receive", "run", "restore" };

static int valid_origin(const char *o)
{
	for (size_t i = 0; i < sizeof(origins) / sizeof(origins[0]); i++)
		if (!strcmp(o, origins[i]))
			return 1;
	return 0;
}

int agent_state_find(const struct agent_state *st, const char *name)
{
	for (int i = 0; i < st->n; i++)
		if (!strcmp(st->vms[i].name, name))
			return i;
	return -1;
}

int agent_state_add(struct agent_state *st, const char *name, const char *origin, long long since)
{
	if (!rundir_valid_name(name) || !valid_origin(origin))
		return -1;
	int i = agent_state_find(st, name);
	if (i < 0) {
		if (st->n == AGENT_STATE_MAX_VMS)
			return -1;
		i = st->n++;
	}
	snprintf(st->vms[i].name, sizeof(st->vms[i].name), "%s", name);
	snprintf(st->vms[i].origin, sizeof(st->vms[i].origin), "%s", origin);
	st->vms[i].since = since;
	return 0;
}

void agent_state_remove(struct agent_state *st, const char *name)
{
	int i = agent_state_find(st, name);

	if (i < 0)
		return;
	memmove(&st->vms[i], &st->vms[i + 1], (size_t)(st->n - i - 1) * sizeof(st->vms[0]));
	st->n--;
}

int agent_state_parse(struct agent_state *st, const char *text, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL, *v, *vms;
	int rc = -1;

	st->n = 0;
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (len > STATE_MAX_BYTES || len > INT32_MAX) {
		snprintf(err, errlen, "it is larger than %u bytes", STATE_MAX_BYTES);
		goto out;
	}
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "it is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(root, "version", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) != STATE_VERSION) {
		snprintf(err, errlen, "it is not version %d of the agent's state", STATE_VERSION);
		goto out;
	}
	if (!json_object_object_get_ex(root, "vms", &vms) || !json_object_is_type(vms, json_type_array) ||
	    json_object_array_length(vms) > AGENT_STATE_MAX_VMS) {
		snprintf(err, errlen, "\"vms\" is not a list of at most %d VMs", AGENT_STATE_MAX_VMS);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *e = json_object_array_get_idx(vms, i), *name, *origin, *since;
		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "name", &name) || !json_object_is_type(name, json_type_string) ||
		    !json_object_object_get_ex(e, "origin", &origin) || !json_object_is_type(origin, json_type_string) ||
		    !json_object_object_get_ex(e, "since", &since) || !json_object_is_type(since, json_type_int) ||
		    agent_state_add(st, json_object_get_string(name), json_object_get_string(origin),
				    json_object_get_int64(since)) < 0) {
			snprintf(err, errlen, "VM record %zu is not {\"name\": a VM name, \"origin\": receive|run|restore, "
				 "\"since\": seconds}", i + 1);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		st->n = 0;
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

int agent_state_load(struct agent_state *st, const char *path, char *err, size_t errlen)
{
	char why[200];

	st->n = 0;
	if ((size_t)snprintf(st->path, sizeof(st->path), "%s", path) >= sizeof(st->path)) {
		snprintf(err, errlen, "state file path is too long");
		return -1;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read the state file %s: %s", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(STATE_MAX_BYTES + 1);
	size_t len = 0;
	ssize_t n = 0;
	while (buf && len <= STATE_MAX_BYTES && (n = read(fd, buf + len, STATE_MAX_BYTES + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!buf || n < 0) {
		snprintf(err, errlen, "cannot read the state file %s: %s", path, buf ? strerror(errno) : "out of memory");
		free(buf);
		return -1;
	}
	int r = agent_state_parse(st, buf, len, why, sizeof(why));
	free(buf);
	if (r < 0)
		snprintf(err, errlen, "the state file %s is damaged (%s): move it away to start with no "
			 "VMs recorded", path, why);
	return r;
}

int agent_state_save(const struct agent_state *st, char *err, size_t errlen)
{
	char tmp[sizeof(st->path) + 8];
	struct json_object *root = json_object_new_object(), *vms = json_object_new_array();

	json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
	for (int i = 0; i < st->n; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(st->vms[i].name));
		json_object_object_add(e, "origin", json_object_new_string(st->vms[i].origin));
		json_object_object_add(e, "since", json_object_new_int64(st->vms[i].since));
		json_object_array_add(vms, e);
	}
	json_object_object_add(root, "vms", vms);
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.new", st->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = -1;
	if (fd < 0) {
		snprintf(err, errlen, "cannot write the state file %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write the state file %s: %s", tmp, errno ? strerror(errno) : "short write");
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, st->path) < 0) {
		snprintf(err, errlen, "cannot replace the state file %s: %s", st->path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}
