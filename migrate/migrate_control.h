/* The control-socket face of migration: the "migrate" and "migrate-cancel" commands and the
 * "migration" progress events (docs/control-protocol.md). */
#ifndef MIGRATE_MIGRATE_CONTROL_H
#define MIGRATE_MIGRATE_CONTROL_H

struct control_server;
struct machine;
struct migrate_job;

/* Registers the commands on cs. Returns the job slot (to pass to migrate_control_stop), or
 * NULL on failure. */
struct migrate_job *migrate_control_register(struct control_server *cs, struct machine *m);
/* Cancels a migration in flight, waits for its thread, frees the slot. */
void migrate_control_stop(struct migrate_job *job);
/* The two as machine_config's attach_commands / detach_commands. */
void *migrate_control_attach(struct control_server *cs, struct machine *m);
void migrate_control_detach(void *job);

#endif
