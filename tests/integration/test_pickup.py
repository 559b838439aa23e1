#!/usr/bin/env python3
"""The maildrop directory (spool_dir/maildrop/): files written by plain
shell tools with the documented protocol (write in maildrop/tmp/, rename
into maildrop/) are delivered to a real Exim, with and without envelope
lines; thousands dropped at once, with sendqd running or stopped, arrive
exactly once; a file never renamed out of tmp/ is left alone; each kind
of bad file lands in maildrop/rejected/ with its .reason; SIGKILL during
pick-up loses nothing (duplicates at most, counted and reported).

SENDQ_PICKUP_MANY sets how many files the bulk tests drop (default
2000: thousands, in a burst much larger than one pick-up batch or one
group commit; more only costs suite time)."""

import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MANY = int(os.environ.get("SENDQ_PICKUP_MANY", "2000"))
BULK_TIMEOUT = float(os.environ.get("SENDQ_PICKUP_TIMEOUT", "240"))
SENDER = "alice@example.org"


def exim_subjects(exim):
    """Subject of every message Exim accepted (from its -H files)."""
    out = []
    for i in exim.message_ids():
        with open(os.path.join(exim.input_dir, i + "-H"), "rb") as f:
            m = re.search(rb"\n\d+. Subject: ([^\n]*)\n", f.read())
        out.append(m.group(1).decode() if m else None)
    return out


