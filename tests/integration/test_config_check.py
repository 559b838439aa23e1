#!/usr/bin/env python3
"""Configuration checking and the exit codes of the command-line tools:
`sendqd --check-config` says 0 for a good file and 78 with FILE:LINE for a
bad one; `sendq` exits 64 on a usage error, 65 on a malformed address, 78
on a bad configuration and 75 when it cannot queue.  No server needed."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (EX_CONFIG, EX_DATAERR, EX_OK, EX_TEMPFAIL,  # noqa: E402
                     EX_USAGE, make_message, run, sendq_binary)

GOOD = """\
[sendq]
spool_dir = {spool}
hostname = localhost
log_level = info

[queue]
retry_min = 1s

[smarthost main]
host = 127.0.0.1
port = 465
tls = implicit
trust = system
"""


class ConfigCheck(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        # No certificates needed here.
        import tempfile
        cls.class_dir = tempfile.mkdtemp(prefix="sendq-it-")

    def write(self, text, name="sendq.ini"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text.format(spool=os.path.join(self.dir, "spool")))
        return path

    def check(self, path):
        return run([sendq_binary("sendqd"), "-C", path, "--check-config"],
                   timeout=30)

    def assertCheckFails(self, text, line=None):
        """--check-config exits 78 and names path:line (the given line, or
        any line when None) on stderr; returns stderr."""
        path = self.write(text)
        p = self.check(path)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, EX_CONFIG, err)
        if line is None:
            self.assertRegex(err, re.escape(path) + r":\d+")
        else:
            self.assertIn("%s:%d" % (path, line), err)
        return err

    # ---- sendqd --check-config

    def test_good_config_checks_ok(self):
        p = self.check(self.write(GOOD))
        self.assertEqual(p.returncode, EX_OK, p.stderr)

    def test_good_config_with_every_contract_key_checks_ok(self):
        ca = harness.CA(self.dir, "ca")
        p = self.check(self.write(GOOD + """
[smarthost second]
host = localhost
port = 587
tls = starttls
trust = ca_file
ca_file = %s

[smarthost lab]
host = 127.0.0.1
port = 465
tls = implicit
trust = insecure

