#!/usr/bin/env python3
"""test_deb.py - the Debian package, built, checked, installed on this
machine, used and purged.

  - scripts/deb builds the .deb (CPack) into BUILD_DIR/deb; lintian finds
    no error and no warning (the overrides in the package are justified);
    the control fields declare it an MTA as Debian's MTAs do;
  - dpkg -i: postinst made the users and groups (sysusers.d), the spool
    and /run/sendq with the tmpfiles.d modes, the drop helper's
    statoverride (when the tree has the helper), and enabled the service
    (deb-systemd-helper); /etc/sendq/sendq.ini is a conffile;
  - systemd is not PID 1 here, so the test starts the installed
    /usr/sbin/sendqd itself as user sendq (what sendq.service does), and
    an unprivileged user (useradd, unique name) sends a message through
    the installed /usr/sbin/sendmail: it reaches a private Exim;
  - dpkg --purge: no file of the package, no spool, no /run/sendq, no
    conffile, no statoverride and no systemd enablement is left.  The
    users sendq and sendq-drop stay (Debian practice, see
    scripts/debian/postrm); the test removes them afterwards when it
    made them.

The test refuses to run (skips, saying why) when another package owns
/usr/sbin/sendmail (it would conflict), when a sendq package is already
installed, or when not root.  It takes the installed-layout fixture's
lock (installed.py), since both create the user sendq.
"""

import fcntl
import grp
import os
import pwd
import signal
import stat
import subprocess
import unittest
import uuid

import harness
from harness import (DEFAULT_TIMEOUT, IntegrationTest, SOURCE_DIR, BUILD_DIR,
                     make_message, wait_for)

