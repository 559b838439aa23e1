#!/usr/bin/env python3
"""SMTP AUTH against a real Exim, over implicit TLS and over STARTTLS.

The private Exim (harness.EXIM_CONFIG) offers PLAIN and LOGIN, only once
TLS is up, and accepts one user/password pair.  Checked here:
  - auth = plain and auth = login log in and the message arrives intact;
    Exim's arrival line names the authenticator (A=plain:USER ...);
  - auth = auto picks PLAIN, the strongest mechanism this Exim offers;
  - a wrong password delivers nothing: the message stays queued and
    sendqd logs AUTHENTICATION FAILED with Exim's 535 reply;
  - a password file readable by others is refused (the message stays
    queued, the log names the file and says "readable by others");
  - in every case the password (also base64-encoded, as it travels in
    AUTH PLAIN / AUTH LOGIN) appears nowhere in sendqd's debug log.

AuthCases is shared by the two classes at the end, which set TLS_MODE."""

import base64
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

SENDER = "alice@example.org"
RCPT = "bob@example.net"
USER = "sendq-user"
# Distinctive, so a leak cannot hide behind a common word; no characters
# Exim's string expansion would interpret.
PASSWORD = "Pw-correct-9f3Kq7Zt"
WRONG_PASSWORD = "Pw-wrong-Xb81Lm2Qs"


def leak_forms(user, password):
    """The password as it could appear in a log: plain, and base64 as
    sent in AUTH LOGIN and AUTH PLAIN."""
    b64 = base64.b64encode
    return [password,
            b64(password.encode()).decode(),
            b64(("\0%s\0%s" % (user, password)).encode()).decode()]


class AuthCases:
    """Test cases; a subclass also derives from harness.IntegrationTest and
    sets TLS_MODE ("implicit" or "starttls") and HOST."""

    TLS_MODE = None
    HOST = "127.0.0.1"

    def setUp(self):
        super().setUp()
        self.exim = self.start_exim(user=USER, password=PASSWORD)

    def password_file(self, password, mode=0o600, name="password"):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        os.chmod(path, mode)
        return path

    def sendq_with_auth(self, auth, password=PASSWORD, mode=0o600):
        sh = self.smarthost_for(self.exim, tls=self.TLS_MODE,
                                host=self.HOST)
        self.pwfile = self.password_file(password, mode)
        sh.update(auth=auth, user=USER, password_file=self.pwfile)
        return self.new_sendq(sh)

    def assertNoSecretLogged(self, sq, password):
        log = sq.log_text()
        # The check means something only with the debug transcript on.
        self.assertIn("debug: ", log, "sendqd did not log at debug")
        for form in leak_forms(USER, password):
            self.assertNotIn(form, log, "secret %r in sendqd log" % form)

    def deliver_with(self, auth, expect_authenticator):
        sq = self.sendq_with_auth(auth)
        sq.start()
        sent = make_message("auth %s %s" % (auth, self.TLS_MODE),
                            "Logged in with %s.\r\n" % auth)
        sq.submit(sent, [RCPT], sender=SENDER)
        (m,) = self.exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(m.recipients, [RCPT])
        self.assertArrivedIntact(m, sent)
        (ln,) = self.exim.arrival_lines()
        self.assertRegex(ln, r" A=%s:%s " % (expect_authenticator,
                                             re.escape(USER)), ln)
        self.assertRegex(ln, r" X=TLS1\.[23]:\S+", ln)
        harness.wait_for(lambda: sq.delivery_lines("sent"),
                         what="a result=sent log line")
        # The AUTH exchange went through the debug transcript (so the
        # secret check below covers it).
        self.assertRegex(sq.log_text(), r"debug: .*>>> AUTH\b")
        self.assertStoppedCleanly(sq)
        self.assertNoSecretLogged(sq, PASSWORD)

    def assertStaysQueued(self, sq):
        self.assertEqual(len(sq.queued()), 1, sq.spool_files())
        self.assertEqual(self.exim.message_ids(), [])
        self.assertEqual(self.exim.arrival_lines(), [])

    # ---- the cases

    def test_auth_plain_logs_in_and_message_arrives(self):
        self.deliver_with("plain", "plain")

    def test_auth_login_logs_in_and_message_arrives(self):
        self.deliver_with("login", "login")

    def test_auth_auto_picks_plain(self):
        self.deliver_with("auto", "plain")

    def test_wrong_password_keeps_message_queued_and_is_not_logged(self):
        sq = self.sendq_with_auth("plain", password=WRONG_PASSWORD)
        sq.start()
        sq.submit(make_message("wrong password", "Never arrives.\r\n"),
                  [RCPT], sender=SENDER)
        m = sq.wait_log(r"AUTHENTICATION FAILED.*")
        # Exim's reply to the refused credentials, as the server sent it.
        self.assertIn("535 Incorrect authentication data", m.group(0))
        # Exim logs the refusal too: the attempt did reach it.
        harness.wait_for(lambda: "authenticator failed" in
                         self.exim.log_text(),
                         what="exim to log the failed AUTH")
        self.assertStaysQueued(sq)
        self.assertStoppedCleanly(sq)
        self.assertStaysQueued(sq)
        self.assertNoSecretLogged(sq, WRONG_PASSWORD)

    def test_password_file_readable_by_others_is_refused(self):
        sq = self.sendq_with_auth("plain", mode=0o644)
        sq.start()
        sq.submit(make_message("world-readable", "Never arrives.\r\n"),
                  [RCPT], sender=SENDER)
        m = sq.wait_log(r".*readable by others.*")
        self.assertIn(self.pwfile, m.group(0))
        self.assertStaysQueued(sq)
        self.assertStoppedCleanly(sq)
        self.assertStaysQueued(sq)
        self.assertNoSecretLogged(sq, PASSWORD)


class ImplicitTLSAuth(AuthCases, harness.IntegrationTest):
    TLS_MODE = "implicit"
    HOST = "127.0.0.1"


class StartTLSAuth(AuthCases, harness.IntegrationTest):
    TLS_MODE = "starttls"
    HOST = "localhost"


if __name__ == "__main__":
    harness.main()
