#!/usr/bin/env python3
"""sendqctl: every command over the control socket of a running sendqd,
list/show straight from the spool while sendqd is down (the others exit
69), `sendq -q` and `sendq -bp`, the socket's mode 0666 and a refusal for
an unprivileged user (test_rights.py tests the rights in depth).

The smarthost is a closed port on 127.0.0.1 (tls = none), so queued
messages stay queued (deferred) while the test looks at them."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

SENDER = "alice@example.org"
EX_FAILED = 1
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class SendqctlCase(harness.IntegrationTest):
    """The helpers of both classes below (no test of its own)."""

    def new_sendq_ctl(self):
        """A sendq whose smarthost is a closed port and whose control
        socket lives in a directory everybody may traverse (so the
        socket's own mode is what refuses an unprivileged user)."""
        # Not under self.dir: that path is too long for a unix socket.
        sockdir = tempfile.mkdtemp(prefix="sq-ctl-")
        self.addCleanup(shutil.rmtree, sockdir, ignore_errors=True)
        os.chmod(sockdir, 0o755)
        self.sock = os.path.join(sockdir, "control.sock")
        port = harness.closed_port()    # nothing listens there
        sq = self.new_sendq({"host": "127.0.0.1", "port": port,
                             "tls": "none"},
                            extra_sendq={"control_socket": self.sock})
        return sq

    def ctl(self, sq, *args, user=None):
        """Run `sendqctl -C CONFIG ARGS`; CompletedProcess (text)."""
        argv = [harness.sendq_binary("sendqctl"), "-C", sq.config]
        argv += list(args)
        kw = {}
        if user is not None:
            pw = pwd.getpwnam(user)

            def drop():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            kw["preexec_fn"] = drop
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, **kw)
        sq.transcript.append("$ sendqctl %s -> exit %d\n  %s" % (
            " ".join(args), p.returncode,
            p.stderr.decode(errors="replace").strip()))
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        return p

    def queue_one(self, sq, subject="ctl"):
        """One message in queue/ (the smarthost is a closed port, so it
        stays).  With sendqd down, sendq only reaches the maildrop: run
        sendqd for the hand-over and stop it again."""
        down = sq.proc is None
        if down:
            self.start_daemon(sq)
        before = set(sq.queued())
        sq.submit(make_message(subject, "Body line.\r\n"),
                  ["bob@example.net"], sender=SENDER)
        harness.wait_for(lambda: set(sq.queued()) - before,
                         what="the message in queue/")
        qid = (set(sq.queued()) - before).pop()
        if down:
            sq.stop()
        return qid

    def start_daemon(self, sq):
        sq.start()
        # Listening, not only bound (under valgrind the file is there
        # well before listen()).
        harness.wait_for(
            lambda: os.path.exists(self.sock) and
            stat.S_ISSOCK(os.lstat(self.sock).st_mode) and
            harness.unix_socket_accepts(self.sock),
            what="sendqd listening on the control socket %s" % self.sock)
        # Every control command is implemented: a "not supported"
        # answer is a regression, not a reason to skip.
        p = self.ctl(sq, "status")
        self.assertEqual(p.returncode, 0, p.err)
        return sq

    def show_json(self, sq, qid):
        p = self.ctl(sq, "--json", "show", qid)
        self.assertEqual(p.returncode, 0, p.err)
        return json.loads(p.out)

