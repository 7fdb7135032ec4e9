/* hv-guest: the programs selectable with prog=NAME. Each returns an exit status. */
#ifndef HVG_PROGS_H
#define HVG_PROGS_H

int prog_hello(void);
int prog_memtouch(void);
int prog_smp(void);
int prog_fault(void);
int prog_memread(void);
int prog_cpuid(void);
/* Device programs (virtio-blk / virtio-net, see guests/README.md). */
int prog_blkcheck(void);
int prog_blkbench(void);
int prog_netecho(void);
int prog_netbench(void);
int prog_virtq_hostile(void);

#endif
