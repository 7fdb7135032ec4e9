#!/usr/bin/env python3
"""The reference for hv's storage benchmark: the same guest and disk image moved by QEMU the
way libvirt does it, over QMP.

usage: qemu-storage.py migrate GUEST_ELF CMDLINE MEM WAIT_FOR IMAGE DEST_IMAGE WORKDIR
  Shared-nothing migration on loopback: the destination QEMU (-incoming defer, -S) opens
  DEST_IMAGE (created here, sparse, the source's size) and exports it over NBD; the source
  mirrors its disk into that export (blockdev-mirror sync=full), waits until the mirror is
  ready, migrates (QEMU's defaults, bandwidth cap lifted), then ends the mirror and the
  destination resumes the guest. Prints "total_ms downtime_ms ram_bytes": total from the
  mirror's start to the destination running.
usage: qemu-storage.py move GUEST_ELF CMDLINE MEM WAIT_FOR IMAGE NEW_IMAGE WORKDIR
  Storage only: the running guest's disk mirrored into NEW_IMAGE on this host and switched
  to it (blockdev-mirror, then block-job-complete). Prints "total_ms N 0", N the number of
  blkcheck heartbeat lines in the guest's log when the mirror began.

Both wait until the guest's serial log (WORKDIR/qsrc.log) shows WAIT_FOR first, and print
"- - -" on failure (the cause on stderr). Everything started is stopped."""
import os
import subprocess
import sys
import time

from qmp import Qmp, migrate_and_wait, wait_log


def qemu(elf, cmdline, mem, image, work, tag, extra):
    # -blockdev, so that the disk's node has a name the QMP commands can use.
    # Without /dev/kvm (only to try this script out; the benchmark itself needs KVM): TCG.
    accel = (["-enable-kvm", "-cpu", "host,-arch-capabilities"] if os.path.exists("/dev/kvm")
             else ["-accel", "tcg", "-cpu", "max"])
    return subprocess.Popen(
        ["qemu-system-x86_64"] + accel + ["-M", "pc",
         "-m", mem, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
         "-serial", "file:%s/%s.log" % (work, tag),
         "-qmp", "unix:%s/%s.qmp,server=on,wait=off" % (work, tag),
         "-blockdev", "driver=file,filename=%s,node-name=file0,cache.direct=off" % image,
         "-blockdev", "driver=raw,file=file0,node-name=disk0",
         "-device", "virtio-blk-pci,drive=disk0,disable-legacy=on",
         "-kernel", elf, "-append", cmdline] + extra,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_mirror_ready(q, job, deadline):
    while True:
        jobs = {j["device"]: j for j in q.cmd("query-block-jobs")}
        if job not in jobs:
            raise RuntimeError("the mirror job ended early")
        if jobs[job].get("ready"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the mirror did not become ready")
        time.sleep(0.01)


def wait_job_gone(q, job, deadline):
    while any(j["device"] == job for j in q.cmd("query-block-jobs")):
        if time.monotonic() > deadline:
            raise RuntimeError("the mirror job did not end")
        time.sleep(0.01)


def migrate(elf, cmdline, mem, wait_for, image, dest, work, procs):
    port = 47100 + os.getpid() % 400
    nbd_port = port + 500
    procs.append(qemu(elf, cmdline, mem, image, work, "qsrc", []))
    wait_log(work + "/qsrc.log", wait_for, time.monotonic() + 120)
    time.sleep(1)
    with open(dest, "wb") as f:
        f.truncate(os.path.getsize(image))
    procs.append(qemu(elf, cmdline, mem, dest, work, "qdst", ["-S", "-incoming", "defer"]))
    dst = Qmp(work + "/qdst.qmp", time.monotonic() + 20)
    src = Qmp(work + "/qsrc.qmp", time.monotonic() + 20)
    t0 = time.monotonic()
    dst.cmd("nbd-server-start", addr={"type": "inet", "data": {"host": "127.0.0.1", "port": str(nbd_port)}})
    dst.cmd("block-export-add", type="nbd", id="exp0", **{"node-name": "disk0"}, writable=True, name="disk0")
    dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
    src.cmd("blockdev-add", driver="nbd", **{"node-name": "target"},
            server={"type": "inet", "host": "127.0.0.1", "port": str(nbd_port)}, export="disk0")
    src.cmd("blockdev-mirror", **{"job-id": "mirror0"}, device="disk0", target="target", sync="full")
    wait_mirror_ready(src, "mirror0", time.monotonic() + 1800)
    st = migrate_and_wait(src, "tcp:127.0.0.1:%d" % port, 600)
    deadline = time.monotonic() + 60
    # The source is paused: the mirror has written everything; cancelling a ready mirror
    # leaves the target consistent. Then the destination stops exporting and runs.
    src.cmd("block-job-cancel", device="mirror0")
    wait_job_gone(src, "mirror0", time.monotonic() + 60)
    while dst.cmd("query-migrate").get("status") != "completed":
        if time.monotonic() > deadline:
            raise RuntimeError("the destination did not complete")
        time.sleep(0.01)
    src.cmd("blockdev-del", **{"node-name": "target"})
    # The export ends once the source's NBD client has gone.
    while True:
        try:
            dst.cmd("block-export-del", id="exp0")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    dst.cmd("nbd-server-stop")
    dst.cmd("cont")
    total = (time.monotonic() - t0) * 1000
    print("%d %d %d" % (total, st["downtime"], st["ram"]["transferred"]))


def move(elf, cmdline, mem, wait_for, image, new, work, procs):
    procs.append(qemu(elf, cmdline, mem, image, work, "qsrc", []))
    wait_log(work + "/qsrc.log", wait_for, time.monotonic() + 120)
    time.sleep(2)
    with open(new, "wb") as f:
        f.truncate(os.path.getsize(image))
    q = Qmp(work + "/qsrc.qmp", time.monotonic() + 20)
    with open(work + "/qsrc.log", errors="replace") as f:
        before = sum(1 for line in f if line.startswith("blkcheck: pass="))
    t0 = time.monotonic()
    q.cmd("blockdev-add", driver="file", filename=new, **{"node-name": "newfile"})
    q.cmd("blockdev-add", driver="raw", file="newfile", **{"node-name": "newdisk"})
    q.cmd("blockdev-mirror", **{"job-id": "move0"}, device="disk0", target="newdisk", sync="full")
    wait_mirror_ready(q, "move0", time.monotonic() + 1800)
    q.cmd("block-job-complete", device="move0")
    wait_job_gone(q, "move0", time.monotonic() + 120)
    total = (time.monotonic() - t0) * 1000
    time.sleep(2)  # two more heartbeats: the guest's I/O wait around the switch
    print("%d %d 0" % (total, before))


def main():
    mode, elf, cmdline, mem, wait_for, image, other, work = sys.argv[1:9]
    procs = []
    try:
        (migrate if mode == "migrate" else move)(elf, cmdline, mem, wait_for, image, other, work, procs)
    except Exception as e:  # a reference that cannot be measured is shown as missing
        print("qemu-storage: %s" % e, file=sys.stderr)
        print("- - -")
    finally:
        for p in procs:
            p.kill()
            p.wait()


main()
