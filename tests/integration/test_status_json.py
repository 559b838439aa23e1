#!/usr/bin/env python3
"""`sendqctl --json status` goes through sendqd's one JSON writer
(daemon/json_write.c): a relay's last error that holds a backslash and
double quotes comes back from json.loads exactly as the server said it
(the status used to turn '\\' into '/' and '"' into "'").  The text
status keeps its key="value"-safe form ('"' shown as "'").  The server
is tests/tools/fake_smtp_server.py answering 421 at the greeting; every wait polls
a condition with a deadline."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

SENDER = "alice@example.org"
# What the relay says; smtp_conn keeps printable ASCII as it is.
REPLY = '421 4.3.2 C:\\queue\\spool is "full", try later'


class StatusJsonTest(harness.IntegrationTest):

    def ctl(self, sq, *args):
        p = subprocess.run([harness.sendq_binary("sendqctl"), "-C",
                            sq.config] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        # status exits 1 (WARNING) or 2 (CRITICAL: a relay is down, as
        # this one is once it answered 421) with its report all the same
        # (test_monitoring.py checks those codes).
        ok = (0, 1, 2) if "status" in args else (0,)
        self.assertIn(p.returncode, ok, p.stderr)
        return p.stdout.decode()

    def test_last_error_with_backslash_and_quotes_round_trips(self):
        # The scripted server greets with REPLY (harness.FakeSmtp).
        srv = harness.FakeSmtp(["--greeting", REPLY])
        self.addCleanup(srv.stop)
        d = tempfile.mkdtemp(prefix="sq-st-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        sock = os.path.join(d, "control.sock")
        sq = self.new_sendq({"host": "127.0.0.1", "port": srv.port,
                             "tls": "none", "max_connections": 1},
                            name="odd", extra_sendq={"control_socket": sock},
                            extra_queue={"retry_max": "2s"})
        sq.submit_many([(make_message("status json", "Body.\r\n",
                                      sender=SENDER, to=["bob@example.net"]),
                         ["bob@example.net"], SENDER)])
        sq.start()
        wait_for(lambda: os.path.exists(sock), what="the control socket")

        def errored():
            st = json.loads(self.ctl(sq, "--json", "status"))
            return st["smarthosts"][0]["last_error"] and st
        st = wait_for(errored, what="a last error in status --json")
        relay = st["smarthosts"][0]
        self.assertEqual(relay["name"], "odd")
        self.assertEqual(relay["last_error"], REPLY)
        self.assertEqual(relay["queued"], 1)
        text = self.ctl(sq, "status")
        self.assertIn("last error: " + REPLY.replace('"', "'"), text)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
