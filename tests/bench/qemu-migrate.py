#!/usr/bin/env python3
"""The reference for hv's migration benchmark: the same guest image live-migrated by QEMU on
loopback with QEMU's defaults (one stream, 300 ms downtime limit, no compression) except its
128 MiB/s bandwidth cap, which is lifted as libvirt does.

usage: qemu-migrate.py GUEST_ELF CMDLINE MEM WAIT_FOR WORKDIR [WAIT_AFTER]
Boots the guest under QEMU (-M pc, PVH via -kernel), waits until its serial log matches
WAIT_FOR (a substring), starts a second QEMU with -incoming, migrates over QMP and prints
"total_ms downtime_ms transferred_bytes" (QEMU's own figures), or "- - -" on failure.
With WAIT_AFTER, it then waits (up to 60 s) until the destination's serial log,
WORKDIR/qdst.log, matches that too (for what the guest measures after the migration).
With QEMU_MIGRATE_TLS=1 in the environment the migration runs over TLS with a pre-shared
key (QEMU's tls-creds-psk on both sides), as hv's --psk does. QEMU_MIGRATE_DELAY_MS=N sends it
through hv's faultproxy (FAULTPROXY, its path) holding every chunk N ms each way, as hv's
long-distance rows do; QEMU_MIGRATE_CAPS=a,b turns those migration capabilities on
(e.g. auto-converge); QEMU_MIGRATE_DOWNTIME_MS sets its downtime-limit.
Everything it starts, it stops."""
import os
import re
import subprocess
import sys
import time

from qmp import Qmp, migrate_and_wait, wait_log


def qemu(elf, cmdline, mem, work, tag, extra):
    return subprocess.Popen(
        ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
         "-m", mem, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
         "-serial", "file:%s/%s.log" % (work, tag), "-qmp",
         "unix:%s/%s.qmp,server=on,wait=off" % (work, tag), "-kernel", elf, "-append", cmdline]
        + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tls_creds(work, endpoint):
    """A tls-creds-psk object: QEMU reads WORK/psk/keys.psk ("user:hexkey")."""
    d = work + "/psk"
    if not os.path.exists(d + "/keys.psk"):
        os.makedirs(d, exist_ok=True)
        with open(d + "/keys.psk", "w") as f:
            f.write("hv:" + os.urandom(32).hex() + "\n")
        os.chmod(d + "/keys.psk", 0o600)
    user = ",username=hv" if endpoint == "client" else ""
    return ["-object", "tls-creds-psk,id=tls0,endpoint=%s,dir=%s%s" % (endpoint, d, user)]


def main():
    elf, cmdline, mem, wait_for, work = sys.argv[1:6]
    port = 47000 + os.getpid() % 1000
    tls = os.environ.get("QEMU_MIGRATE_TLS") == "1"
    procs = []
    try:
        procs.append(qemu(elf, cmdline, mem, work, "qsrc", tls_creds(work, "client") if tls else []))
        wait_log(work + "/qsrc.log", wait_for, time.monotonic() + 60)
        time.sleep(1)
        if tls:
            procs.append(qemu(elf, cmdline, mem, work, "qdst",
                              tls_creds(work, "server") + ["-incoming", "defer"]))
        else:
            procs.append(qemu(elf, cmdline, mem, work, "qdst", ["-incoming", "tcp:127.0.0.1:%d" % port]))
        dst = Qmp(work + "/qdst.qmp", time.monotonic() + 10)
        src = Qmp(work + "/qsrc.qmp", time.monotonic() + 10)
        if tls:
            dst.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
            dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
            src.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
        caps = [c for c in os.environ.get("QEMU_MIGRATE_CAPS", "").split(",") if c]
        if caps:
            src.cmd("migrate-set-capabilities",
                    capabilities=[{"capability": c, "state": True} for c in caps])
        if os.environ.get("QEMU_MIGRATE_DOWNTIME_MS"):
            src.cmd("migrate-set-parameters",
                    **{"downtime-limit": int(os.environ["QEMU_MIGRATE_DOWNTIME_MS"])})
        target = port
        delay = os.environ.get("QEMU_MIGRATE_DELAY_MS")
        if delay:
            proxy = subprocess.Popen([os.environ["FAULTPROXY"], "0", "127.0.0.1:%d" % port,
                                      "--delay-ms", delay, "--once"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(proxy)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", proxy.stdout.readline())
            if not m:
                raise RuntimeError("faultproxy did not start")
            target = int(m.group(1))
        st = migrate_and_wait(src, "tcp:127.0.0.1:%d" % target, 120)
        del dst
        if len(sys.argv) > 6:
            wait_log(work + "/qdst.log", sys.argv[6], time.monotonic() + 60)
        print("%d %d %d" % (st["total-time"], st["downtime"], st["ram"]["transferred"]))
    except Exception as e:  # a reference that cannot be measured is shown as missing
        print("qemu-migrate: %s" % e, file=sys.stderr)
        print("- - -")
    finally:
        for p in procs:
            p.kill()
            p.wait()


main()
