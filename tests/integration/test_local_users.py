#!/usr/bin/env python3
"""Every local user can send mail, and no local user can forge, read or
meddle with another's (issue 10, "Tests that must show it", first two
items).

sendq is installed into a test prefix as a distribution would
(installed.py: cmake --install with the compiled-in paths of that prefix,
the users and groups of sendq.sysusers, the modes of sendq.tmpfiles, the
setgid helper root:sendq-drop 2755, sendqd running as user sendq).  Real
users made for the test (sqtest-alice, sqtest-bob: no group but their
own) send with the installed sendq, with bsd-mailx through the installed
sendmail link and with git send-email, with sendqd up and down; each
message reaches a private Exim with the user's uid recorded.  Then they
try to read, administer, forge and take over each other's mail, through
every command and the filesystem: all refused, nothing lost.
"""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import installed  # noqa: E402
from harness import make_message  # noqa: E402

ALICE = "sqtest-alice"
BOB = "sqtest-bob"
STUCK = "stuck@example.net"     # Exim answers 451: the message stays queued
EX_NOPERM = 77

SUBMIT_OK = r"control command=submit msgid=(\S+) uid=(\d+) .*result=ok"
PICKUP_OK = r"pickup file=(\S+) uid=(\d+) msgid=(\S+) from=<"

# Run as a test user: try every way into the spool; print what happened
# ({what: "ok" | errno name}).
FS_PROBE = r"""
import errno, json, os, sys
arg = json.loads(sys.argv[1])
spool, msgid = arg["spool"], arg["msgid"]
out = {}
def probe(what, fn):
    try:
        fn()
        out[what] = "ok"
    except OSError as e:
        out[what] = errno.errorcode.get(e.errno, str(e.errno))
def read(path):
    with open(path, "rb") as f:
        f.read()
def create(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    os.unlink(path)
q = os.path.join(spool, "queue")
for d in ("", "queue", "tmp", "failed", "maildrop", "maildrop/tmp",
          "maildrop/rejected"):
    probe("list " + (d or "spool"), lambda d=d: os.listdir(
        os.path.join(spool, d)))
probe("read env", lambda: read(os.path.join(q, msgid + ".env")))
probe("read msg", lambda: read(os.path.join(q, msgid + ".msg")))
probe("write msg", lambda: os.close(os.open(os.path.join(q, msgid + ".msg"),
                                            os.O_WRONLY)))
probe("stat msg", lambda: os.stat(os.path.join(q, msgid + ".msg")))
probe("create queue", lambda: create(os.path.join(q, "x.env")))
probe("create tmp", lambda: create(os.path.join(spool, "tmp", msgid + ".msg")))
probe("create spool", lambda: create(os.path.join(spool, "x")))
probe("rename into queue", lambda: os.rename(arg["own_file"],
                                             os.path.join(q, "y.env")))
print(json.dumps(out))
"""

# Run as a test user: put a file, symlink, hard link and FIFO into
# maildrop/ and maildrop/tmp/ directly (without the helper).
DROP_PROBE = r"""
import errno, json, os, sys
arg = json.loads(sys.argv[1])
out = {}
def probe(what, fn):
    try:
        fn()
        out[what] = "ok"
    except OSError as e:
        out[what] = errno.errorcode.get(e.errno, str(e.errno))
for d in (arg["drop"], os.path.join(arg["drop"], "tmp")):
    k = os.path.basename(d)
    probe(k + " file", lambda: os.close(os.open(os.path.join(d, "f"),
          os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)))
    probe(k + " symlink", lambda: os.symlink(arg["own_file"],
                                             os.path.join(d, "s")))
    probe(k + " hardlink", lambda: os.link(arg["own_file"],
                                           os.path.join(d, "h")))
    probe(k + " fifo", lambda: os.mkfifo(os.path.join(d, "p")))
    probe(k + " list", lambda: os.listdir(d))
print(json.dumps(out))
"""

# Run as a test user: a streaming submit over the control socket whose
# envelope claims uid 0, another id, another time and a delivery state.
FORGE = r"""
import json, socket, sys
arg = json.loads(sys.argv[1])
answers = {}
for name, env in arg["envelopes"].items():
    env = env.encode()
    msg = arg["message"].encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(arg["socket"])
        s.sendall(b"submit %d\n" % len(env) + env +
                  b"data %d\n" % len(msg) + msg + b"end\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        answers[name] = data.decode(errors="replace")
    except OSError as e:
        answers[name] = "oserror: %s" % e
    finally:
        s.close()
print(json.dumps(answers))
"""


