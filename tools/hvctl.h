/* hvctl subcommands: each takes the subcommand's argv (argv[0] is its name) and returns
 * the process exit status. */
#ifndef TOOLS_HVCTL_H
#define TOOLS_HVCTL_H

int hvctl_cmd_run(int argc, char **argv);
int hvctl_cmd_receive(int argc, char **argv);
int hvctl_cmd_restore(int argc, char **argv);
int hvctl_cmd_inspect(int argc, char **argv);
int hvctl_cmd_migrate(int argc, char **argv);
int hvctl_cmd_save(int argc, char **argv);
int hvctl_cmd_cpu_models(int argc, char **argv);
int hvctl_cmd_keygen(int argc, char **argv);
int hvctl_cmd_report(int argc, char **argv);
int hvctl_cmd_move_disk(int argc, char **argv);
int hvctl_cmd_serve(int argc, char **argv);
int hvctl_cmd_hosts(int argc, char **argv);

#endif