LOCK = "/tmp/sendq-installed.lock"      # installed.py's
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def sh(argv, check=True, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, PATH=PATH + ":" +
                                os.environ.get("PATH", "")), **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (
            " ".join(argv), p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")))
    return p


def package_installed(name):
    p = sh(["dpkg-query", "-W", "-f", "${Status}", name], check=False)
    return p.returncode == 0 and b"install ok installed" in p.stdout


def refusal():
    """Why this machine must not get the package, or None."""
    if os.geteuid() != 0:
        return "needs root (dpkg -i)"
    for tool in ("dpkg", "lintian", "cpack", "dpkg-shlibdeps"):
        if sh(["sh", "-c", "command -v " + tool], check=False).returncode:
            return "%s not installed (scripts/setup)" % tool
    if os.path.lexists("/usr/sbin/sendmail"):
        owner = sh(["dpkg-query", "-S", "/usr/sbin/sendmail"], check=False)
        return ("/usr/sbin/sendmail exists (%s): another MTA is installed "
                "and sendq conflicts with it" %
                (owner.stdout.decode().strip() or "owned by no package"))
    if package_installed("sendq"):
        return "a sendq package is already installed"
    return None


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class DebTest(IntegrationTest):

    def setUp(self):
        why = refusal()
        if why:
            raise unittest.SkipTest("refusing to install the package: " + why)
        super().setUp()
        self._lock = open(LOCK, "a")
        self.addCleanup(self._lock.close)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.had = {"user sendq": user_exists("sendq"),
                    "group sendq": group_exists("sendq"),
                    "group sendq-drop": group_exists("sendq-drop"),
                    "group sendq-queue": group_exists("sendq-queue")}
        self.daemon = None
        self.user = None
        # Cleanups run last-added first: the package and the users go
        # after the daemon is stopped.
        self.addCleanup(self._remove_system_users)
        self.addCleanup(self._purge_if_installed)

    # -- cleanup (also after a failure)
    def _purge_if_installed(self):
        if self.daemon is not None and self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait()
        if self.user is not None and user_exists(self.user):
            sh(["userdel", "-r", self.user], check=False)
        for f in ("/etc/sendq/test-ca.pem",):
            if os.path.exists(f):
                os.unlink(f)
        if package_installed("sendq") or sh(
                ["dpkg-query", "-W", "sendq"], check=False).returncode == 0:
            sh(["dpkg", "--purge", "sendq"], check=False)

    def _remove_system_users(self):
        if not self.had["user sendq"] and user_exists("sendq"):
            sh(["userdel", "sendq"], check=False)
        for g in ("sendq", "sendq-drop", "sendq-queue"):
            if not self.had["group " + g] and group_exists(g):
                sh(["groupdel", g], check=False)

    # -- steps
    def build(self):
        out = os.path.join(BUILD_DIR, "deb")
        p = subprocess.run(
            ["bash", os.path.join(SOURCE_DIR, "scripts", "deb"), "--lintian"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, SENDQ_DEB_BUILD_DIR=out), timeout=900)
        if p.returncode != 0:
            raise AssertionError("scripts/deb --lintian failed (%d):\n%s%s" %
                                 (p.returncode, p.stdout.decode(),
                                  p.stderr.decode()))
        deb = p.stdout.decode().strip().splitlines()[-1]
        self.assertTrue(deb.endswith(".deb") and os.path.exists(deb), deb)
        return deb

    def assertControl(self, deb):
        fields = {}
        for f in ("Package", "Provides", "Conflicts", "Replaces",
                  "Depends", "Section"):
            fields[f] = sh(["dpkg-deb", "-f", deb, f]).stdout.decode().strip()
        self.assertEqual(fields["Package"], "sendq")
        self.assertEqual(fields["Provides"], "mail-transport-agent")
        self.assertEqual(fields["Conflicts"], "mail-transport-agent")
        self.assertEqual(fields["Replaces"], "mail-transport-agent")
        self.assertEqual(fields["Section"], "mail")
        self.assertIn("systemd", fields["Depends"])
        self.assertIn("libgnutls30", fields["Depends"])

    def assertMode(self, path, mode, user, group):
        st = os.lstat(path)
        self.assertEqual((stat.S_IMODE(st.st_mode), pwd.getpwuid(
            st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name),
            (mode, user, group), path)

    def assertInstalled(self):
        self.assertTrue(package_installed("sendq"))
        self.assertTrue(user_exists("sendq"))
        self.assertTrue(group_exists("sendq-drop"))
        self.assertEqual(pwd.getpwnam("sendq").pw_shell, "/usr/sbin/nologin")
        self.assertMode("/var/spool/sendq", 0o711, "sendq", "sendq")
        # queue/ is searchable by the queue lister's group (envelopes
        # 0640, bodies 0600); tmp/ gives new files that group.
        self.assertMode("/var/spool/sendq/queue", 0o750, "sendq",
                        "sendq-queue")
        self.assertMode("/var/spool/sendq/tmp", 0o2700, "sendq",
                        "sendq-queue")
        self.assertMode("/var/spool/sendq/maildrop", 0o1730, "sendq",
                        "sendq-drop")
        self.assertMode("/run/sendq", 0o755, "sendq", "sendq")
        conffiles = sh(["dpkg-query", "-W", "-f", "${Conffiles}",
                        "sendq"]).stdout.decode()
        self.assertIn("/etc/sendq/sendq.ini", conffiles)
        # Enabled as dh_installsystemd does (also without systemd running).
        self.assertTrue(os.path.islink(
            "/etc/systemd/system/multi-user.target.wants/sendq.service"))
        # Both setgid helpers are in the package (postinst's statoverride).
        self.assertMode("/usr/sbin/sendq-drop", 0o2755, "root", "sendq-drop")
        self.assertMode("/usr/sbin/sendq-showq", 0o2755, "root",
                        "sendq-queue")
        self.assertTrue(os.path.islink("/usr/sbin/sendmail"))
        self.assertEqual(sh(["dpkg-query", "-S", "/usr/sbin/sendmail"])
                         .stdout.decode().split(":")[0], "sendq")

    def configure(self, exim):
        ca = "/etc/sendq/test-ca.pem"
        with open(self.certs.ca.cert, "rb") as src, open(ca, "wb") as dst:
            dst.write(src.read())
        os.chmod(ca, 0o644)
        with open("/etc/sendq/sendq.ini", "w") as f:
            f.write("[sendq]\nhostname = localhost\nlog_level = debug\n\n"
                    "[queue]\nretry_min = 1s\n\n"
                    "[smarthost exim]\nhost = 127.0.0.1\nport = %d\n"
                    "tls = implicit\ntrust = ca_file\nca_file = %s\n" %
                    (exim.implicit_port, ca))

    def start_daemon(self):
        log = open(os.path.join(self.dir, "sendqd.log"), "ab")
        self.addCleanup(log.close)
        self.daemon_log = log.name
        # What sendq.service does: /usr/sbin/sendqd as sendq:sendq.
        self.daemon = subprocess.Popen(
            ["setpriv", "--reuid=sendq", "--regid=sendq", "--init-groups",
             "/usr/sbin/sendqd"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, cwd="/", env={"PATH": PATH},
            start_new_session=True)
        wait_for(lambda: os.path.exists("/run/sendq/control.sock") or
                 self.daemon.poll() is not None,
                 what="the installed sendqd's control socket")
        self.assertIsNone(self.daemon.poll(), self.log_text())

    def log_text(self):
        with open(self.daemon_log, errors="replace") as f:
            return f.read()

    def send_as_user(self, message, rcpt):
        self.user = "sqdeb-" + uuid.uuid4().hex[:8]
        sh(["useradd", "--no-create-home", "--shell", "/bin/sh",
            "--user-group", self.user])
        pw = pwd.getpwnam(self.user)
        return subprocess.run(
            ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
             "--clear-groups", "/usr/sbin/sendmail", "-f",
             "%s@example.org" % self.user, rcpt],
            input=message, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd="/", env={"PATH": PATH, "HOME": "/", "USER": self.user},
            timeout=60), pw.pw_uid

    def assertPurged(self, files):
        self.assertFalse(package_installed("sendq"))
        self.assertNotEqual(sh(["dpkg-query", "-W", "sendq"],
                               check=False).returncode, 0,
                            "dpkg still knows sendq (config-files?)")
        left = [f for f in files if os.path.lexists(f)]
        self.assertEqual(left, [], "left after purge")
        for d in ("/etc/sendq", "/var/spool/sendq", "/run/sendq",
                  "/usr/share/doc/sendq"):
            self.assertFalse(os.path.lexists(d), d + " left after purge")
        overrides = sh(["dpkg-statoverride", "--list"]).stdout.decode()
        self.assertNotIn("sendq", overrides)
        for root, _, names in os.walk("/etc/systemd/system"):
            for n in names:
                self.assertNotIn("sendq", n, os.path.join(root, n))
        state = "/var/lib/systemd/deb-systemd-helper-enabled"
        for root, _, names in os.walk(state):
            for n in names:
                self.assertNotIn("sendq", n, os.path.join(root, n))

    def test_build_install_send_purge(self):
        deb = self.build()
        self.assertControl(deb)
        sh(["dpkg", "-i", deb])
        self.assertInstalled()
        # The package's files and links (not the directories it shares).
        files = [f for f in sh(["dpkg-query", "-L", "sendq"])
                 .stdout.decode().splitlines()
                 if f and (os.path.islink(f) or not os.path.isdir(f))]
        self.assertIn("/usr/sbin/sendqd", files)

        exim = self.start_exim()
        self.configure(exim)
        self.start_daemon()
        msg = make_message("through the package", "Installed by dpkg.\n")
        p, uid = self.send_as_user(msg, "bob@example.net")
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        exim.wait_messages(1)
        got = exim.messages()[0]
        self.assertEqual(got.header("Subject").strip(),
                         "through the package")
        self.assertIn("uid=%d" % uid, self.log_text())
        self.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(self.daemon.wait(timeout=DEFAULT_TIMEOUT), 0,
                         self.log_text())

        os.unlink("/etc/sendq/test-ca.pem")
        sh(["dpkg", "--purge", "sendq"])
        self.assertPurged(files)
        # Debian practice: the system users stay (scripts/debian/postrm).
        self.assertTrue(user_exists("sendq"))


if __name__ == "__main__":
    harness.main()
