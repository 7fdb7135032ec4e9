#include "hv/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/boot.h"
#include "hv/control.h"
#include "hv/log.h"
#include "hv/rundir.h"

static void machine_init(struct machine *m)
{
	memset(m, 0, sizeof(*m));
	m->console.out_fd = m->console.in_fd = m->console.pty_slave_fd = -1;
	m->name_lock = -1;
}

int machine_reserve(struct machine *m, const char *name)
{
	machine_init(m);
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->name_lock = rundir_claim_name(name);
	if (m->name_lock < 0)
		return -1;
	m->control = control_start_incoming(name);
	if (!m->control) {
		machine_destroy(m);
		return -1;
	}
	m->reserved = 1;
	return 0;
}

/* A reserved machine takes the name it is created with: claim the new one, move the socket,
 * then let the old name go. */
static int machine_rename(struct machine *m, const char *name)
{
	int lock = rundir_claim_name(name);

	if (lock < 0)
		return -1;
	if (control_rename(m->control, name) < 0) {
		rundir_release_name(name, lock);
		return -1;
	}
	rundir_release_name(m->name, m->name_lock);
	m->name_lock = lock;
	snprintf(m->name, sizeof(m->name), "%s", name);
	return 0;
}

static int create(struct machine *m, const struct machine_config *cfg);

int machine_create(struct machine *m, const struct machine_config *cfg)
{
	machine_init(m);
	snprintf(m->name, sizeof(m->name), "%s", cfg->name);
	m->name_lock = rundir_claim_name(cfg->name);
	if (m->name_lock < 0)
		return -1;
	return create(m, cfg);
}

int machine_fill(struct machine *m, const struct machine_config *cfg)
{
	if (!m->reserved) {
		hv_error("internal error: machine_fill on a machine that was not reserved");
		return -1;
	}
	if (strcmp(m->name, cfg->name) && machine_rename(m, cfg->name) < 0)
		return -1;
	return create(m, cfg);
}

/* The VM, console and devices of a machine whose name is claimed. */
static int create(struct machine *m, const struct machine_config *cfg)
{
	if (!cfg->board) {
		hv_error("internal error: a machine without a board");
		goto fail;
	}
	m->config = *cfg;
	m->config.name = m->config.console = NULL;
	m->config.incoming_policy = NULL;
	if (vm_create(&m->vm, cfg->name, cfg->mem_size, &cfg->mem_backend, cfg->ncpus,
		      cfg->cpu_model) < 0)
		goto fail;
	m->vm_created = 1;
	if (m->control)
		control_attach_vm(m->control, &m->vm);
	if (console_open(&m->console, cfg->console) < 0)
		goto fail;
	memset(&m->devs, 0, sizeof(m->devs));
	m->devices = cfg->board->create(m, cfg);
	if (!m->devices)
		goto fail;
	return 0;
fail:
	machine_destroy(m);
	return -1;
}

/* Reads a whole file; the size bound keeps a wrong path (say, a disk image) from eating RAM. */
static uint8_t *read_file(const char *what, const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		hv_error("cannot open %s '%s': %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		hv_error("%s '%s' is not a regular file", what, path);
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > max) {
		hv_error("%s '%s' is %lld bytes, more than the %zu hv accepts", what, path,
			 (long long)st.st_size, max);
		close(fd);
		return NULL;
	}
	uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			hv_error("cannot read %s '%s': %s", what, path, n ? strerror(errno) : "short file");
			free(buf);
			buf = NULL;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

int machine_load_kernel(struct machine *m, const char *kernel, const char *initrd,
			const char *cmdline)
{
	struct boot_params_in in = { .cmdline = cmdline };
	struct boot_entry entry;
	uint8_t *k = NULL, *i = NULL;
	int r = -1;

	k = read_file("kernel", kernel, 512u << 20, &in.kernel_len);
	if (!k)
		goto out;
	in.kernel = k;
	if (initrd) {
		i = read_file("initrd", initrd, (size_t)m->vm.mem.low_size, &in.initrd_len);
		if (!i)
			goto out;
		in.initrd = i;
	}
	if (boot_load(&m->vm.mem, &in, &entry) < 0)
		goto out;
	r = vm_setup_boot(&m->vm, &entry);
out:
	free(k);
	free(i);
	return r;
}

static int start(struct machine *m, bool paused);

int machine_start(struct machine *m)
{
	return start(m, false);
}

int machine_start_paused(struct machine *m)
{
	return start(m, true);
}

static int start(struct machine *m, bool paused)
{
	if (!m->control) {
		m->control = control_start(&m->vm);
		if (!m->control)
			return -1;
	}
	if (!m->commands_attached) {
		if (m->console.pty_path[0])
			control_set_console_path(m->control, m->console.pty_path);
		control_set_devices(m->control, m->config.ndisks, m->config.nnics);
		if (m->config.attach_commands) {
			m->commands = m->config.attach_commands(m->control, m);
			if (!m->commands)
				return -1;
		}
		m->commands_attached = true;
	}
	return paused ? vm_start_paused(&m->vm) : vm_start(&m->vm);
}

int machine_wait(struct machine *m)
{
	return vm_wait(&m->vm);
}

void machine_destroy(struct machine *m)
{
	if (m->commands && m->config.detach_commands)
		m->config.detach_commands(m->commands);
	m->commands = NULL;
	m->commands_attached = false;
	if (m->control)
		control_stop(m->control);
	m->control = NULL;
	memset(&m->devs, 0, sizeof(m->devs));
	if (m->devices)
		m->config.board->destroy(m->devices);
	m->devices = NULL;
	if (m->vm_created)
		vm_destroy(&m->vm);
	m->vm_created = 0;
	console_close(&m->console);
	if (m->name_lock >= 0)
		rundir_release_name(m->name, m->name_lock);
	m->name_lock = -1;
	m->reserved = 0;
}
