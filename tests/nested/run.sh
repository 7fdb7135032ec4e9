#!/bin/bash
# Runs a command inside a QEMU TCG VM that has /dev/kvm (nested SVM), on a host that has none:
# the project's real-KVM tests on a machine whose own KVM is missing (tests/nested/README.md).
#
# usage: tests/nested/run.sh CMD...
#   One argument is a command line for bash; several are a command and its arguments, passed
#   as given. It runs as root in the VM, in the same working directory, with the same
#   environment (less what belongs to this session: PWD, SHLVL, make's jobserver, ...) and
#   stdin from /dev/null.
#   The VM sees this host's whole root file system read-only (virtio-9p) under a tmpfs
#   overlay: the same bash, tools, project tree and build outputs at the same paths; what
#   the command writes vanishes with the VM. LD_PRELOAD=$BUILD/nested/trfix.so (trfix.c)
#   is set for the command only.
#   Example: tests/nested/run.sh tests/integration/run.sh '^test_migrate_idle_hello$'
#
# Output: the command's stdout and stderr, streamed. Exit status: the command's; 124 when
# NESTED_TIMEOUT ran out; 125 when the VM could not run it (the reason on stderr, as one
# "nested: ..." line). Lines of this script's own start with "nested:" on stderr.
#
# Environment: BUILD (build; $BUILD/nested/ caches the kernel package and the initramfs,
# relative to the repository), NESTED_TIMEOUT (900 s, for the whole VM), NESTED_SMP (1: two
# TCG vCPUs are slower on this 2-core machine, README.md), NESTED_MEM (3072 MiB). The kernel
# is the linux-image-*-amd64 Debian offers now (apt-get download; the host is not changed).
# The VM's serial console (kernel and init) of the last run: $BUILD/nested/console.log.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$repo/$build ;; esac
N=$build/nested
timeout_s=${NESTED_TIMEOUT:-900}
smp=${NESTED_SMP:-1}
mem=${NESTED_MEM:-3072}
# What the initramfs loads, with their dependencies: the 9p root and its overlay, the virtio
# console for the output, the KVM stack, and what the integration tests use for TAPs, network
# namespaces, veth pairs, bridges, rate limits and ss(8).
MODULES="virtio_pci virtio_console 9pnet_virtio 9p overlay kvm_amd tun veth bridge sch_tbf
	sch_htb inet_diag tcp_diag udp_diag unix_diag"

