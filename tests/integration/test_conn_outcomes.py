#!/usr/bin/env python3
"""Outcomes of one outbound connection (smtp_conn), seen through
tests/tools/conn_probe against tests/tools/fake_smtp_server.py: per
recipient classes (2/4/5) and the message outcome they lead to, 530 and
5.7.x handled as a smarthost problem (deferred, never failed), final-dot
replies, a secret that cannot be read (deferred, auth_failed, no
connection made, the secret never printed), and once smtp_proto has them,
SIZE and SMTPUTF8 refusals made locally (failed, nothing sent).

conn_probe prints one line per result:
  message outcome=delivered code=250 reply="..." ... rcpt=2,4,5
  closed outcome=deferred ... auth_failed=1
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, parse_kv  # noqa: E402
from test_faults import FakeServer  # noqa: E402

SENDER = "alice@example.org"
HAVE_SECRET = os.path.exists(os.path.join(harness.SOURCE_DIR, "daemon",
                                          "secret.c"))


def proto_header():
    with open(os.path.join(harness.SOURCE_DIR, "daemon",
                           "smtp_proto.h")) as f:
        return f.read()


# smtp_proto makes SIZE / SMTPUTF8 verdicts itself once its TXN_DONE
# event has the `local` flag (issue 3); before that these cannot pass.
PROTO_LOCAL_VERDICTS = "local;" in proto_header().replace("\t", "") \
    .replace(" ", "")


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

    def test_5_7_x_to_mail_defers(self):
        results, _, _ = self.probe(
            ["--mail-reply", "550 5.7.1 Not allowed to send"])
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "deferred", r["line"])
        self.assertEqual(r["code"], "550")

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
        self.assertEqual(r.get("auth_failed"), "1", r["line"])
        if HAVE_SECRET:
            self.assertRegex(r["reply"], r"(?i)(password_file|readable|"
                             r"permission|mode)")
        else:
            self.assertNotEqual(r["reply"], "")
        self.assertNotIn("hunter2", self.last_output)
        self.assertNotEqual(rc, 0)

    @unittest.skipUnless(PROTO_LOCAL_VERDICTS, "smtp_proto has no local "
                         "SIZE/SMTPUTF8 verdicts yet (TXN_DONE local flag)")
    def test_larger_than_the_server_size_fails_without_sending(self):
        results, fake, _ = self.probe(["--size", "1000"],
                                      body="x" * 5000 + "\r\n")
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertEqual(fake.mail_replies(), [])
        self.assertEqual(fake.saved(), [])

    @unittest.skipUnless(PROTO_LOCAL_VERDICTS, "smtp_proto has no local "
                         "SIZE/SMTPUTF8 verdicts yet (TXN_DONE local flag)")
    def test_smtputf8_needed_but_not_offered_fails_without_sending(self):
        results, fake, _ = self.probe(env={"CONN_PROBE_SMTPUTF8": "1"})
        r = self.message_result(results)
        self.assertEqual(r["outcome"], "failed", r["line"])
        self.assertRegex(r["reply"], r"(?i)smtputf8")
        self.assertEqual(fake.mail_replies(), [])
        self.assertEqual(fake.saved(), [])


if __name__ == "__main__":
    harness.main()
