/* hvctl against host agents: 'hvctl -H HOST COMMAND ...', migrations whose destination is
 * an agent ('hvctl migrate NAME HOST', '--to auto --hosts A,B'), and 'hvctl evacuate'. */
#ifndef TOOLS_HVCTL_REMOTE_H
#define TOOLS_HVCTL_REMOTE_H

#include <stdbool.h>
#include <stdio.h>

#include "tools/agent_conn.h"
#include "tools/placement.h"

struct tls_options;

/* hvctl -H HOST [--psk F | --tls-*] COMMAND ARGS: argv[0] is COMMAND. Exit status as the
 * command's there; 1 if the agent refused it or could not be reached. */
int hvctl_remote(const char *host, struct tls_options *tls, int argc, char **argv);

/* Asks the agent on host for what placement needs (its resources and VMs) into h, the
 * connection left open in c; h->reachable false, with the reason, if that fails (c closed). */
void agent_survey(struct agent_conn *c, const char *host, const struct tls_options *tls, struct placement_host *h);

/* A destination agent that has started a receiver for a VM. */
struct agent_target {
	struct agent_conn conn;
	char host[300];   /* the agent, as named */
	char listen[300]; /* where its receiver listens: the migration's HOST:PORT */
};

/* to: an agent's HOST[:PORT], or "auto" to choose among hosts ("A,B,C") with the table of
 * candidates printed to table. Starts a receiver for vm there. 0, or -1 with a message. */
int agent_target_prepare(const char *to, const char *hosts, const struct tls_options *tls,
			 const struct placement_vm *vm, FILE *table, struct agent_target *t);
/* After the migration: exit status 1 (failed, the VM stayed) stops a receiver no source
 * reached; then closes the connection. */
void agent_target_finish(struct agent_target *t, const char *name, int status);

/* True if a migration's destination argument names an agent (HOST, no port) rather than
 * an 'hvctl receive' (HOST:PORT). */
bool destination_is_agent(const char *dest);

int hvctl_cmd_evacuate(int argc, char **argv);

#endif
