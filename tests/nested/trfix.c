/*
 * trfix.so: an LD_PRELOAD shim for hv running under nested KVM inside a QEMU TCG VM
 * (tests/nested/run.sh preloads it for the command it runs there, and nowhere else).
 *
 * Why: TCG's emulation of the I/O permission check (check_io() in
 * target/i386/tcg/seg_helper.c, helper_check_io() in newer QEMU; the same test for many
 * years) raises #GP unless the cached TR type is exactly 9, an available 32/64-bit TSS. A
 * real CPU also accepts type 11 (busy TSS), which is what TR holds after any `ltr`, and what
 * KVM's svm_get_segment() always reports. So a guest whose TR was restored through
 * KVM_SET_SREGS(2) -- every `hvctl restore`, and the destination of every `hvctl migrate` --
 * takes a #GP at its first port access from CPL3 through the TSS I/O bitmap (the hv guest's
 * serial output), under TCG only. A guest that runs `ltr` itself is not affected: TCG's
 * `ltr` caches the descriptor as it was before marking it busy, type 9.
 *
 * What: rewrite TR type 11 to 9 in the state handed to KVM_SET_SREGS and KVM_SET_SREGS2.
 * Both mean the same 64-bit TSS to a real CPU; on hardware, or on the host, hv needs
 * nothing of this. The bug belongs to the emulated CPU, not to hv or KVM, and hv's code is
 * unchanged: without this shim the migration and snapshot tests fail inside the VM.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <sys/ioctl.h>

#define TSS_AVAILABLE 9
#define TSS_BUSY 11

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real_ioctl)(int, unsigned long, ...);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");

	/* On a copy: the caller's buffer stays as hv wrote it. */
	if (arg && request == KVM_SET_SREGS && ((struct kvm_sregs *)arg)->tr.type == TSS_BUSY) {
		struct kvm_sregs s = *(struct kvm_sregs *)arg;
		s.tr.type = TSS_AVAILABLE;
		return real_ioctl(fd, request, &s);
	}
#ifdef KVM_SET_SREGS2
	if (arg && request == KVM_SET_SREGS2 && ((struct kvm_sregs2 *)arg)->tr.type == TSS_BUSY) {
		struct kvm_sregs2 s = *(struct kvm_sregs2 *)arg;
		s.tr.type = TSS_AVAILABLE;
		return real_ioctl(fd, request, &s);
	}
#endif
	return real_ioctl(fd, request, arg);
}
