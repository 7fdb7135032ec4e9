/* hvctl cpu-models: the CPU models (hv/cpu_model.h) and whether this host can offer each. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/cpu_model.h"
#include "hv/cpuid.h"
#include "hv/log.h"
#include "tools/hvctl.h"

static void cpu_models_usage(FILE *f)
{
	fprintf(f,
		"usage: hvctl cpu-models\n"
		"\n"
		"Lists the CPU models 'hvctl run --cpu-model' takes, whether this host can\n"
		"offer each (as KVM reports its CPU) and, if not, which of the model's\n"
		"features it lacks. A VM started with a model that every host offers can\n"
		"migrate between them.\n");
}

int hvctl_cmd_cpu_models(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		cpu_models_usage(stdout);
		return 0;
	}
	if (argc > 1) {
		hv_error("hvctl cpu-models: unexpected argument '%s'; see hvctl cpu-models --help",
			 argv[1]);
		return 2;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		hv_error("cannot open /dev/kvm: %s; run as root or as a member of the kvm group",
			 strerror(errno));
		return 1;
	}
	struct cpuid_table *supported = calloc(1, sizeof(*supported));
	if (!supported) {
		close(kvm);
		hv_error("out of memory");
		return 1;
	}
	int r = cpuid_get_supported(kvm, supported);
	close(kvm);
	if (r < 0) {
		free(supported);
		return 1;
	}
	printf("%-10s %-5s %s\n", "MODEL", "HERE", "LACKS HERE");
	for (int m = 0; m < CPU_MODEL_COUNT; m++) {
		char missing[400];
		int n = cpu_model_missing(supported, (enum cpu_model)m, missing, sizeof(missing));

		printf("%-10s %-5s %s\n", cpu_model_name((enum cpu_model)m), n ? "no" : "yes",
		       n ? missing : m == CPU_MODEL_HOST ? "- (this host's CPU, the default)" : "-");
	}
	free(supported);
	return 0;
}
