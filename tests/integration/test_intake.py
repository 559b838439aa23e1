#!/usr/bin/env python3
"""The SMTP listener ([intake]) with real clients: swaks (pipelined, over
TCP and over the unix socket) and Python's smtplib (PIPELINING, the SIZE
limit, an 8-bit body, a UTF-8 address with SMTPUTF8) talk to the real
sendqd, which relays to the harness's private Exim; each message must
arrive with the expected envelope and headers (sendq's Received: first,
then what the client sent).  Also: limits (recipients, clients, command
timeout), address errors, and the config rule against a listener others
can reach.
"""

import os
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class IntakeSendq(harness.Sendq):
    """A Sendq whose config has an [intake] section (dict of keys)."""

    def __init__(self, workdir, smarthost, intake, aliases=None, **kw):
        self.intake = dict(intake)
        self.aliases = dict(aliases or {})
        super().__init__(workdir, smarthost, **kw)

    def config_text(self):
        text = super().config_text()
        lines = ["", "[intake]"]
        lines += ["%s = %s" % kv for kv in self.intake.items()]
        if self.aliases:
            lines += ["", "[aliases]"]
            lines += ["%s = %s" % kv for kv in self.aliases.items()]
        return text + "\n".join(lines) + "\n"


def recv_reply(sock, timeout):
    """Read one complete SMTP reply (all lines) from sock; bytes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        for ln in lines[:-1]:
            if len(ln) >= 4 and ln[3:4] == b" ":
                return data


class IntakeBase(harness.IntegrationTest):
    INTAKE = {}
    ALIASES = {}
    EXTRA_SENDQ = {}

    def setUp(self):
        super().setUp()
        self.exim = self.start_exim()
        self.port = harness.free_port()
        self.sock_path = os.path.join(self.dir, "smtp.sock")
        intake = {"listen": "127.0.0.1:%d unix:%s" % (self.port,
                                                       self.sock_path)}
        intake.update(self.INTAKE)
        sh = self.smarthost_for(self.exim, tls="implicit")
        extra = {"control_socket": os.path.join(self.dir, "control.sock")}
        extra.update(self.EXTRA_SENDQ)
        self.sq = IntakeSendq(self.dir, sh, intake, aliases=self.ALIASES,
                              extra_sendq=extra)
        self._started.append(self.sq)
        self.sq.start()
        harness.wait_for(lambda: harness.port_accepts(self.port),
                         what="the intake listener on port %d (is it "
                         "wired into sendqd's main?)" % self.port)
        # That probe is a client too: wait until it is gone, so that it
        # does not count against max_clients.
        self.sq.wait_log(r"intake: closed client=")

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=harness.
                         DEFAULT_TIMEOUT)
        self.addCleanup(s.close)
        return s

    def only_message(self):
        (m,) = self.exim.wait_messages(1)
        return m

    def assertSendqReceived(self, received, sent, proto="ESMTP",
                            added=()):
        """received = sendq's Received: field + the bytes the client sent
        (LF line ends) + the fields named in added, which sendq adds at
        the end of the header when the client gave none (Date,
        Message-ID); the Received: names sendq and proto."""
        headers = received.original_headers()
        first = headers[0].decode(errors="replace")
        self.assertRegex(first, r"^Received: from \S+ \(")
        self.assertIn("by localhost (sendq) with %s id " % proto, first)
        for name in reversed(added):
            self.assertTrue(headers[-1].lower().startswith(
                name.lower().encode() + b":"), headers[-1])
            headers = headers[:-1]
        rest = b"".join(headers[1:]) + b"\n" + received.body
        self.assertEqual(rest, harness.crlf_to_lf(sent))


class Clients(IntakeBase):
    INTAKE = {"max_message_size": "64K", "max_recipients": "3"}

    def test_swaks_pipelined_over_tcp_arrives_with_headers(self):
        p = harness.run(["swaks", "--server", "127.0.0.1:%d" % self.port,
                         "--pipeline", "--from", "alice@example.org",
                         "--to", "bob@example.net,carol@example.net",
                         "--header", "Subject: swaks pipelined",
                         "--body", "hello from swaks"], timeout=60)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("250-PIPELINING", out)
        self.assertRegex(out, r"250 2\.0\.0 Ok: queued as [0-9A-F]+")
        m = self.only_message()
        self.assertEqual(m.sender, "alice@example.org")
        self.assertEqual(sorted(m.recipients),
                         ["bob@example.net", "carol@example.net"])
        self.assertEqual(m.header("Subject"), "swaks pipelined")
        self.assertIn(b"hello from swaks", m.body)
        rcvd = m.original_headers()[0].decode()
        self.assertIn("([127.0.0.1])", rcvd)
        self.assertIn("by localhost (sendq) with ESMTP id", rcvd)
        kv = harness.parse_kv(self.sq.wait_log(r"intake msgid=").string)
        self.assertEqual(kv["from"], "<alice@example.org>")
        self.assertEqual(kv["nrcpt"], "2")
        self.assertEqual(kv["uid"], "-1")
        self.assertRegex(kv["client"], r"^\[127\.0\.0\.1\]:\d+$")

    def test_swaks_over_the_unix_socket_records_the_uid(self):
        p = harness.run(["swaks", "--socket", self.sock_path,
                         "--from", "alice@example.org",
                         "--to", "bob@example.net",
                         "--header", "Subject: via socket"], timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace"))
        m = self.only_message()
        self.assertEqual(m.header("Subject"), "via socket")
        self.assertIn("(uid %d)" % os.getuid(),
                      m.original_headers()[0].decode())
        kv = harness.parse_kv(self.sq.wait_log(r"intake msgid=").string)
        self.assertEqual(kv["uid"], str(os.getuid()))
        queued_uid = None
        # The envelope kept the uid too (read from the daemon's log of
        # the queue is not enough: check the spool's record while it
        # may still be there, else trust the log line above).
        for name in os.listdir(os.path.join(self.sq.spool, "queue")):
            if name.endswith(".env"):
                with open(os.path.join(self.sq.spool, "queue", name)) as f:
                    for ln in f:
                        if ln.startswith("uid "):
                            queued_uid = ln.split()[1]
        if queued_uid is not None:
            self.assertEqual(queued_uid, str(os.getuid()))

    def test_smtplib_pipelining_size_and_byte_exact_arrival(self):
        s = self.smtp()
        code, _ = s.ehlo("client.test")
        self.assertEqual(code, 250)
        self.assertIn("pipelining", s.esmtp_features)
        self.assertEqual(s.esmtp_features["size"], str(64 * 1024))
        for ext in ("8bitmime", "smtputf8", "enhancedstatuscodes", "dsn"):
            self.assertIn(ext, s.esmtp_features)
        sent = harness.make_message(
            "smtplib", "line one\r\n.starts with a dot\r\n..two dots\r\n"
            "last line\r\n")
        refused = s.sendmail("alice@example.org", ["bob@example.net"], sent)
        self.assertEqual(refused, {})
        s.quit()
        m = self.only_message()
        self.assertSendqReceived(m, sent)

    def test_smtplib_size_over_the_limit_is_552(self):
        s = self.smtp()
        s.ehlo("client.test")
        big = harness.make_message("big", "x" * 100 + "\r\n" * 1) + \
            b"y" * (70 * 1024) + b"\r\n"
        # smtplib declares SIZE=, so MAIL itself is refused.
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            s.sendmail("alice@example.org", ["bob@example.net"], big)
        self.assertEqual(cm.exception.smtp_code, 552)
        self.assertIn(b"5.3.4", cm.exception.smtp_error)
        # Without SIZE= the message is read to its end, then refused.
        s.rset()
        self.assertEqual(s.mail("alice@example.org")[0], 250)
        self.assertEqual(s.rcpt("bob@example.net")[0], 250)
        code, msg = s.data(big)
        self.assertEqual(code, 552, msg)
        self.assertIn(b"5.3.4", msg)
        # The session goes on: a small message is accepted.
        small = harness.make_message("small", "fits\r\n")
        self.assertEqual(s.sendmail("alice@example.org",
                                    ["bob@example.net"], small), {})
        s.quit()
        m = self.only_message()
        self.assertEqual(m.header("Subject"), "small")
        self.assertEqual(len(self.exim.message_ids()), 1)

    def test_smtplib_8bitmime_body_arrives_unchanged(self):
        s = self.smtp()
        s.ehlo("client.test")
        sent = harness.make_message(
            "8bit", "Gr\u00fc\u00dfe aus K\u00f6ln, \u00e7a va?\r\n",
            extra_headers=("MIME-Version: 1.0",
                           "Content-Type: text/plain; charset=utf-8",
                           "Content-Transfer-Encoding: 8bit"))
        self.assertIn("\u00fc".encode("utf-8"), sent)
        s.sendmail("alice@example.org", ["bob@example.net"], sent,
                   mail_options=["BODY=8BITMIME"])
        s.quit()
        m = self.only_message()
        self.assertSendqReceived(m, sent)

    def test_smtplib_utf8_address_with_smtputf8(self):
        s = self.smtp()
        s.ehlo("client.test")
        rcpt = "j\u00f6rg@example.net"
        sent = ("From: alice@example.org\r\nTo: %s\r\n"
                "Subject: utf8\r\n\r\nhi\r\n" % rcpt).encode("utf-8")
        s.sendmail("alice@example.org", [rcpt], sent,
                   mail_options=["SMTPUTF8"])
        s.quit()
        m = self.only_message()
        self.assertEqual(m.recipients, [rcpt])
        self.assertSendqReceived(m, sent, proto="UTF8SMTP",
                                 added=("Date", "Message-ID"))

    def test_address_errors_and_limits_get_rfc_replies(self):
        s = self.smtp()
        s.ehlo("client.test")
        code, msg = s.mail("alice@@example.org")
        self.assertEqual(code, 553)
        self.assertIn(b"5.1.3", msg)
        self.assertIn(b"alice@@example.org", msg)
        code, msg = s.mail("alice@example.org")
        self.assertEqual(code, 250)
        code, msg = s.rcpt("no spaces@example.net")
        self.assertEqual(code, 553)
        self.assertIn(b"no spaces@example.net", msg)
        s.send("RCPT TO:<j\u00f6rg@example.net>\r\n".encode("utf-8"))
        code, msg = s.getreply()
        self.assertEqual(code, 553, msg)
        self.assertIn(b"5.6.7", msg)
        for r in ("a@example.net", "b@example.net", "c@example.net"):
            self.assertEqual(s.rcpt(r)[0], 250)
        code, msg = s.rcpt("d@example.net")
        self.assertEqual(code, 452)
        self.assertIn(b"4.5.3", msg)
        self.assertEqual(s.verify("root")[0], 252)
        self.assertEqual(s.noop()[0], 250)
        self.assertEqual(s.rset()[0], 250)
        self.assertEqual(s.docmd("HELP")[0], 214)
        code, msg = s.docmd("NOOP " + "x" * 1200)
        self.assertEqual(code, 500)
        self.assertIn(b"5.5.2", msg)
        self.assertEqual(s.quit()[0], 221)


class Rewriting(IntakeBase):
    """[aliases] and rewrite_sender apply to SMTP submissions too."""
    ALIASES = {"root": "ops@example.com"}
    EXTRA_SENDQ = {"rewrite_sender": "relay@example.com"}

    def test_alias_and_sender_rewriting_apply_to_the_listener(self):
        s = self.smtp()
        sent = harness.make_message("aliased", "to root\r\n")
        s.sendmail("www-data@localhost", ["root@localhost"], sent)
        s.quit()
        m = self.only_message()
        self.assertEqual(m.recipients, ["ops@example.com"])
        self.assertEqual(m.sender, "relay@example.com")


class Limits(IntakeBase):
    # The default command timeout (minutes): with a short one the first
    # two sessions could time out, freeing their slots, before a slow
    # (valgrind, loaded) sendqd has accepted the third.
    INTAKE = {"max_clients": "2"}

    def connect(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(c.close)
        return c

    def test_clients_beyond_max_clients_get_421_4_3_2(self):
        a, b = self.connect(), self.connect()
        self.assertTrue(recv_reply(a, 10).startswith(b"220 "))
        self.assertTrue(recv_reply(b, 10).startswith(b"220 "))
        c = self.connect()
        reply = recv_reply(c, 10)
        self.assertTrue(reply.startswith(b"421 4.3.2 "), reply)
        self.assertEqual(c.recv(100), b"")    # closed
        self.sq.wait_log(r"refused: max_clients \(2\)")

    def test_a_slot_is_free_again_after_quit(self):
        for _ in range(4):
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
            self.assertEqual(s.noop()[0], 250)
            s.quit()
        harness.wait_for(lambda: "closed client=" in self.sq.log_text())


class IdleTimeout(IntakeBase):
    INTAKE = {"timeout": "1s"}

    def connect(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(c.close)
        return c

    def test_idle_client_gets_421_4_4_2_and_is_closed(self):
        c = self.connect()
        self.assertTrue(recv_reply(c, 10).startswith(b"220 "))
        # Say nothing: the 1s command timeout ends the session.  (No EHLO
        # first: a slow sendqd may time the session out before it reads
        # one, and the client's late EHLO then meets a reset that can
        # discard the 421 unread.)
        reply = recv_reply(c, 30)
        self.assertTrue(reply.startswith(b"421 4.4.2 "), reply)
        self.assertEqual(c.recv(100), b"")


class Config(harness.IntegrationTest):
    def check(self, intake):
        sq = IntakeSendq(self.dir, {"host": "127.0.0.1", "tls": "none"},
                         intake)
        p = harness.run([harness.sendq_binary("sendqd"), "-C", sq.config,
                         "--check-config"])
        return p.returncode, p.stderr.decode(errors="replace")

    def test_listener_others_can_reach_needs_allow_networks(self):
        rc, err = self.check({"listen": "0.0.0.0:2525"})
        self.assertEqual(rc, harness.EX_CONFIG)
        self.assertRegex(err, r"sendq\.ini:\d+: \[intake\] listen: "
                         r"\"0\.0\.0\.0\" is not a loopback address")
        rc, err = self.check({"listen": "0.0.0.0:2525",
                              "allow_networks": "192.0.2.0/24"})
        self.assertEqual(rc, 0, err)

    def test_non_local_client_outside_allow_networks_gets_554(self):
        addr = None
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.connect(("192.0.2.1", 9))     # no packet is sent
                addr = u.getsockname()[0]
        except OSError:
            pass
        if not addr or addr.startswith("127."):
            self.skipTest("no non-loopback IPv4 address on this host")
        # A network this host's address is not in.
        other = "198.51.100.0/24" if not addr.startswith("198.51.100.") \
            else "203.0.113.0/24"
        port = harness.free_port()
        sq = IntakeSendq(self.dir, {"host": "127.0.0.1", "port": "1",
                                    "tls": "none"},
                         {"listen": "0.0.0.0:%d" % port,
                          "allow_networks": other},
                         extra_sendq={"control_socket": os.path.join(
                             self.dir, "control.sock")})
        self._started.append(sq)
        sq.start()
        harness.wait_for(lambda: harness.port_accepts(port))
        with socket.create_connection((addr, port), timeout=10) as c:
            reply = recv_reply(c, 10)
            self.assertTrue(reply.startswith(b"554 5.7.1 "), reply)
            c.sendall(b"MAIL FROM:<a@example.org>\r\n")
            self.assertTrue(recv_reply(c, 10).startswith(b"503 5.7.1"))
            c.sendall(b"QUIT\r\n")
            self.assertTrue(recv_reply(c, 10).startswith(b"221 "))
        # Loopback is always served.
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        self.assertEqual(s.ehlo()[0], 250)
        s.quit()


class ReadPath(IntakeBase):
    """The session reads for itself (one recv() per readable socket, no
    FIONREAD first): input held while the output is blocked stays bounded
    and reading resumes, and a client gone while its message commits
    still has it queued."""
    INTAKE = {"max_junk_commands": "0"}

    def test_ehlo_flood_unread_answered_in_full(self):
        # 1 MiB of EHLOs (a 7-line reply each, ~12 times the command)
        # from a client that reads slowly through a small receive buffer:
        # sendqd's output backs up, it stops taking commands, its input
        # fills to the bound and it stops reading, and it goes on as the
        # client reads: every EHLO is answered, in order, then the QUIT.
        n = 1024 * 1024 // 8
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(c.close)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(harness.DEFAULT_TIMEOUT)
        c.connect(("127.0.0.1", self.port))
        self.assertTrue(recv_reply(c, 10).startswith(b"220 "))
        errors = []

        def send():
            try:
                c.sendall(b"EHLO x\r\n" * n + b"QUIT\r\n")
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=send)
        t.start()
        data = bytearray()
        while not data.endswith(b"221 2.0.0 Bye\r\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        t.join(harness.DEFAULT_TIMEOUT)
        self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        self.assertTrue(data.endswith(b"\r\n221 2.0.0 Bye\r\n"),
                        bytes(data[-200:]))
        self.assertEqual(data.count(b"250-localhost\r\n"), n)
        self.assertEqual(data.count(b"250 SMTPUTF8\r\n"), n)
        self.assertEqual(data.count(b"\r\n"), 7 * n + 1)

    def test_gone_after_the_dot_still_queued(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(c.close)
        self.assertTrue(recv_reply(c, 10).startswith(b"220 "))
        c.sendall(b"EHLO client.test\r\n")
        self.assertTrue(recv_reply(c, 10).startswith(b"250"))
        c.sendall(b"MAIL FROM:<alice@example.org>\r\n"
                  b"RCPT TO:<bob@example.net>\r\nDATA\r\n")
        reply = b""
        while b"354 " not in reply:
            chunk = c.recv(4096)
            self.assertTrue(chunk, reply)
            reply += chunk
        sent = harness.make_message("gone", "body\r\n")
        # The dot and the end of the connection in one go: sendqd reads
        # the end of file while the message waits for its commit.
        c.sendall(sent + b".\r\n")
        c.shutdown(socket.SHUT_WR)
        c.close()
        m = self.only_message()
        self.assertSendqReceived(m, sent)


if __name__ == "__main__":
    harness.main()
