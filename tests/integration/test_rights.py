#!/usr/bin/env python3
"""The three rights of the control socket (issue 10 item 3), with real
users created for the test (useradd, removed afterwards even on failure)
and commands run as them with setpriv.

Two plain users, A and B, each queue a message through the SMTP listener
on a unix socket (intake records the kernel's SO_PEERCRED uid in the
envelope).  The smarthost is a closed port, so the messages stay queued.
Then:
 - A lists (sendqctl list, --json list, mailq, sendq -bp) and sees only
   A's message; `show` of B's message answers exactly like a missing id;
 - A's hold/release/delete/bounce/retry/flush/status (on B's message and
   on A's own) exit 77 "permission denied", each refusal is logged with
   A's uid, and nothing changes in the spool;
 - M, a member of [sendq] admin_group, sees both messages, holds,
   releases and deletes them, and the log names M's uid;
 - with [sendq] submit_users = A, B's submit request is refused and A's
   is not; an unknown name is a configuration error with FILE:LINE;
 - with sendqd down, mailq as a user exits 75 with one line.
Needs root (skipped otherwise)."""

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

EX_FAILED = 1
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

# Unique per run, short enough for any useradd (<= 32 characters).
TAG = "sqr%d" % (os.getpid() % 1000000)
USER_A = TAG + "a"
USER_B = TAG + "b"
USER_M = TAG + "m"
ADMIN_GROUP = TAG + "adm"

# A client for the SMTP listener on a unix socket, run as the user.
SMTP_CLIENT = r"""
import smtplib, socket, sys
path, sender, rcpt, subject = sys.argv[1:5]
s = smtplib.SMTP()
s.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.sock.settimeout(30)
s.sock.connect(path)
code, _ = s.getreply()
assert code == 220, code
s.ehlo("client.example")
msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n"
       % (sender, rcpt, subject))
s.sendmail(sender, [rcpt], msg.encode())
s.quit()
"""

# A raw control request, run as the user: prints the first answer line.
CONTROL_CLIENT = r"""
import socket, sys
path, line, body = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
s.sendall(line.encode() + b"\n" + body)
data = b""
while b"\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\n")[0].decode())
"""


def _run(argv, check=False):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if check and p.returncode != 0:
        raise harness.HarnessError("%s -> %d: %s" % (
            " ".join(argv), p.returncode, p.stderr.decode(errors="replace")))
    return p


class RightsTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise __import__("unittest").SkipTest(
                "needs root to create users")
        super().setUpClass()
        # Removed even when a later step or a test fails.
        cls.addClassCleanup(cls._remove_accounts)
        _run(["groupadd", ADMIN_GROUP], check=True)
        for user in (USER_A, USER_B, USER_M):
            _run(["useradd", "--no-create-home", "--shell",
                  "/usr/sbin/nologin", user], check=True)
        _run(["usermod", "-a", "-G", ADMIN_GROUP, USER_M], check=True)
        cls.uid = {u: pwd.getpwnam(u).pw_uid
                   for u in (USER_A, USER_B, USER_M)}
        # Every user must reach the config and the binaries.
        os.chmod(cls.class_dir, 0o755)

    @classmethod
    def _remove_accounts(cls):
        for user in (USER_A, USER_B, USER_M):
            _run(["userdel", user])
        _run(["groupdel", ADMIN_GROUP])

    # -------------------------------------------------------- helpers

    def as_user(self, user, argv, sq=None):
        """Run argv as user (uid, primary group and supplementary groups
        of the account); CompletedProcess with .out and .err text."""
        p = _run(["setpriv", "--reuid", user, "--regid",
                  str(pwd.getpwnam(user).pw_gid), "--init-groups", "--"] +
                 list(argv))
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if sq is not None:
            sq.transcript.append("$ (%s) %s -> exit %d\n  %s" % (
                user, " ".join(argv[1:]), p.returncode, p.err.strip()))
        return p

    def ctl(self, sq, user, *args):
        argv = [harness.sendq_binary("sendqctl"), "-C", sq.config]
        argv += list(args)
        if user is None:
            p = _run(argv)
            p.out = p.stdout.decode(errors="replace")
            p.err = p.stderr.decode(errors="replace")
            return p
        return self.as_user(user, argv, sq)

    def new_rights_sendq(self, **extra_sendq):
        sockdir = tempfile.mkdtemp(prefix="sq-rights-")
        self.addCleanup(shutil.rmtree, sockdir, ignore_errors=True)
        os.chmod(sockdir, 0o755)
        self.sock = os.path.join(sockdir, "control.sock")
        self.smtp_sock = os.path.join(sockdir, "smtp.sock")
        extra = {"control_socket": self.sock}
        extra.update(extra_sendq)
        sq = self.new_sendq({"host": "127.0.0.1",
                             "port": harness.closed_port(), "tls": "none"},
                            extra_sendq=extra)
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nlisten = unix:%s\n" % self.smtp_sock)
        os.chmod(self.dir, 0o755)
        os.chmod(sq.config, 0o644)
        return sq

    def start(self, sq):
        sq.start()
        for path in (self.sock, self.smtp_sock):
            harness.wait_for(
                lambda: os.path.exists(path) and
                stat.S_ISSOCK(os.lstat(path).st_mode),
                what="the socket %s" % path)
        return sq

    def submit_as(self, sq, user, subject):
        """Queue one message as user through the SMTP unix socket;
        returns its queue id."""
        before = set(sq.queued())
        p = self.as_user(user, [sys.executable, "-c", SMTP_CLIENT,
                                self.smtp_sock, "%s@example.org" % user,
                                "rcpt@example.net", subject], sq)
        self.assertEqual(p.returncode, 0, p.err)
        new = sorted(set(sq.queued()) - before)
        self.assertEqual(len(new), 1, new)
        return new[0]

    def denied_lines(self, sq, user):
        return [harness.parse_kv(ln) for ln in sq.log_text().splitlines()
                if "control command=" in ln and "result=denied" in ln and
                " uid=%d " % self.uid[user] in ln]

    def two_users_queue(self, **extra):
        sq = self.start(self.new_rights_sendq(**extra))
        qa = self.submit_as(sq, USER_A, "from-a")
        qb = self.submit_as(sq, USER_B, "from-b")
        return sq, qa, qb

    # -------------------------------------------------------- reading

    def test_socket_is_open_to_everyone(self):
        sq = self.start(self.new_rights_sendq())
        self.assertEqual(stat.S_IMODE(os.lstat(self.sock).st_mode), 0o666)
        self.assertStoppedCleanly(sq)

    def test_intake_records_the_kernel_uid(self):
        sq, qa, qb = self.two_users_queue()
        for qid, user in ((qa, USER_A), (qb, USER_B)):
            p = self.ctl(sq, None, "--json", "show", qid)
            self.assertEqual(p.returncode, 0, p.err)
            self.assertEqual(json.loads(p.out)["uid"], self.uid[user])
        self.assertStoppedCleanly(sq)

    def test_user_lists_only_their_own_messages(self):
        sq, qa, qb = self.two_users_queue()
        p = self.ctl(sq, USER_A, "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(qa, p.out)
        self.assertNotIn(qb, p.out)
        self.assertNotIn(USER_B, p.out)
        self.assertIn("in 1 message.", p.out)

        p = self.ctl(sq, USER_A, "--json", "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual([e["id"] for e in json.loads(p.out)], [qa])
        p = self.ctl(sq, USER_B, "--json", "list")
        self.assertEqual([e["id"] for e in json.loads(p.out)], [qb])

        for argv in ([harness.sendq_binary("sendq"), "-C", sq.config,
                      "-bp"],):
            p = self.as_user(USER_A, argv, sq)
            self.assertEqual(p.returncode, 0, p.err)
            self.assertIn(qa, p.out)
            self.assertNotIn(qb, p.out)
        # mailq by argv[0].
        mailq = os.path.join(os.path.dirname(sq.config), "mailq")
        if not os.path.exists(mailq):
            os.symlink(harness.sendq_binary("sendq"), mailq)
        p = self.as_user(USER_B, [mailq, "-C", sq.config], sq)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(qb, p.out)
        self.assertNotIn(qa, p.out)

        # Root sees both.
        p = self.ctl(sq, None, "--json", "list")
        self.assertEqual(sorted(e["id"] for e in json.loads(p.out)),
                         sorted([qa, qb]))
        self.assertStoppedCleanly(sq)

    def test_show_of_another_users_message_reads_as_missing(self):
        sq, qa, qb = self.two_users_queue()
        p = self.ctl(sq, USER_A, "show", qa)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("Subject: from-a", p.out)

        # An id of the same shape that is not queued.
        missing = qb[:-1] + ("0" if qb[-1] != "0" else "1")
        self.assertNotIn(missing, sq.queued())
        for json_flag in ([], ["--json"]):
            other = self.ctl(sq, USER_A, *json_flag, "show", qb)
            gone = self.ctl(sq, USER_A, *json_flag, "show", missing)
            self.assertEqual(other.returncode, EX_FAILED)
            self.assertEqual(gone.returncode, EX_FAILED)
            self.assertEqual(other.err.replace(qb, "ID"),
                             gone.err.replace(missing, "ID"))
            self.assertEqual(other.out.replace(qb, "ID"),
                             gone.out.replace(missing, "ID"))
            self.assertNotIn("from-b", other.out + other.err)
        self.assertEqual(other.err.strip(), "sendqctl: no message %s" % qb)
        self.assertStoppedCleanly(sq)

    # -------------------------------------------------------- administering

    def test_plain_user_cannot_administer(self):
        sq, qa, qb = self.two_users_queue()
        before = sorted(sq.queued())
        commands = [["flush"], ["status"], ["--json", "status"]]
        for qid in (qb, qa):        # another's message, and one's own
            for cmd in ("hold", "release", "delete", "bounce", "retry"):
                commands.append([cmd, qid])
        for args in commands:
            p = self.ctl(sq, USER_A, *args)
            self.assertEqual(p.returncode, EX_NOPERM, (args, p.err))
            self.assertIn("permission denied", p.err)
            self.assertIn("uid %d" % self.uid[USER_A], p.err)
            self.assertEqual(len(p.err.strip().splitlines()), 1, p.err)
        p = self.as_user(USER_A, [harness.sendq_binary("sendq"), "-C",
                                  sq.config, "-q"], sq)
        self.assertEqual(p.returncode, EX_NOPERM, p.err)
        self.assertIn("permission denied", p.err)

        # Every refusal is logged with the uid (and the id it named).
        denied = self.denied_lines(sq, USER_A)
        logged = [(d["command"], d["msgid"]) for d in denied]
        for args in commands:
            args = [a for a in args if a != "--json"]
            self.assertIn((args[0], args[1] if len(args) > 1 else "-"),
                          logged)
        self.assertIn(("flush", "-"), logged)   # sendq -q
        # Nothing changed: both messages queued, neither held, no DSN.
        self.assertEqual(sorted(sq.queued()), before)
        for qid in (qa, qb):
            info = json.loads(self.ctl(sq, None, "--json", "show",
                                       qid).out)
            self.assertFalse(info["held"])
        self.assertStoppedCleanly(sq)

    def test_admin_group_member_administers_and_is_logged(self):
        sq, qa, qb = self.two_users_queue(admin_group=ADMIN_GROUP)
        uid_m = self.uid[USER_M]
        p = self.ctl(sq, USER_M, "--json", "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(sorted(e["id"] for e in json.loads(p.out)),
                         sorted([qa, qb]))
        p = self.ctl(sq, USER_M, "show", qb)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("Subject: from-b", p.out)
        # 0 OK, or 2 CRITICAL once the stuck messages' smarthost is down.
        self.assertIn(self.ctl(sq, USER_M, "status").returncode, (0, 2))

        p = self.ctl(sq, USER_M, "hold", qb)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(
            lambda: json.loads(self.ctl(sq, None, "--json", "show",
                                        qb).out)["held"],
            what="the message to be held")
        p = self.ctl(sq, USER_M, "release", qb)
        self.assertEqual(p.returncode, 0, p.err)
        p = self.ctl(sq, USER_M, "delete", qa)
        self.assertEqual(p.returncode, 0, p.err)
        harness.wait_for(lambda: sq.queued() == [qb],
                         what="only %s queued" % qb)
        for cmd, qid in (("hold", qb), ("release", qb), ("delete", qa)):
            sq.wait_log(r"control command=%s msgid=%s uid=%d pid=\d+ "
                        r"result=ok" % (cmd, qid, uid_m))
        # A plain user is still refused with admin_group set, and the
        # refusal names the group.
        p = self.ctl(sq, USER_A, "hold", qb)
        self.assertEqual(p.returncode, EX_NOPERM)
        self.assertIn(ADMIN_GROUP, p.err)
        self.assertStoppedCleanly(sq)

    # -------------------------------------------------------- submitting

    def submit_request(self, sq, user):
        """A submit request as user straight on the control socket; the
        first answer line."""
        env = "not an envelope"
        p = self.as_user(user, [sys.executable, "-c", CONTROL_CLIENT,
                                self.sock, "submit %d" % len(env), env],
                         sq)
        self.assertEqual(p.returncode, 0, p.err)
        return p.out.strip()

    def test_submit_users_restricts_who_may_submit(self):
        sq = self.start(self.new_rights_sendq(submit_users=USER_A))
        answer = self.submit_request(sq, USER_B)
        self.assertTrue(
            answer.startswith("error: 5.7.1 permission denied:"), answer)
        self.assertIn("uid %d" % self.uid[USER_B], answer)
        sq.wait_log(r"control command=submit msgid=- uid=%d pid=\d+ "
                    r"result=denied reason=\"5.7.1 permission denied"
                    % self.uid[USER_B])
        # A is listed: the request gets past the check (and fails on its
        # content, which is not an envelope).
        answer = self.submit_request(sq, USER_A)
        self.assertTrue(answer.startswith("error: "), answer)
        self.assertNotIn("permission denied", answer)
        self.assertStoppedCleanly(sq)

    def test_submit_groups_admits_members(self):
        sq = self.start(self.new_rights_sendq(submit_groups=ADMIN_GROUP))
        self.assertIn("permission denied", self.submit_request(sq, USER_A))
        self.assertNotIn("permission denied",
                         self.submit_request(sq, USER_M))
        self.assertStoppedCleanly(sq)

    def test_unknown_names_are_config_errors_with_file_and_line(self):
        for key, what in (("admin_group", "group"),
                          ("submit_users", "user"),
                          ("submit_groups", "group")):
            sq = self.new_rights_sendq(**{key: TAG + "nosuch"})
            p = _run([harness.sendq_binary("sendqd"), "-C", sq.config,
                      "--check-config"])
            self.assertEqual(p.returncode, EX_CONFIG, key)
            with open(sq.config) as f:
                line = [i for i, ln in enumerate(f, 1)
                        if ln.startswith(key + " =")][0]
            self.assertRegex(
                p.stderr.decode(),
                r"^sendqd: %s:%d: \[sendq\] %s: no %s named \"%snosuch\""
                % (re.escape(sq.config), line, key, what, TAG))
            self.assertEqual(len(p.stderr.decode().splitlines()), 1)
        # Existing names check fine.
        sq = self.new_rights_sendq(admin_group=ADMIN_GROUP,
                                   submit_users=USER_A + " " + USER_B)
        p = _run([harness.sendq_binary("sendqd"), "-C", sq.config,
                  "--check-config"])
        self.assertEqual(p.returncode, 0, p.stderr)

    # -------------------------------------------------------- daemon down

    def test_daemon_down_user_gets_one_line_and_75_from_mailq(self):
        sq, qa, qb = self.two_users_queue()
        self.assertStoppedCleanly(sq)
        p = self.as_user(USER_A, [harness.sendq_binary("sendq"), "-C",
                                  sq.config, "-bp"], sq)
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.err)
        self.assertEqual(len(p.err.strip().splitlines()), 1, p.err)
        self.assertIn("sendqd is not running", p.err)
        self.assertNotIn(qb, p.out)
        p = self.ctl(sq, USER_A, "list")
        self.assertEqual(p.returncode, EX_UNAVAILABLE, p.err)
        self.assertEqual(len(p.err.strip().splitlines()), 1, p.err)
        self.assertIn("sendqd is not running", p.err)
        # Root still reads the spool directly and sees both.
        p = self.ctl(sq, None, "list")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(qa, p.out)
        self.assertIn(qb, p.out)

    # -------------------------------------------------------- files

    def test_user_sendq_need_not_read_the_files_only_sendqd_opens(self):
        """A client key (and its certificate) that only root may read:
        a user's sendq reads the configuration all the same (they are
        sendqd's to open; it exited 78 "cannot be read" for every
        sender but root before), and still refuses a bad value."""
        files = {}
        for name in ("client_cert", "client_key"):
            files[name] = os.path.join(self.dir, name + ".pem")
            with open(files[name], "w") as f:
                f.write("sendqd's, unread by sendq\n")
            os.chmod(files[name], 0o600)
        sq = self.new_sendq(dict({"host": "127.0.0.1",
                                  "port": harness.closed_port(),
                                  "tls": "none"}, **files))
        os.chmod(self.dir, 0o755)
        os.chmod(sq.config, 0o644)
        argv = [harness.sendq_binary("sendq"), "-C", sq.config, "-bv",
                "bob@example.net"]
        p = self.as_user(USER_A, argv)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("deliverable", p.out)
        with open(sq.config) as f:
            text = f.read()
        with open(sq.config, "w") as f:
            f.write(text.replace("tls = none", "tls = maybe"))
        p = self.as_user(USER_A, argv)
        self.assertEqual(p.returncode, EX_CONFIG, p.err)

    def test_default_sender_is_the_login_name_of_the_kernel_uid(self):
        """sendq does no user lookup: sendqd names the caller's uid
        (whoami), or with sendqd down the drop helper does; a uid with
        no name is exit 67 either way."""
        sq = self.start(self.new_rights_sendq())
        helper = sq.write_drop_helper()
        sendq = [harness.sendq_binary("sendq"), "-C", sq.config]
        msg = make_message("default sender", "x\r\n")
        before = set(sq.queued())
        p = subprocess.run(["setpriv", "--reuid", USER_A, "--regid",
                            str(pwd.getpwnam(USER_A).pw_gid),
                            "--init-groups", "--"] + sendq +
                           ["bob@example.net"], input=msg,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        (qid,) = set(sq.queued()) - before
        self.assertIn("%s@" % USER_A, sq.queued_envelope(qid))
        sq.wait_log(r"control command=whoami msgid=- uid=%d .*result=ok"
                    % self.uid[USER_A])
        nobody = ["setpriv", "--reuid", "54321", "--regid", "54321",
                  "--clear-groups", "--", "env",
                  "SENDQ_DROP_HELPER=" + helper] + sendq + ["bob@example.net"]
        p = subprocess.run(nobody, input=msg, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 67, p.stderr)
        self.assertIn(b"no user name for uid 54321", p.stderr)
        self.assertStoppedCleanly(sq)
        # sendqd down: the helper (run as the caller) says the same.
        p = subprocess.run(nobody, input=msg, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 67, p.stderr)
        self.assertIn(b"no user name for uid 54321", p.stderr)
        self.assertEqual(sq.maildrop_files(), [])


if __name__ == "__main__":
    harness.main()
