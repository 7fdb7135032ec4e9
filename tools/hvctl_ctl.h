/* hvctl subcommands that talk to running VMs over their control sockets
 * (docs/hvctl.md, docs/control-protocol.md). Each takes the subcommand's argv (argv[0] is
 * its name) and returns the process exit status: 0 success, 1 failure (one line on stderr),
 * 2 bad usage. "--help" prints the usage to stdout and returns 0. */
#ifndef TOOLS_HVCTL_CTL_H
#define TOOLS_HVCTL_CTL_H

int hvctl_cmd_list(int argc, char **argv);
int hvctl_cmd_status(int argc, char **argv);
int hvctl_cmd_pause(int argc, char **argv);
int hvctl_cmd_resume(int argc, char **argv);
int hvctl_cmd_stop(int argc, char **argv);
int hvctl_cmd_console(int argc, char **argv);

#endif
