#!/usr/bin/env python3
"""PIPELINING across messages (RFC 2920 3.1) with the real sendqd against
tests/tools/fake_smtp_server.py, which logs "N pipelined" when the
client's next command was already there before it answered a final dot:

- a queue drained over one connection: every message but the first
  goes out behind the previous one's dot (no round trip waits for its
  250), each arrives once, one connection carries them all;
- the server closes the connection right after a final dot, before its
  reply, or answers it with 421: that message is deferred as it is
  without pipelining (one deferred line naming the closed connection or
  the 421), the message pipelined behind it is simply due again (no
  attempt counted, no deferred line), and after healing every message
  arrives once;
- messages_per_connection = 3: no message is pipelined behind the last
  one a connection may carry.

Nothing waits a fixed time: every wait polls a condition with a
deadline."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402
from test_faults import TIMEOUTS, WAIT, FakeServer  # noqa: E402

SENDER = "alice@example.org"


class Pipelining(harness.IntegrationTest):

    def fake(self, args):
        fake = FakeServer(self.dir, args, "none", self.certs)
        self.addCleanup(fake.stop)
        return fake

    def filled_sendq(self, fake, n, **sh_extra):
        """sendqd (not started) for fake with n messages in queue/."""
        sh = {"host": "127.0.0.1", "port": fake.port, "tls": "none",
              "max_connections": 1, "idle_timeout": "30s"}
        sh.update(TIMEOUTS)
        sh.update(sh_extra)
        sq = self.new_sendq(sh, name="fake")
        ids = sq.fill(n, make_message(
            "pipelined", "Pipelined message.\r\n",
            sender=SENDER, to=("bob@example.net",)))
        return sq, ids

    def pipelined(self, fake):
        return [e for e in fake.events() if e[1] == "pipelined"]

    def test_a_drain_over_one_connection_pipelines_every_message(self):
        n = 20
        fake = self.fake([])
        sq, ids = self.filled_sendq(fake, n)
        sq.start()
        wait_for(lambda: len(sq.delivery_lines("sent")) == n, timeout=WAIT,
                 what="%d sent delivery lines" % n)
        sq.wait_queue_empty(timeout=WAIT)
        sent = [d["msgid"] for d in sq.delivery_lines("sent")]
        self.assertEqual(sorted(sent), sorted(ids), "each sent once")
        self.assertEqual(len(fake.saved()), n)
        self.assertEqual(list(fake.connections()), [1], fake.events())
        # The first message has none before it; every later one was
        # there before the previous dot's 250 (one may miss the window
        # if it was indexed late).
        self.assertGreaterEqual(len(self.pipelined(fake)), n - 2,
                                fake.events())
        self.assertStoppedCleanly(sq)

    def fault_after_the_first_dot(self, args, reason):
        """The server fails the session where the first message's dot
        gets its reply: that message is deferred as without pipelining,
        the one behind it is due again, no attempt counted."""
        n = 3
        fake = self.fake(args)
        sq, ids = self.filled_sendq(fake, n)
        sq.start()
        first = wait_for(lambda: sq.delivery_lines("deferred"), timeout=WAIT,
                         what="a deferred delivery line")[0]
        self.assertRegex(first.get("reply", ""), reason)
        self.assertEqual(first.get("attempt"), "1", first["line"])
        # The next message's commands were behind that dot.
        self.assertIn(["1", "pipelined"], fake.events())
        fake.heal()
        wait_for(lambda: not sq.queued(), timeout=WAIT,
                 what="the queue to empty after healing")
        sent = sq.delivery_lines("sent")
        deferred = sq.delivery_lines("deferred")
        self.assertEqual(sorted(d["msgid"] for d in sent), sorted(ids))
        # One deferred line per faulty connection: the message behind
        # the dot was never an attempt.
        faulty = [c for c, w in fake.connections().items() if w == "fault"]
        self.assertEqual(len(deferred), len(faulty),
                         [d["line"] for d in deferred])
        for d in deferred:
            self.assertRegex(d.get("reply", ""), reason)
        # The server kept each faulty dot's message (the duplicate a lost
        # verdict allows), nothing of the ones behind it.
        self.assertEqual(len(fake.saved()), n + len(faulty))
        for d in sent:
            tries = [x for x in deferred if x["msgid"] == d["msgid"]]
            self.assertEqual(d.get("attempt"), str(len(tries) + 1),
                             d["line"])
        self.assertStoppedCleanly(sq)

    def test_pipeline_messages_no_waits_for_each_dot_reply(self):
        n = 10
        fake = self.fake([])
        sq, ids = self.filled_sendq(fake, n, pipeline_messages="no")
        sq.start()
        wait_for(lambda: len(sq.delivery_lines("sent")) == n, timeout=WAIT,
                 what="%d sent delivery lines" % n)
        sq.wait_queue_empty(timeout=WAIT)
        self.assertEqual(len(fake.saved()), n)
        self.assertEqual(list(fake.connections()), [1], fake.events())
        self.assertEqual(self.pipelined(fake), [], fake.events())

    def test_close_after_a_dot_defers_it_and_retries_the_one_behind(self):
        self.fault_after_the_first_dot(["--drop", "end"],
                                       r"connection closed by")

    def test_421_to_a_dot_defers_it_and_retries_the_one_behind(self):
        self.fault_after_the_first_dot(
            ["--end-reply", "421 4.3.2 shutting down"], r"421 4\.3\.2")

    def test_messages_per_connection_bounds_the_pipeline(self):
        n = 7
        fake = self.fake([])
        sq, ids = self.filled_sendq(fake, n, messages_per_connection=3)
        sq.start()
        wait_for(lambda: len(sq.delivery_lines("sent")) == n, timeout=WAIT,
                 what="%d sent delivery lines" % n)
        per_conn = {}
        for e in fake.events():
            if e[1] == "mail":
                per_conn[e[0]] = per_conn.get(e[0], 0) + 1
        # 3 + 3 + 1: never a message behind the last one a connection
        # may carry.
        self.assertEqual(sorted(per_conn.values()), [1, 3, 3],
                         fake.events())
        self.assertGreaterEqual(len(self.pipelined(fake)), 2,
                                fake.events())
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
