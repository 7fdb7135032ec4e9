#!/bin/busybox sh
# /init of the nested test VM (tests/nested/run.sh builds it into the initramfs; busybox sh,
# PID 1). Loads the modules (virtio, 9p, overlay, the KVM stack, tun/veth/bridge/qdiscs),
# mounts the host's root (9p, read-only) under a tmpfs overlay, mounts proc, sys, dev, devpts,
# tmp and run inside it, runs /nested/cmd.sh (written by run.sh for this run) there with bash,
# prints "$MARKER STATUS" on the output channel and powers off.
#
# Two channels: this script's own messages and the kernel's go to the serial console (run.sh
# keeps it in a file); the command's stdout and stderr go to a virtio console, /dev/hvc0,
# which QEMU writes to its stdout.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
. /nested/run.conf # MARKER, KEEP

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "nested-init: $*"; }
say "started at $(up) s"
for m in $(cat /lib/modules/load.list); do
	insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
ip link set lo up

i=0
while [ ! -c /dev/hvc0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
exec 3>/dev/hvc0 || { say "no /dev/hvc0"; poweroff -f; }
stty -F /dev/hvc0 raw -echo # keeps \n as \n; fd 3 keeps the setting alive
out() { echo "nested: $*" >&3; }
# give_up MESSAGE: the VM cannot run the command.
give_up() {
	out "$*"
	echo "$MARKER 125" >&3
	poweroff -f
}

[ -c /dev/kvm ] || give_up "no /dev/kvm inside the VM (kvm_amd did not load: is -cpu max giving SVM?)"
say "/dev/kvm ready at $(up) s; kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt) nested=$(cat /sys/module/kvm_amd/parameters/nested)"

mkdir -p /lower /rw /root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
	give_up "cannot mount the host's root (9p)"
mount -t tmpfs -o mode=755 rw /rw && mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /root ||
	give_up "cannot mount the overlay on the host's root"
R=/root
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
# A tree below /tmp or /run (KEEP, from run.sh) is held aside while they are mounted afresh,
# then put back at its path: the overlay's view of it, writable as everywhere else.
if [ -n "$KEEP" ]; then
	mkdir -p /keep && mount --bind "$R$KEEP" /keep || give_up "cannot hold $KEEP aside"
fi
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t tmpfs -o mode=755 run $R/run
if [ -n "$KEEP" ]; then
	mkdir -p "$R$KEEP" && mount --bind /keep "$R$KEEP" || give_up "cannot put $KEEP back"
fi
cp /nested/cmd.sh $R/run/nested-cmd.sh

# The command's output reaches hvc0 through a pipe, as it reaches run-all.sh's tee on a host
# (programs that draw on a terminal do not draw here). Something it leaves running may hold
# the pipe open: the status line then follows after at most 2 s.
mkfifo /out
cat /out >&3 &
catpid=$!
say "command starts at $(up) s"
t0=$(up)
chroot $R /bin/bash /run/nested-cmd.sh </dev/null >/out 2>&1
rc=$?
say "command ended (status $rc) at $(up) s, after $(awk "BEGIN { print $(up) - $t0 }") s"
i=0
while grep -q '^State:[[:space:]]*[^Z]' /proc/$catpid/status 2>/dev/null && [ $i -lt 40 ]; do
	sleep 0.05
	i=$((i + 1))
done
echo "$MARKER $rc" >&3
poweroff -f
