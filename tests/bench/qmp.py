"""What the QEMU reference scripts of the benchmarks share: a QMP client over a UNIX socket,
and waiting for a guest's serial log to show a line."""
import json
import os
import socket
import time


class Qmp:
    """One QMP connection; cmd() returns a command's "return" or raises RuntimeError with
    QEMU's description of the error."""

    def __init__(self, path, deadline):
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, command, **args):
        self.f.write(json.dumps({"execute": command, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError("%s: %s" % (command, msg["error"].get("desc", "QMP error")))


def wait_log(path, text, deadline):
    """Until the file at path contains text; RuntimeError at the deadline (monotonic)."""
    while text not in (open(path, errors="replace").read() if os.path.exists(path) else ""):
        if time.monotonic() > deadline:
            raise RuntimeError("the guest under QEMU did not print '%s'" % text)
        time.sleep(0.1)


def migrate_and_wait(src, uri, timeout):
    """Migrates the QEMU behind src to uri with its bandwidth cap lifted (128 MiB/s unless
    told otherwise; libvirt lifts it too) and waits until it completes; its final
    query-migrate, or RuntimeError."""
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    src.cmd("migrate", uri=uri)
    deadline = time.monotonic() + timeout
    while True:
        st = src.cmd("query-migrate")
        if st.get("status") == "completed":
            return st
        if st.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError("QEMU migration %s" % st.get("status"))
        time.sleep(0.01)
