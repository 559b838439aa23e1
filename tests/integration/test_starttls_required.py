#!/usr/bin/env python3
"""tls = starttls never falls back to cleartext: when the server does not
offer STARTTLS nothing is sent (Exim receives no message), the message
stays queued and the log says STARTTLS was not offered.  Once the server
offers it, the retry delivers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402


class StartTLSRequired(harness.IntegrationTest):

    def test_no_starttls_offered_means_nothing_sent(self):
        exim = self.start_exim(advertise_starttls=False)
        sq = self.new_sendq(self.smarthost_for(exim, tls="starttls"))
        sent = make_message("secret", "Never in cleartext.\r\n")
        sq.submit(sent, ["bob@example.net"], sender="alice@example.org")
        sq.start()      # sendq dropped it: sendqd queues it at start
        qid = sq.one_queued()
        deferred = harness.wait_for(
            lambda: len(sq.delivery_lines("deferred")) >= 2 and
            sq.delivery_lines("deferred"),
            what="two deferred delivery attempts")
        for d in deferred:
            self.assertEqual(d.get("msgid"), qid, d["line"])
            self.assertRegex(d.get("reply", ""), r"(?i)starttls.*not "
                             r"(offered|advertised|supported)|no starttls",
                             d["line"])
        self.assertEqual(sq.delivery_lines("sent"), [])
        self.assertEqual(exim.message_ids(), [])
        self.assertEqual(exim.arrival_lines(), [])
        # Exim never saw a MAIL command (it would log a rejection or an
        # arrival); the body text is nowhere in its spool or log.
        self.assertNotIn("Never in cleartext", exim.log_text())
        self.assertEqual(sq.queued(), [qid])

        # Now the server offers STARTTLS on the same port: delivered.
        exim.stop()
        exim.advertise_starttls = True
        exim.start()
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertArrivedIntact(m, sent)
        self.assertIn(" X=TLS1.", exim.arrival_lines()[0])
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
