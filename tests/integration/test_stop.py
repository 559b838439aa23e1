#!/usr/bin/env python3
"""The graceful stop ([queue] stop_grace) with the real sendqd against
tests/tools/fake_smtp_server.py, whose --end-gate holds the reply to a
final dot until the test creates a file (conn-log "N dot" once the dot
is read) and whose conn-log says "N quit" for a QUIT and, over TLS,
"N close_notify" when the client ended the TLS session cleanly:

- SIGTERM while a dot's reply is held, released within stop_grace: the
  message is recorded sent and leaves the queue (it is not sent again
  after a restart); the message pipelined behind that dot is not sent,
  stays queued and goes out once after the restart; the connection
  QUITs;
- the reply held beyond stop_grace: the message is abandoned (logged),
  stays queued;
- an idle pooled connection gets QUIT (and over TLS a close_notify);
- stop_grace = 0: today's stop (every connection dropped at once, no
  QUIT);
- a second SIGTERM during the grace stops at once;
- against Exim over implicit TLS: the idle connection ends "closed by
  QUIT", without "TLS connection non-properly terminated".

Nothing waits a fixed time: every wait polls a condition (a log line, a
conn-log event, the process's exit) with a deadline."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402
from test_faults import WAIT, FakeServer  # noqa: E402

SENDER = "alice@example.org"


class Stop(harness.IntegrationTest):

    def fake(self, args=(), tls="none"):
        fake = FakeServer(self.dir, list(args), tls, self.certs)
        self.addCleanup(fake.stop)
        return fake

    def gated_fake(self, tls="none"):
        """A fake server that answers a dot only once self.gate exists."""
        self.gate = os.path.join(self.dir, "gate")
        return self.fake(["--end-gate", self.gate], tls)

    def open_gate(self):
        with open(self.gate, "w"):
            pass

    def filled_sendq(self, fake, n, grace, tls="none"):
        """sendqd (not started) for fake with n messages in queue/ and
        stop_grace = grace."""
        sh = {"host": "127.0.0.1", "port": fake.port, "tls": tls,
              "max_connections": 1, "idle_timeout": "60s",
              "timeout_data_end": "120s"}
        if tls != "none":
            sh.update(trust="ca_file", ca_file=self.certs.ca.cert)
        sq = self.new_sendq(sh, name="fake",
                            extra_queue={"stop_grace": grace})
        if n == 0:
            return sq, set()
        ids = sq.fill(n, make_message(
            "stop", "A message around a stop.\r\n",
            sender=SENDER, to=("bob@example.net",)))
        return sq, ids

    def has(self, fake, conn, what):
        return [str(conn)] + what.split() in fake.events()

    def wait_event(self, fake, conn, what):
        wait_for(lambda: self.has(fake, conn, what), timeout=WAIT,
                 what="fake server event %d %s" % (conn, what))

    def sigterm(self, sq):
        os.kill(sq.pid(), signal.SIGTERM)

    def wait_exit(self, sq, timeout=WAIT):
        """Wait until sendqd exits by itself; its exit code."""
        wait_for(lambda: not sq.running(), timeout=timeout,
                 what="sendqd to exit")
        return sq.stop()

    def test_reply_within_the_grace_is_recorded_and_not_sent_again(self):
        fake = self.gated_fake()
        sq, ids = self.filled_sendq(fake, 2, "30s")
        sq.start()
        self.wait_event(fake, 1, "dot")
        self.sigterm(sq)
        sq.wait_log(r"stop: waiting up to 30s \(stop_grace\) for 1 "
                    r"deliveries awaiting their reply", timeout=WAIT)
        self.assertTrue(sq.running(), "sendqd waits for the reply")
        self.open_gate()
        self.assertEqual(self.wait_exit(sq), 0)
        sent = sq.delivery_lines("sent")
        self.assertEqual(len(sent), 1, sq.log_text())
        first = sent[0]["msgid"]
        # The second message was pipelined behind the dot: not sent,
        # still queued; the first one left the queue.
        self.assertIn(["1", "pipelined"], fake.events())
        self.assertEqual(set(sq.queued()), ids - {first})
        self.assertRegex(sq.log_text(), r"not sent \(pipelined")
        self.assertEqual(len(fake.saved()), 1)
        # After a restart only the second one goes out, once.
        sq.start()
        wait_for(lambda: not sq.queued(), timeout=WAIT,
                 what="the queue to empty after the restart")
        sent = [d["msgid"] for d in sq.delivery_lines("sent")]
        self.assertEqual(sorted(sent), sorted(ids), "each sent once")
        self.assertEqual(len(fake.saved()), 2)
        self.assertStoppedCleanly(sq)

    def test_reply_within_the_grace_then_quit(self):
        fake = self.gated_fake()
        sq, ids = self.filled_sendq(fake, 1, "30s")
        sq.start()
        self.wait_event(fake, 1, "dot")
        self.sigterm(sq)
        sq.wait_log(r"stop: waiting up to 30s .* 1 deliveries",
                    timeout=WAIT)
        self.open_gate()
        self.assertEqual(self.wait_exit(sq), 0)
        self.assertEqual([d["msgid"] for d in sq.delivery_lines("sent")],
                         list(ids))
        self.assertEqual(sq.queued(), [])
        self.assertTrue(self.has(fake, 1, "quit"), fake.events())
        self.assertRegex(sq.log_text(), r"stop: every connection closed")

    def test_reply_beyond_the_grace_is_abandoned_and_stays_queued(self):
        fake = self.gated_fake()
        sq, ids = self.filled_sendq(fake, 1, "1s")
        sq.start()
        self.wait_event(fake, 1, "dot")
        self.sigterm(sq)
        self.assertEqual(self.wait_exit(sq), 0)
        log = sq.log_text()
        self.assertRegex(log, r"stop: waiting up to 1s .* 1 deliveries")
        (qid,) = ids
        self.assertRegex(log, r"msgid=%s: abandoned by the stop "
                         r"\(stop_grace of 1s over\)" % qid)
        self.assertRegex(log, r"abandoned 1 deliveries awaiting their "
                         r"reply")
        self.assertEqual(sq.delivery_lines("sent"), [])
        self.assertEqual(set(sq.queued()), ids)

    def idle_connection_quits(self, tls):
        fake = self.fake(tls=tls)
        sq, ids = self.filled_sendq(fake, 1, "5s", tls=tls)
        sq.start()
        wait_for(lambda: sq.delivery_lines("sent"), timeout=WAIT,
                 what="a sent delivery line")
        sq.wait_queue_empty(timeout=WAIT)
        self.assertFalse(self.has(fake, 1, "quit"))
        self.assertEqual(self.wait_exit_after_sigterm(sq), 0)
        self.wait_event(fake, 1, "quit")
        return fake

    def wait_exit_after_sigterm(self, sq):
        self.sigterm(sq)
        return self.wait_exit(sq)

    def test_idle_connection_gets_quit(self):
        self.idle_connection_quits("none")

    def test_idle_tls_connection_gets_quit_and_close_notify(self):
        fake = self.idle_connection_quits("implicit")
        self.wait_event(fake, 1, "close_notify")

    def test_grace_0_drops_every_connection_at_once(self):
        fake = self.gated_fake()
        sq, ids = self.filled_sendq(fake, 1, "0")
        sq.start()
        self.wait_event(fake, 1, "dot")
        self.sigterm(sq)
        self.assertEqual(self.wait_exit(sq), 0)
        log = sq.log_text()
        (qid,) = ids
        self.assertRegex(log, r"msgid=%s: delivery interrupted by "
                         r"shutdown; it stays queued" % qid)
        self.assertNotRegex(log, r"stop: waiting")
        self.assertEqual(set(sq.queued()), ids)
        # The server's session ends once its reply meets the closed
        # connection.
        self.open_gate()
        wait_for(lambda: self.has(fake, 1, "end"), timeout=WAIT,
                 what="the fake server to see the connection end")
        self.assertFalse(self.has(fake, 1, "quit"), fake.events())

    def test_grace_0_idle_connection_is_dropped_without_quit(self):
        fake = self.fake()
        sq, ids = self.filled_sendq(fake, 1, "0")
        sq.start()
        sq.wait_queue_empty(timeout=WAIT)
        self.assertEqual(self.wait_exit_after_sigterm(sq), 0)
        wait_for(lambda: self.has(fake, 1, "end"), timeout=WAIT,
                 what="the fake server to see the connection end")
        self.assertFalse(self.has(fake, 1, "quit"), fake.events())

    def test_second_sigterm_stops_at_once(self):
        fake = self.gated_fake()
        # A grace far longer than the wait below: only the second
        # signal can end the stop in time.
        sq, ids = self.filled_sendq(fake, 1, "60s")
        sq.start()
        self.wait_event(fake, 1, "dot")
        self.sigterm(sq)
        sq.wait_log(r"stop: waiting up to 60s", timeout=WAIT)
        self.sigterm(sq)
        self.assertEqual(self.wait_exit(sq, timeout=30), 0)
        log = sq.log_text()
        self.assertRegex(log, r"received Terminated again: stopping at "
                         r"once")
        self.assertRegex(log, r"abandoned by the stop \(stopping at once\)")
        self.assertEqual(set(sq.queued()), ids)


class StopExim(harness.IntegrationTest):

    def test_idle_connection_to_exim_ends_with_quit_and_tls_bye(self):
        exim = self.start_exim()
        sh = self.smarthost_for(exim, tls="implicit")
        sh["idle_timeout"] = "60s"
        sq = self.new_sendq(sh)
        sq.start()
        sq.wait_ready()
        sq.submit(make_message("stop exim", "Before a stop.\r\n",
                               sender=SENDER, to=("bob@example.net",)),
                  ["bob@example.net"], sender=SENDER)
        exim.wait_messages(1)
        sq.wait_queue_empty(timeout=WAIT)
        os.kill(sq.pid(), signal.SIGTERM)
        wait_for(lambda: not sq.running(), timeout=WAIT,
                 what="sendqd to exit")
        self.assertEqual(sq.stop(), 0)
        wait_for(lambda: "closed by QUIT" in exim.log_text(), timeout=WAIT,
                 what="Exim to log the connection closed by QUIT")
        self.assertNotIn("non-properly terminated", exim.log_text())


if __name__ == "__main__":
    harness.main()
