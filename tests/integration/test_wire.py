#!/usr/bin/env python3
"""Nothing illegal on the wire (RFC 5322 2.1.1), through every local
intake path, against the harness's real Exim: the sendq command, sendq
-bs, the SMTP listener and the maildrop pick-up.

- A plain-text message with a 200,000-octet line (a cron job's output) is
  queued: its body is re-encoded as quoted-printable, what Exim receives
  has no line over 998 octets and no NUL, and it decodes to the original.
- A NUL byte is refused: sendq exits 65 ("line N contains a NUL byte"),
  -bs and the listener answer 554 5.6.0, a dropped file goes to
  maildrop/rejected/ with that reason; nothing is queued or relayed.
- A multipart message with a long line cannot be re-encoded: refused.
- A message without Date: and Message-ID: through the listener and the
  maildrop arrives with both (Message-ID <QUEUEID@hostname>).
"""

import email
import email.policy
import os
import time
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_intake  # noqa: E402

LONG = 200000


def long_body(eightbit=False):
    """A cron job's output: short lines, then one 200,000-octet line
    (spaces, tabs, '=' and dots in it), then more short lines."""
    unit = "row=%06d\tvalue %s. "
    line = ""
    i = 0
    while len(line) < LONG:
        line += unit % (i, "\u00e9t\u00e9" if eightbit else "ete")
        i += 1
    line = line[:LONG]
    if eightbit:
        while len(line.encode()) > LONG:
            line = line[:-1]
    text = "started\n" + line + "\n.dot\nend   \n"
    return text.encode()


def plain_message(subject, body, headers=True):
    head = b""
    if headers:
        head += b"Date: Thu, 01 Jan 2026 12:00:00 +0000\n" \
            b"Message-ID: <%s@sendq.test>\n" % subject.encode()
    return head + b"From: cron@example.org\nTo: bob@example.net\n" \
        b"Subject: " + subject.encode() + b"\n\n" + body


class WireChecks:
    """Assertions shared by the intake paths."""

    def assertLegal(self, m):
        raw = m.as_received()
        self.assertNotIn(b"\0", raw)
        for n, ln in enumerate(raw.split(b"\n"), 1):
            self.assertLessEqual(len(ln.rstrip(b"\r")), 998,
                                 "line %d is %d octets" % (n, len(ln)))

    def assertDecodesTo(self, m, body, charset):
        msg = email.message_from_bytes(m.as_received(),
                                       policy=email.policy.compat32)
        self.assertEqual(msg["Content-Transfer-Encoding"],
                         "quoted-printable")
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertEqual(msg.get_param("charset"), charset)
        got = msg.get_payload(decode=True)
        self.assertEqual(got, body.replace(b"\r\n", b"\n"))
        # Soft line breaks, and lines of at most 76 octets.
        self.assertIn(b"=\n", m.body)
        self.assertLessEqual(max(len(x) for x in m.body.split(b"\n")), 76)

    def assertNothingQueued(self, sq):
        harness.wait_for(lambda: sq.queued() == [],
                          what="the spool to empty")


class Listener(test_intake.IntakeBase, WireChecks):

    def send(self, msg, expect_ok=True):
        s = self.smtp()
        s.ehlo("client.test")
        self.assertEqual(s.mail("cron@example.org")[0], 250)
        self.assertEqual(s.rcpt("bob@example.net")[0], 250)
        # smtplib dot-stuffs but leaves bytes' line ends alone: CRLF.
        code, text = s.data(msg.replace(b"\n", b"\r\n"))
        s.quit()
        return code, text

    def test_long_line_is_reencoded_and_decodes_to_the_original(self):
        body = long_body()
        code, text = self.send(plain_message("listener long", body))
        self.assertEqual(code, 250, text)
        m = self.only_message()
        self.assertLegal(m)
        self.assertDecodesTo(m, body, "us-ascii")
        self.sq.wait_log(r"msgid=\S+ rewritten: body "
                         r"re-encoded as quoted-printable")

    def test_nul_byte_is_554_5_6_0_and_nothing_is_queued(self):
        code, text = self.send(plain_message("nul", b"one\ntw\0o\n"))
        self.assertEqual(code, 554)
        self.assertIn(b"5.6.0", text)
        self.assertIn(b"line 8 contains a NUL byte", text)
        self.assertNothingQueued(self.sq)
        self.sq.wait_log(r"intake result=rejected .*NUL byte")
        # The session and the listener go on.
        code, text = self.send(plain_message("after", b"fine\n"))
        self.assertEqual(code, 250, text)
        m = self.only_message()
        self.assertEqual(m.header("Subject"), "after")

    def test_multipart_with_long_line_is_refused(self):
        msg = (b"From: a@example.org\nSubject: mp\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" +
               b"z" * 2000 + b"\n--b--\n")
        code, text = self.send(msg)
        self.assertEqual(code, 554)
        self.assertIn(b"5.6.0", text)
        self.assertIn(b"multipart/mixed", text)
        self.assertNothingQueued(self.sq)

    def test_missing_date_and_message_id_are_added(self):
        code, text = self.send(plain_message("bare", b"hi\n",
                                             headers=False))
        self.assertEqual(code, 250, text)
        qid = re.search(rb"queued as (\S+)", text).group(1).decode()
        m = self.only_message()
        self.assertEqual(m.header("Message-ID"), "<%s@localhost>" % qid)
        self.assertRegex(m.header("Date"),
                         r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} "
                         r"\d\d:\d\d:\d\d [+-]\d{4}$")
        names = m.header_names()
        self.assertEqual(names.count("date"), 1)
        self.assertEqual(names.count("message-id"), 1)
        self.assertEqual(m.body, b"hi\n")


