/* Choosing a destination among agents (see placement.h). */
#include "tools/placement.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hv/printable.h"

#define MiB_ (1024.0 * 1024.0)

static uint64_t get_u64(struct json_object *o, const char *k)
{
	struct json_object *v;
	int64_t x = json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;

	return x > 0 ? (uint64_t)x : 0;
}

void placement_host_from_json(struct placement_host *h, struct json_object *res, struct json_object *vms)
{
	struct json_object *v;

	h->reachable = true;
	h->headroom = get_u64(res, "headroom");
	h->load = json_object_object_get_ex(res, "load", &v) ? json_object_get_double(v) : 0;
	h->vms = (int)get_u64(res, "vms");
	if (json_object_object_get_ex(res, "cpu_features", &v) && json_object_is_type(v, json_type_string))
		h->cpu_features = strdup(json_object_get_string(v));
	size_t n = vms && json_object_is_type(vms, json_type_array) ? json_object_array_length(vms) : 0;
	h->vm_names = n ? calloc(n, sizeof(char *)) : NULL;
	for (size_t i = 0; h->vm_names && i < n; i++) {
		struct json_object *name;
		if (json_object_object_get_ex(json_object_array_get_idx(vms, i), "name", &name))
			h->vm_names[h->nvm_names++] = strdup(json_object_get_string(name));
	}
}

void placement_host_free(struct placement_host *h)
{
	free(h->cpu_features);
	for (int i = 0; i < h->nvm_names; i++)
		free(h->vm_names[i]);
	free(h->vm_names);
	h->cpu_features = NULL;
	h->vm_names = NULL;
	h->nvm_names = 0;
}

/* Whether word (len n) is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word, size_t n)
{
	for (const char *p = list; *p;) {
		size_t m = strcspn(p, " ");
		if (m == n && !strncmp(p, word, n))
			return true;
		p += m;
		p += strspn(p, " ");
	}
	return false;
}

int placement_cpu_covers(const char *have, const char *want, char *missing, size_t len)
{
	int count = 0;
	size_t used = 0;

	if (len)
		missing[0] = 0;
	for (const char *p = want + strspn(want, " "); *p;) {
		size_t n = strcspn(p, " ");
		if (!has_word(have, p, n)) {
			if (count < 4 && used < len) {
				int w = snprintf(missing + used, len - used, "%s%.*s", count ? ", " : "", (int)n, p);
				used += w > 0 ? (size_t)w : 0;
			}
			count++;
		}
		p += n;
		p += strspn(p, " ");
	}
	if (count > 4 && used < len)
		snprintf(missing + used, len - used, " and %d more", count - 4);
	return count == 0;
}

static uint64_t spare(const struct placement_host *h)
{
	return h->headroom > h->planned ? h->headroom - h->planned : 0;
}

int placement_choose(const struct placement_vm *vm, struct placement_host *hosts, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		struct placement_host *h = &hosts[i];
		char missing[120];
		h->fits = false;
		if (!h->reachable) {
			snprintf(h->verdict, sizeof(h->verdict), "unreachable: %.140s", h->unreachable);
			continue;
		}
		bool here = false;
		for (int k = 0; k < h->nvm_names; k++)
			here |= !strcmp(h->vm_names[k], vm->name);
		if (here) {
			snprintf(h->verdict, sizeof(h->verdict), "runs a VM named %s already", vm->name);
			continue;
		}
		if (spare(h) < vm->mem) {
			snprintf(h->verdict, sizeof(h->verdict), "too little memory: %.0f MiB to spare, %.0f MiB needed",
				 spare(h) / MiB_, vm->mem / MiB_);
			continue;
		}
		if (vm->cpu_features && vm->cpu_features[0]) {
			if (!h->cpu_features) {
				snprintf(h->verdict, sizeof(h->verdict), "its CPU is unknown (no /dev/kvm there?)");
				continue;
			}
			if (!placement_cpu_covers(h->cpu_features, vm->cpu_features, missing, sizeof(missing))) {
				snprintf(h->verdict, sizeof(h->verdict), "its CPU lacks %s", missing);
				continue;
			}
		}
		h->fits = true;
		if (best < 0 || spare(h) > spare(&hosts[best]) ||
		    (spare(h) == spare(&hosts[best]) && h->load < hosts[best].load))
			best = i;
	}
	for (int i = 0; i < n; i++) {
		if (!hosts[i].fits)
			continue;
		if (i == best)
			snprintf(hosts[i].verdict, sizeof(hosts[i].verdict), "chosen: the most memory to spare");
		else
			snprintf(hosts[i].verdict, sizeof(hosts[i].verdict), "fits; %s",
				 spare(&hosts[i]) == spare(&hosts[best]) ? "same memory, more load" : "less memory to spare");
	}
	return best;
}

/* How much of s goes on a line of width columns: all of it, or up to a space. */
static size_t placement_wrap(const char *s, size_t width)
{
	size_t len = strlen(s);

	if (len <= width)
		return len;
	for (size_t i = width; i > width / 2; i--)
		if (s[i] == ' ')
			return i;
	return width;
}

void placement_print_wrapped(FILE *f, const char *text, size_t width, int indent)
{
	size_t w = placement_wrap(text, width);

	fprintf(f, "%.*s\n", (int)w, text);
	for (text += w; *text; text += w) {
		text += *text == ' ';
		w = placement_wrap(text, width);
		fprintf(f, "%*s%.*s\n", indent > 0 ? indent : 0, "", (int)w, text);
	}
}

void placement_print(FILE *f, const struct placement_vm *vm, const struct placement_host *hosts, int n)
{
	fprintf(f, "destination for %s (%.0f MiB):\n", vm->name, vm->mem / MiB_);
	fprintf(f, "  %-19s %9s %5s %3s  %s\n", "HOST", "SPARE MiB", "LOAD", "VMS", "VERDICT");
	for (int i = 0; i < n; i++) {
		const struct placement_host *h = &hosts[i];
		char addr[20], verdict[160];
		printable(addr, sizeof(addr), h->addr);
		printable(verdict, sizeof(verdict), h->verdict);
		int col = h->reachable
				  ? fprintf(f, "  %-19s %9.0f %5.2f %3d  ", addr, spare(h) / MiB_, h->load, h->vms)
				  : fprintf(f, "  %-19s %9s %5s %3s  ", addr, "-", "-", "-");
		placement_print_wrapped(f, verdict, 36, col);
	}
}
