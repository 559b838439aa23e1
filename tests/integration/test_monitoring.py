#!/usr/bin/env python3
"""Monitoring and bulk queue operations (issue 12 item 4-5):

- `sendqctl status` is a monitoring check: first line "OK|WARNING|
  CRITICAL: ...", exit 0/1/2 (monitoring-plugins), with a relay up and
  then down, --warn-age/--max-age on the oldest message, and sendqd
  stopped (CRITICAL);
- bulk `sendqctl delete|hold|release|bounce` over ALL, --from, --to,
  --relay, --older-than, with --dry-run changing nothing, refused to an
  unprivileged user, logged with the acting uid;
- `mailq` prints Postfix's format, which monitoring-plugins' check_mailq
  -M postfix parses (run against the build's mailq with -w/-c).

Smarthosts: tests/tools/fake_smtp_server.py answering every RCPT 450
(the relay stays up, the message stays queued, deferred) and a closed
port (the relay goes DOWN).  Every wait polls a condition."""

import json
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

CHECK_MAILQ = "/usr/lib/nagios/plugins/check_mailq"
UTILS_PM = "/usr/lib/nagios/plugins/utils.pm"
ALICE = "alice@example.org"
CAROL = "carol@example.com"
EX_USAGE = 64
EX_NOPERM = 77