[smarthost local]
host = 127.0.0.1
port = 25
tls = none
""" % ca.cert))
        self.assertEqual(p.returncode, EX_OK, p.stderr)

    def test_password_file_readable_by_others_fails_the_check(self):
        secret = os.path.join(self.dir, "relay.secret")
        with open(secret, "w") as f:
            f.write("hunter2\n")
        text = GOOD + "auth = plain\nuser = alice\npassword_file = %s\n" \
            % secret
        os.chmod(secret, 0o600)
        p = self.check(self.write(text))
        self.assertEqual(p.returncode, EX_OK, p.stderr)
        os.chmod(secret, 0o644)
        p = self.check(self.write(text))
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, EX_CONFIG, err)
        self.assertIn(secret, err)
        self.assertIn("readable by others", err)
        self.assertNotIn("hunter2", err)

    def test_unknown_key_is_error_with_file_and_line(self):
        text = GOOD.replace("hostname = localhost",
                            "hostname = localhost\nfrobnicate = yes")
        line = text.splitlines().index("frobnicate = yes") + 1
        err = self.assertCheckFails(text, line)
        self.assertIn("frobnicate", err)

    def test_bad_tls_value_is_error_with_file_and_line(self):
        text = GOOD.replace("tls = implicit", "tls = sometimes")
        line = text.splitlines().index("tls = sometimes") + 1
        err = self.assertCheckFails(text, line)
        self.assertIn("sometimes", err)

    def test_tls_none_to_a_remote_host_is_refused(self):
        text = GOOD.replace("host = 127.0.0.1", "host = smtp.example.com") \
            .replace("tls = implicit", "tls = none")
        err = self.assertCheckFails(text)
        self.assertRegex(err, r"(?i)loopback|cleartext|none")

    def test_bad_retry_min_is_error_with_file_and_line(self):
        text = GOOD.replace("retry_min = 1s", "retry_min = soon")
        line = text.splitlines().index("retry_min = soon") + 1
        self.assertCheckFails(text, line)

    def test_missing_config_file_is_config_error(self):
        path = os.path.join(self.dir, "does-not-exist.ini")
        p = self.check(path)
        self.assertEqual(p.returncode, EX_CONFIG)
        self.assertIn(path, p.stderr.decode(errors="replace"))

    # ---- sendq exit codes

    def sendq(self, args, message=b"", config=None):
        config = config or self.write(GOOD)
        return run([sendq_binary("sendq"), "-C", config] + list(args),
                   input=message, timeout=30)

    def queued(self):
        q = os.path.join(self.dir, "spool", "queue")
        return [n for n in os.listdir(q) if n.endswith(".env")] \
            if os.path.isdir(q) else []

    def test_sendq_queues_and_exits_0(self):
        # sendqd is not running: the message goes through the build
        # tree's drop helper into maildrop/ (made as tmpfiles would).
        config = self.write(GOOD)
        drop = os.path.join(self.dir, "spool", "maildrop")
        os.makedirs(os.path.join(drop, "tmp"))
        os.chmod(drop, 0o1730)
        helper = os.path.join(self.dir, "drop-helper")
        with open(helper, "w") as f:
            f.write("#!/bin/sh\nSENDQ_DROP_TEST_CONFIG='%s' exec '%s'\n"
                    % (config, sendq_binary("sendq-drop-testing")))
        os.chmod(helper, 0o755)
        p = run([sendq_binary("sendq"), "-C", config, "-f",
                 "alice@example.org", "bob@example.net"],
                input=make_message("ok", "fine\r\n"), timeout=30,
                env=dict(os.environ, SENDQ_DROP_HELPER=helper))
        self.assertEqual(p.returncode, EX_OK, p.stderr)
        dropped = [n for n in os.listdir(drop)
                   if os.path.isfile(os.path.join(drop, n))]
        self.assertEqual(len(dropped), 1, dropped)

    def test_sendq_unknown_option_is_usage_error(self):
        p = self.sendq(["--no-such-option", "bob@example.net"],
                       make_message("x", "x\r\n"))
        self.assertEqual(p.returncode, EX_USAGE, p.stderr)
        self.assertEqual(self.queued(), [])

    def test_sendq_malformed_recipient_is_data_error(self):
        for bad in ("bob@@example.net", "bob@exa mple.net", "<bob@x"):
            with self.subTest(address=bad):
                p = self.sendq(["-f", "alice@example.org", bad],
                               make_message("x", "x\r\n"))
                self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
                self.assertEqual(self.queued(), [])

    def test_sendq_malformed_sender_is_data_error(self):
        p = self.sendq(["-f", "alice@@example.org", "bob@example.net"],
                       make_message("x", "x\r\n"))
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertEqual(self.queued(), [])

    def test_sendq_bad_config_is_config_error(self):
        config = self.write(GOOD.replace("tls = implicit", "tls = maybe"))
        p = self.sendq(["bob@example.net"], make_message("x", "x\r\n"),
                       config=config)
        self.assertEqual(p.returncode, EX_CONFIG, p.stderr)
        self.assertIn(config, p.stderr.decode(errors="replace"))

    def test_sendq_missing_config_is_config_error(self):
        p = self.sendq(["bob@example.net"], make_message("x", "x\r\n"),
                       config=os.path.join(self.dir, "nope.ini"))
        self.assertEqual(p.returncode, EX_CONFIG, p.stderr)

    def test_sendq_unusable_spool_is_temporary_failure(self):
        # A path below a regular file: mkdir/open fail with ENOTDIR even
        # for root (who is not stopped by permissions).
        blocker = os.path.join(self.dir, "not-a-directory")
        with open(blocker, "w") as f:
            f.write("x")
        config = self.write(GOOD.replace(
            "spool_dir = {spool}", "spool_dir = %s/spool" % blocker))
        p = self.sendq(["-f", "alice@example.org", "bob@example.net"],
                       make_message("x", "x\r\n"), config=config)
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.stderr)
        self.assertTrue(p.stderr.strip(), "no error message")


if __name__ == "__main__":
    harness.main()
