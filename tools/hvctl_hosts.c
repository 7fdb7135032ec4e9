/* hvctl hosts A,B,...: what each host's agent reports, side by side (docs/agent.md). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/log.h"
#include "hv/printable.h"
#include "tools/agent_client.h"
#include "tools/hvctl.h"
#include "tools/placement.h"
#include "tools/tls_opts.h"

static void hosts_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl hosts A,B,... [--psk FILE | --tls-cert F --tls-key F --tls-ca F]\n"
		"\n"
		"Asks the agent ('hvctl serve') on each host what it has: its VMs, the memory\n"
		"its guests have and what a new one may still take, the CPU load, the free\n"
		"space in its directory and the best CPU model it offers. Exit status 1 if a\n"
		"host did not answer.\n");
}

static double num(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

int hvctl_cmd_hosts(int argc, char **argv)
{
	static struct tls_options tls;
	char buf[4096], err[400];
	int rc = 0, n = 0;
	const char *list = NULL;

	memset(&tls, 0, sizeof(tls));
	for (int i = 1; i < argc; i++) {
		int trc;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			hosts_usage(stdout);
			return 0;
		}
		if (hvctl_take_tls_arg(argc, argv, &i, &tls, &trc)) {
			if (trc >= 0)
				return 2;
		} else if (argv[i][0] == '-' || list) {
			hv_error("hvctl hosts: unexpected '%s'; see hvctl hosts --help", argv[i]);
			return 2;
		} else {
			list = argv[i];
		}
	}
	if (!list || (size_t)snprintf(buf, sizeof(buf), "%s", list) >= sizeof(buf)) {
		hv_error("usage: hvctl hosts A,B,... [--psk FILE]; see hvctl hosts --help");
		return 2;
	}
	printf("  %-19s %3s %9s %9s %5s %9s  %s\n", "HOST", "VMS", "GUEST MiB", "SPARE MiB", "LOAD", "DISK GiB", "CPU");
	for (char *save = NULL, *h = strtok_r(buf, ",", &save); h; h = strtok_r(NULL, ",", &save), n++) {
		struct agent_conn c;
		struct json_object *r = NULL, *v;
		char host[20];
		printable(host, sizeof(host), h);
		if (agent_open(&c, h, &tls, err, sizeof(err)) < 0 || !(r = agent_call(&c, "resources", NULL, err, sizeof(err)))) {
			placement_print_wrapped(stdout, err, 46, printf("  %-19s ", host));
			if (c.fd >= 0)
				agent_conn_close(&c);
			rc = 1;
			continue;
		}
		char cpu[24] = "? (no /dev/kvm)";
		if (json_object_object_get_ex(r, "cpu_model", &v))
			printable(cpu, sizeof(cpu), json_object_get_string(v));
		printf("  %-19s %3.0f %9.0f %9.0f %5.2f %9.1f  %s\n", host, num(r, "vms"), num(r, "vm_mem") / 1048576,
		       num(r, "headroom") / 1048576, num(r, "load"), num(r, "disk_free") / 1073741824.0, cpu);
		json_object_put(r);
		agent_conn_close(&c);
	}
	if (!n) {
		hv_error("hvctl hosts: give at least one host");
		return 2;
	}
	return rc;
}