class MonitoringTest(harness.IntegrationTest):

    def setup_sendq(self):
        """Smarthost "slow" (RCPT 450: up, mail stays) takes everything
        but mail from CAROL, which goes to "gone" (a closed port)."""
        fake = harness.FakeSmtp(["--rcpt-reply", "450 4.2.0 try again later"])
        self.addCleanup(fake.stop)
        d = tempfile.mkdtemp(prefix="sq-mon-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        os.chmod(d, 0o755)
        closed = harness.closed_port()
        sq = self.new_sendq(
            {"host": "127.0.0.1", "port": fake.port, "tls": "none"},
            name="slow",
            extra_sendq={"control_socket": os.path.join(d, "c.sock")},
            extra_queue={"retry_max": "1h"},
            more_smarthosts=[("gone", {
                "host": "127.0.0.1", "port": closed, "tls": "none",
                "match_sender": CAROL})])
        sq.start()
        wait_for(lambda: os.path.exists(sq.control_socket),
                 what="the control socket")
        return sq

    def ctl(self, sq, *args, user=None):
        argv = [harness.sendq_binary("sendqctl"), "-C", sq.config]
        kw = {}
        if user is not None:
            pw = pwd.getpwnam(user)

            def drop():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            kw["preexec_fn"] = drop
        p = subprocess.run(argv + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, **kw)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        sq.transcript.append("$ sendqctl %s -> exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.out, p.err))
        return p

    def queue(self, sq, sender, rcpt, subject):
        before = set(sq.queued())
        sq.submit(make_message(subject, "body\r\n",
                               sender=sender if sender != "<>" else ALICE),
                  [rcpt], sender=sender)
        new = wait_for(lambda: set(sq.queued()) - before,
                       what="the message queued")
        return new.pop()

    def attempted(self, sq, qid):
        """The message was tried once and is waiting (deferred)."""
        def tried():
            p = self.ctl(sq, "--json", "show", qid)
            return p.returncode == 0 and \
                json.loads(p.out)["attempts"] >= 1 and \
                json.loads(p.out)["state"] == "deferred"
        wait_for(tried, what="message %s deferred" % qid)

    def states(self, sq):
        p = self.ctl(sq, "--json", "list")
        self.assertEqual(p.returncode, 0, p.err)
        return {e["id"]: e["state"] for e in json.loads(p.out)}

    # ------------------------------------------------------------ status

    def test_status_exit_codes_with_a_relay_up_then_down(self):
        sq = self.setup_sendq()
        p = self.ctl(sq, "status")
        self.assertEqual(p.returncode, 0, p.out + p.err)
        first = p.out.splitlines()[0]
        self.assertRegex(first, r"^OK: 0 queued, relays 2/2 up \| "
                         r"queued=0 oldest=0s relays_up=2 relays=2$")
        self.assertIn("smarthost slow", p.out)   # the status follows

        qid = self.queue(sq, ALICE, "bob@example.net", "deferred")
        self.attempted(sq, qid)
        p = self.ctl(sq, "status", "--max-age", "1h", "--warn-age", "30m")
        self.assertEqual(p.returncode, 0, p.out)
        self.assertRegex(p.out.splitlines()[0],
                         r"^OK: 1 queued, oldest \d+[smhd], relays 2/2 up \|")
        # The oldest message ages past the thresholds.
        p = wait_for(lambda: (lambda p: p.returncode == 1 and p)(
            self.ctl(sq, "status", "--warn-age", "1s")),
            what="status WARNING")
        self.assertRegex(p.out.splitlines()[0], r"^WARNING: oldest message "
                         r"\d+[smhd] old \(--warn-age 1s\); 1 queued")
        p = self.ctl(sq, "status", "--warn-age", "1s", "--max-age=1s")
        self.assertEqual(p.returncode, 2, p.out)
        self.assertRegex(p.out, r"^CRITICAL: oldest message \d+[smhd] old "
                         r"\(--max-age 1s\)")
        # A held message is the administrator's: not counted.
        wait_for(lambda: self.ctl(sq, "hold", qid).returncode == 0,
                 what="hold (not while it is being delivered)")
        p = self.ctl(sq, "status", "--max-age=1s")
        self.assertEqual(p.returncode, 0, p.out)
        self.assertEqual(self.ctl(sq, "release", qid).returncode, 0)

        # Mail for the closed port: relay gone goes DOWN -> CRITICAL.
        self.queue(sq, CAROL, "dave@example.net", "down")

        def critical():
            p = self.ctl(sq, "status")
            return p.returncode == 2 and p
        p = wait_for(critical, what="status CRITICAL")
        self.assertRegex(p.out.splitlines()[0],
                         r"^CRITICAL: relay gone DOWN \([^)]+\); 2 queued, "
                         r"oldest \d+[smhd], relays 1/2 up \| queued=2 ")
        p = self.ctl(sq, "--json", "status")
        self.assertEqual(p.returncode, 2, p.out)
        st = json.loads(p.out)
        self.assertEqual(st["check"]["state"], "CRITICAL")
        self.assertEqual(st["check"]["exit"], 2)
        self.assertGreater(st["oldest"], 0)
        self.assertEqual({h["name"]: h["state"] for h in st["smarthosts"]},
                         {"slow": "up", "gone": "down"})
        # Usage: the age options are for status only.
        self.assertEqual(self.ctl(sq, "list", "--max-age", "1h").returncode,
                         EX_USAGE)
        self.assertEqual(self.ctl(sq, "status", "--max-age",
                                  "soon").returncode, EX_USAGE)
        self.assertStoppedCleanly(sq)
        p = self.ctl(sq, "status")
        self.assertEqual(p.returncode, 2, p.out)
        self.assertTrue(p.out.startswith("CRITICAL: sendqd is not "
                                         "running"), p.out)

    # ------------------------------------------------------------ bulk

    def test_bulk_operations_over_a_selection(self):
        sq = self.setup_sendq()
        a1 = self.queue(sq, ALICE, "bob@example.net", "a1")
        a2 = self.queue(sq, ALICE, "eve@example.com", "a2")
        c1 = self.queue(sq, CAROL, "bob@example.net", "c1")
        for q in (a1, a2):
            self.attempted(sq, q)
        ids = {a1, a2, c1}

        p = self.ctl(sq, "delete")
        self.assertEqual(p.returncode, EX_USAGE, p.err)
        p = self.ctl(sq, "delete", a1, "--from", ALICE)
        self.assertEqual(p.returncode, EX_USAGE, p.err)
        p = self.ctl(sq, "flush", "--from", ALICE)
        self.assertEqual(p.returncode, EX_USAGE, p.err)

        # Dry run: listed, nothing changed.
        p = self.ctl(sq, "delete", "--from", ALICE, "--dry-run")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(set(re.findall(r"^([0-9A-F]{31}): selected$",
                                        p.out, re.M)), {a1, a2})
        self.assertIn("2 messages would be deleted (dry run", p.out)
        self.assertEqual(set(sq.queued()), ids)
        p = self.ctl(sq, "--json", "bounce", "ALL", "-n")
        self.assertEqual(p.returncode, 0, p.err)
        out = json.loads(p.out)
        self.assertEqual((out["dry_run"], out["selected"], out["done"]),
                         (True, 3, 0))
        self.assertEqual(set(sq.queued()), ids)

        # By recipient domain, by relay, by age.
        p = self.ctl(sq, "delete", "--to", "@EXAMPLE.com", "--dry-run")
        self.assertEqual(re.findall(r"^(\S+): selected$", p.out, re.M),
                         [a2])
        p = self.ctl(sq, "hold", "--relay", "gone", "--dry-run")
        self.assertEqual(re.findall(r"^(\S+): selected$", p.out, re.M),
                         [c1])
        p = self.ctl(sq, "delete", "--older-than", "1h", "--dry-run")
        self.assertIn("0 messages would be deleted", p.out)

        # An unprivileged user may do none of it.
        if os.geteuid() == 0:
            # nobody must be able to read the configuration itself.
            for d in (self.class_dir, self.dir):
                os.chmod(d, 0o755)
            os.chmod(sq.config, 0o644)
            p = self.ctl(sq, "delete", "ALL", "--dry-run", user="nobody")
            self.assertEqual(p.returncode, EX_NOPERM, p.err)
            self.assertEqual(set(sq.queued()), ids)

        # hold ALL, then release by sender.
        def all_held():
            self.ctl(sq, "hold", "ALL")
            return set(self.states(sq).values()) == {"held"}
        wait_for(all_held, what="every message held")
        p = self.ctl(sq, "release", "--from", ALICE)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("2 of 2 selected messages released", p.out)
        st = self.states(sq)
        self.assertEqual(st[c1], "held")
        self.assertNotEqual(st[a1], "held")
        self.assertRegex(sq.log_text(), r"control command=hold msgid=%s "
                         r"uid=%d pid=\d+ result=ok" % (c1, os.geteuid()))

        # delete by recipient: only that one goes (retried while it is
        # being delivered: busy).
        p = wait_for(lambda: (lambda p: "%s: deleted" % a2 in p.out and p)(
            self.ctl(sq, "delete", "--to", "eve@example.com")),
            what="a2 deleted")
        self.assertEqual(p.returncode, 0, p.err)
        wait_for(lambda: set(sq.queued()) == {a1, c1},
                 what="a2 deleted, the others kept")
        self.assertRegex(sq.log_text(), r"control command=delete msgid=%s "
                         r"uid=%d" % (a2, os.geteuid()))
        # delete ALL empties the queue (a message being delivered at that
        # moment is skipped as busy: try again).

        def empty():
            self.ctl(sq, "delete", "ALL")
            return sq.queued() == []
        wait_for(empty, what="the queue empty")
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ mailq

    def mailq(self, sq):
        """The build's sendq run as mailq, with sq's config."""
        d = tempfile.mkdtemp(prefix="mailq-", dir=self.dir)
        link = os.path.join(d, "mailq")
        os.symlink(harness.sendq_binary("sendq"), link)
        return link

    def test_mailq_is_postfix_format_and_check_mailq_reads_it(self):
        sq = self.setup_sendq()
        link = self.mailq(sq)

        def mailq():
            p = harness.run([link, "-C", sq.config])
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.decode()
        self.assertEqual(mailq(), "Mail queue is empty\n")
        a1 = self.queue(sq, ALICE, "bob@example.net", "a1")
        self.attempted(sq, a1)
        bounce = self.queue(sq, "<>", "bob@example.net", "null sender")
        self.attempted(sq, bounce)
        wait_for(lambda: self.ctl(sq, "hold", bounce).returncode == 0,
                 what="the bounce held")
        out = mailq()
        lines = out.splitlines()
        self.assertEqual(lines[0], "-Queue ID-  --Size-- ----Arrival "
                         "Time---- -Sender/Recipient-------")
        entry = r"^%s%s +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  %s\n" \
            r" {41}\(.*450 4\.2\.0 try again later.*\)\n" \
            r" {41}bob@example\.net\n\n"
        self.assertRegex(out, re.compile(entry % (a1, " ", re.escape(ALICE)),
                                         re.M))
        self.assertRegex(out, re.compile(entry % (bounce, "!",
                                                  "MAILER-DAEMON"), re.M))
        self.assertRegex(lines[-1], r"^-- \d+ Kbytes in 2 Requests\.$")

        if not os.path.exists(CHECK_MAILQ):
            self.fail("%s missing: apt install monitoring-plugins-standard "
                      "(scripts/setup)" % CHECK_MAILQ)
        # check_mailq runs utils.pm's PATH_TO_MAILQ (+ " -C DIR" for -d):
        # a copy next to a utils.pm that names the build's mailq.
        d = tempfile.mkdtemp(prefix="check-mailq-", dir=self.dir)
        shutil.copy(CHECK_MAILQ, d)
        with open(UTILS_PM) as f:
            utils = f.read()
        utils, n = re.subn(r'\$PATH_TO_MAILQ\s*=\s*"[^"]*"',
                           '$PATH_TO_MAILQ = "%s"' % link, utils)
        self.assertEqual(n, 1, "PATH_TO_MAILQ in utils.pm")
        with open(os.path.join(d, "utils.pm"), "w") as f:
            f.write(utils)

        def check(w, c):
            p = harness.run(["perl", os.path.join(d, "check_mailq"), "-M",
                             "postfix", "-d", sq.config, "-w", str(w),
                             "-c", str(c)])
            return p.returncode, p.stdout.decode()
        rc, text = check(5, 10)
        self.assertEqual(rc, 0, text)
        self.assertIn("OK: postfix mailq (2) is below threshold (5/10)",
                      text)
        rc, text = check(2, 10)
        self.assertEqual(rc, 1, text)
        self.assertIn("WARNING: postfix mailq is 2", text)
        rc, text = check(1, 2)
        self.assertEqual(rc, 2, text)
        self.assertIn("CRITICAL: postfix mailq is 2", text)
        self.ctl(sq, "delete", "ALL")
        wait_for(lambda: sq.queued() == [], what="the queue empty")
        rc, text = check(1, 2)
        self.assertEqual(rc, 0, text)
        self.assertIn("queue is empty", text)
        # --json stays for new tools.
        p = self.ctl(sq, "--json", "list")
        self.assertEqual(json.loads(p.out), [])
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
