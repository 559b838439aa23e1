#!/usr/bin/env python3
"""sendq as /usr/sbin/sendmail (issue 5 items 2-4, issue 7 item 4): every
option of `sendq --help` has a case (the accepted-and-ignored ones
deliver too), unknown and unsupported options exit 64 with one line,
malformed addresses exit 65 naming the address, [aliases],
default_domain and rewrite_sender reach a real Exim, the input forms
(LF, CRLF, no final newline, empty, no header, UTF-8 header) arrive,
-bs speaks SMTP, a stopped sendqd means a silent drop into maildrop/
that sendqd delivers when it starts, and real clients (bsd-mailx, git
send-email) work through a `sendmail` link."""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

ALIASES = "\n[aliases]\nroot = ops@example.com\n" \
    "team = a@example.org, b@example.org\n"

# (args, needs To: header) -- every option accepted in --help that
# queues a message.
ACCEPTED = [
    ["-t"], ["-i"], ["-oi"], ["-oem"], ["-oee"], ["-oep"], ["-oeq"],
    ["-oew"], ["-odi"], ["-odb"], ["-odq"], ["-om"], ["-m"], ["-n"],
    ["-G"], ["-U"], ["-bm"], ["-v"], ["-B", "8BITMIME"], ["-B7BIT"],
    ["-N", "success,failure,delay"], ["-N", "never"], ["-R", "hdrs"],
    ["-R", "full"], ["-V", "envid-42"], ["-L", "cron"],
    ["-X", "/dev/null"], ["-O", "DeliveryMode=b"], ["-F", "Cron Daemon"],
    ["-f", "alice@example.org"], ["-falice@example.org"],
    ["-r", "alice@example.org"], ["-ti"], ["-oi", "-t"],
]

REFUSED = [
    (["-Z"], "unknown option -Z"),
    (["--frobnicate"], "unknown option --frobnicate"),
    (["-oQ/tmp"], "unknown option -oQ/tmp"),
    (["-o"], "unknown option -o"),
    (["-bd"], "option -bd is not supported"),
    (["-bt"], "option -bt is not supported"),
    (["-bh"], "option -bh is not supported"),
    (["-I"], "option -I is not supported"),
    (["-q15m"], "option -q15m is not supported"),
    (["-qRexample.com"], "option -qRexample.com is not supported"),
    (["-V"], "option -V needs an argument ENVID"),
    (["-f"], "option -f needs an argument ADDR"),
    (["-B", "9BIT"], "-B: unknown body type"),
    (["-N", "sometimes"], "-N: bad DSN notification"),
    (["-R", "most"], "-R: bad DSN return type"),
    (["-V", "has space"], "-V: bad envelope id"),
]


def login_name():
    return pwd.getpwuid(os.getuid()).pw_name


