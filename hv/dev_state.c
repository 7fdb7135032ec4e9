/* The machine's registry of devices with state (dev_state.h). */
#include "hv/dev_state.h"

#include <stdio.h>
#include <string.h>

#include "hv/log.h"

int dev_registry_add(struct dev_registry *r, const char *name, const struct dev_state_ops *ops,
		     void *dev)
{
	if (r->n == DEV_REGISTRY_MAX || strlen(name) >= DEV_NAME_MAX || dev_registry_find(r, name)) {
		hv_error("device %s: cannot be registered (more than %d devices, or the name is "
			 "taken or longer than %d)", name, DEV_REGISTRY_MAX, DEV_NAME_MAX - 1);
		return -1;
	}
	struct dev_entry *e = &r->e[r->n++];
	strcpy(e->name, name);
	e->ops = ops;
	e->dev = dev;
	return 0;
}

struct dev_entry *dev_registry_find(struct dev_registry *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->e[i].name, name))
			return &r->e[i];
	return NULL;
}

void dev_registry_pause(struct dev_registry *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->e[i].ops->pause)
			r->e[i].ops->pause(r->e[i].dev);
}

void dev_registry_resume(struct dev_registry *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->e[i].ops->resume)
			r->e[i].ops->resume(r->e[i].dev);
}

int dev_registry_flush(struct dev_registry *r, char *err, size_t errlen)
{
	char why[256];

	for (int i = 0; i < r->n; i++) {
		if (!r->e[i].ops->flush || r->e[i].ops->flush(r->e[i].dev, why, sizeof(why)) == 0)
			continue;
		snprintf(err, errlen, "%s: %s", r->e[i].name, why);
		return -1;
	}
	return 0;
}
