/* The host agent's state file: which VMs it started (received, run or restored), so that
 * a restarted agent knows them again. JSON, written to a temporary file and renamed over
 * the old one, so a crash leaves the old or the new file, never half of one. */
#ifndef TOOLS_AGENT_STATE_H
#define TOOLS_AGENT_STATE_H

#include <stddef.h>

#define AGENT_STATE_MAX_VMS 256
#define AGENT_STATE_FILE "hv-agent.json"

struct agent_vm_record {
	char name[64];
	char origin[16]; /* "receive", "run" or "restore" */
	long long since; /* seconds since the epoch */
};

struct agent_state {
	char path[4096];
	int n;
	struct agent_vm_record vms[AGENT_STATE_MAX_VMS];
};

/* Reads path into st (a missing file: no VMs). 0, or -1 with one line in err when the file
 * cannot be read or is not a state file (it is left as it is). */
int agent_state_load(struct agent_state *st, const char *path, char *err, size_t errlen);
/* Parses a state file's text (len bytes). 0, or -1 with a reason in err. */
int agent_state_parse(struct agent_state *st, const char *text, size_t len, char *err, size_t errlen);
/* Writes st to its path. 0, or -1 with one line in err (the old file stays). */
int agent_state_save(const struct agent_state *st, char *err, size_t errlen);

/* Index of name, or -1. */
int agent_state_find(const struct agent_state *st, const char *name);
/* Records name (replacing a record of the same name). -1 if full or the name is invalid. */
int agent_state_add(struct agent_state *st, const char *name, const char *origin, long long since);
void agent_state_remove(struct agent_state *st, const char *name);

#endif
