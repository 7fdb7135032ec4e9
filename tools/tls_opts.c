#include "tools/tls_opts.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/log.h"

static int set_path(const char *opt, const char *arg, char *out, size_t size)
{
	char *abs = realpath(arg, NULL);

	if (!abs) {
		hv_error("cannot use %s '%s': %s", opt, arg, strerror(errno));
		return -1;
	}
	if (strlen(abs) >= size) {
		hv_error("%s '%s': the path is too long (at most %zu bytes)", opt, arg, size - 1);
		free(abs);
		return -1;
	}
	snprintf(out, size, "%s", abs);
	free(abs);
	return 0;
}

int hvctl_parse_tls_opt(int opt, const char *arg, struct tls_options *t, int *rc)
{
	int r;

	*rc = -1;
	switch (opt) {
	case TLS_OPT_PSK: r = set_path("--psk", arg, t->psk_file, sizeof(t->psk_file)); break;
	case TLS_OPT_CERT: r = set_path("--tls-cert", arg, t->cert_file, sizeof(t->cert_file)); break;
	case TLS_OPT_KEY: r = set_path("--tls-key", arg, t->key_file, sizeof(t->key_file)); break;
	case TLS_OPT_CA: r = set_path("--tls-ca", arg, t->ca_file, sizeof(t->ca_file)); break;
	case TLS_OPT_SERVER_NAME:
		r = strlen(arg) < sizeof(t->server_name) && arg[0] ? 0 : -1;
		if (r < 0)
			hv_error("--tls-server-name '%s' is empty or too long", arg);
		else
			snprintf(t->server_name, sizeof(t->server_name), "%s", arg);
		break;
	default:
		return 0;
	}
	if (r < 0)
		*rc = 2;
	return 1;
}

int hvctl_take_tls_arg(int argc, char **argv, int *i, struct tls_options *t, int *rc)
{
	static const struct { const char *name; int opt; } opts[] = {
		{ "--psk", TLS_OPT_PSK }, { "--tls-cert", TLS_OPT_CERT }, { "--tls-key", TLS_OPT_KEY },
		{ "--tls-ca", TLS_OPT_CA }, { "--tls-server-name", TLS_OPT_SERVER_NAME },
	};
	const char *a = argv[*i];

	*rc = -1;
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		size_t n = strlen(opts[k].name);
		const char *val;
		if (!strcmp(a, opts[k].name)) {
			if (*i + 1 >= argc) {
				hv_error("%s needs a value", a);
				*rc = 2;
				return 1;
			}
			val = argv[++*i];
		} else if (!strncmp(a, opts[k].name, n) && a[n] == '=') {
			val = a + n + 1;
		} else {
			continue;
		}
		hvctl_parse_tls_opt(opts[k].opt, val, t, rc);
		return 1;
	}
	return 0;
}
