#!/usr/bin/env python3
"""What `sendq` has queued: the message bytes as given (when Date,
Message-ID and From are present), those three headers added only when
missing, one queue entry (ID.msg + ID.env in queue/, nothing left in
tmp/) per accepted message, written by sendqd from sendq's stream; with
sendqd down, one drop file in maildrop/ holding the envelope lines and
the same bytes.  No server needed (the smarthost never answers)."""

import os
import pwd
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402


def header_names(msg):
    head = re.split(rb"\r?\n\r?\n", msg, maxsplit=1)[0]
    return [ln.split(b":", 1)[0].lower().decode()
            for ln in re.split(rb"\r?\n", head)
            if ln and ln[:1] not in (b" ", b"\t")]


class SendqCli(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.class_dir = tempfile.mkdtemp(prefix="sendq-it-")

    def setUp(self):
        super().setUp()
        self.sq = self.new_sendq({"host": "127.0.0.1", "port": 1,
                                  "tls": "implicit", "trust": "system"})
        if not self._testMethodName.startswith("test_without_sendqd"):
            self.sq.start()
            harness.wait_for(lambda: os.path.exists(self.sq.control_socket),
                             what="the control socket")

    def queue_one(self, message, rcpts=("bob@example.net",), args=()):
        before = set(self.sq.queued())
        p = self.sq.submit(message, list(rcpts), sender="alice@example.org",
                           args=list(args) + ["-v"])
        qid = re.search(rb"queued as (\w+), via sendqd", p.stderr)
        self.assertTrue(qid, p.stderr)
        qid = qid.group(1).decode()
        self.assertEqual(set(self.sq.queued()) - before, {qid})
        files = self.sq.spool_files()
        self.assertIn("queue/%s.msg" % qid, files)
        self.assertIn("queue/%s.env" % qid, files)
        self.assertEqual([f for f in files if f.startswith("tmp/")], [])
        return qid, self.sq.queued_message(qid)

    def test_complete_message_is_stored_byte_for_byte(self):
        for eol in (b"\r\n", b"\n"):
            with self.subTest(eol=eol):
                sent = make_message("stored", ".dot\r\nlast".replace(
                    "\r\n", eol.decode()), eol=eol)
                qid, stored = self.queue_one(sent)
                self.assertEqual(stored, sent)

    def test_missing_headers_are_added_once(self):
        sent = b"To: bob@example.net\nSubject: bare\n\nbody\n"
        _, stored = self.queue_one(sent)
        names = header_names(stored)
        for h in ("date", "message-id", "from"):
            self.assertEqual(names.count(h), 1, "%s in %s" % (h, names))
        self.assertTrue(stored.endswith(b"\nbody\n"))
        self.assertIn(b"Subject: bare", stored)

    def test_present_headers_are_not_added_again(self):
        sent = make_message("complete", "x\r\n")
        _, stored = self.queue_one(sent)
        names = header_names(stored)
        for h in ("date", "message-id", "from"):
            self.assertEqual(names.count(h), 1, "%s in %s" % (h, names))

    def test_envelope_records_sender_and_recipients(self):
        qid, _ = self.queue_one(make_message("env", "x\r\n"),
                                rcpts=("bob@example.net",
                                       "carol@example.com"))
        with open(os.path.join(self.sq.queue_dir(), qid + ".env"),
                  "rb") as f:
            env = f.read()
        for addr in (b"alice@example.org", b"bob@example.net",
                     b"carol@example.com"):
            self.assertIn(addr, env)

    def test_each_message_gets_its_own_queue_id(self):
        for i in range(3):
            self.sq.submit(make_message("n%d" % i, "x\r\n"),
                           ["bob@example.net"], sender="alice@example.org")
        self.assertEqual(len(set(self.sq.queued())), 3)

    def test_without_sendqd_a_drop_file(self):
        sent = make_message("dropped", "x\r\n")
        self.sq.submit(sent, ["bob@example.net"], sender="alice@example.org")
        harness.wait_for(lambda: self.sq.queued() == [],
                          what="the spool to empty")
        (name,) = self.sq.maildrop_files()
        with open(os.path.join(self.sq.spool, "maildrop", name), "rb") as f:
            dropped = f.read()
        self.assertEqual(dropped, b"X-Sendq-Sender: <alice@example.org>\r\n"
                         b"X-Sendq-Recipient: <bob@example.net>\r\n" + sent)

    def test_default_sender_is_the_login_name_sendqd_looks_up(self):
        # sendq does no user lookup itself: sendqd answers "whoami" for
        # the uid the kernel gives it.
        login = pwd.getpwuid(os.getuid()).pw_name
        p = self.sq.sendq(["-v", "bob@example.net"],
                          make_message("default", "x\r\n"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.sq.wait_log(r"control command=whoami msgid=- uid=%d .*"
                         r"result=ok" % os.getuid())
        qid = re.search(rb"queued as (\w+), via sendqd", p.stderr)
        self.assertTrue(qid, p.stderr)
        env = self.sq.queued_envelope(qid.group(1).decode())
        self.assertIn(login + "@", env)

    def test_without_sendqd_the_default_sender_comes_from_the_helper(self):
        # sendqd down: the drop helper (sendq-drop --login-name) names
        # the caller, and the drop file carries that sender.
        login = pwd.getpwuid(os.getuid()).pw_name
        p = self.sq.sendq(["bob@example.net"],
                          make_message("dropped", "x\r\n"))
        self.assertEqual(p.returncode, 0, p.stderr)
        (name,) = self.sq.maildrop_files()
        with open(os.path.join(self.sq.spool, "maildrop", name), "rb") as f:
            dropped = f.read()
        self.assertRegex(dropped, rb"^X-Sendq-Sender: <" + re.escape(
            login.encode()) + rb"@[^>]+>\r\n", dropped)

    def test_without_sendqd_helper_prints_the_login_name(self):
        helper = self.sq.write_drop_helper()
        p = subprocess.run([helper, "--login-name"], capture_output=True,
                           env={}, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(),
                         pwd.getpwuid(os.getuid()).pw_name + "\n")
        p = subprocess.run([helper, "--login-name", "x"],
                           capture_output=True, env={}, timeout=60)
        self.assertEqual(p.returncode, 64, p.stderr)


class SendqLinks(harness.IntegrationTest):
    """sendq starts once per message: it links no library of the
    daemon's (issue 14).  GnuTLS, libevent, libcurl, json-c, libsystemd:
    none is a NEEDED entry of the sendq binary."""

    DAEMON_ONLY = ("libgnutls", "libevent", "libcurl", "libjson-c",
                   "libsystemd")

    def test_sendq_needs_no_daemon_library(self):
        readelf = shutil.which("readelf")
        if readelf is None:
            self.skipTest("readelf not installed")
        out = subprocess.run([readelf, "-d", harness.sendq_binary("sendq")],
                             check=True, capture_output=True,
                             text=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]",
                            out)
        self.assertEqual([n for n in needed
                          if n.startswith(self.DAEMON_ONLY)], [], needed)

    def test_sendq_makes_no_user_lookup(self):
        # No NSS call and no dlopen of its own (the default sender's
        # login name comes from sendqd or the drop helper), so that a
        # static sendq (SENDQ_STATIC_INJECTOR) loads no NSS module.
        nm = shutil.which("nm")
        if nm is None:
            self.skipTest("nm not installed")
        path = harness.sendq_binary("sendq")
        out = subprocess.run([nm, "-D", path], capture_output=True,
                             text=True)
        pattern = r"(getpw|getgr|getlogin|getspnam|initgroups|dlopen$)"
        if out.returncode != 0 or not out.stdout.strip():
            # Static: glibc's own dlopen stays (gconv, unused here); the
            # link fails on a call of ours (-Wl,--fatal-warnings).
            out = subprocess.run([nm, path], capture_output=True,
                                 text=True, check=True)
            pattern = r"(getpw|getgr|getlogin|getspnam|initgroups)"
        names = {ln.split()[-1] for ln in out.stdout.splitlines()
                 if ln.strip()}
        looked_up = sorted(n for n in names
                           if re.match(pattern, n.split("@")[0]))
        self.assertEqual(looked_up, [], looked_up)


if __name__ == "__main__":
    harness.main()
