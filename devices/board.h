/* The board hv emulates: what `hvctl run`, `receive` and `restore` put on a machine's buses
 * (hv/machine.h, struct machine_board). COM1 on the machine's console, the legacy ports
 * (debug-exit, i8042 reset, port 0x80), and the PCI bus with the virtio disks and NICs of
 * the machine's config; each device with state is registered under the name migration and
 * snapshots use (com1, disk0.., net0..). Adding a device touches its own file and this one. */
#ifndef DEVICES_BOARD_H
#define DEVICES_BOARD_H

#include "hv/machine.h"

extern const struct machine_board pc_board;

#endif
