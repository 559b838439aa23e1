#!/usr/bin/env python3
"""test_journal.py - sendqd's log lines under the journal.

systemd connects a service's stderr to journald and says so with
JOURNAL_STREAM=DEV:INO (systemd.exec(5)); journald reads a line's priority
from a "<N>" prefix.  The test plays systemd: it opens sendqd's log file,
sets JOURNAL_STREAM to that file's device and inode, and checks that
every line carries the priority of its level, so that `journalctl -p err`
would show exactly the errors (here a wrong SMTP AUTH password against a
real Exim: AUTHENTICATION FAILED is an error, the deferred delivery a
warning).  With JOURNAL_STREAM naming another file (a redirected stderr)
the lines are the plain "sendqd[PID]: LEVEL: text" ones.
"""

import os
import re
import subprocess

import harness
from harness import (IntegrationTest, make_message, sendq_binary,
                     valgrind_prefix)

USER = "sendq-user"
PASSWORD = "Pw-correct-4Jd8Qe1Lx"
LEVELS = {"3": "error", "4": "warning", "6": "info", "7": "debug"}


def start_with_journal_stream(sq, other_inode=False):
    sq._log_file = open(sq.daemon_log, "ab")
    st = os.fstat(sq._log_file.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (
        st.st_dev, st.st_ino + (1 if other_inode else 0)))
    sq.proc = subprocess.Popen(
        valgrind_prefix() + [sendq_binary("sendqd"), "-C", sq.config],
        env=env, stdin=subprocess.DEVNULL, stdout=sq._log_file,
        stderr=sq._log_file, start_new_session=True)


class JournalTest(IntegrationTest):

    def wrong_password_sendq(self):
        exim = self.start_exim(user=USER, password=PASSWORD)
        sh = self.smarthost_for(exim)
        pw = os.path.join(self.dir, "password")
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("not-the-password\n")
        sh.update(auth="plain", user=USER, password_file=pw)
        return self.new_sendq(sh, extra_sendq={
            "control_socket": os.path.join(self.dir, "control.sock")})

    def test_each_line_carries_its_priority(self):
        sq = self.wrong_password_sendq()
        start_with_journal_stream(sq)
        sq.submit(make_message("journal", "body\n"), ["bob@example.net"])
        sq.wait_log(r"AUTHENTICATION FAILED")
        sq.wait_log(r"result=deferred")
        self.assertStoppedCleanly(sq)
        lines = sq.log_text().splitlines()
        self.assertTrue(lines)
        for ln in lines:
            if ln.startswith("==") and valgrind_prefix():
                continue
            m = re.match(r"<([0-7])>(\w+): ", ln)
            self.assertIsNotNone(m, "no priority prefix: %r" % ln)
            self.assertEqual(LEVELS.get(m.group(1)), m.group(2), ln)
        auth = [ln for ln in lines if "AUTHENTICATION FAILED" in ln]
        self.assertTrue(auth)
        for ln in auth:
            self.assertTrue(ln.startswith("<3>error: relay "), ln)
        deferred = [ln for ln in lines if "result=deferred" in ln]
        self.assertTrue(deferred)
        for ln in deferred:
            self.assertTrue(ln.startswith("<4>warning: delivery "), ln)
        # journalctl -p err: priority 3 or lower is exactly the errors.
        errs = [ln for ln in lines if re.match(r"<[0-3]>", ln)]
        self.assertEqual(errs, [ln for ln in lines
                                if ln.startswith("<3>error: ")])
        # The journal adds identifier and PID itself: not repeated.
        self.assertFalse([ln for ln in lines if "sendqd[" in ln])

    def test_redirected_stderr_gets_plain_lines(self):
        sq = self.wrong_password_sendq()
        start_with_journal_stream(sq, other_inode=True)
        sq.submit(make_message("plain", "body\n"), ["bob@example.net"])
        sq.wait_log(r"AUTHENTICATION FAILED")
        self.assertStoppedCleanly(sq)
        for ln in sq.log_text().splitlines():
            if ln.startswith("==") and valgrind_prefix():
                continue
            self.assertRegex(ln, r"^sendqd\[\d+\]: (error|warning|info|"
                             r"debug): ")
        self.assertRegex(sq.log_text(),
                         r"sendqd\[\d+\]: error: relay \S+: "
                         r"AUTHENTICATION FAILED")


if __name__ == "__main__":
    harness.main()
