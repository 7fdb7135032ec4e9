#!/usr/bin/env python3
"""The reference for hv's snapshot benchmark: the same guest image saved to a file by QEMU
(migrate "exec:cat > FILE", with its bandwidth cap lifted) and started again from it
(-incoming "exec:cat FILE").

usage: qemu-snapshot.py GUEST_ELF CMDLINE MEM WAIT_FOR WORKDIR
Boots the guest under QEMU (-M pc, PVH via -kernel), waits until its serial log matches
WAIT_FOR, saves, then restores into a second QEMU and prints
"save_ms downtime_ms file_bytes restore_ms": QEMU's own total time and downtime for the save,
the file's size on disk, and the wall time from starting the restoring QEMU (page cache
dropped) until it reports running. "- - - -" on failure. Everything it starts, it stops."""
import os
import subprocess
import sys
import time

from qmp import Qmp, wait_log


def qemu(elf, cmdline, mem, work, tag, extra):
    return subprocess.Popen(
        ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
         "-m", mem, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
         "-serial", "file:%s/%s.log" % (work, tag), "-qmp",
         "unix:%s/%s.qmp,server=on,wait=off" % (work, tag), "-kernel", elf, "-append", cmdline]
        + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    elf, cmdline, mem, wait_for, work = sys.argv[1:6]
    snap = work + "/qemu.snap"
    procs = []
    try:
        procs.append(qemu(elf, cmdline, mem, work, "qsrc", []))
        wait_log(work + "/qsrc.log", wait_for, time.monotonic() + 60)
        time.sleep(1)
        src = Qmp(work + "/qsrc.qmp", time.monotonic() + 10)
        src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
        src.cmd("migrate", uri="exec:cat > %s" % snap)
        deadline = time.monotonic() + 120
        while True:
            st = src.cmd("query-migrate")
            if st.get("status") == "completed":
                break
            if st.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError("QEMU save %s" % st.get("status"))
            time.sleep(0.01)
        procs[0].kill()
        procs[0].wait()
        size = os.stat(snap).st_blocks * 512
        # From the disk, as hv's restore is timed: the page cache dropped first.
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError:
            pass
        t0 = time.monotonic()
        procs.append(qemu(elf, cmdline, mem, work, "qdst", ["-incoming", "exec:cat %s" % snap]))
        dst = Qmp(work + "/qdst.qmp", time.monotonic() + 10)
        while dst.cmd("query-status").get("status") != "running":
            if time.monotonic() > t0 + 120:
                raise RuntimeError("the restored QEMU does not run")
            time.sleep(0.001)
        restore_ms = (time.monotonic() - t0) * 1000
        print("%d %d %d %.0f" % (st["total-time"], st["downtime"], size, restore_ms))
    except Exception as e:  # a reference that cannot be measured is shown as missing
        print("qemu-snapshot: %s" % e, file=sys.stderr)
        print("- - - -")
    finally:
        for p in procs:
            p.kill()
            p.wait()


main()