class SendqctlDownTest(SendqctlCase):
    """sendqctl and sendq with sendqd down.  A case here that starts
    sendqd (queue_one) only has it queue one message, which every case
    of SendqctlUpTest does too, and does not check how it exited:
    scripts/test's valgrind stage (which runs sendqd, not the commands,
    under valgrind) runs SendqctlUpTest alone."""

    def test_list_and_show_read_the_spool_while_sendqd_is_down(self):
        sq = self.new_sendq_ctl()
        qid = self.queue_one(sq, "offline")
        p = self.ctl(sq, "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(qid, p.out)
        self.assertIn(SENDER, p.out)
        self.assertIn("bob@example.net", p.out)
        # sendqd made one attempt before it was stopped (queue_one).
        self.assertRegex(p.out, r"\b(queued|deferred)\b")
        self.assertIn("in 1 message.", p.out)
        self.assertIn("reading the spool directly", p.err)

        p = self.ctl(sq, "--json", "list")
        self.assertEqual(p.returncode, 0, p.err)
        (entry,) = json.loads(p.out)
        self.assertEqual(entry["id"], qid)
        self.assertEqual(entry["sender"], SENDER)
        self.assertEqual(entry["recipients"], ["bob@example.net"])
        self.assertIn(entry["state"], ("queued", "deferred"))
        # As many attempts as sendqd logged before it was stopped (one,
        # or more where a slow sendqd, e.g. under valgrind, outlived
        # retry_min).
        self.assertEqual(entry["attempts"],
                         len(sq.delivery_lines(result="deferred")))
        if entry["attempts"] == 0:
            self.assertIsNone(entry["last_error"])
        else:
            self.assertIn("Connection refused", entry["last_error"])
        self.assertEqual(entry["size"], len(sq.queued_message(qid)))

        p = self.ctl(sq, "show", qid)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("Subject: offline", p.out)
        self.assertNotIn("Body line.", p.out)
        info = self.show_json(sq, qid)
        self.assertEqual(info["id"], qid)
        self.assertIn("Subject: offline", info["headers"])
        self.assertFalse(info["held"])

    def test_show_of_an_unknown_message_fails_with_1(self):
        sq = self.new_sendq_ctl()
        self.queue_one(sq)
        p = self.ctl(sq, "show", "0123456789ABCDEF012")
        self.assertEqual(p.returncode, EX_FAILED)
        self.assertIn("no message 0123456789ABCDEF012", p.err)
        p = self.ctl(sq, "--json", "show", "0123456789ABCDEF012")
        self.assertEqual(p.returncode, EX_FAILED)
        self.assertIn("error", json.loads(p.out))

    def test_empty_queue_while_sendqd_is_down(self):
        sq = self.new_sendq_ctl()
        p = self.ctl(sq, "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.out, "Mail queue is empty\n")
        p = self.ctl(sq, "--json", "list")
        self.assertEqual(json.loads(p.out), [])

    def test_commands_that_need_sendqd_exit_69_while_it_is_down(self):
        sq = self.new_sendq_ctl()
        qid = self.queue_one(sq)
        for args in (["flush"], ["retry", qid], ["hold", qid],
                     ["release", qid], ["delete", qid], ["bounce", qid],
                     ["delete", "ALL"]):
            p = self.ctl(sq, *args)
            self.assertEqual(p.returncode, EX_UNAVAILABLE, args)
            self.assertIn("sendqd is not running", p.err)
            self.assertIn("systemctl start sendq", p.err)
        # status is a monitoring check: sendqd down is CRITICAL (2).
        p = self.ctl(sq, "status")
        self.assertEqual(p.returncode, 2, p.out)
        self.assertTrue(p.out.startswith("CRITICAL: sendqd is not "
                                         "running"), p.out)
        self.assertIn("systemctl start sendq", p.err)
        self.assertEqual(sq.queued(), [qid])

    def test_sendq_q_exits_75_while_sendqd_is_down(self):
        sq = self.new_sendq_ctl()
        p = sq.sendq(["-q"])
        self.assertEqual(p.returncode, EX_TEMPFAIL)
        self.assertIn(b"sendqd is not running", p.stderr)

    def test_mailq_lists_the_queue(self):
        sq = self.new_sendq_ctl()
        qid = self.queue_one(sq, "mailq")
        p = sq.sendq(["-bp"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid.encode(), p.stdout)
        self.assertIn(b"bob@example.net", p.stdout)

    def test_usage_errors_exit_64(self):
        sq = self.new_sendq_ctl()
        for args in ([], ["frobnicate"], ["show"], ["hold"],
                     ["show", "../../etc/passwd"], ["list", "extra"],
                     ["--bogus", "list"]):
            p = self.ctl(sq, *args)
            self.assertEqual(p.returncode, EX_USAGE, (args, p.err))
        p = self.ctl(sq, "frobnicate")
        self.assertIn("unknown command frobnicate", p.err)

    def test_help_lists_every_command_and_the_exit_codes(self):
        sq = self.new_sendq_ctl()
        p = self.ctl(sq, "--help")
        self.assertEqual(p.returncode, 0)
        for cmd in ("status", "list", "show ID", "flush", "retry ID",
                    "hold ID", "release ID", "delete ID", "bounce ID"):
            self.assertIn(cmd, p.out)
        for code in ("64", "69", "77", "78"):
            self.assertIn("  %s  " % code, p.out)

    def test_bad_config_exits_78(self):
        sq = self.new_sendq_ctl()
        bad = os.path.join(self.dir, "bad.ini")
        with open(bad, "w") as f:
            f.write("[sendq]\nno_such_key = 1\n")
        p = subprocess.run([harness.sendq_binary("sendqctl"), "-C", bad,
                            "list"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, EX_CONFIG)

class SendqctlUpTest(SendqctlCase):
    """Every command over the control socket of a running sendqd; each
    case checks that sendqd exits 0 when stopped."""

    def test_socket_is_mode_0666(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        st = os.lstat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
        self.assertStoppedCleanly(sq)
        self.assertFalse(os.path.exists(self.sock),
                         "the socket file is removed on exit")

    def test_unprivileged_user_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run sendqctl as nobody")
        sq = self.start_daemon(self.new_sendq_ctl())
        # nobody must be able to read the configuration itself.
        os.chmod(self.class_dir, 0o755)
        os.chmod(self.dir, 0o755)
        os.chmod(sq.config, 0o644)
        p = self.ctl(sq, "status", user="nobody")
        self.assertEqual(p.returncode, EX_NOPERM, p.err)
        self.assertIn("permission denied", p.err)
        # nobody may list: it sees none of root's messages.
        qid = self.queue_one(sq, "root's")
        p = self.ctl(sq, "list", user="nobody")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertNotIn(qid, p.out)
        self.assertEqual(p.out, "Mail queue is empty\n")

    def test_status_and_list_with_sendqd_up(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "up")
        # 0 (OK) until the closed port makes the smarthost DOWN, then 2
        # (CRITICAL): status is a monitoring check (test_monitoring.py).
        p = self.ctl(sq, "status")
        self.assertIn(p.returncode, (0, 2), p.err)
        p = self.ctl(sq, "--json", "status")
        self.assertIn(p.returncode, (0, 2), p.err)
        json.loads(p.out)
        # The smarthost is unreachable: the message stays queued.
        p = self.ctl(sq, "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(qid, p.out)
        self.assertNotIn("reading the spool directly", p.err)
        entries = harness.wait_for(
            lambda: [e for e in json.loads(self.ctl(sq, "--json",
                                                    "list").out)
                     if e["state"] == "deferred"],
            what="the message to be deferred")
        self.assertEqual(entries[0]["id"], qid)
        self.assertGreaterEqual(entries[0]["attempts"], 1)
        self.assertTrue(entries[0]["last_error"])
        p = sq.sendq(["-bp"])
        self.assertIn(qid.encode(), p.stdout)
        self.assertStoppedCleanly(sq)

    def test_hold_then_release(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "hold")
        p = self.ctl(sq, "hold", qid)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(lambda: self.show_json(sq, qid)["held"],
                         what="the message to be held")
        self.assertEqual(self.show_json(sq, qid)["state"], "held")
        p = self.ctl(sq, "release", qid)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(lambda: not self.show_json(sq, qid)["held"],
                         what="the message to be released")
        self.assertEqual(sq.queued(), [qid])
        self.assertStoppedCleanly(sq)

    def test_retry_and_flush(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "retry")
        p = self.ctl(sq, "retry", qid)
        self.assertEqual(p.returncode, 0, p.err)
        p = self.ctl(sq, "flush")
        self.assertEqual(p.returncode, 0, p.err)
        p = sq.sendq(["-q"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sq.queued(), [qid])
        self.assertStoppedCleanly(sq)

    def test_flush_indexes_a_message_put_into_queue_by_hand(self):
        """sendqd learns of new messages from the paths that commit them,
        not by watching queue/; what an operator puts there by hand is
        indexed by the periodic rescan or, at once, by a flush."""
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "by hand")
        new = qid[:-1] + ("0" if qid[-1] != "0" else "1")
        q = sq.queue_dir()
        with open(os.path.join(q, qid + ".msg"), "rb") as f:
            body = f.read()
        with open(os.path.join(q, qid + ".env")) as f:
            env = f.read().replace("id %s\n" % qid, "id %s\n" % new)
        for name, data, mode in ((new + ".msg", body, "wb"),
                                 (new + ".env", env, "w")):
            with open(os.path.join(q, name + ".tmp"), mode) as f:
                f.write(data)
            os.rename(os.path.join(q, name + ".tmp"),
                      os.path.join(q, name))
        p = self.ctl(sq, "flush")
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(
            lambda: json.loads(self.ctl(sq, "--json", "status").out)[
                "queued"] == 2,
            what="the message put into queue/ to be indexed")
        self.assertEqual(sorted(sq.queued()), sorted([qid, new]))
        self.assertStoppedCleanly(sq)

    def test_delete_removes_the_message_from_the_spool(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "delete")
        other = self.queue_one(sq, "keep")
        p = self.ctl(sq, "delete", qid)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(lambda: sq.queued() == [other],
                         what=lambda: "only %s queued (have %s)" % (
                             other, sq.queued()))
        p = self.ctl(sq, "show", qid)
        self.assertEqual(p.returncode, EX_FAILED)
        self.assertStoppedCleanly(sq)

    def test_bounce_replaces_the_message_with_a_dsn_to_its_sender(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        qid = self.queue_one(sq, "bounce")
        p = self.ctl(sq, "bounce", qid)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(lambda: qid not in sq.queued(),
                         what="the bounced message to leave the queue")
        dsns = json.loads(self.ctl(sq, "--json", "list").out)
        self.assertEqual([(d["sender"], d["recipients"]) for d in dsns],
                         [("", [SENDER])])
        self.assertStoppedCleanly(sq)

    def test_commands_on_an_unknown_message_fail_with_1(self):
        sq = self.start_daemon(self.new_sendq_ctl())
        for cmd in ("hold", "release", "retry", "delete", "show"):
            p = self.ctl(sq, cmd, "0123456789ABCDEF012")
            self.assertEqual(p.returncode, EX_FAILED, (cmd, p.err))
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
