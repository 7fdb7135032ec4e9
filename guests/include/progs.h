/* hv-guest: the programs selectable with prog=NAME. Each returns an exit status. */
#ifndef HVG_PROGS_H
#define HVG_PROGS_H

int prog_hello(void);
int prog_memtouch(void);
int prog_smp(void);
int prog_fault(void);

#endif
