"""FakeSmtp: tests/tools/fake_smtp_server.py started on a free loopback
port with the given options (scripted replies for the faults a real
server cannot be told to produce); stopped by its PID."""

import os
import re
import subprocess
import sys

from .proc import SOURCE_DIR, HarnessError, stop_pid

FAKE_SMTP_SERVER = os.path.join(SOURCE_DIR, "tests", "tools",
                                "fake_smtp_server.py")


class FakeSmtp:
    """fake_smtp_server.py --port 0 ARGS; .port once it listens."""

    def __init__(self, args=()):
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_SMTP_SERVER, "--port", "0"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        m = re.match(r"PORT (\d+)", self.proc.stdout.readline().decode())
        if not m:
            self.stop()
            raise HarnessError("fake server did not start")
        self.port = int(m.group(1))

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
