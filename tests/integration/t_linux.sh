# Stock Debian kernels boot on hv (PVH vmlinux and bzImage). On PVM development hosts a
# kernel's CPL0 code is emulated, so only the early boot log is checked here.

linux_dir() {
	tests/integration/fetch-linux.sh 2>/dev/null || fail "could not fetch Debian's kernel package"
}

test_linux_pvh_vmlinux_early_boot() {
	d=$(linux_dir)
	[ -s "$d/vmlinux" ] || fail "no vmlinux extracted"
	start_vm lx --kernel "$d/vmlinux" --mem 512M --cpus 2 --cmdline "console=ttyS0 earlyprintk=ttyS0"
	wait_for "$T/lx.console" 'Linux version' 60
	wait_for "$T/lx.console" 'BIOS-e820: \[mem 0x0000000000100000-0x000000001fffffff\] usable' 30
	wait_for "$T/lx.console" 'found SMP MP-table' 60
	"$HVCTL" stop lx
}

test_linux_bzimage_starts() {
	d=$(linux_dir)
	# The compressed kernel's decompressor runs first (slowly when emulated); the test checks
	# that hv entered it in long mode and it runs: no crash within the first seconds.
	start_vm lxbz --kernel "$d/vmlinuz" --mem 512M --cmdline "console=ttyS0 earlyprintk=ttyS0"
	sleep 3
	"$HVCTL" status lxbz --json | grep -q '"state": *"running"' || { cat "$T/lxbz.console"; fail "bzImage guest is not running"; }
	"$HVCTL" stop lxbz
}
