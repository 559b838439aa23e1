#!/usr/bin/env python3
"""End to end over implicit TLS (SMTPS): messages submitted with `sendq`
are relayed by `sendqd` to a private Exim and arrive byte for byte (line
ends aside: every line end is CRLF on the wire, Exim stores LF), the spool
is empty afterwards and each delivery log line names the TLS version and
cipher.

E2ECases is shared with test_e2e_starttls.py, which sets TLS_MODE."""

import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import crlf_to_lf, make_message  # noqa: E402

SENDER = "alice@example.org"


class E2ECases:
    """Test cases; a subclass also derives from harness.IntegrationTest and
    sets TLS_MODE ("implicit" or "starttls") and HOST."""

    TLS_MODE = None
    HOST = "127.0.0.1"

    def setUp(self):
        super().setUp()
        self.exim = self.start_exim()
        self.sq = self.new_sendq(self.smarthost_for(
            self.exim, tls=self.TLS_MODE, host=self.HOST))

    def port(self):
        return self.exim.implicit_port if self.TLS_MODE == "implicit" \
            else self.exim.starttls_port

    def deliver(self, message, recipients, args=(), expect=1,
                sender=SENDER):
        """Queue with sendqd running; wait until Exim has `expect` more
        messages and the queue is empty; return the new messages."""
        if not self.sq.running():
            self.sq.start()
        before = len(self.exim.message_ids())
        self.sq.submit(message, recipients, sender=sender, args=args)
        msgs = self.exim.wait_messages(before + expect)
        self.sq.wait_queue_empty()
        return msgs[before:]

    def assertSpoolEmpty(self):
        # The .env goes first, the .msg right after it: wait for both.
        def leftover():
            return [f for f in self.sq.spool_files()
                    if f.startswith(("queue/", "tmp/"))]
        harness.wait_for(lambda: not leftover(),
                         what=lambda: "an empty spool (left: %s)" %
                         leftover())
        harness.wait_for(lambda: self.sq.queued() == [],
                          what="the spool to empty")

    def assertSentLogged(self, count=1):
        lines = harness.wait_for(
            lambda: len(self.sq.delivery_lines("sent")) >= count and
            self.sq.delivery_lines("sent"),
            what="%d result=sent log lines" % count)
        for d in lines:
            self.assertEqual(d.get("relay"), "exim", d["line"])
            # The name as configured or the address it resolved to.
            self.assertRegex(d.get("host", ""), r"^(%s|127\.0\.0\.1|"
                             r"\[?::1\]?):%d$" % (re.escape(self.HOST),
                                                  self.port()), d["line"])
            # "TLS1.3 AES-256-GCM" and the like: version, then cipher.
            self.assertRegex(d.get("tls", ""), r"^TLS1\.[23] \S+",
                             d["line"])
            self.assertEqual(d.get("verify"), "ok", d["line"])
            self.assertRegex(d.get("reply", ""), r"^250[ -]", d["line"])
            self.assertTrue(d.get("msgid"), d["line"])
        return lines

    def assertEximSawTLS(self):
        for ln in self.exim.arrival_lines():
            self.assertRegex(ln, r" X=TLS1\.[23]:\S+", ln)

    # ---- the cases

    def test_relay_socket_sends_without_nagle(self):
        # TCP_NODELAY on the connection to the smarthost: with Nagle, a
        # small write behind an unacknowledged one (the TLS Finished,
        # then EHLO) waited for the server's delayed ACK, 40 ms on the
        # first message of every new connection.
        sh = self.smarthost_for(self.exim, tls=self.TLS_MODE,
                                host=self.HOST)
        sh.update(idle_timeout="60s")
        self.sq = self.new_sendq(sh)
        self.deliver(make_message("nodelay", "no Nagle\r\n"),
                     ["bob@example.net"])
        (opt,) = harness.wait_for(
            lambda: [o for o in [harness.tcp_socket_option(
                self.sq.pid(), self.port(), socket.IPPROTO_TCP,
                socket.TCP_NODELAY)] if o is not None],
            what="sendqd's pooled connection to the smarthost")
        self.assertEqual(opt, 1)

    def test_message_arrives_byte_for_byte(self):
        sent = make_message(
            "byte for byte", "First line.\r\n"
            ".A line starting with a dot.\r\n"
            "..Two dots.\r\n"
            ".\r\n"
            "The line above is a lone dot.\r\n"
            "Trailing spaces   \r\n"
            "\tTab and UTF-8: \xc3\xa9\r\n".encode("latin-1"),
            extra_headers=["X-Folded: first part\r\n\tsecond part"])
        # -i: a line with a lone dot is message text, not end of input.
        (m,) = self.deliver(sent, ["bob@example.net"], args=["-i"])
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(m.recipients, ["bob@example.net"])
        self.assertArrivedIntact(m, sent)
        self.assertSpoolEmpty()
        self.assertSentLogged()
        self.assertEximSawTLS()
        self.assertStoppedCleanly(self.sq)

    def test_bare_lf_message_arrives_with_crlf_line_ends(self):
        # Debian's Exim turns a bare LF received in DATA into a space
        # (test_exim_harness checks that), so one reaching the wire would
        # show here as "one .two".
        sent = make_message("bare LF", "one\n.two\nthree\n", eol=b"\n")
        (m,) = self.deliver(sent, ["bob@example.net"])
        self.assertArrivedIntact(m, sent)
        self.assertSpoolEmpty()
        self.assertStoppedCleanly(self.sq)

    def test_message_without_final_newline_gets_one(self):
        sent = make_message("no final newline",
                            "first\r\n.second, no line end")
        (m,) = self.deliver(sent, ["bob@example.net"])
        self.assertTrue(m.body.endswith(b".second, no line end\n"))
        self.assertArrivedIntact(m, sent)
        self.assertSpoolEmpty()
        self.assertStoppedCleanly(self.sq)

    def test_multi_recipient_message_reaches_every_recipient(self):
        rcpts = ["bob@example.net", "carol@example.com", "dave@example.net"]
        sent = make_message("three recipients", "Hello all.\r\n",
                            to=rcpts)
        self.sq.start()
        self.sq.submit(sent, rcpts, sender=SENDER)
        # Either one transaction with three RCPTs or several; every
        # recipient exactly once, every copy intact.
        got = harness.wait_for(
            lambda: sorted(r for m in self.exim.messages()
                           for r in m.recipients) == sorted(rcpts) and
            self.exim.messages(), what="all recipients")
        for m in got:
            self.assertArrivedIntact(m, sent)
            self.assertEqual(m.sender, SENDER)
        self.sq.wait_queue_empty()
        self.assertSpoolEmpty()
        self.assertStoppedCleanly(self.sq)

    def test_t_takes_recipients_from_headers_and_removes_bcc(self):
        sent = make_message(
            "dash t", "Recipients come from the header.\r\n",
            to=("bob@example.net",),
            extra_headers=["Cc: Carol <carol@example.com>",
                           "Bcc: hidden@example.org"])
        self.sq.start()
        self.sq.submit(sent, [], sender=SENDER, args=["-t"])
        want = ["bob@example.net", "carol@example.com",
                "hidden@example.org"]
        got = harness.wait_for(
            lambda: sorted(r for m in self.exim.messages()
                           for r in m.recipients) == want and
            self.exim.messages(), what="recipients %s" % want)
        for m in got:
            self.assertNotIn("bcc", m.header_names())
            self.assertArrivedIntact(m, sent, drop_headers=["Bcc"])
        self.sq.wait_queue_empty()
        self.assertSpoolEmpty()
        self.assertStoppedCleanly(self.sq)

    def test_missing_date_message_id_and_from_are_added_once(self):
        sent = b"To: bob@example.net\r\nSubject: bare\r\n\r\nbody\r\n"
        (m,) = self.deliver(sent, ["bob@example.net"])
        names = m.header_names()
        for h in ("date", "message-id", "from"):
            self.assertEqual(names.count(h), 1, "%s in %s" % (h, names))
        self.assertEqual(
            harness.remove_headers(m.as_received(),
                                   ["Date", "Message-ID", "From"]),
            crlf_to_lf(sent))
        self.assertStoppedCleanly(self.sq)

    def test_several_messages_all_arrive(self):
        self.sq.start()
        sent = {}
        for i in range(5):
            msg = make_message("batch %d" % i, "Message %d.\r\n" % i)
            sent[re.search(rb"Message-ID: (\S+)", msg).group(1)] = msg
            self.sq.submit(msg, ["bob@example.net"], sender=SENDER)
        msgs = self.exim.wait_messages(5)
        self.assertEqual(len(msgs), 5)
        for m in msgs:
            mid = re.search(rb"Message-ID: (\S+)", m.as_received()).group(1)
            self.assertArrivedIntact(m, sent.pop(mid))
        self.sq.wait_queue_empty()
        self.assertSpoolEmpty()
        self.assertSentLogged(5)
        self.assertStoppedCleanly(self.sq)

    def test_null_sender_is_relayed(self):
        sent = make_message("null sender", "A bounce.\r\n")
        (m,) = self.deliver(sent, ["bob@example.net"], sender="<>")
        self.assertEqual(m.sender, "")
        self.assertArrivedIntact(m, sent)
        self.assertStoppedCleanly(self.sq)


class ImplicitTLS(E2ECases, harness.IntegrationTest):
    TLS_MODE = "implicit"
    HOST = "127.0.0.1"


if __name__ == "__main__":
    harness.main()