say() { echo "nested: $*" >&2; }
die() {
	say "$*"
	exit 125
}
# On every exit: QEMU (its timeout(1), which passes the signal on) and the scratch directories.
qpid='' run='' x=''
cleanup() {
	[ -n "$qpid" ] && kill -TERM "$qpid" 2>/dev/null
	rm -rf "$run" "$x"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

[ $# -ge 1 ] || die "usage: tests/nested/run.sh CMD..."
command -v qemu-system-x86_64 >/dev/null ||
	die "cannot start: qemu-system-x86_64 is not installed (tools/install-deps.sh installs qemu-system-x86)"
for t in apt-get apt-cache dpkg-deb cpio gzip gcc; do
	command -v $t >/dev/null || die "cannot start: $t is not installed (tools/install-deps.sh)"
done
busybox=$(dpkg-query -L busybox-static 2>/dev/null | grep -m 1 '/bin/busybox$')
[ -x "$busybox" ] || die "cannot start: busybox-static is not installed (tools/install-deps.sh)"
mkdir -p "$N/debs" || die "cannot create $N"

# deb NAME: the path of NAME's .deb in $N/debs, downloaded (apt-get download) if not there.
deb() {
	local f
	f=$(ls "$N/debs/$1"_*.deb 2>/dev/null | tail -n 1)
	if [ -z "$f" ]; then
		say "downloading $1 (apt-get download)"
		(cd "$N/debs" && apt-get -q -o APT::Sandbox::User=root download "$1" >/dev/null) || return 1
		f=$(ls "$N/debs/$1"_*.deb 2>/dev/null | tail -n 1)
	fi
	[ -n "$f" ] && echo "$f"
}

# The kernel package linux-image-amd64 depends on now (linux-image-6.1.0-NN-amd64).
kernel_name() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
kname=$(kernel_name)
if [ -z "$kname" ] || ! kdeb=$(deb "$kname"); then
	# The package lists are missing or name a kernel the mirror no longer has.
	say "refreshing the package lists (apt-get update)"
	apt-get update -qq >/dev/null 2>&1
	kname=$(kernel_name)
	[ -n "$kname" ] || die "cannot start: apt-cache names no linux-image-*-amd64 for linux-image-amd64"
	kdeb=$(deb "$kname") || die "cannot start: apt-get download $kname failed"
fi
for f in "$N"/debs/linux-image-*.deb; do [ "$f" = "$kdeb" ] || rm -f "$f"; done # older ones

# trfix.so, for the command inside (trfix.c says why).
if [ ! "$N/trfix.so" -nt "$here/trfix.c" ]; then
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$N/trfix.so.tmp" "$here/trfix.c" -ldl &&
		mv "$N/trfix.so.tmp" "$N/trfix.so" || die "cannot build trfix.so"
fi

# The kernel and initramfs, rebuilt when the kernel, busybox, the module list or init.sh
# change: the host's busybox (static), the modules in load order, /init.
key=$({ echo "$MODULES"; cat "$here/init.sh" "$busybox"; } | sha256sum | cut -c1-16)-$(basename "$kdeb" .deb)
if [ "$(cat "$N/initrd.key" 2>/dev/null)" != "$key" ] || [ ! -s "$N/initrd.gz" ] || [ ! -s "$N/vmlinuz" ]; then
	say "building the initramfs ($(basename "$kdeb"))"
	x=$(mktemp -d "$N/unpack.XXXXXX") && mkdir -p "$x/kernel" "$x/root/bin" "$x/root/lib/modules" "$x/root/nested" \
		"$x/root/proc" "$x/root/sys" "$x/root/dev" || die "cannot create $x"
	dpkg-deb -x "$kdeb" "$x/kernel" || die "cannot unpack $kdeb"
	mods=$(ls -d "$x"/kernel/lib/modules/*/ | head -n 1)
	# The package has no modules.dep: each module names its dependencies in its .modinfo
	# section ("depends=a,b"). Visit depth first; a module is listed after what it needs.
	declare -A path=() seen=()
	while read -r p; do
		b=${p##*/}
		b=${b%.ko}
		path[${b//-/_}]=$p
	done <"$mods/modules.order"
	order=()
	visit() {
		local m=${1//-/_} d
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		[ -n "${path[$m]:-}" ] || { grep -q "/$m.ko$" "$mods/modules.builtin" && return 0; die "no module $m in $kname"; }
		for d in $(tr '\0' '\n' <"$mods/${path[$m]}" | sed -n 's/^depends=//p' | tr ',' ' '); do
			visit "$d"
		done
		order+=("$m")
		cp "$mods/${path[$m]}" "$x/root/lib/modules/$m.ko"
	}
	for m in $MODULES; do visit "$m"; done
	printf '%s\n' "${order[@]}" >"$x/root/lib/modules/load.list"
	cp "$busybox" "$x/root/bin/busybox" &&
		install -m 755 "$here/init.sh" "$x/root/init" &&
		cp "$(ls "$x"/kernel/boot/vmlinuz-* | head -n 1)" "$N/vmlinuz.tmp" || die "cannot assemble the initramfs"
	# Padded to 4 bytes: the kernel looks for the next archive (this run's) at such an offset.
	(cd "$x/root" && find . | cpio -o -H newc --quiet | gzip -1) >"$N/initrd.gz.tmp" &&
		truncate -s %4 "$N/initrd.gz.tmp" || die "cannot write the initramfs"
	mv "$N/initrd.gz.tmp" "$N/initrd.gz" && mv "$N/vmlinuz.tmp" "$N/vmlinuz" && echo "$key" >"$N/initrd.key"
	rm -rf "$x"
	x=
fi

# This run: the command script and the status marker, in a second (uncompressed) cpio archive
# after the first; the kernel unpacks both.
cwd=$PWD
# The VM mounts /tmp and /run afresh: a tree there (a CI clone in /tmp) is carried over into
# them by init.sh (KEEP); anything else below them, or in /dev, /proc, /sys, is not there.
keep=
case $cwd/ in
/tmp/* | /run/*)
	case $cwd/ in "$repo"/*) keep=$repo ;; *) die "cannot run in $cwd: the VM mounts /tmp and /run afresh" ;; esac ;;
/dev/* | /proc/* | /sys/*)
	die "cannot run in $cwd: the VM mounts /dev, /proc and /sys afresh" ;;
esac
run=$(mktemp -d "$N/run.XXXXXX") || die "cannot create a run directory in $N"
marker="nested-status-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n'):"
mkdir -p "$run/cpio/nested"
echo "MARKER=$marker" >"$run/cpio/nested/run.conf"
echo "KEEP='$keep'" >>"$run/cpio/nested/run.conf"
{
	echo "# written by tests/nested/run.sh for one run"
	for v in $(compgen -e); do
		case $v in
		PWD | OLDPWD | SHLVL | _ | LD_PRELOAD | MAKEFLAGS | MFLAGS | MAKELEVEL | MAKE_TERMOUT | MAKE_TERMERR | \
			TMUX | TMUX_PANE | SSH_* | DISPLAY | XAUTHORITY | XDG_* | DBUS_* | NESTED_*) continue ;;
		esac
		printf 'export %s=%q\n' "$v" "${!v}"
	done
	printf 'cd -- %q || exit 125\n' "$cwd"
	printf 'export LD_PRELOAD=%q\n' "$N/trfix.so"
	# ASan refuses to start unless its runtime comes first in the library list, which the
	# preloaded shim now does (the ASan builds, e.g. the fault tests' receivers, run unchanged).
	echo 'export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0'
	if [ $# -eq 1 ]; then
		printf '%s\n' "$1"
	else
		printf '%q ' "$@"
		echo
	fi
} >"$run/cpio/nested/cmd.sh"
(cd "$run/cpio" && find . | cpio -o -H newc --quiet) | cat "$N/initrd.gz" - >"$run/initrd" ||
	die "cannot write $run/initrd"

# The VM. Its output channel (a virtio console on QEMU's stdout) goes through a filter that
# takes the status line out; the serial console (kernel, init) goes to a file.
mkfifo "$run/out" || die "mkfifo failed"
sed -u -e "/^$marker /{s///;w $run/status" -e 'd}' <"$run/out" &
fpid=$!
start=$EPOCHREALTIME
timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp "$smp" -m "$mem" \
	-nodefaults -display none -no-reboot \
	-kernel "$N/vmlinuz" -initrd "$run/initrd" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 tsc=reliable" \
	-serial "file:$run/console.log" \
	-device virtio-serial-pci -chardev stdio,id=out,signal=off -device virtconsole,chardev=out \
	-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	</dev/null >"$run/out" 2>"$run/qemu.err" &
qpid=$!
wait $qpid
qrc=$?
qpid=
wait $fpid
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
cp "$run/console.log" "$N/console.log" 2>/dev/null
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
	say "timed out after ${timeout_s}s (NESTED_TIMEOUT); the VM's console: $N/console.log"
	exit 124
fi
if [ ! -s "$run/status" ]; then
	say "the VM ended without the command's status (QEMU exit $qrc, after ${secs}s); its console:"
	tail -n 20 "$run/console.log" "$run/qemu.err" 2>/dev/null | sed 's/^/    /' >&2
	exit 125
fi
rc=$(cat "$run/status")
say "status $rc after ${secs}s in the VM (QEMU TCG, -smp $smp, $(basename "$kdeb" .deb))"
exit "$rc"
