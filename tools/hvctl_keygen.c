/* hvctl keygen FILE: a fresh pre-shared key for authenticated migration (--psk FILE). */
#include <stdio.h>
#include <string.h>

#include "hv/log.h"
#include "migrate/tls.h"
#include "tools/hvctl.h"

int hvctl_cmd_keygen(int argc, char **argv)
{
	char err[512];

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: hvctl keygen FILE\n"
		       "\n"
		       "Writes a new random 256-bit key to FILE (created with mode 0600; an\n"
		       "existing file is never overwritten). Copy it to the other host over a\n"
		       "secure channel (scp) and give both 'hvctl migrate' and 'hvctl receive'\n"
		       "--psk FILE: the migration then runs over TLS 1.3, and only a holder of\n"
		       "the key can send a VM or receive one.\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		hv_error("usage: hvctl keygen FILE; see hvctl keygen --help");
		return 2;
	}
	if (tls_keygen(argv[1], err, sizeof(err)) < 0) {
		hv_error("%s", err);
		return 1;
	}
	hv_info("wrote a new key to %s (mode 0600); copy it to the other host and use --psk %s",
		argv[1], argv[1]);
	return 0;
}
