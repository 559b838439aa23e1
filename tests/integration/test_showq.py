#!/usr/bin/env python3
"""The setgid queue lister sendq-showq (issue 10 item 1: "see their own
queue with mailq whether sendqd runs or not"), here the build tree's
sendq-showq-testing run as root: it lists only the messages whose
envelope uid is its caller's real uid, never a body, takes no option but
--help, --version and --json, and reads only queue/.  The installed,
setgid helper run by real users through mailq and sendqctl is tested in
test_local_users.py."""

import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MINE = "0065A1B2C30000100000000000000A1"     # uid 0 (the caller: root)
THEIRS = "0065A1B2C30000200000000000000B2"   # uid 4242
HELPER = "sendq-showq-testing"


def envelope(msgid, uid, sender):
    return ("sendq-envelope 1\nid %s\ncreated 1700000000\nuid %d\n"
            "sender %s\nrcpt bob@example.net\nend\n" % (msgid, uid, sender))


class Showq(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.sq = self.new_sendq({"host": "127.0.0.1", "port": 1,
                                  "tls": "implicit", "trust": "system"})
        self.sq.sendq_env()     # the spool, as installed
        q = self.sq.queue_dir()
        os.makedirs(q, exist_ok=True)
        for msgid, uid, sender, body in (
                (MINE, 0, "root@example.org", "Subject: mine\n\nsecret-a\n"),
                (THEIRS, 4242, "other@example.org",
                 "Subject: theirs\n\nsecret-b\n")):
            with open(os.path.join(q, msgid + ".env"), "w") as f:
                f.write(envelope(msgid, uid, sender))
            with open(os.path.join(q, msgid + ".msg"), "w") as f:
                f.write(body)

    def showq(self, args=(), config=None):
        return harness.run([harness.sendq_binary(HELPER)] + list(args),
                           env={"SENDQ_SHOWQ_TEST_CONFIG":
                                config or self.sq.config})

    def test_lists_only_the_callers_messages_never_a_body(self):
        p = self.showq()
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(MINE, out)
        self.assertIn("root@example.org", out)
        self.assertNotIn(THEIRS, out)
        self.assertNotIn("other@example.org", out)
        self.assertNotIn("secret", out)
        self.assertNotIn("mine", out)       # not even the header
        self.assertIn("in 1 message.", out)
        p = self.showq(["--json"])
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout.decode())
        self.assertEqual([m["id"] for m in got], [MINE])
        # The size comes from stat: the body's length.
        self.assertEqual(got[0]["size"], len("Subject: mine\n\nsecret-a\n"))

    def test_takes_no_options_but_help_version_json(self):
        for args in (["-C", self.sq.config], ["--config=/etc/passwd"],
                     ["-t"], [MINE], ["show", MINE], ["--json", "x"],
                     ["--help", "x"], ["-bp"]):
            with self.subTest(args=args):
                p = self.showq(args)
                self.assertEqual(p.returncode, 64, p.stderr)
                self.assertEqual(p.stdout, b"")
        p = self.showq(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"usage: sendq-showq", p.stdout)
        p = self.showq(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^sendq-showq \d+\.\d+")

    def test_installed_helper_reads_only_its_compiled_in_config(self):
        # The real helper has no test hook: the variable is ignored and it
        # reads CONFIG_DEFAULT_PATH (hidden from it when sendq is
        # installed on this machine, e.g. by test_deb.py alongside).
        help_text = harness.run([harness.sendq_binary("sendq-showq"),
                                 "--help"]).stdout.decode()
        compiled = help_text.split("queued in\n", 1)[1].split("'s")[0]
        p = harness.run(harness.hiding_path(compiled) +
                        [harness.sendq_binary("sendq-showq")],
                        env={"SENDQ_SHOWQ_TEST_CONFIG": self.sq.config})
        self.assertNotIn(MINE.encode(), p.stdout)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn(compiled.encode(), p.stderr)

    def test_missing_spool_is_an_empty_queue_unreadable_queue_is_75(self):
        empty = os.path.join(self.sq.dir, "empty.ini")
        with open(self.sq.config) as f:
            text = f.read().replace(
                "spool_dir = %s\n" % self.sq.spool, "spool_dir = %s\n" %
                os.path.join(self.sq.dir, "no-spool"))
        with open(empty, "w") as f:
            f.write(text)
        p = self.showq(config=empty)
        self.assertEqual((p.returncode, p.stdout),
                         (0, b"Mail queue is empty\n"), p.stderr)
        # queue/ a symlink: not followed.
        q = self.sq.queue_dir()
        os.rename(q, q + ".real")
        os.symlink(q + ".real", q)
        p = self.showq()
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"queue", p.stderr)

    def test_the_body_is_never_opened(self):
        # Even a body root could read is not opened: a FIFO in its place
        # would block an open() forever.
        q = self.sq.queue_dir()
        os.unlink(os.path.join(q, MINE + ".msg"))
        os.mkfifo(os.path.join(q, MINE + ".msg"))
        p = self.showq(["--json"])
        self.assertEqual(p.returncode, 0, p.stderr)
        (m,) = json.loads(p.stdout.decode())
        self.assertEqual(m["id"], MINE)
        self.assertTrue(stat.S_ISFIFO(os.stat(os.path.join(
            q, MINE + ".msg")).st_mode))


if __name__ == "__main__":
    harness.main()
