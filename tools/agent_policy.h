/* What the host agent lets a remote caller run (docs/agent.md): an hvctl command line,
 * checked and completed before the agent runs it in its directory. Pure functions, no I/O,
 * so every rule is unit-tested (tests/unit/test_agent_policy.c).
 *
 * The rules: only commands that make sense without a terminal on the host (no console,
 * keygen, serve or receive, which has its own request); files are named by plain names,
 * which resolve in the agent's directory (an argument with '/' or '..' is refused); the
 * agent's own options are not the caller's to give (--psk, --tls-*, --insecure,
 * --shared-storage); a NIC may only use a TAP the agent was given. The agent adds
 * --detach to what starts a VM, its destination policy to restore, its key to migrate. */
#ifndef TOOLS_AGENT_POLICY_H
#define TOOLS_AGENT_POLICY_H

#include <stddef.h>

#include "migrate/tls.h"

#define AGENT_MAX_ARGS 64
#define AGENT_MAX_ARG_LEN 1024
#define AGENT_MAX_TAPS 8

struct agent_config {
	const char *dir;                    /* absolute: the images, snapshots and state file */
	const char *taps[AGENT_MAX_TAPS];   /* "tap=IF[,...]" (--net): the TAPs guests here may use */
	int ntaps;
	struct tls_options tls;             /* the agent's key or certificates ("" if none) */
	int insecure;
};

/* A command line ready to run (argv[0] is the command's name, as for main's argv[1..]). */
struct agent_exec_plan {
	const char *argv[AGENT_MAX_ARGS * 2 + 24];
	int argc;
	int starts_vm;      /* run or restore: on success the agent records the VM */
	const char *vm_name; /* its --name */
	char max_mem[32];   /* storage for restore's --max-mem */
};

/* Checks argv (argc arguments, argv[0] the hvctl command) against the rules and builds the
 * plan; max_mem_bytes (0: no limit) bounds what a restore may bring. The plan points into
 * argv and cfg. 0, or -1 with one line in err saying what was refused and why. */
int agent_policy_plan(const struct agent_config *cfg, int argc, char *const argv[],
		      unsigned long long max_mem_bytes, struct agent_exec_plan *plan, char *err,
		      size_t errlen);

/* Appends the agent's key or certificates to plan (--psk FILE or --tls-cert/--tls-key/
 * --tls-ca), for a migration it sends or a receiver it starts; a receiver of an agent
 * without a key gets --insecure (the agent refused to start without one unless told so). */
void agent_policy_add_auth(const struct agent_config *cfg, struct agent_exec_plan *plan, int receiver);

#endif