class SendmailCompat(harness.IntegrationTest):

    # -- helpers
    def setup_sendq(self, extra_sendq=None, aliases=ALIASES, start=True):
        self.exim = self.start_exim()
        sendq = {"default_domain": "example.com",
                 "control_socket": os.path.join(self.dir, "control.sock")}
        sendq.update(extra_sendq or {})
        self.sq = self.new_sendq(self.smarthost_for(self.exim),
                                 extra_sendq=sendq)
        with open(self.sq.config, "a") as f:
            f.write(aliases)
        if start:
            self.sq.start()
            self.sq.wait_log(r"pickup: watching")
        return self.sq

    def run_sendq(self, args, message=b""):
        return self.sq.sendq(args, message)

    def by_subject(self, msgs):
        return {m.header("Subject"): m for m in msgs}

    def sendmail_dir(self):
        """A directory with `sendmail`, a link to the built sendq, and
        `sendmail-c`, a script that runs it with -C CONFIG."""
        d = tempfile.mkdtemp(prefix="sendmail-link-", dir=self.dir)
        os.symlink(harness.sendq_binary("sendq"), os.path.join(d, "sendmail"))
        script = os.path.join(d, "sendmail-c")
        with open(script, "w") as f:
            f.write('#!/bin/sh\nexec "%s" -C "%s" "$@"\n' % (
                os.path.join(d, "sendmail"), self.sq.config))
        os.chmod(script, 0o755)
        return d

    # -- the option table
    def test_help_lists_every_option_and_version_is_long_only(self):
        self.setup_sendq(start=False)
        p = self.run_sendq(["--help"])
        self.assertEqual(p.returncode, 0)
        out = p.stdout.decode()
        for args in ACCEPTED + [a for a, _ in REFUSED]:
            opt = args[0]
            if opt in ("-ti", "-falice@example.org", "-B7BIT",
                       "-q15m", "-qRexample.com", "-o", "-oQ/tmp",
                       "-Z", "--frobnicate"):
                continue
            self.assertRegex(out, r"(?m)^  .*%s\b" % re.escape(opt), opt)
        for opt in ("-bp", "-bs", "-bv", "-bi", "-q", "-C", "-h",
                    "--help", "--version"):
            self.assertIn(opt, out)
        self.assertEqual(self.run_sendq(["-h"]).stdout, p.stdout)
        v = self.run_sendq(["--version"])
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout.decode(), r"^sendq \d+\.\d+")

    def test_accepted_options_deliver(self):
        self.setup_sendq()
        want = set()
        for i, args in enumerate(ACCEPTED):
            subject = "opt %d %s" % (i, " ".join(args))
            msg = make_message(subject, "line\r\n.\r\nafter\r\n",
                               to=("bob@example.net",))
            rcpts = [] if any(a.startswith("-t") or a == "-t"
                              for a in args) else ["bob@example.net"]
            p = self.run_sendq(args + rcpts, msg)
            self.assertEqual(p.returncode, 0, "%s: %s" % (args, p.stderr))
            if "-v" in args:
                self.assertRegex(p.stderr.decode(),
                                 r"queued as \S+, via sendqd")
            else:
                self.assertEqual(p.stderr, b"", args)
            want.add(subject)
        msgs = self.exim.wait_messages(len(ACCEPTED))
        got = self.by_subject(msgs)
        self.assertEqual(set(got), want)
        for subject, m in got.items():
            self.assertEqual(m.recipients, ["bob@example.net"], subject)
            if "-i" in subject or "-oi" in subject or "-ti" in subject:
                self.assertIn(b"\n.\nafter\n", m.body, subject)

    def test_refused_options_exit_64_with_one_line(self):
        self.setup_sendq(start=False)
        for args, text in REFUSED:
            with self.subTest(args=args):
                rcpt = [] if args in (["-V"], ["-f"]) else \
                    ["bob@example.net"]
                p = self.run_sendq(args + rcpt, b"x\n")
                self.assertEqual(p.returncode, 64, p.stderr)
                err = p.stderr.decode()
                self.assertIn(text, err)
                self.assertEqual(err.count("\n"), 1, err)
        wait_for(lambda: self.sq.queued() == [],
                 what="the spool to empty")

    def test_malformed_addresses_exit_65_naming_them(self):
        self.setup_sendq(start=False)
        cases = [
            (["bob@@example.net"], b"x\n", "bob@@example.net"),
            (["bob smith@example.net"], b"x\n", "bob smith@example.net"),
            (["-f", "al ice@example.org", "bob@example.net"], b"x\n",
             "al ice@example.org"),
            (["-t"], b"To: good@example.net, <bad@-x-.>\n\nx\n",
             "bad@-x-."),
        ]
        for args, msg, name in cases:
            with self.subTest(args=args):
                p = self.run_sendq(args, msg)
                self.assertEqual(p.returncode, 65, p.stderr)
                self.assertIn(name, p.stderr.decode())
        wait_for(lambda: self.sq.queued() == [],
                 what="the spool to empty")

    # -- modes
    def test_bp_q_bv_bi(self):
        self.setup_sendq()
        p = self.run_sendq(["-bp"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.run_sendq(["-q", "-v"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.run_sendq(["-bv", "root", "team", "carol"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().splitlines(), [
            "root... deliverable: relayed as <ops@example.com>",
            "team... deliverable: relayed as <a@example.org>",
            "team... deliverable: relayed as <b@example.org>",
            "carol... deliverable: relayed as <carol@example.com>"])
        p = self.run_sendq(["-bv", "x@@y"])
        self.assertEqual(p.returncode, 65)
        p = self.run_sendq(["-bi"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("nothing to do", p.stderr.decode())
        self.assertEqual(self.exim.message_ids(), [])

    def test_bs_speaks_smtp_on_stdin_and_stdout(self):
        self.setup_sendq()
        dialogue = (b"EHLO client.example\r\n"
                    b"MAIL FROM:<alice@example.org>\r\n"
                    b"RCPT TO:<root@example.com>\r\n"
                    b"DATA\r\n"
                    b"Subject: via -bs\r\n\r\n..dotted\r\nbody\r\n.\r\n"
                    b"QUIT\r\n")
        p = self.run_sendq(["-bs"], dialogue)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertRegex(out, r"^220 ")
        self.assertRegex(out, r"\r\n250 2\.0\.0 Ok: queued as \S+\r\n")
        self.assertTrue(out.endswith("221 2.0.0 Bye\r\n") or
                        re.search(r"\r\n221 [^\r\n]*\r\n$", out), out)
        m, = self.exim.wait_messages(1)
        self.assertEqual(m.sender, "alice@example.org")
        self.assertEqual(m.recipients, ["ops@example.com"])
        self.assertTrue(m.body.startswith(b".dotted\nbody\n"), m.body)

    # -- addresses
    def test_aliases_and_default_domain(self):
        self.setup_sendq()
        msg = b"Subject: aliases\n\nhello\n"
        p = self.run_sendq(["root", "www-data", "team@example.com",
                            "root@elsewhere.example"], msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        m, = self.exim.wait_messages(1)
        self.assertEqual(sorted(m.recipients), sorted([
            "ops@example.com", "www-data@example.com", "a@example.org",
            "b@example.org", "root@elsewhere.example"]))
        # default sender: login @ default_domain, also in the added From
        self.assertEqual(m.sender, "%s@example.com" % login_name())
        self.assertEqual(m.header("From"), "%s@example.com" % login_name())

    def test_unqualified_from_header_is_qualified(self):
        self.setup_sendq()
        msg = b"From: root (Cron Daemon)\nTo: root\nSubject: cron\n\nx\n"
        p = self.run_sendq(["-t", "-f", "root"], msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        m, = self.exim.wait_messages(1)
        self.assertEqual(m.recipients, ["ops@example.com"])
        self.assertEqual(m.sender, "root@example.com")
        self.assertEqual(m.header("From"), "root@example.com (Cron Daemon)")
        self.assertEqual(m.header("To"), "root")   # other fields untouched

    def test_rewrite_sender_address(self):
        self.setup_sendq({"rewrite_sender": "alerts@example.com"})
        own = make_message("own from", "x\r\n", sender="alice@example.org")
        other = make_message("other from", "x\r\n", sender="bob@example.org")
        for msg in (own, other):
            p = self.run_sendq(["-f", "alice@example.org",
                                "carol@example.net"], msg)
            self.assertEqual(p.returncode, 0, p.stderr)
        p = self.run_sendq(["-f", "<>", "carol@example.net"],
                           make_message("bounce", "x\r\n"))
        self.assertEqual(p.returncode, 0, p.stderr)
        got = self.by_subject(self.exim.wait_messages(3))
        self.assertEqual(got["own from"].sender, "alerts@example.com")
        self.assertEqual(got["own from"].header("From"),
                         "Alice <alerts@example.com>")
        self.assertEqual(got["other from"].sender, "alerts@example.com")
        self.assertEqual(got["other from"].header("From"),
                         "Alice <bob@example.org>")
        self.assertEqual(got["bounce"].sender, "")

    def test_rewrite_sender_domain(self):
        self.setup_sendq({"rewrite_sender": "example.net"})
        p = self.run_sendq(["-f", "www-data", "carol@example.net"],
                           b"Subject: masq\n\nx\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        m, = self.exim.wait_messages(1)
        self.assertEqual(m.sender, "www-data@example.net")
        self.assertEqual(m.header("From"), "www-data@example.net")

    # -- input forms
    def test_input_forms_arrive(self):
        self.setup_sendq()
        forms = {
            "lf": b"Subject: lf\n\nline one\nline two\n",
            "crlf": b"Subject: crlf\r\n\r\nline one\r\nline two\r\n",
            "nofinal": b"Subject: nofinal\n\nno final newline",
            "utf8": "Subject: caf\u00e9 \u2603\nX-Note: \u00fcml\n\n"
                    "b\u00f6dy\n".encode(),
        }
        for name, msg in forms.items():
            p = self.run_sendq(["bob@example.net"], msg)
            self.assertEqual(p.returncode, 0, "%s: %s" % (name, p.stderr))
        p = self.run_sendq(["bob@example.net"], b"")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.run_sendq(["bob@example.net"], b"just a body line\nmore\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        msgs = self.exim.wait_messages(len(forms) + 2)
        got = self.by_subject(msgs)
        self.assertIn(b"line one\nline two\n", got["lf"].body)
        self.assertIn(b"line one\nline two\n", got["crlf"].body)
        self.assertIn(b"no final newline", got["nofinal"].body)
        self.assertIn(b"b\xc3\xb6dy", got["caf\u00e9 \u2603"].body)
        rest = [m for m in msgs if m.header("Subject") is None]
        self.assertEqual(len(rest), 2)
        for m in rest:
            for h in ("date", "from", "message-id"):
                self.assertIn(h, m.header_names())
        self.assertTrue(any(b"just a body line\nmore\n" in m.body
                            for m in rest))

    # -- without the daemon
    def test_stopped_daemon_means_a_silent_maildrop_file(self):
        sq = self.setup_sendq()
        sq.stop()
        p = self.run_sendq(["root"], make_message("dropped", "x\r\n"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((p.stdout, p.stderr), (b"", b""))
        p = self.run_sendq(["-v", "bob@example.net"],
                           make_message("dropped v", "y\r\n"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("into the maildrop", p.stderr.decode())
        drop = os.path.join(sq.spool, "maildrop")
        files = sorted(n for n in os.listdir(drop)
                       if os.path.isfile(os.path.join(drop, n)))
        self.assertEqual(len(files), 2)
        self.assertEqual(os.listdir(os.path.join(drop, "tmp")), [])
        wait_for(lambda: sq.queued() == [],
                 what="the spool to empty")
        with open(os.path.join(drop, files[0]), "rb") as f:
            head = f.read(200)
        self.assertRegex(head, rb"^X-Sendq-Sender: <[^>]+>\r?\n"
                         rb"X-Sendq-Recipient: <")
        sq.start()
        got = self.by_subject(self.exim.wait_messages(2))
        self.assertEqual(got["dropped"].recipients, ["ops@example.com"])
        self.assertEqual(got["dropped v"].recipients, ["bob@example.net"])
        self.assertNotIn("x-sendq-sender", got["dropped"].header_names())
        sq.wait_queue_empty()

    def test_without_sendqd_or_maildrop_nothing_is_written(self):
        # sendq never writes the spool itself: with neither sendqd nor a
        # maildrop (a spool no sendqd or tmpfiles has made), exit 75.
        sq = self.setup_sendq(start=False)
        sq.sendq_env()
        shutil.rmtree(os.path.join(sq.spool, "maildrop"))
        p = self.run_sendq(["-v", "bob@example.net"],
                           make_message("nowhere", "x\r\n"))
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("maildrop", p.stderr.decode())
        self.assertEqual(sq.spool_files(), [])
        self.assertEqual(os.listdir(sq.spool), [])

    def test_dsn_options_need_sendqd(self):
        # A drop file cannot carry DSN requests: refused, not degraded.
        sq = self.setup_sendq(start=False)
        p = self.run_sendq(["-N", "never", "bob@example.net"],
                           make_message("dsn", "x\r\n"))
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("DSN options", p.stderr.decode())
        self.assertEqual(sq.maildrop_files(), [])

    # -- real clients
    def test_bsd_mailx_through_the_sendmail_link(self):
        mailx = shutil.which("bsd-mailx") or os.path.join(
            harness.SERVERS_DIR, "mailx", "usr", "bin", "bsd-mailx")
        if not os.access(mailx, os.X_OK):
            raise harness.HarnessError("bsd-mailx not available at %s "
                                       "(tests/tools/get-servers fetches "
                                       "it)" % mailx)
        self.setup_sendq()
        d = self.sendmail_dir()
        rc = os.path.join(d, "mailrc")
        with open(rc, "w") as f:
            f.write("set sendmail=%s\n" % os.path.join(d, "sendmail-c"))
        env = dict(os.environ, MAILRC=rc, HOME=d)
        p = subprocess.run([mailx, "-s", "from mailx", "root"],
                           input=b"Hello from bsd-mailx.\n", env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        m, = self.exim.wait_messages(1)
        self.assertEqual(m.recipients, ["ops@example.com"])
        self.assertEqual(m.header("Subject"), "from mailx")
        self.assertEqual(m.header("To"), "root")
        self.assertIn(b"Hello from bsd-mailx.", m.body)

    def test_git_send_email_through_the_sendmail_link(self):
        probe = subprocess.run(["git", "send-email", "-h"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        if b"send-email" not in probe.stdout + probe.stderr:
            raise harness.HarnessError("git send-email not found: "
                                       "scripts/setup installs git-email")
        self.setup_sendq()
        d = self.sendmail_dir()
        repo = os.path.join(self.dir, "repo")
        env = dict(os.environ, HOME=d, GIT_AUTHOR_NAME="Alice",
                   GIT_AUTHOR_EMAIL="alice@example.org",
                   GIT_COMMITTER_NAME="Alice",
                   GIT_COMMITTER_EMAIL="alice@example.org")

        def git(*args):
            p = subprocess.run(["git"] + list(args), cwd=repo, env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.decode()
        os.makedirs(repo)
        git("init", "-q")
        with open(os.path.join(repo, "file.txt"), "w") as f:
            f.write("hello\n")
        git("add", "file.txt")
        git("commit", "-q", "-m", "Add file.txt")
        patch = git("format-patch", "-1", "-o", d).strip()
        git("send-email", "--confirm=never", "--quiet", "--suppress-cc=all",
            "--to=root", "--from=Alice <alice@example.org>",
            "--envelope-sender=auto",
            "--sendmail-cmd=%s -C %s -i" % (
                os.path.join(d, "sendmail"), self.sq.config), patch)
        m, = self.exim.wait_messages(1)
        self.assertEqual(m.recipients, ["ops@example.com"])
        self.assertEqual(m.sender, "alice@example.org")
        self.assertEqual(m.header("Subject"), "[PATCH] Add file.txt")
        self.assertIn("alice@example.org", m.header("From"))
        self.assertIn(b"file.txt", m.body)


if __name__ == "__main__":
    harness.main()
