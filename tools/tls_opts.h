/* The authentication options 'hvctl migrate' and 'hvctl receive' share: --psk FILE, or
 * --tls-cert/--tls-key/--tls-ca FILE (and, for migrate, --tls-server-name NAME). */
#ifndef TOOLS_TLS_OPTS_H
#define TOOLS_TLS_OPTS_H

#include <getopt.h>

#include "migrate/tls.h"

enum { TLS_OPT_PSK = 0x100, TLS_OPT_CERT, TLS_OPT_KEY, TLS_OPT_CA, TLS_OPT_SERVER_NAME };

#define TLS_LONGOPTS                                                                    \
	{ "psk", required_argument, NULL, TLS_OPT_PSK },                                \
	{ "tls-cert", required_argument, NULL, TLS_OPT_CERT },                          \
	{ "tls-key", required_argument, NULL, TLS_OPT_KEY },                            \
	{ "tls-ca", required_argument, NULL, TLS_OPT_CA }

/* 1 if opt is one of them (*rc -1: fine; 2: bad, message printed), 0 if not. File names
 * become absolute paths: the VM process that loads them runs elsewhere. */
int hvctl_parse_tls_opt(int opt, const char *arg, struct tls_options *t, int *rc);

/* For commands that parse their arguments by hand (hvctl -H, hvctl hosts): if argv[*i] is
 * one of the key options ("--psk F" or "--psk=F", and the --tls-* ones), takes it (and its
 * value: *i moves past it) into t and returns 1 (*rc as above); else returns 0. */
int hvctl_take_tls_arg(int argc, char **argv, int *i, struct tls_options *t, int *rc);

#endif
