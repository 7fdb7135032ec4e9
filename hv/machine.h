/* A whole machine as a user sees it: a named VM with its devices, console and control
 * socket. `hvctl run` boots one from a kernel; `hvctl receive` fills one from a stream. */
#ifndef HV_MACHINE_H
#define HV_MACHINE_H

#include <stdint.h>

#include "devices/virtio_devices.h"
#include "hv/console.h"
#include "hv/vm.h"

struct control_server;
struct migrate_job;

struct machine_config {
	const char *name;
	uint64_t mem_size;
	struct guest_mem_spec mem_backend; /* --mem-backend; zero: anon */
	int ncpus;
	const char *console; /* console spec, see console.h */
	struct disk_spec disks[VIRTIO_MAX_DISKS]; /* --disk, see virtio_devices.h */
	int ndisks;
	struct nic_spec nics[VIRTIO_MAX_NICS]; /* --net */
	int nnics;
};

struct machine {
	struct vm vm;
	struct console console;
	struct control_server *control;
	struct migrate_job *migration; /* the control socket's migrate commands */
	struct virtio_devices *devices; /* the PCI bus and its virtio devices */
	struct machine_config config; /* as created (name and console pointers cleared) */
	char name[VM_NAME_MAX];
	int name_lock;
	int vm_created;
};

/* Claims the name, creates the VM and its devices and opens the console. 0 or -1. */
int machine_create(struct machine *m, const struct machine_config *cfg);
/* Loads kernel/initrd files with cmdline and sets up the boot vCPU. 0 or -1. */
int machine_load_kernel(struct machine *m, const char *kernel, const char *initrd,
			const char *cmdline);
/* Starts the control socket (if not yet) and the vCPUs. 0 or -1. */
int machine_start(struct machine *m);
/* Waits for the VM to stop; returns its exit status. */
int machine_wait(struct machine *m);
void machine_destroy(struct machine *m);

#endif
