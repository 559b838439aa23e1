#!/usr/bin/env python3
"""Nothing is lost while something is down: messages sent with `sendq`
while sendqd is stopped (left in the maildrop by the drop helper) are
delivered when it starts, and
a message deferred because the smarthost is down is delivered by a retry
once the smarthost is up."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

SENDER = "alice@example.org"


class QueuedWhileDown(harness.IntegrationTest):

    def test_messages_queued_while_sendqd_is_stopped_go_out_on_start(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sent = [make_message("while down %d" % i, "Queued offline.\r\n")
                for i in range(3)]
        for msg in sent:
            sq.submit(msg, ["bob@example.net"], sender=SENDER)
        harness.wait_for(lambda: sq.queued() == [],
                          what="the spool to empty")
        self.assertEqual(len(sq.maildrop_files()), 3)
        self.assertEqual(exim.message_ids(), [])
        sq.start()
        msgs = exim.wait_messages(3)
        sq.wait_queue_empty()
        self.assertEqual(sorted(m.as_received() for m in msgs),
                         sorted(harness.crlf_to_lf(s) for s in sent))
        logged = harness.wait_for(
            lambda: len(sq.delivery_lines("sent")) >= 3 and
            sq.delivery_lines("sent"), what="3 result=sent lines")
        self.assertEqual(len({d["msgid"] for d in logged}), 3)
        self.assertEqual(sq.maildrop_files(), [])
        self.assertStoppedCleanly(sq)

    def test_deferred_while_smarthost_is_down_then_retried(self):
        exim = self.new_exim()          # ports chosen, not started
        sq = self.new_sendq(self.smarthost_for(exim, tls="starttls"))
        sq.start()
        sent = make_message("retry", "Delivered by a retry.\r\n")
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        (d,) = harness.wait_for(lambda: sq.delivery_lines("deferred")[:1],
                                what="a deferred delivery attempt")
        qid = d["msgid"]
        self.assertEqual(sq.queued(), [qid])
        exim.start()
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertArrivedIntact(m, sent)
        (ok,) = harness.wait_for(lambda: sq.delivery_lines("sent"),
                                 what="result=sent log line")
        self.assertEqual(ok["msgid"], qid)
        self.assertStoppedCleanly(sq)

    def test_queue_survives_a_sendqd_restart_while_smarthost_is_down(self):
        exim = self.new_exim()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sq.start()
        sent = make_message("restart", "Survives a restart.\r\n")
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        harness.wait_for(lambda: sq.delivery_lines("deferred"),
                         what="a deferred delivery attempt")
        self.assertStoppedCleanly(sq)
        self.assertEqual(len(sq.queued()), 1)
        exim.start()
        sq.start()
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertArrivedIntact(m, sent)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
