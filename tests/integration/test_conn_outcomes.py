#!/usr/bin/env python3
"""Outcomes of one outbound connection: the facts smtp_conn reports and
the policy's verdict on them (retry.c), seen through tests/tools/conn_probe
against tests/tools/fake_smtp_server.py: per recipient fates (2/4/5) and
the message outcome they lead to, 530 and the authentication codes handled
as a smarthost problem (deferred, the relay rests), 550 5.7.1 to MAIL
bounced, a 554 greeting deferred with the relay down, final-dot replies, a
secret that cannot be read (deferred, the relay rests, no connection
made, the secret never printed), AUTH wired from the secret module to the
server (PLAIN and LOGIN; a 535 is deferred and the relay rests; the
secret never appears, even in debug logs; sendqd reads the secret again
for every connection), and SIZE and SMTPUTF8 refusals made locally by
smtp_proto (failed, nothing sent).

conn_probe prints one line per result:
  message outcome=delivered code=250 phase=end event=reply relay=ok
      rule=delivered reply="..." ... rcpt=2,4,5
  closed outcome=deferred ... relay=rest rule=auth-refused ...
"""

import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, parse_kv  # noqa: E402
from test_faults import FakeServer  # noqa: E402

SENDER = "alice@example.org"



def secret_file(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


class ConnOutcomes(harness.IntegrationTest):

    def probe(self, fake_args=(), rcpts=("bob@example.net",), env=None,
              body="Hello.\r\n", port=None):
        """Run conn_probe once; returns (result dicts, fake server, exit
        code).  With port, talk to a server the caller runs there."""
        fake = None
        if port is None:
            fake = FakeServer(tempfile.mkdtemp(dir=self.dir),
                              list(fake_args), "none", None)
            port = fake.port
        msgfile = os.path.join(self.dir, "message.eml")
        with open(msgfile, "wb") as f:
            f.write(make_message("outcome", body) if isinstance(body, str)
                    else body)
        e = dict(os.environ, CONN_PROBE_QUIET="1", CONN_PROBE_TIMEOUT="10")
        e.update(env or {})
        if e.get("CONN_PROBE_QUIET") is None:
            del e["CONN_PROBE_QUIET"]
        try:
            p = harness.run([harness.sendq_binary("conn_probe"),
                             "127.0.0.1", str(port), "none", "system", "-",
                             SENDER, ",".join(rcpts), msgfile], env=e,
                            timeout=60)
        finally:
            if fake is not None:
                fake.stop()
        out = p.stdout.decode(errors="replace")
        self.last_output = out + p.stderr.decode(errors="replace")
        results = []
        for ln in out.splitlines():
            kv = parse_kv(ln)
            kv["what"] = ln.split(" ", 1)[0]
            kv["line"] = ln
            results.append(kv)
        return results, fake, p.returncode

    def message_result(self, results):
        msgs = [r for r in results if r["what"] == "message"]
        self.assertEqual(len(msgs), 1, self.last_output)
        return msgs[0]

    def test_mixed_recipients_deliver_to_the_accepted_one(self):
        results, fake, rc = self.probe(
            ["--rcpt-reply", "250 2.1.5 Ok,451 4.2.0 Later,550 5.1.1 No"],
            rcpts=("a@example.net", "b@example.net", "c@example.net"))
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "delivered", r["line"])
        self.assertEqual(r["rcpt"], "2,4,5", r["line"])
        self.assertEqual(len(fake.saved()), 1)
        self.assertEqual(rc, 0)

    def test_every_recipient_refused_permanently_fails(self):
        results, fake, _ = self.probe(
            ["--rcpt-reply", "550 5.1.1 No such user"],
            rcpts=("a@example.net", "b@example.net"))
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(r["rcpt"], "5,5", r["line"])
        self.assertEqual(fake.saved(), [])

    def test_a_temporary_recipient_keeps_the_message_deferred(self):
        results, fake, _ = self.probe(
            ["--rcpt-reply", "451 4.2.0 Later,550 5.1.1 No"],
            rcpts=("a@example.net", "b@example.net"))
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["rcpt"], "4,5", r["line"])
        self.assertEqual(fake.saved(), [])

    def test_530_to_rcpt_is_temporary_for_the_recipient(self):
        results, _, _ = self.probe(
            ["--rcpt-reply", "530 5.7.0 Authentication required"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["rcpt"], "4", r["line"])
        self.assertEqual(r["relay"], "rest", r["line"])
        self.assertEqual(r["phase"], "rcpt", r["line"])

    def test_5_7_1_to_mail_bounces(self):
        # A policy refusal of the sender: the message's fault, not the
        # relay's; bounced at once, never resent (it was deferred once).
        results, fake, _ = self.probe(
            ["--mail-reply", "550 5.7.1 Not allowed to send"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(r["code"], "550")
        self.assertEqual(r["phase"], "mail", r["line"])
        self.assertEqual(r["relay"], "ok", r["line"])
        self.assertEqual(r["rule"], "refused", r["line"])
        self.assertEqual(fake.mail_replies(), ["550"])

    def test_5_7_1_to_rcpt_bounces(self):
        results, _, _ = self.probe(
            ["--rcpt-reply", "554 5.7.1 Relay access denied"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(r["rcpt"], "5", r["line"])
        self.assertEqual(r["relay"], "ok", r["line"])

    def test_530_to_mail_defers_and_the_relay_rests(self):
        results, _, _ = self.probe(
            ["--mail-reply", "530 5.7.0 Authentication required"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["relay"], "rest", r["line"])
        self.assertEqual(r["rule"], "auth-required", r["line"])

    def test_554_greeting_defers_and_the_relay_is_down(self):
        results, fake, _ = self.probe(
            ["--greeting", "554 5.7.1 No SMTP service here"])
        (r,) = [x for x in results if x["what"] == "closed"]
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["phase"], "greeting", r["line"])
        self.assertEqual(r["relay"], "down", r["line"])
        self.assertEqual(r["rule"], "no-service", r["line"])
        self.assertEqual(fake.mail_replies(), [])

    def test_421_to_rcpt_defers_and_the_relay_is_down(self):
        results, _, _ = self.probe(
            ["--rcpt-reply", "421 4.3.2 Shutting down"])
        (r,) = [x for x in results if x["what"] == "closed"]
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["phase"], "rcpt", r["line"])
        self.assertEqual(r["relay"], "down", r["line"])

    def test_5xx_to_mail_without_5_7_fails(self):
        results, _, _ = self.probe(
            ["--mail-reply", "553 5.1.8 Bad sender domain"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])

    def test_5xx_to_the_final_dot_fails(self):
        results, _, _ = self.probe(
            ["--end-reply", "554 5.6.0 Message rejected"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(r["code"], "554")

    def test_4xx_to_the_final_dot_defers(self):
        results, _, _ = self.probe(
            ["--end-reply", "451 4.3.0 Try later"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "deferred", r["line"])

    def test_unreadable_secret_defers_without_connecting(self):
        secret = os.path.join(self.dir, "pw.secret")
        with open(secret, "w") as f:
            f.write("hunter2-must-not-show\n")
        os.chmod(secret, 0o644)         # readable by others: refused
        fake = FakeServer(tempfile.mkdtemp(dir=self.dir), [], "none", None)
        try:
            results, _, rc = self.probe(
                port=fake.port,
                env={"CONN_PROBE_AUTH": "plain", "CONN_PROBE_USER": "u",
                     "CONN_PROBE_PASSWORD_FILE": secret})
            self.assertEqual(fake.connections(), {})
        finally:
            fake.stop()
        (r,) = [x for x in results if x["what"] == "closed"]
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["relay"], "rest", r["line"])
        self.assertEqual(r["rule"], "auth-impossible", r["line"])
        self.assertRegex(r["reply"], r"(?i)(password_file|readable|"
                         r"permission|mode)")
        self.assertNotIn("hunter2", self.last_output)
        self.assertNotEqual(rc, 0)

    def test_larger_than_the_server_size_fails_without_sending(self):
        results, fake, _ = self.probe(["--size", "1000"],
                                      body="x" * 5000 + "\r\n")
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(fake.mail_replies(), [])
        self.assertEqual(fake.saved(), [])

    def test_smtputf8_needed_but_not_offered_fails_without_sending(self):
        results, fake, _ = self.probe(env={"CONN_PROBE_SMTPUTF8": "1"})
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertRegex(r["reply"], r"(?i)smtputf8")
        self.assertEqual(fake.mail_replies(), [])
        self.assertEqual(fake.saved(), [])

    def test_a_resolver_that_never_answers_times_out(self):
        # A private "name server" on loopback that reads and never
        # answers; nothing leaves the machine.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns:
            dns.bind(("127.0.0.1", 0))
            msgfile = os.path.join(self.dir, "m.eml")
            with open(msgfile, "wb") as f:
                f.write(make_message("dns", "Hello.\r\n"))
            env = dict(os.environ, CONN_PROBE_QUIET="1",
                       CONN_PROBE_TIMEOUT="2",
                       CONN_PROBE_NAMESERVER="127.0.0.1:%d" %
                       dns.getsockname()[1])
            p = harness.run([harness.sendq_binary("conn_probe"),
                             "smarthost.sendq-test.invalid", "25", "none",
                             "system", "-", SENDER, "bob@example.net",
                             msgfile], env=env, timeout=60)
            dns.settimeout(0)
            asked = dns.recv(4096)
        out = p.stdout.decode(errors="replace")
        self.assertRegex(out, r'closed outcome=deferred .*reply="timeout '
                         r'after 2s resolving smarthost\.sendq-test\.'
                         r'invalid"')
        self.assertIn(b"sendq-test", asked.lower())  # it asked ours

    def auth_probe(self, mech, server_password, secret):
        """conn_probe with AUTH mech (debug logs on) against a fake
        server accepting user "sendq" with server_password."""
        path = secret_file(self.dir, "pw-%s.secret" % mech, secret)
        return self.probe(["--auth", "sendq:" + server_password],
                          env={"CONN_PROBE_AUTH": mech,
                               "CONN_PROBE_USER": "sendq",
                               "CONN_PROBE_PASSWORD_FILE": path,
                               "CONN_PROBE_QUIET": None})

    def test_auth_plain_sends_the_secret_from_the_password_file(self):
        results, fake, rc = self.auth_probe("plain", "Pl41n-s3cret",
                                            "Pl41n-s3cret")
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "delivered", r["line"])
        self.assertEqual([e[1:] for e in fake.events() if e[1] == "auth"],
                         [["auth", "ok", "PLAIN"]])
        self.assertNotIn("Pl41n-s3cret", self.last_output)
        self.assertEqual(rc, 0)

    def test_auth_login_sends_the_secret_from_the_password_file(self):
        results, fake, rc = self.auth_probe("login", "L0gin-s3cret",
                                            "L0gin-s3cret")
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "delivered", r["line"])
        self.assertEqual([e[1:] for e in fake.events() if e[1] == "auth"],
                         [["auth", "ok", "LOGIN"]])
        self.assertNotIn("L0gin-s3cret", self.last_output)

    def test_wrong_password_is_deferred_as_auth_failed(self):
        results, fake, rc = self.auth_probe("plain", "right-one",
                                            "Wr0ng-s3cret")
        (r,) = [x for x in results if x["what"] == "closed"]
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["relay"], "rest", r["line"])
        self.assertEqual(r["phase"], "auth", r["line"])
        self.assertEqual(r["code"], "535", r["line"])
        self.assertEqual(fake.mail_replies(), [])
        self.assertNotIn("Wr0ng-s3cret", self.last_output)
        self.assertNotEqual(rc, 0)


class SecretPerConnection(harness.IntegrationTest):
    """sendqd reads the secret for every connection: a password changed
    while it runs (as a token refresher does) is used by the next
    connection, without a restart or reload."""

    def test_changed_password_file_is_used_by_the_next_connection(self):
        server_pw = secret_file(self.dir, "server.pw", "0ld-s3cret-7f3a")
        fake = FakeServer(tempfile.mkdtemp(dir=self.dir),
                          ["--auth", "sendq:unused", "--auth-file",
                           server_pw], "none", None)
        self.addCleanup(fake.stop)
        pwfile = secret_file(self.dir, "client.pw", "0ld-s3cret-7f3a")
        sq = self.new_sendq({"host": "127.0.0.1", "port": fake.port,
                             "tls": "none", "auth": "plain",
                             "user": "sendq", "password_file": pwfile},
                            name="fake")
        sq.start()
        first = make_message("first secret", "One.\r\n")
        sq.submit(first, ["bob@example.net"], sender=SENDER)
        harness.wait_for(lambda: first in fake.saved(),
                         what="the first message at the server")
        # sendqd closes the idle connection (after a few seconds).
        harness.wait_for(lambda: ["1", "end"] in fake.events(),
                         what="the first connection to end")
        # The refresher rotates the secret on both sides (by rename).
        for path, name in ((server_pw, "server.tmp"), (pwfile,
                                                       "client.tmp")):
            os.rename(secret_file(self.dir, name, "N3w-s3cret-9c1e"), path)
        second = make_message("second secret", "Two.\r\n")
        sq.submit(second, ["bob@example.net"], sender=SENDER)
        harness.wait_for(lambda: second in fake.saved(),
                         what="the second message at the server")
        sq.wait_queue_empty()
        auths = [e for e in fake.events() if e[1] == "auth"]
        self.assertEqual([(e[0], e[2]) for e in auths],
                         [("1", "ok"), ("2", "ok")])
        self.assertEqual(sq.delivery_lines("deferred"), [])
        self.assertEqual(len(sq.delivery_lines("sent")), 2)
        self.assertStoppedCleanly(sq)
        log = sq.log_text()
        self.assertNotIn("0ld-s3cret", log)
        self.assertNotIn("N3w-s3cret", log)


if __name__ == "__main__":
    harness.main()
