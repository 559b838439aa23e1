#!/usr/bin/env python3
"""A full spool filesystem: the spool lives on a 2 MiB tmpfs the test
mounts (root needed; skipped otherwise).  Messages are queued through the
SMTP listener and `sendq` while the smarthost is unreachable; then the
filesystem is filled.  The listener must answer 452 4.3.1 and `sendq`
exit 75, nothing queued before may change or go, nothing may be left in
tmp/; once space is freed both accept again, and in the end every
acknowledged message reaches the (then started) smarthost.
"""

import errno
import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_intake import IntakeSendq  # noqa: E402


class DiskFull(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.dir, "spoolfs")
        os.makedirs(self.mnt)
        p = harness.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700",
                         "tmpfs", self.mnt])
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" %
                          p.stderr.decode(errors="replace").strip())
        self.addCleanup(self._unmount)
        self.port = harness.free_port()
        self.sq = IntakeSendq(
            self.dir, {"host": "127.0.0.1", "port": harness.closed_port(),
                       "tls": "none"},
            {"listen": "127.0.0.1:%d" % self.port},
            extra_sendq={"control_socket":
                         os.path.join(self.dir, "control.sock")},
            # The full disk itself is under test here, not the reserve
            # (test_guards.py): a 2 MiB filesystem is all below it.
            extra_queue={"min_free_space": "0"})
        self.sq.spool = os.path.join(self.mnt, "spool")
        self.sq.write_config()
        self._started.append(self.sq)

    def _unmount(self):
        # sendqd holds the spool open: stop it first (stop is idempotent).
        self.sq.stop()
        subprocess.run(["umount", self.mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def fill(self):
        """Fill the filesystem to the last page; return the file."""
        path = os.path.join(self.mnt, "filler")
        chunk = b"\0" * 4096
        with open(path, "wb", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        return path

    def queue_snapshot(self):
        """{file name: bytes} of queue/."""
        qdir = os.path.join(self.sq.spool, "queue")
        out = {}
        for name in sorted(os.listdir(qdir)):
            with open(os.path.join(qdir, name), "rb") as f:
                out[name] = f.read()
        return out

    def tmp_files(self):
        return os.listdir(os.path.join(self.sq.spool, "tmp"))

    def smtp_send(self, subject, body="hello\r\n"):
        msg = harness.make_message(subject, body)
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        try:
            s.sendmail("alice@example.org", ["bob@example.net"], msg)
        finally:
            s.close()

    def test_full_spool_is_452_and_75_and_nothing_is_lost(self):
        self.sq.start()
        harness.wait_for(lambda: harness.port_accepts(self.port),
                         what="the intake listener")
        self.sq.wait_ready()
        acked = []
        for i in range(3):
            self.smtp_send("before smtp %d" % i)
            acked.append("before smtp %d" % i)
        for i in range(2):
            subj = "before sendq %d" % i
            self.sq.submit(harness.make_message(subj, "via sendq\n"),
                           ["bob@example.net"], sender="alice@example.org")
            acked.append(subj)
        harness.wait_for(lambda: len(self.sq.queued()) == 5,
                         what="five queued messages")
        before = self.queue_snapshot()
        self.assertEqual(len([n for n in before if n.endswith(".env")]), 5)

        filler = self.fill()

        # The listener: 452 4.3.1, at DATA or after the final dot.
        with self.assertRaises(smtplib.SMTPResponseException) as cm:
            self.smtp_send("while full", "x" * 60000 + "\r\n")
        self.assertEqual(cm.exception.smtp_code, 452)
        self.assertIn(b"4.3.1", cm.exception.smtp_error)
        self.sq.wait_log(r"intake result=nospace ")
        # sendq: exit 75 (EX_TEMPFAIL) with a reason.
        p = self.sq.sendq(["-f", "alice@example.org", "bob@example.net"],
                          harness.make_message("while full sendq",
                                               "y" * 60000 + "\n"))
        self.assertEqual(p.returncode, harness.EX_TEMPFAIL,
                         p.stderr.decode(errors="replace"))
        self.assertIn(b"not queued", p.stderr)
        # Nothing queued before changed or went; nothing left in tmp/.
        self.assertEqual(self.queue_snapshot(), before)
        self.assertEqual(self.tmp_files(), [])

        os.unlink(filler)
        self.smtp_send("after smtp")
        acked.append("after smtp")
        self.sq.submit(harness.make_message("after sendq", "ok\n"),
                       ["bob@example.net"], sender="alice@example.org")
        acked.append("after sendq")
        harness.wait_for(lambda: len(self.sq.queued()) == 7,
                         what="seven queued messages")
        for name, data in before.items():
            if name.endswith(".msg"):
                self.assertEqual(self.queue_snapshot()[name], data)

        # Every acknowledged message is delivered once the smarthost
        # is there.
        self.sq.stop()
        exim = self.start_exim()
        self.sq.write_config(smarthost=self.smarthost_for(exim))
        self.sq.start()
        got = exim.wait_messages(len(acked), timeout=harness.scaled(60))
        self.assertEqual(sorted(m.header("Subject") for m in got),
                         sorted(acked))
        self.sq.wait_queue_empty()
        self.assertEqual(self.tmp_files(), [])


if __name__ == "__main__":
    harness.main()
