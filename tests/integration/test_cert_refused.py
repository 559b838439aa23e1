#!/usr/bin/env python3
"""Certificate verification: a smarthost whose certificate comes from a CA
we do not trust, or names another host, gets nothing.  The message stays
queued, the log says why, and it is delivered once the trust problem is
fixed (sendqd restarted trusting the right CA, or Exim given the right
certificate)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

SENDER = "alice@example.org"
# What an unknown issuer is called in the verify= / reply= fields.
UNTRUSTED = r"(?i)signer|issuer|not trusted|untrusted|unknown ca"


class CertRefused(harness.IntegrationTest):

    def refused(self, exim, sq, reason_rx):
        """Queue one message and check it is refused on every attempt (at
        least two, so a retry does not leak it either).  Returns the
        message bytes and its queue id."""
        sent = make_message("refused", "Must not reach an unverified "
                            "server.\r\n")
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        sq.start()      # sendq dropped it: sendqd queues it at start
        qid = sq.one_queued()
        deferred = harness.wait_for(
            lambda: len(sq.delivery_lines("deferred")) >= 2 and
            sq.delivery_lines("deferred"),
            what="two deferred delivery attempts")
        for d in deferred:
            self.assertEqual(d.get("msgid"), qid, d["line"])
            self.assertNotEqual(d.get("verify"), "ok", d["line"])
            self.assertRegex("%s | %s" % (d.get("verify", ""),
                                          d.get("reply", "")), reason_rx,
                             d["line"])
        self.assertEqual(sq.delivery_lines("sent"), [])
        self.assertEqual(exim.message_ids(), [], "exim received mail")
        self.assertEqual(exim.arrival_lines(), [])
        self.assertEqual(sq.queued(), [qid])
        return sent, qid

    def delivered(self, exim, sq, sent, qid):
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertArrivedIntact(m, sent)
        (d,) = harness.wait_for(lambda: sq.delivery_lines("sent"),
                                what="result=sent log line")
        self.assertEqual(d.get("msgid"), qid, d["line"])
        self.assertEqual(d.get("verify"), "ok", d["line"])

    def test_untrusted_ca_is_refused_until_its_ca_is_trusted(self):
        exim = self.start_exim(cert=self.certs.untrusted)
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sent, qid = self.refused(
            exim, sq, UNTRUSTED)
        self.assertStoppedCleanly(sq)
        sq.write_config(self.smarthost_for(
            exim, tls="implicit", ca_file=self.certs.other_ca.cert))
        sq.start()
        self.delivered(exim, sq, sent, qid)
        self.assertStoppedCleanly(sq)

    def test_wrong_host_name_is_refused_until_exim_has_the_right_cert(self):
        exim = self.start_exim(cert=self.certs.wrong_host)
        sq = self.new_sendq(self.smarthost_for(exim, tls="starttls",
                                               host="localhost"))
        sent, qid = self.refused(
            exim, sq, r"(?i)host ?name|name mismatch|does not match")
        # Same ports, right certificate: the next retry delivers.
        exim.stop()
        exim.cert, exim.key = self.certs.good
        exim.start()
        self.delivered(exim, sq, sent, qid)
        self.assertStoppedCleanly(sq)

    def test_private_ca_is_not_trusted_by_the_system_store(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit",
                                               trust="system"))
        self.refused(exim, sq, UNTRUSTED)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