def forged_envelope(uid, msgid, extra=""):
    return ("sendq-envelope 1\nid %s\ncreated 1000000000\nuid %d\n"
            "sender root@localhost\nrcpt bob@example.net\n%send\n"
            % (msgid, uid, extra))


class LocalUsers(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = installed.Installed()
        cls.exim = None
        try:
            cls.inst.open(test_users=(ALICE, BOB))
            cls.exim = harness.Exim(
                os.path.join(cls.class_dir, "exim"), *cls.certs.good,
                defer_recipients=[STUCK])
            os.makedirs(cls.exim.dir)
            cls.exim.start()
            ca = cls.inst.copy_ca(cls.certs.ca.cert)
            cls.inst.write_config({
                "host": "127.0.0.1", "port": cls.exim.implicit_port,
                "tls": "implicit", "trust": "ca_file", "ca_file": ca})
            cls.mailx = cls._install_mailx()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _install_mailx(cls):
        """bsd-mailx (fetched privately by get-servers) copied into the
        prefix, where the test users can run it; each user's ~/.mailrc
        names the installed sendmail link."""
        src = shutil.which("bsd-mailx") or os.path.join(
            harness.SERVERS_DIR, "mailx", "usr", "bin", "bsd-mailx")
        if not os.access(src, os.X_OK):
            subprocess.run(["bash", harness.GET_SERVERS],
                           stdin=subprocess.DEVNULL, timeout=600)
        if not os.access(src, os.X_OK):
            raise harness.HarnessError("bsd-mailx not available (tests/"
                                       "tools/get-servers fetches it)")
        dest = os.path.join(cls.inst.root, "tools", "bsd-mailx")
        os.makedirs(os.path.dirname(dest), mode=0o755)
        shutil.copy(src, dest)
        os.chmod(dest, 0o755)
        for name, pw in cls.inst.users.items():
            rc = os.path.join(pw.pw_dir, ".mailrc")
            with open(rc, "w") as f:
                f.write("set sendmail=%s\n" % cls.inst.bin("sendmail"))
            os.chown(rc, pw.pw_uid, pw.pw_gid)
        return dest

    @classmethod
    def _tear_down(cls):
        try:
            if cls.exim is not None:
                cls.exim.stop()
        finally:
            cls.inst.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls._tear_down()
        finally:
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.addCleanup(self._stop_daemon)

    def _stop_daemon(self):
        self.inst.stop()
        self.inst.reset_spool()
        self._diag = "%s\n---- exim mainlog\n%s" % (
            self.inst.diagnostics(), self.exim.log_text())

    # -- helpers
    def uid(self, user):
        return self.inst.users[user].pw_uid

    def start_daemon(self):
        since = self.inst.log_size()
        self.inst.start()
        self.inst.wait_ready(since)
        return since

    def exim_subjects(self):
        return {m.header("Subject"): m for m in self.exim.messages()}

    def wait_subjects(self, subjects):
        """Wait until Exim has a message with each subject; return
        {subject: EximMessage}."""
        def have():
            got = self.exim_subjects()
            return got if all(s in got for s in subjects) else None
        return harness.wait_for(have, what=lambda: "exim to receive %s "
                                "(has %s)" % (subjects,
                                              sorted(self.exim_subjects())))

    def sendq_as(self, user, subject, rcpt="bob@example.net", args=()):
        p = self.inst.run_as(user, [self.inst.bin("sendq")] + list(args) +
                             [rcpt], input=make_message(
                                 subject, "from %s\r\n" % user,
                                 sender="%s@localhost" % user, to=(rcpt,)))
        self.assertEqual(p.returncode, 0, "sendq as %s: %s" % (
            user, p.stderr.decode(errors="replace")))
        return p

    def mailx_as(self, user, subject, rcpt="bob@example.net"):
        p = self.inst.run_as(user, [self.mailx, "-s", subject, rcpt],
                             input=b"Hello from bsd-mailx.\n")
        self.assertEqual(p.returncode, 0, "mailx as %s: %s" % (
            user, p.stderr.decode(errors="replace")))
        return p

    def git_send_email_as(self, user, title):
        """A commit titled title in a fresh repository in the user's home,
        sent with git send-email through the installed sendmail; the
        subject Exim sees is "[PATCH] TITLE"."""
        home = self.inst.users[user].pw_dir
        repo = os.path.join(home, re.sub(r"\W", "-", title))
        env = {"GIT_AUTHOR_NAME": user, "GIT_COMMITTER_NAME": user,
               "GIT_AUTHOR_EMAIL": user + "@localhost",
               "GIT_COMMITTER_EMAIL": user + "@localhost"}

        def git(*args, cwd=repo):
            p = self.inst.run_as(user, ["git"] + list(args), env=env,
                                 cwd=cwd)
            self.assertEqual(p.returncode, 0, "git %s as %s: %s" % (
                args[0], user, p.stderr.decode(errors="replace")))
            return p.stdout.decode()
        git("init", "-q", repo, cwd=home)
        self.inst.run_as(user, ["sh", "-c", "echo hello > file.txt"],
                         cwd=repo)
        git("add", "file.txt")
        git("commit", "-q", "-m", title)
        patch = git("format-patch", "-1", "-o", repo).strip()
        git("send-email", "--confirm=never", "--quiet", "--suppress-cc=all",
            "--to=bob@example.net", "--from=%s <%s@localhost>" % (user, user),
            "--smtp-server=" + self.inst.bin("sendmail"), patch)
        return "[PATCH] " + title

    def submit_line_after(self, since):
        """The `control command=submit ... result=ok` line logged after
        byte offset since: (msgid, uid)."""
        m = self.inst.wait_log(SUBMIT_OK, since=since)
        return m.group(1), int(m.group(2))

    def wait_delivered(self, msgid):
        self.inst.wait_log(r"delivery msgid=%s .*result=sent" %
                           re.escape(msgid))

    def queue_one_stuck(self, user, subject):
        """user queues a message to STUCK (Exim defers it: it stays in
        the queue); its id, checked to carry user's uid."""
        before = set(self.inst.queued())
        self.sendq_as(user, subject, rcpt=STUCK)
        new = harness.wait_for(
            lambda: set(self.inst.queued()) - before,
            what="a new queued message of %s" % user)
        self.assertEqual(len(new), 1, new)
        msgid = new.pop()
        self.assertEqual(self.inst.queued_uids()[msgid], self.uid(user))
        return msgid

    def queue_one_stuck_as_root(self, subject):
        """root queues a message to STUCK with the installed sendq; its
        id."""
        before = set(self.inst.queued())
        p = harness.run([self.inst.bin("sendq"), STUCK], input=make_message(
            subject, "from root\r\n", sender="root@localhost", to=(STUCK,)),
            env={"PATH": installed.PATH, "LANG": "C", "HOME": "/root"})
        self.assertEqual(p.returncode, 0, p.stderr)
        new = harness.wait_for(lambda: set(self.inst.queued()) - before,
                               what="root's message in the queue")
        msgid, = new
        self.assertEqual(self.inst.queued_uids()[msgid], 0)
        return msgid

    def root_sendqctl(self, *args):
        return harness.run([self.inst.bin("sendqctl")] + list(args))

    # -- the installed layout
    def test_installed_layout_and_compiled_in_paths(self):
        inst = self.inst
        self.assertEqual(os.readlink(inst.bin("sendmail")), "../bin/sendq")
        self.assertEqual(os.readlink(inst.bin("mailq")), "sendq")
        self.assertEqual(os.readlink(inst.bin("newaliases")), "sendq")
        for unit in ("sendq.service", "sendq.socket"):
            self.assertTrue(os.path.isfile(os.path.join(
                inst.prefix, "lib", "systemd", "system", unit)), unit)
        with open(os.path.join(inst.prefix, "lib", "sysusers.d",
                               "sendq.conf")) as f:
            users = installed.parse_sysusers(f.read())
        self.assertIn(("g", "sendq"), users)
        self.assertIn(("g", "sendq-drop"), users)
        self.assertIn(("g", "sendq-queue"), users)
        self.assertIn("sendq", [u[1] for u in users if u[0] == "u"])
        want = {
            "/var/spool/sendq": (0o711, "sendq", "sendq"),
            "/var/spool/sendq/tmp": (0o2700, "sendq", "sendq-queue"),
            "/var/spool/sendq/queue": (0o750, "sendq", "sendq-queue"),
            "/var/spool/sendq/maildrop": (0o1730, "sendq", "sendq-drop"),
            "/var/spool/sendq/maildrop/tmp": (0o1730, "sendq",
                                              "sendq-drop"),
            "/var/spool/sendq/maildrop/rejected": (0o700, "sendq",
                                                   "sendq"),
            "/run/sendq": (0o755, "sendq", "sendq"),
        }
        got = {p: (m, u, g) for p, m, u, g in inst.tmpfiles_entries()}
        self.assertEqual(got, want)
        # Every tmpfiles line has its reason in a comment above it.
        with open(os.path.join(harness.SOURCE_DIR, "systemd",
                               "sendq.tmpfiles")) as f:
            lines = f.read().splitlines()
        for i, ln in enumerate(lines):
            if ln.startswith("d "):
                self.assertTrue(lines[i - 1].startswith("#"), ln)
        # The compiled-in paths are the prefix's: no -C anywhere.
        p = harness.run([inst.bin("sendqd"), "--check-config"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for prog in ("sendqd", "sendq", "sendqctl"):
            p = harness.run([inst.bin(prog), "--help"])
            self.assertIn(inst.config, p.stdout.decode() +
                          p.stderr.decode(), prog)
        since = self.start_daemon()
        self.assertIn("config=%s spool=%s" % (inst.config, inst.spool),
                      inst.log_since(since))
        st = os.stat(inst.socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_uid, pwd_uid("sendq"))

    def test_setgid_drop_helper_installed(self):
        path = self.inst.bin("sendq-drop")
        st = os.stat(path)
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(st.st_gid, grp_gid("sendq-drop"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o2755)

    def test_setgid_showq_helper_installed(self):
        path = self.inst.bin("sendq-showq")
        st = os.stat(path)
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(st.st_gid, grp_gid("sendq-queue"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o2755)

    def test_drop_helper_takes_no_options(self):
        """The setgid helper reads only its compiled-in configuration:
        any option but --help/--version is refused and drops nothing."""
        helper = self.inst.bin("sendq-drop")
        evil = os.path.join(self.inst.users[ALICE].pw_dir, "evil.ini")
        with open(evil, "w") as f:
            f.write("[sendq]\nspool_dir = /tmp\n")
        msg = b"X-Sendq-Recipient: <bob@example.net>\n\nx\n"
        for argv in (["-C", evil], ["--config=" + evil], ["-t"],
                     ["bob@example.net"]):
            p = self.inst.run_as(ALICE, [helper] + argv, input=msg)
            self.assertEqual(p.returncode, 64, "%s: %s" % (argv, p.stderr))
        for argv in (["--help"], ["--version"]):
            p = self.inst.run_as(ALICE, [helper] + argv)
            self.assertEqual(p.returncode, 0, argv)
        drop = os.path.join(self.inst.spool, "maildrop")
        self.assertEqual(sorted(os.listdir(drop)), ["rejected", "tmp"])
        self.assertEqual(os.listdir(os.path.join(drop, "tmp")), [])

    def test_control_socket_open_to_every_user(self):
        self.start_daemon()
        st = os.stat(self.inst.socket)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
        # Every user connects and is answered: list (their own mail) is
        # open to all; status is an administrator's (root, sendqd's user,
        # admin_group), so a plain user is refused by the daemon, not by
        # the socket's mode.
        for user in (ALICE, BOB):
            p = self.inst.run_as(user, [self.inst.bin("sendqctl"), "list"])
            self.assertEqual(p.returncode, 0, p.stderr)
            p = self.inst.run_as(user, [self.inst.bin("sendqctl"),
                                        "status"])
            self.assertEqual(p.returncode, 77, p.stderr)
            self.assertIn(b"permission denied", p.stderr)

    # -- sending
    def test_send_with_sendqd_up(self):
        self.start_daemon()
        sent = []
        for user in (ALICE, BOB):
            for how in ("sendq", "mailx", "git"):
                since = self.inst.log_size()
                subject = "up %s %s" % (how, user)
                if how == "sendq":
                    self.sendq_as(user, subject)
                elif how == "mailx":
                    self.mailx_as(user, subject)
                else:
                    subject = self.git_send_email_as(user, subject)
                msgid, uid = self.submit_line_after(since)
                self.assertEqual(uid, self.uid(user), subject)
                self.wait_delivered(msgid)
                sent.append((user, subject))
        got = self.wait_subjects([s for _, s in sent])
        for user, subject in sent:
            m = got[subject]
            self.assertEqual(m.recipients, ["bob@example.net"])
            self.assertEqual(m.sender, user + "@localhost", subject)
        self.assertEqual(self.inst.stop(), 0)

    def test_send_with_sendqd_down_then_started(self):
        # Down: each client hands the message to the setgid helper.
        self.assertFalse(self.inst.running())
        subjects = ["down sendq", "down mailx"]
        self.sendq_as(ALICE, subjects[0])
        self.mailx_as(ALICE, subjects[1])
        subjects.append(self.git_send_email_as(ALICE, "down git"))
        self.sendq_as(BOB, "down sendq bob")
        subjects.append("down sendq bob")
        self.assertEqual(self.inst.queued(), {})
        # Up: pickup records the file owner's uid and delivers.
        since = self.start_daemon()
        got = self.wait_subjects(subjects)
        picked = [(m.group(3), int(m.group(2))) for m in re.finditer(
            PICKUP_OK, self.inst.log_since(since))]
        self.assertEqual(sorted(u for _, u in picked),
                         sorted([self.uid(ALICE)] * 3 + [self.uid(BOB)]))
        for msgid, _ in picked:
            self.wait_delivered(msgid)
        for subject in subjects:
            user = BOB if subject.endswith("bob") else ALICE
            self.assertEqual(got[subject].sender, user + "@localhost",
                             subject)
        drop = os.path.join(self.inst.spool, "maildrop")
        self.assertEqual([n for n in os.listdir(drop)
                          if n not in ("tmp", "rejected")], [])
        self.assertEqual(os.listdir(os.path.join(drop, "rejected")), [])

    def test_mailq_lists_only_own_mail(self):
        self.start_daemon()
        a = self.queue_one_stuck(ALICE, "mailq alice")
        b = self.queue_one_stuck(BOB, "mailq bob")
        for user, mine, theirs in ((ALICE, a, b), (BOB, b, a)):
            for argv in ([self.inst.bin("mailq")],
                         [self.inst.bin("sendq"), "-bp"],
                         [self.inst.bin("sendqctl"), "list"],
                         [self.inst.bin("sendqctl"), "list", "--json"]):
                p = self.inst.run_as(user, argv)
                out = p.stdout.decode()
                self.assertEqual(p.returncode, 0, "%s as %s: %s" % (
                    argv, user, p.stderr.decode(errors="replace")))
                self.assertIn(mine, out, argv)
                self.assertNotIn(theirs, out, argv)
        # root sees both.
        out = self.root_sendqctl("list").stdout.decode()
        self.assertIn(a, out)
        self.assertIn(b, out)

    def test_mailq_with_sendqd_down_lists_only_own_mail(self):
        """sendqd stopped: mailq, sendq -bp and sendqctl list run the
        setgid sendq-showq, which lists the caller's messages only; the
        queue's modes let its group read envelopes, never bodies."""
        self.start_daemon()
        a = self.queue_one_stuck(ALICE, "down mailq alice")
        b = self.queue_one_stuck(BOB, "down mailq bob")
        r = self.queue_one_stuck_as_root("down mailq root")
        self.assertEqual(self.inst.stop(), 0)
        self.assertFalse(self.inst.running())
        queue_gid = grp_gid("sendq-queue")
        q = os.path.join(self.inst.spool, "queue")
        st = os.stat(q)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid),
                         (0o750, queue_gid))
        for msgid in (a, b, r):
            st = os.stat(os.path.join(q, msgid + ".env"))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid),
                             (0o640, queue_gid), msgid)
            st = os.stat(os.path.join(q, msgid + ".msg"))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, msgid)
        for user, mine, theirs in ((ALICE, a, b), (BOB, b, a)):
            for argv in ([self.inst.bin("mailq")],
                         [self.inst.bin("sendq"), "-bp"],
                         [self.inst.bin("sendqctl"), "list"],
                         [self.inst.bin("sendqctl"), "list", "--json"]):
                p = self.inst.run_as(user, argv)
                out = p.stdout.decode()
                self.assertEqual(p.returncode, 0, "%s as %s: %s" % (
                    argv, user, p.stderr.decode(errors="replace")))
                self.assertIn(mine, out, argv)
                self.assertNotIn(theirs, out, argv)
                self.assertNotIn(r, out, argv)
                self.assertNotIn("root@localhost", out, argv)
                if "--json" in argv:
                    got = json.loads(out)
                    self.assertEqual([m["id"] for m in got], [mine])
        # Show needs a body: not without sendqd.
        p = self.inst.run_as(ALICE, [self.inst.bin("sendqctl"), "show", a])
        self.assertEqual(p.returncode, 69, p.stderr)
        # root reads the spool itself and sees everything.
        out = self.root_sendqctl("list").stdout.decode()
        for msgid in (a, b, r):
            self.assertIn(msgid, out)
        # Nothing changed in the queue.
        self.assertEqual(self.inst.queued_uids(), {
            a: self.uid(ALICE), b: self.uid(BOB), r: 0})

    def test_showq_helper_takes_no_options_and_ignores_the_environment(self):
        """The setgid lister reads only its compiled-in configuration:
        options are refused, and a configuration or spool named in the
        environment is not looked at."""
        self.start_daemon()
        a = self.queue_one_stuck(ALICE, "showq alice")
        self.assertEqual(self.inst.stop(), 0)
        helper = self.inst.bin("sendq-showq")
        home = self.inst.users[ALICE].pw_dir
        # A spool of alice's own, holding a forged envelope of hers.
        fake = os.path.join(home, "fake-spool")
        forged = "F" * 31
        os.makedirs(os.path.join(fake, "queue"))
        with open(os.path.join(fake, "queue", forged + ".env"), "w") as f:
            f.write(forged_envelope(self.uid(ALICE), forged))
        with open(os.path.join(fake, "queue", forged + ".msg"), "w") as f:
            f.write("Subject: forged\n\nx\n")
        evil = os.path.join(home, "evil.ini")
        with open(evil, "w") as f:
            f.write("[sendq]\nspool_dir = %s\n" % fake)
        pw = self.inst.users[ALICE]
        for path in (fake, os.path.join(fake, "queue"), evil):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        for argv in (["-C", evil], ["--config=" + evil], ["-t"], [a],
                     ["--json", "--json"], ["--json", a], ["-bp"]):
            p = self.inst.run_as(ALICE, [helper] + argv)
            self.assertEqual(p.returncode, 64, "%s: %s" % (argv, p.stderr))
            self.assertEqual(p.stdout, b"", argv)
        for argv in (["--help"], ["--version"]):
            p = self.inst.run_as(ALICE, [helper] + argv)
            self.assertEqual(p.returncode, 0, argv)
        hostile = {"SENDQ_SHOWQ_TEST_CONFIG": evil,
                   "SENDQ_DROP_TEST_CONFIG": evil, "SENDQ_CONFIG": evil,
                   "SENDQ_SPOOL": fake, "TZ": "../../../../" + evil,
                   "MALLOC_CHECK_": "3", "LD_PRELOAD": evil}
        for argv in ([], ["--json"]):
            p = self.inst.run_as(ALICE, [helper] + argv, env=hostile)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(a, out)
            self.assertNotIn(forged, out)
        # The client runs it with an empty environment too.
        p = self.inst.run_as(ALICE, [self.inst.bin("mailq")], env=hostile)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(a, p.stdout.decode())
        self.assertNotIn(forged, p.stdout.decode())

    def test_cannot_read_anothers_message(self):
        self.start_daemon()
        b = self.queue_one_stuck(BOB, "secret of bob")
        # An id of the same form that names no message.
        missing = b[:-1] + ("1" if b[-1] == "0" else "0")
        for argv in (["show", b], ["show", b, "--json"]):
            p = self.inst.run_as(ALICE, [self.inst.bin("sendqctl")] + argv)
            q = self.inst.run_as(ALICE, [self.inst.bin("sendqctl")] +
                                 [missing if a == b else a for a in argv])
            self.assertNotEqual(p.returncode, 0, argv)
            self.assertNotIn(b"secret of bob", p.stdout + p.stderr)
            # Answered exactly as a message that does not exist.
            self.assertEqual(p.returncode, q.returncode, argv)
            self.assertEqual(p.stdout.replace(b.encode(), b"ID"),
                             q.stdout.replace(missing.encode(), b"ID"))
            self.assertEqual(p.stderr.replace(b.encode(), b"ID"),
                             q.stderr.replace(missing.encode(), b"ID"))
        # Bob's message is untouched and still his.
        self.assertEqual(self.inst.queued_uids()[b], self.uid(BOB))

    def test_cannot_read_queued_files(self):
        """Through the filesystem: no listing, opening or even stat of
        another's queued message (root's here), nor of any spool
        directory."""
        self.start_daemon()
        r = self.queue_one_stuck_as_root("secret of root")
        own = os.path.join(self.inst.users[ALICE].pw_dir, "own.env")
        self.inst.run_as(ALICE, ["sh", "-c", "echo x > " + own])
        got = self.inst.python_as(ALICE, FS_PROBE, {
            "spool": self.inst.spool, "msgid": r, "own_file": own})
        for what, result in got.items():
            self.assertIn(result, ("EACCES", "EPERM"), "%s: %s" % (
                what, result))
        self.assertEqual(self.inst.queued_uids()[r], 0)

    def test_cannot_administer_anothers_message(self):
        self.start_daemon()
        b = self.queue_one_stuck(BOB, "keep mine")
        before = self.inst.queued()[b]
        since = self.inst.log_size()
        for cmd in ("hold", "release", "delete", "bounce", "retry"):
            p = self.inst.run_as(ALICE, [self.inst.bin("sendqctl"), cmd, b])
            self.assertEqual(p.returncode, EX_NOPERM, "%s: %s" % (
                cmd, p.stderr.decode(errors="replace")))
            self.assertTrue(p.stderr.strip(), cmd)
            self.inst.wait_log(r"control command=%s msgid=%s uid=%d\b" % (
                cmd, re.escape(b), self.uid(ALICE)), since=since)
        p = self.inst.run_as(ALICE, [self.inst.bin("sendqctl"), "flush"])
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        # Nothing changed: still queued, not held, no bounce sent.
        env = self.inst.queued().get(b)
        self.assertIsNotNone(env, "bob's message was removed")
        self.assertNotIn("\nheld 1", env)
        self.assertEqual(self.inst.queued_uids()[b], self.uid(BOB))
        self.assertEqual(strip_state(env), strip_state(before))
        self.assertNotIn(r"result=ok", "\n".join(
            ln for ln in self.inst.log_since(since).splitlines()
            if re.search(r"control command=(hold|release|delete|bounce|"
                         r"retry|flush)\b", ln)))
        # Root may.
        p = self.root_sendqctl("hold", b)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("\nheld 1", self.inst.queued()[b])
        p = self.root_sendqctl("delete", b)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_uid_cannot_be_forged_through_the_control_socket(self):
        self.start_daemon()
        since = self.inst.log_size()
        msg = make_message("forged", "who am I\r\n", sender="root@localhost")
        envelopes = {
            "uid0": forged_envelope(0, "0123456789ABCDEF0123"),
            "uid_bob": forged_envelope(self.uid(BOB), "FEDCBA98765432100123"),
            "state": forged_envelope(0, "00000000000000000001",
                                     "attempts 3\nheld 1\n"),
        }
        answers = self.inst.python_as(ALICE, FORGE, {
            "socket": self.inst.socket, "envelopes": envelopes,
            "message": msg.decode()})
        self.assertRegex(answers["uid0"], r"^ok \S+\n$")
        self.assertRegex(answers["uid_bob"], r"^ok \S+\n$")
        self.assertRegex(answers["state"], r"^error: ")
        for name in ("uid0", "uid_bob"):
            msgid = answers[name].split()[1]
            self.assertNotIn(msgid, envelopes[name])    # not the client's
            m = self.inst.wait_log(r"control command=submit msgid=%s "
                                   r"uid=(\d+) " % re.escape(msgid),
                                   since=since)
            self.assertEqual(int(m.group(1)), self.uid(ALICE), name)
            self.wait_delivered(msgid)
        self.assertNotRegex(self.inst.log_since(since),
                            r"command=submit msgid=\S+ uid=0 ")
        self.assertEqual([u for u in self.inst.queued_uids().values()
                          if u in (0, self.uid(BOB))], [])

    def test_cannot_take_over_spool_files(self):
        """Neither a queued file (root's here) nor a name in tmp/ or
        queue/ can be written, created or renamed into by a user."""
        self.start_daemon()
        r = self.queue_one_stuck_as_root("not yours")
        before = self.inst.queued()[r]
        own = os.path.join(self.inst.users[ALICE].pw_dir, "own2.env")
        self.inst.run_as(ALICE, ["sh", "-c", "echo x > " + own])
        got = self.inst.python_as(ALICE, FS_PROBE, {
            "spool": self.inst.spool, "msgid": r, "own_file": own})
        for what in ("create queue", "create tmp", "create spool",
                     "write msg", "rename into queue", "list tmp",
                     "list queue"):
            self.assertIn(got[what], ("EACCES", "EPERM"), what)
        self.assertEqual(self.inst.queued_uids()[r], 0)
        self.assertEqual(strip_state(self.inst.queued()[r]),
                         strip_state(before))
        self.assertTrue(os.path.exists(own))

    def test_maildrop_without_the_helper_is_refused(self):
        own = os.path.join(self.inst.users[ALICE].pw_dir, "own-drop")
        self.inst.run_as(ALICE, ["sh", "-c", "printf 'To: bob@example.net"
                                 "\\n\\nx\\n' > " + own])
        got = self.inst.python_as(ALICE, DROP_PROBE, {
            "drop": os.path.join(self.inst.spool, "maildrop"),
            "own_file": own})
        for what, result in got.items():
            self.assertEqual(result, "EACCES", what)

    def test_pickup_rejects_symlink_hardlink_and_fifo(self):
        """Files placed in maildrop/ as root (as if the directory's
        protection had been bypassed): refused into rejected/ with a
        reason, nothing delivered from them; a regular file after them
        is delivered."""
        since = self.start_daemon()
        home = self.inst.users[ALICE].pw_dir
        pw = self.inst.users[ALICE]
        drop = os.path.join(self.inst.spool, "maildrop")

        def alice_file(name, subject):
            path = os.path.join(home, name)
            with open(path, "wb") as f:
                f.write(make_message(subject, "evil\r\n"))
            os.chown(path, pw.pw_uid, pw.pw_gid)
            return path
        os.symlink(alice_file("target-s", "evil symlink"),
                   os.path.join(drop, "evil-symlink"))
        os.link(alice_file("target-h", "evil hardlink"),
                os.path.join(drop, "evil-hardlink"))
        os.mkfifo(os.path.join(drop, "evil-fifo"))
        rejected = os.path.join(drop, "rejected")
        for name in ("evil-symlink", "evil-hardlink", "evil-fifo"):
            self.inst.wait_log(r"pickup file=%s uid=\d+ result=rejected "
                               r"reason=\"[^\"]+\" moved_to=rejected/%s"
                               % (name, name), since=since)
            self.assertTrue(os.path.lexists(os.path.join(rejected, name)))
            with open(os.path.join(rejected, name + ".reason")) as f:
                self.assertTrue(f.read().strip(), name)
        # A good file after them is delivered, the evil ones are not.
        good = os.path.join(drop, "tmp", "good")
        with open(good, "wb") as f:
            f.write(make_message("good drop", "fine\r\n"))
        os.chown(good, pw.pw_uid, pw.pw_gid)
        os.rename(good, os.path.join(drop, "good"))
        m = self.inst.wait_log(r"pickup file=good uid=(\d+) msgid=(\S+)",
                               since=since)
        self.assertEqual(int(m.group(1)), self.uid(ALICE))
        self.wait_delivered(m.group(2))
        got = self.wait_subjects(["good drop"])
        for s in ("evil symlink", "evil hardlink"):
            self.assertNotIn(s, got)
        # Nothing of them was queued either.
        self.assertEqual(self.inst.queued(), {})
        # The targets outside the maildrop are untouched.
        self.assertTrue(os.path.exists(os.path.join(home, "target-s")))
        self.assertTrue(os.path.exists(os.path.join(home, "target-h")))


def strip_state(env):
    """An envelope without the lines delivery attempts change."""
    return "\n".join(ln for ln in env.splitlines() if not ln.startswith(
        ("attempts ", "next_attempt ", "last_error ")))


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def grp_gid(name):
    import grp
    return grp.getgrnam(name).gr_gid


if __name__ == "__main__":
    harness.main()
