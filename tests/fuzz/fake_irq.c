/* The device fuzz targets run without KVM: pci.c and serial.c drive their interrupt lines
 * through vm_irq_line, whose real version (hv/vm.c) needs /dev/kvm; here a line goes
 * nowhere, as on the unit tests' fake VM. */
#include "hv/vm.h"

int vm_irq_line(struct vm *vm, int irq, int level)
{
	(void)vm;
	(void)irq;
	(void)level;
	return 0;
}
