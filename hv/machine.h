/* A whole machine as a user sees it: a named VM with its devices, console and control
 * socket. `hvctl run` boots one from a kernel; `hvctl receive` fills one from a stream. */
#ifndef HV_MACHINE_H
#define HV_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/console.h"
#include "hv/dev_state.h"
#include "hv/device_spec.h"
#include "hv/vm.h"

struct control_server;
struct machine;
struct machine_config;
struct dest_policy;

/* The devices of a machine. The core creates the VM, its console, name and control socket;
 * what sits on the VM's buses is chosen by the layer above it (devices/board.h: the board
 * hv emulates), so hv/ includes nothing from devices/. create puts the devices on m->vm
 * (the console is open, so a serial port can use m->console) and registers every device
 * with state in m->devs; it returns what destroy takes, or NULL with one hv_error line
 * (having removed what it created). destroy runs after the vCPUs stopped. */
struct machine_board {
	void *(*create)(struct machine *m, const struct machine_config *cfg);
	void (*destroy)(void *devices);
};

struct machine_config {
	const char *name;
	uint64_t mem_size;
	struct guest_mem_spec mem_backend; /* --mem-backend; zero: anon */
	int ncpus;
	/* --cpu-model: the guest's CPUID. For `hvctl receive`, the most this destination
	 * offers (an EVC-like ceiling; host: whatever this host can); the guest's own model
	 * comes with it. */
	enum cpu_model cpu_model;
	const struct machine_board *board; /* required: what is on the buses */
	const char *console; /* console spec, see console.h */
	struct disk_spec disks[VIRTIO_MAX_DISKS]; /* --disk, see hv/device_spec.h */
	int ndisks;
	struct nic_spec nics[VIRTIO_MAX_NICS]; /* --net */
	int nnics;
	/* hvctl receive: what an incoming migration may open here (migrate/dest_policy.h);
	 * NULL opens no disk or TAP at all. */
	const struct dest_policy *incoming_policy;
	/* The control socket's commands of the layers above the core, attached when the VM
	 * starts (hvctl: the migration's, migrate_control_register / migrate_control_stop);
	 * NULL: the core's commands only. */
	void *(*attach_commands)(struct control_server *cs, struct machine *m);
	void (*detach_commands)(void *commands);
};

struct machine {
	struct vm vm;
	struct console console;
	struct control_server *control;
	void *commands; /* what config.attach_commands returned */
	bool commands_attached;
	void *devices;            /* what config.board->create returned */
	struct dev_registry devs; /* every device with state, for migration and snapshots */
	struct machine_config config; /* as created (name, console and policy pointers cleared) */
	char name[VM_NAME_MAX];
	int name_lock;
	int vm_created;
	int reserved; /* machine_reserve ran: the name and the control socket exist already */
};

/* For a VM that arrives by migration: claims `name` and opens the control socket before the
 * VM exists, so that the waiting VM is listed, can be inspected and stopped
 * (control_start_incoming). machine_fill then creates the VM in the same machine, as
 * machine_create would, under the config's name (moving the name and the socket if it
 * differs). Each returns 0 or -1 with one hv_error line. */
int machine_reserve(struct machine *m, const char *name);
int machine_fill(struct machine *m, const struct machine_config *cfg);
/* Claims the name, creates the VM and its devices and opens the console. 0 or -1. */
int machine_create(struct machine *m, const struct machine_config *cfg);
/* Loads kernel/initrd files with cmdline and sets up the boot vCPU. 0 or -1. */
int machine_load_kernel(struct machine *m, const char *kernel, const char *initrd,
			const char *cmdline);
/* Starts the control socket (if not yet) and the vCPUs (machine_start_paused: paused
 * before the first guest instruction). 0 or -1. */
int machine_start_paused(struct machine *m);
int machine_start(struct machine *m);
/* Waits for the VM to stop; returns its exit status. */
int machine_wait(struct machine *m);
void machine_destroy(struct machine *m);

#endif
