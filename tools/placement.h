/* Choosing a destination among agents (hvctl migrate --to auto, hvctl evacuate): the host
 * with the most memory to spare once the guest is there, among those that can take it
 * (reachable, the memory, the guest's CPU features, not running a VM of that name). Pure:
 * the facts come in, a choice and each host's reason come out (tests/unit/test_placement.c). */
#ifndef TOOLS_PLACEMENT_H
#define TOOLS_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

struct placement_vm {
	const char *name;
	uint64_t mem;
	const char *cpu_features; /* the guest's, space-separated ("" : unknown, not checked) */
};

struct placement_host {
	char addr[300];           /* as the caller named it */
	bool reachable;
	char unreachable[200];    /* why not, when !reachable */
	uint64_t headroom;        /* what a guest may take there ("headroom" of its resources) */
	uint64_t planned;         /* taken by guests already sent there in this run */
	double load;
	int vms;
	char *cpu_features;       /* what it offers (malloc'd; NULL: unknown) */
	char **vm_names;          /* the VMs it runs (malloc'd) */
	int nvm_names;
	/* out */
	bool fits;
	char verdict[160];
};

/* Fills h from an agent's "resources" reply and its "list" reply (vms array). */
void placement_host_from_json(struct placement_host *h, struct json_object *resources, struct json_object *vms);
void placement_host_free(struct placement_host *h);

/* The index of the host to send vm to, or -1 if none can take it; every host's verdict says
 * why it was or was not chosen. */
int placement_choose(const struct placement_vm *vm, struct placement_host *hosts, int n);

/* The candidates as a table (fits 80 columns). */
void placement_print(FILE *f, const struct placement_vm *vm, const struct placement_host *hosts, int n);

/* The last column of a table row: text in lines of at most width, the first after what the
 * row printed already, the others under it (indent: the columns before it). */
void placement_print_wrapped(FILE *f, const char *text, size_t width, int indent);

/* 1 if every feature in `want` (space-separated) is in `have`; else 0 with the first few
 * missing ones in missing. */
int placement_cpu_covers(const char *have, const char *want, char *missing, size_t len);

#endif
