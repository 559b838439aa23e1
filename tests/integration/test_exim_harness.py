#!/usr/bin/env python3
"""The harness itself: a private Exim accepts messages from swaks over
STARTTLS and implicit TLS with the throwaway certificates, and the spool
parser gives back exactly what was sent.  Needs no sendq binary, so a
failure here means the test environment is broken, not sendq."""

import os
import smtplib
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import run  # noqa: E402


class EximHarness(harness.IntegrationTest):

    def swaks(self, port, mode, data):
        p = run(["swaks", "--server", "127.0.0.1", "--port", str(port), mode,
                 "--tls-verify", "--tls-ca-path", self.certs.ca.cert,
                 "--from", "swaks@example.org",
                 "--to", "one@example.net,two@example.net",
                 "--auth", "PLAIN", "--auth-user", "sendq",
                 "--auth-password", "secret", "--data", "-"], input=data)
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace"))
        return p.stdout.decode(errors="replace")

    def test_exim_accepts_swaks_over_starttls_and_implicit_tls(self):
        harness.require_tool("swaks", "swaks")
        exim = self.start_exim()
        out = self.swaks(exim.starttls_port, "--tls",
                         b"Subject: one\n\n.dot line\nend\n")
        self.assertIn("STARTTLS", out)
        self.swaks(exim.implicit_port, "--tlsc",
                   b"Subject: two\n\n.dot line\nend\n")
        msgs = exim.wait_messages(2)
        self.assertEqual(len(msgs), 2)
        for m in msgs:
            self.assertEqual(m.sender, "swaks@example.org")
            self.assertEqual(m.recipients,
                             ["one@example.net", "two@example.net"])
            self.assertEqual(m.body.rstrip(b"\n"), b".dot line\nend")
            self.assertEqual(m.headers[0][0], "P")
        self.assertEqual(sorted(m.original_headers()[0] for m in msgs),
                         [b"Subject: one\n", b"Subject: two\n"])
        lines = exim.arrival_lines()
        self.assertEqual(len(lines), 2)
        for ln in lines:
            self.assertIn(" X=TLS1.3:", ln)
            self.assertIn(" A=plain:sendq", ln)

    def test_parser_returns_message_byte_for_byte(self):
        exim = self.start_exim()
        sent = harness.make_message(
            "parser", ".dot\r\n..two dots\r\n.\r\nno final newline",
            extra_headers=["X-Folded: a\r\n\tcontinued",
                           "Bcc: hidden@example.com"])
        ctx = ssl.create_default_context(cafile=self.certs.ca.cert)
        with smtplib.SMTP_SSL("localhost", exim.implicit_port,
                              context=ctx, timeout=10) as s:
            s.sendmail("a@example.org", ["x@example.net", "y@example.net"],
                       sent)
        m = exim.wait_messages(1)[0]
        self.assertEqual(m.sender, "a@example.org")
        self.assertEqual(m.recipients, ["x@example.net", "y@example.net"])
        self.assertEqual(m.as_received(), harness.crlf_to_lf(sent))
        self.assertEqual(m.options.get("tls_ver"), "TLS1.3")

    def test_exim_reveals_a_bare_lf_on_the_wire(self):
        # What makes the e2e bare-LF tests meaningful: Exim does not
        # silently accept a bare LF as a line end, it shows in what it
        # stores (4.96 as patched by Debian turns it into a space).
        exim = self.start_exim()
        with socket.create_connection(("127.0.0.1", exim.starttls_port),
                                      timeout=10) as s:
            f = s.makefile("rb")

            def reply():
                while True:
                    ln = f.readline()
                    if ln[3:4] != b"-":
                        return ln
            reply()
            for cmd in (b"EHLO client.test", b"MAIL FROM:<a@example.org>",
                        b"RCPT TO:<x@example.net>", b"DATA"):
                s.sendall(cmd + b"\r\n")
                self.assertRegex(reply(), rb"^[23]")
            s.sendall(b"Subject: bare\r\n\r\none\ntwo\r\n.\r\n")
            self.assertRegex(reply(), rb"^250")
            s.sendall(b"QUIT\r\n")
            reply()
        m = exim.wait_messages(1)[0]
        self.assertNotEqual(m.body, b"one\ntwo\n")

    def test_exim_keeps_the_null_sender(self):
        exim = self.start_exim()
        with smtplib.SMTP("127.0.0.1", exim.starttls_port, timeout=10) as s:
            s.starttls(context=ssl.create_default_context(
                cafile=self.certs.ca.cert))
            s.sendmail("", ["x@example.net"], b"Subject: bounce\r\n\r\nx\r\n")
        self.assertEqual(exim.wait_messages(1)[0].sender, "")

    def test_exim_without_starttls_does_not_advertise_it(self):
        exim = self.start_exim(advertise_starttls=False)
        with smtplib.SMTP("127.0.0.1", exim.starttls_port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"))

    def test_exim_stops_by_pid(self):
        exim = self.start_exim()
        pid = exim.pid
        exim.stop()
        self.assertFalse(harness.pid_alive(pid))
        self.assertFalse(harness.port_accepts(exim.implicit_port))


if __name__ == "__main__":
    harness.main()