class Pickup(harness.IntegrationTest):

    # -- helpers
    def start(self, **kw):
        exim = self.start_exim()
        sh = self.smarthost_for(exim, tls="implicit")
        sh["max_connections"] = "4"
        sq = self.new_sendq(sh, log_level="info", **kw)
        sq.start()
        self.wait_maildrop(sq)
        return exim, sq

    def maildrop(self, sq, *parts):
        return os.path.join(sq.spool, "maildrop", *parts)

    def wait_maildrop(self, sq):
        harness.wait_for(lambda: sq.wait_log(r"pickup: watching"),
                         what="sendqd to watch maildrop/")

    def shell_drop(self, sq, name, data):
        """Drop data with plain shell tools, as the README says."""
        p = subprocess.run(
            ["sh", "-c", 'cat > "tmp/$1" && mv "tmp/$1" "$1"', "sh", name],
            input=data, cwd=self.maildrop(sq), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def bulk_drop(self, sq, n, tag):
        """Write n files in tmp/ first, then rename them all at once."""
        names = []
        for i in range(n):
            name = "%s-%05d" % (tag, i)
            data = ("X-Sendq-Sender: %s\nX-Sendq-Recipient: "
                    "bob@example.net\nSubject: %s %d\n\nbody %d\n"
                    % (SENDER, tag, i, i)).encode()
            with open(self.maildrop(sq, "tmp", name), "wb") as f:
                f.write(data)
            names.append(name)
        for name in names:
            os.rename(self.maildrop(sq, "tmp", name), self.maildrop(sq, name))
        return {"%s %d" % (tag, i) for i in range(n)}

    def maildrop_files(self, sq):
        return sorted(n for n in os.listdir(self.maildrop(sq))
                      if n not in ("tmp", "rejected"))

    def wait_all_delivered(self, exim, sq, want, allow_dups=False):
        start = time.monotonic()
        # Thousands of files: poll every 0.25 s, not 50 times a second
        # (each poll lists Exim's spool, CPU that sendqd and Exim need).
        harness.wait_for(lambda: len(exim.message_ids()) >= len(want),
                         timeout=BULK_TIMEOUT, interval=0.25,
                         what=lambda: "exim to have %d messages (has %d, "
                         "maildrop %d, queue %d)" % (
                             len(want), len(exim.message_ids()),
                             len(self.maildrop_files(sq)),
                             len(sq.queued())))
        # Every 0.25 s too: queue/ may still hold thousands of names.
        harness.wait_for(lambda: not sq.queued(), timeout=BULK_TIMEOUT,
                         interval=0.25, what=lambda: "the queue to empty "
                         "(left: %d)" % len(sq.queued()))
        elapsed = time.monotonic() - start
        got = exim_subjects(exim)
        self.assertEqual(set(got), want, "lost or foreign messages")
        dups = len(got) - len(set(got))
        if not allow_dups:
            self.assertEqual(dups, 0, "duplicates")
        self.assertEqual(self.maildrop_files(sq), [])
        return elapsed, dups

    # -- tests
    def test_shell_writer_with_and_without_envelope_lines(self):
        exim, sq = self.start()
        with_env = (b"X-Sendq-Sender: <alice@example.org>\n"
                    b"X-Sendq-Recipient: bob@example.net\n"
                    b"X-Sendq-Recipient: carol@example.net\n"
                    b"From: Alice <alice@example.org>\n"
                    b"To: list@example.com\n"
                    b"Subject: with envelope lines\n"
                    b"\n"
                    b"Envelope lines are removed.\n"
                    b".a line with a dot\n")
        from_headers = (b"From: Dave <dave@example.org>\r\n"
                        b"To: Erin <erin@example.net>\r\n"
                        b"Cc: frank@example.net\r\n"
                        b"Bcc: grace@example.net\r\n"
                        b"Subject: header derived\r\n"
                        b"Message-ID: <hd.1@example.org>\r\n"
                        b"Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n"
                        b"\r\n"
                        b"Recipients from the header, Bcc removed.\r\n")
        self.shell_drop(sq, "one", with_env)
        self.shell_drop(sq, "two", from_headers)
        msgs = {m.header("Subject"): m for m in exim.wait_messages(2)}
        sq.wait_queue_empty()
        m = msgs["with envelope lines"]
        self.assertEqual(m.sender, "alice@example.org")
        self.assertEqual(sorted(m.recipients),
                         ["bob@example.net", "carol@example.net"])
        names = m.header_names()
        self.assertFalse([n for n in names if n.startswith("x-sendq")])
        self.assertIn("date", names)            # added when missing
        self.assertIn("message-id", names)
        self.assertTrue(m.as_received().endswith(
            b"From: Alice <alice@example.org>\nTo: list@example.com\n"
            b"Subject: with envelope lines\n\nEnvelope lines are "
            b"removed.\n.a line with a dot\n"), m.as_received())
        m = msgs["header derived"]
        self.assertEqual(m.sender, "dave@example.org")
        self.assertEqual(sorted(m.recipients), [
            "erin@example.net", "frank@example.net", "grace@example.net"])
        self.assertArrivedIntact(m, from_headers, drop_headers=("Bcc",))
        # Provenance: the owner's uid is logged with the queue id.
        lines = [harness.parse_kv(ln) for ln in sq.log_text().splitlines()
                 if "pickup file=" in ln and "msgid=" in ln]
        self.assertEqual(sorted(kv["file"] for kv in lines), ["one", "two"])
        for kv in lines:
            self.assertEqual(kv["uid"], str(os.getuid()))
            self.assertRegex(kv["msgid"], r"^[0-9A-F]{31}$")
        self.assertEqual(self.maildrop_files(sq), [])
        self.assertStoppedCleanly(sq)

    def test_owner_uid_goes_into_the_envelope(self):
        exim = self.new_exim()                 # not started: stays queued
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            log_level="info")
        sq.start()
        self.wait_maildrop(sq)
        path = self.maildrop(sq, "tmp", "owned")
        with open(path, "wb") as f:
            f.write(b"X-Sendq-Recipient: bob@example.net\n"
                    b"From: c@example.org\n\nbody\n")
        os.chown(path, 4242, 4343)
        os.rename(path, self.maildrop(sq, "owned"))
        m = sq.wait_log(r"pickup file=owned uid=(\d+) msgid=(\w+)")
        self.assertEqual(m.group(1), "4242")
        self.assertIn("\nuid 4242\n", sq.queued_envelope(m.group(2)))
        self.assertStoppedCleanly(sq)

    def test_many_files_dropped_while_running_arrive_exactly_once(self):
        exim, sq = self.start()
        want = self.bulk_drop(sq, MANY, "running")
        elapsed, _ = self.wait_all_delivered(exim, sq, want)
        print("\n%d files dropped while running: delivered in %.1fs"
              % (MANY, elapsed), file=sys.stderr)
        self.assertStoppedCleanly(sq)

    def test_many_files_dropped_while_stopped_arrive_exactly_once(self):
        exim, sq = self.start()
        self.assertStoppedCleanly(sq)          # maildrop/ now exists
        want = self.bulk_drop(sq, MANY, "stopped")
        sq.start()
        elapsed, _ = self.wait_all_delivered(exim, sq, want)
        print("\n%d files dropped while stopped: delivered in %.1fs"
              % (MANY, elapsed), file=sys.stderr)
        self.assertStoppedCleanly(sq)

    def test_file_never_renamed_out_of_tmp_is_left_alone(self):
        exim, sq = self.start()
        unpublished = self.maildrop(sq, "tmp", "half-written")
        data = b"X-Sendq-Recipient: bob@example.net\nSubject: never\n"
        with open(unpublished, "wb") as f:
            f.write(data)
        self.assertStoppedCleanly(sq)           # and a start-up scan
        sq.start()
        self.wait_maildrop(sq)
        self.shell_drop(sq, "published", b"X-Sendq-Recipient: "
                        b"bob@example.net\nSubject: published\n\nb\n")
        (m,) = exim.wait_messages(1)
        self.assertEqual(m.header("Subject"), "published")
        sq.wait_queue_empty()
        with open(unpublished, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(exim_subjects(exim), ["published"])
        self.assertStoppedCleanly(sq)

    def test_each_bad_kind_is_rejected_with_its_reason(self):
        exim, sq = self.start()
        md = self.maildrop(sq)
        good = b"X-Sendq-Recipient: bob@example.net\nSubject: %s\n\nb\n"
        bad = {
            "no-rcpt": (b"Subject: nobody\n\nbody\n", "no recipients"),
            "bad-addr": (b"X-Sendq-Recipient: bob@@example.net\n\nb\n",
                         "X-Sendq-Recipient"),
            "bad-header-addr": (b"To: <bob@exa mple.net\n\nb\n",
                                "To field"),
            "late-envelope": (b"To: bob@example.net\nX-Sendq-Recipient: "
                              b"eve@example.net\n\nb\n",
                              "inside the header"),
        }
        for name, (data, _) in bad.items():
            self.shell_drop(sq, name, data)
        # Oversized: 25 MiB + 1 (sparse: only the size is checked).
        big = os.path.join(md, "tmp", "oversized")
        with open(big, "wb") as f:
            f.write(good % b"big")
            f.truncate(25 * 1024 * 1024 + 1)
        os.rename(big, os.path.join(md, "oversized"))
        os.symlink("/etc/passwd", os.path.join(md, "symlink"))
        os.mkfifo(os.path.join(md, "fifo"))
        # A device (root only): /dev/null's numbers, never opened.
        os.mknod(os.path.join(md, "device"), stat.S_IFCHR | 0o644,
                 os.makedev(1, 3))
        os.mkdir(os.path.join(md, "directory"))
        with open(os.path.join(md, "tmp", "linked"), "wb") as f:
            f.write(good % b"hard link")
        os.link(os.path.join(md, "tmp", "linked"),
                os.path.join(md, "hardlink"))
        # The file behind them all still goes out.
        self.shell_drop(sq, "zz-good", good % b"after the bad ones")
        reasons = dict((k, v[1]) for k, v in bad.items())
        reasons.update({"oversized": "too large", "symlink":
                        "symbolic link", "fifo": "FIFO",
                        "device": "a device", "directory": "a directory",
                        "hardlink": "hard links"})
        rej = self.maildrop(sq, "rejected")

        def all_rejected():
            have = set(os.listdir(rej))
            return all(n in have and n + ".reason" in have
                       for n in reasons)
        harness.wait_for(all_rejected, what=lambda: "rejected/ to hold %s "
                         "(has %s)" % (sorted(reasons), os.listdir(rej)))
        for name, why in reasons.items():
            with open(os.path.join(rej, name + ".reason")) as f:
                text = f.read()
            self.assertIn(why, text, name)
            sq.wait_log(r"pickup file=%s uid=\d+ result=rejected "
                        r"reason=\"[^\"]*%s" % (re.escape(name),
                                                 re.escape(why)))
        # Moved, not copied or followed: the symlink is still a symlink,
        # the FIFO a FIFO.
        self.assertTrue(os.path.islink(os.path.join(rej, "symlink")))
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(
            rej, "fifo")).st_mode))
        self.assertTrue(stat.S_ISCHR(os.lstat(os.path.join(
            rej, "device")).st_mode))
        (m,) = exim.wait_messages(1)
        self.assertEqual(m.header("Subject"), "after the bad ones")
        self.assertEqual(self.maildrop_files(sq), [])
        self.assertTrue(sq.running())
        self.assertStoppedCleanly(sq)

    def test_size_limit_is_intake_max_message_size(self):
        exim = self.new_exim()                 # not started: stays queued
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            log_level="info")
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nmax_message_size = 4M\n")
        sq.start()
        self.wait_maildrop(sq)
        head = b"X-Sendq-Recipient: bob@example.net\nSubject: s\n\n"
        for name, size in (("at-limit", 4 << 20), ("over", (4 << 20) + 1)):
            path = self.maildrop(sq, "tmp", name)
            with open(path, "wb") as f:
                f.write(head + b"x" * (size - len(head)))
            os.rename(path, self.maildrop(sq, name))
        sq.wait_log(r"pickup file=at-limit uid=\d+ msgid=")
        sq.wait_log(r"pickup file=over uid=\d+ result=rejected "
                    r"reason=\"too large: 4194305 bytes, the limit is "
                    r"4194304\"")
        self.assertEqual(len(sq.queued()), 1)
        self.assertStoppedCleanly(sq)

    def test_sigkill_during_pickup_loses_nothing(self):
        exim, sq = self.start()
        self.assertStoppedCleanly(sq)
        n = max(MANY // 2, 200)
        want = self.bulk_drop(sq, n, "kill")
        sq.start()
        # Kill it in the middle of the pick-up.
        harness.wait_for(lambda: sq.log_text().count("pickup file=") >= 100,
                         what="100 files picked up")
        sq.kill()
        # Counted after the kill (SIGKILL and reaped): what was left then.
        left = len(self.maildrop_files(sq))
        self.assertGreater(left, 0, "pick-up finished before the kill")
        sq.start()
        _, dups = self.wait_all_delivered(exim, sq, want, allow_dups=True)
        print("\nSIGKILL during pick-up of %d files (%d left then): "
              "%d duplicate(s), none lost" % (n, left, dups),
              file=sys.stderr)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
