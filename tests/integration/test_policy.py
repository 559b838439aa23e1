#!/usr/bin/env python3
"""The delivery policy (daemon/retry.c) seen from outside, against the
real sendqd and tests/tools/fake_smtp_server.py:

  - a server that answers 550 5.7.1 to MAIL (a policy refusal of the
    sender) sees the message exactly once; the sender gets an RFC 3464
    bounce (checked with tests/tools/check_dsn.py) naming 5.7.1, and
    nothing is deferred or tried again;
  - a server that answers 530 5.7.0 to MAIL (authentication required)
    keeps the mail queued, sendqd says AUTHENTICATION FAILED and rests
    the relay for at least 900 s: the server sees no second attempt until
    an operator flushes the queue (`sendq -q`), and then the message is
    delivered once.

(The 554 greeting, deferred with the relay down, and every other
connection fault are in test_faults.py; the table row by row is in
tests/unit/test_retry.c.)
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tools"))
import harness  # noqa: E402
from check_dsn import check_dsn  # noqa: E402
from harness import make_message  # noqa: E402
from test_faults import FakeServer  # noqa: E402

SENDER = "alice@example.org"
RCPT = "bob@example.net"


def unstuff(wire):
    """Message bytes as the server saved them (dot-stuffed) -> as sent."""
    if wire.startswith(b".."):
        wire = wire[1:]
    return wire.replace(b"\r\n..", b"\r\n.")


class Policy(harness.IntegrationTest):

    def fake(self, args):
        fake = FakeServer(tempfile.mkdtemp(dir=self.dir), list(args), "none",
                          None)
        self.addCleanup(fake.stop)
        return fake

    def sendq_for(self, fake):
        # Not under self.dir: that path is too long for a unix socket.
        sockdir = tempfile.mkdtemp(prefix="sq-policy-")
        self.addCleanup(shutil.rmtree, sockdir, ignore_errors=True)
        return self.new_sendq({"host": "127.0.0.1", "port": fake.port,
                               "tls": "none"}, name="fake",
                              extra_sendq={"control_socket": os.path.join(
                                  sockdir, "control.sock")})

    def mails(self, fake):
        """(reply code, <sender>) of every MAIL the server answered."""
        return [(e[2], e[3]) for e in fake.events() if e[1] == "mail"]

    def test_550_5_7_1_to_mail_is_tried_once_and_bounced(self):
        fake = self.fake(["--mail-reply", "550 5.7.1 Sender not authorized",
                          "--mail-reply-sender", SENDER])
        sq = self.sendq_for(fake)
        sq.start()
        sent = make_message("policy 5.7.1", "Refused by policy.\r\n")
        sq.submit(sent, [RCPT], sender=SENDER)
        # The bounce goes out through the same smarthost, which takes the
        # null sender.
        harness.wait_for(fake.saved, what="the bounce at the server")
        sq.wait_queue_empty()
        self.assertEqual(self.mails(fake), [("550", "<%s>" % SENDER),
                                            ("250", "<>")])
        (dsn,) = fake.saved()
        dsn = unstuff(dsn)
        self.assertEqual(check_dsn(dsn, final_recipient=RCPT,
                                   status="5.7.1", action="failed"), [])
        self.assertIn(b"550 5.7.1 Sender not authorized", dsn)
        self.assertRegex(dsn, rb"(?im)^To: <?%s>?\r$" %
                         SENDER.encode().replace(b".", rb"\."))
        (failed,) = sq.delivery_lines("failed")
        self.assertEqual(failed.get("attempt"), "1", failed["line"])
        self.assertEqual(sq.delivery_lines("deferred"), [])
        self.assertNotIn("AUTHENTICATION FAILED", sq.log_text())
        self.assertStoppedCleanly(sq)
        self.assertEqual(len(self.mails(fake)), 2, "tried again")

    def test_530_to_mail_keeps_the_mail_and_rests_the_relay(self):
        fake = self.fake(["--mail-reply",
                          "530 5.7.0 Authentication required"])
        sq = self.sendq_for(fake)
        sq.start()
        sent = make_message("policy 530", "Needs AUTH.\r\n")
        sq.submit(sent, [RCPT], sender=SENDER)
        qid = harness.wait_for(sq.queued, what="the queued message")[0]
        m = sq.wait_log(r"AUTHENTICATION FAILED: (.*) next try in (\d+)s")
        self.assertIn("530 5.7.0 Authentication required", m.group(1))
        self.assertGreaterEqual(int(m.group(2)), 900)
        sq.wait_log(r"relay fake: resting \(auth-required\)")
        (deferred,) = harness.wait_for(
            lambda: sq.delivery_lines("deferred"),
            what="a deferred delivery line")
        self.assertEqual(deferred.get("msgid"), qid, deferred["line"])
        self.assertEqual(sq.queued(), [qid])
        self.assertEqual(sq.delivery_lines("failed"), [])
        self.assertEqual(fake.saved(), [])
        # The credentials are fixed; resting, the relay gets nothing
        # until the operator asks for a run.
        fake.heal()
        self.assertEqual(self.mails(fake), [("530", "<%s>" % SENDER)])
        p = sq.sendq(["-q"])
        self.assertEqual(p.returncode, 0, p.stderr)
        harness.wait_for(lambda: sq.delivery_lines("sent"),
                         what="a sent delivery line after the flush")
        sq.wait_queue_empty()
        self.assertEqual(self.mails(fake), [("530", "<%s>" % SENDER),
                                            ("250", "<%s>" % SENDER)])
        self.assertEqual([unstuff(x) for x in fake.saved()], [sent])
        self.assertEqual(len(sq.delivery_lines("deferred")), 1)
        self.assertEqual(sq.delivery_lines("failed"), [])
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