class Command(harness.IntegrationTest, WireChecks):

    def setUp(self):
        super().setUp()
        self.exim = self.start_exim()
        sh = self.smarthost_for(self.exim, tls="implicit")
        self.sq = self.new_sendq(sh, extra_sendq={
            "control_socket": os.path.join(self.dir, "control.sock")})
        # These cases check what sendq does with sendqd up (its spool's
        # tmp/ included): not the drop helper's path of a daemon that is
        # still starting.
        self.sq.start().wait_ready()

    def test_long_line_is_reencoded(self):
        body = long_body(eightbit=True)
        self.sq.submit(plain_message("cmd long", body), ["bob@example.net"])
        (m,) = self.exim.wait_messages(1)
        self.assertLegal(m)
        self.assertDecodesTo(m, body, "utf-8")

    def test_nul_byte_exits_65(self):
        p = self.sq.sendq(["bob@example.net"],
                          plain_message("nul", b"a\nb\0\n"))
        self.assertEqual(p.returncode, 65, p.stderr)
        self.assertIn(b"line 8 contains a NUL byte", p.stderr)
        self.assertNothingQueued(self.sq)
        self.assertEqual(os.listdir(os.path.join(self.sq.spool, "tmp")),
                         [])

    def bs(self, msg):
        dialogue = (b"EHLO client.test\r\nMAIL FROM:<cron@example.org>\r\n"
                    b"RCPT TO:<bob@example.net>\r\nDATA\r\n" +
                    msg.replace(b"\n", b"\r\n").replace(b"\r\n.",
                                                        b"\r\n..") +
                    b".\r\nQUIT\r\n")
        return self.sq.sendq(["-bs"], dialogue)

    def test_bs_long_line_is_reencoded(self):
        body = long_body()
        p = self.bs(plain_message("bs long", body))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rb"250 2\.0\.0 Ok: queued as")
        (m,) = self.exim.wait_messages(1)
        self.assertLegal(m)
        self.assertDecodesTo(m, body, "us-ascii")

    def test_bs_nul_byte_is_554_and_exit_65(self):
        p = self.bs(plain_message("bs nul", b"a\nb\0\n"))
        self.assertEqual(p.returncode, 65, p.stderr)
        self.assertRegex(p.stdout, rb"554 5\.6\.0 Message refused: line 8 "
                         rb"contains a NUL byte")
        self.assertNothingQueued(self.sq)


class Maildrop(harness.IntegrationTest, WireChecks):

    def setUp(self):
        super().setUp()
        self.exim = self.start_exim()
        sh = self.smarthost_for(self.exim, tls="implicit")
        self.sq = self.new_sendq(sh, log_level="info")
        self.sq.start()
        harness.wait_for(lambda: self.sq.wait_log(r"pickup: watching"),
                         what="sendqd to watch maildrop/")

    def drop(self, name, data):
        d = os.path.join(self.sq.spool, "maildrop")
        p = subprocess.run(
            ["sh", "-c", 'cat > "tmp/$1" && mv "tmp/$1" "$1"', "sh", name],
            input=b"X-Sendq-Sender: <cron@example.org>\n"
            b"X-Sendq-Recipient: bob@example.net\n" + data, cwd=d,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_long_line_is_reencoded(self):
        body = long_body()
        self.drop("long", plain_message("drop long", body))
        (m,) = self.exim.wait_messages(1)
        self.assertLegal(m)
        self.assertDecodesTo(m, body, "us-ascii")

    def test_nul_byte_goes_to_rejected_with_the_reason(self):
        self.drop("nul", plain_message("drop nul", b"a\nb\0\n"))
        rej = os.path.join(self.sq.spool, "maildrop", "rejected")
        harness.wait_for(lambda: os.path.exists(
            os.path.join(rej, "nul.reason")), what="nul.reason")
        with open(os.path.join(rej, "nul.reason")) as f:
            self.assertEqual(f.read().strip(),
                             "line 8 contains a NUL byte")
        self.assertNothingQueued(self.sq)
        self.assertEqual(self.exim.message_ids(), [])

    def test_missing_date_and_message_id_are_added(self):
        self.drop("bare", plain_message("drop bare", b"hi\n",
                                        headers=False))
        (m,) = self.exim.wait_messages(1)
        self.assertRegex(m.header("Message-ID"), r"^<\S+@localhost>$")
        self.assertIsNotNone(m.header("Date"))


class SafetyNet(harness.IntegrationTest):
    """A spool file that holds an over-long line (written before intake
    checked, or damaged) is never sent: the message fails with the
    reason and its sender gets a bounce; Exim never gets the message."""

    def test_old_spool_file_with_long_line_bounces_and_is_not_sent(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        # What an older sendqd left in queue/ (an id of the old form).
        qid = "0065A1B2C3000030000"
        os.makedirs(sq.queue_dir(), mode=0o700, exist_ok=True)
        with open(os.path.join(sq.queue_dir(), qid + ".msg"), "wb") as f:
            f.write(b"Subject: old spool\n\nshort\n" + b"x" * 1500 +
                    b"\nend\n")
        with open(os.path.join(sq.queue_dir(), qid + ".env"), "w") as f:
            f.write("sendq-envelope 1\nid %s\ncreated %d\nsender "
                    "alice@example.org\nrcpt bob@example.net\nend\n"
                    % (qid, int(time.time())))
        sq.start()
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertEqual(m.sender, "")      # the bounce, not the message
        self.assertEqual(m.recipients, ["alice@example.org"])
        self.assertIn(b"line 4 is longer than 998 octets", m.body)
        self.assertNotIn(b"x" * 999, m.as_received())
        sq.wait_log(r"relay=\S+ msgid=%s result=failed: message not "
                    r"sent: line 4 is longer than 998 octets" % qid)


if __name__ == "__main__":
    harness.main()
