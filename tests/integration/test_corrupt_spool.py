#!/usr/bin/env python3
"""Spool corruption: an envelope that is garbage, truncated (no "end"
line) or without its message file is moved to spool_dir/corrupt/ with a
reason file when sendqd starts; the good messages around it are
delivered and sendqd keeps running.  A message file that changed size
after sendqd queued it (cut short, or grown) is never sent as if whole:
its delivery is deferred before the final dot (the connection dropped,
so the server discards what it got), naming the change."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402
from test_faults import TIMEOUTS, WAIT, FakeServer  # noqa: E402

SENDER = "alice@example.org"

GARBAGE = "0065A1B2C3000010000"
TRUNCATED = "0065A1B2C3000020000"
NO_BODY = "0065A1B2C3000030000"


class CorruptSpoolTest(harness.IntegrationTest):

    def plant(self, sq, name, data):
        # What an earlier sendqd left in queue/ (sendq itself only ever
        # reaches the maildrop while sendqd is down).
        os.makedirs(sq.queue_dir(), mode=0o700, exist_ok=True)
        with open(os.path.join(sq.queue_dir(), name), "wb") as f:
            f.write(data)

    def test_corrupt_files_are_moved_aside_and_the_rest_delivered(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sent = [make_message("good %d" % i, "Good message %d.\r\n" % i)
                for i in range(3)]
        sq.submit(sent[0], ["bob@example.net"], sender=SENDER)
        self.plant(sq, GARBAGE + ".env", b"\x00\xff garbage \x01\n" * 10)
        self.plant(sq, GARBAGE + ".msg", b"Subject: x\n\nbody\n")
        sq.submit(sent[1], ["bob@example.net"], sender=SENDER)
        self.plant(sq, TRUNCATED + ".env",
                   ("sendq-envelope 1\nid %s\ncreated 1700000000\n"
                    "sender a@example.org\nrcpt b@exa" % TRUNCATED).encode())
        self.plant(sq, TRUNCATED + ".msg", b"Subject: y\n\nbody\n")
        self.plant(sq, NO_BODY + ".env",
                   ("sendq-envelope 1\nid %s\ncreated 1700000000\n"
                    "sender a@example.org\nrcpt b@example.net\nend\n"
                    % NO_BODY).encode())
        sq.submit(sent[2], ["bob@example.net"], sender=SENDER)

        sq.start()
        msgs = exim.wait_messages(3)
        sq.wait_queue_empty()
        self.assertEqual(sorted(m.as_received() for m in msgs),
                         sorted(harness.crlf_to_lf(s) for s in sent))
        corrupt = sq.spool_subdir_files("corrupt")
        self.assertEqual(corrupt, sorted([
            GARBAGE + ".env", GARBAGE + ".msg", GARBAGE + ".reason",
            TRUNCATED + ".env", TRUNCATED + ".msg", TRUNCATED + ".reason",
            NO_BODY + ".env", NO_BODY + ".reason"]))
        d = os.path.join(sq.spool, "corrupt")
        for qid in (GARBAGE, TRUNCATED, NO_BODY):
            with open(os.path.join(d, qid + ".reason")) as f:
                self.assertNotEqual(f.read().strip(), "")
            sq.wait_log(r"msgid=%s is corrupt, moved to" % qid)
        with open(os.path.join(d, NO_BODY + ".reason")) as f:
            self.assertIn("without message file", f.read())
        self.assertTrue(sq.running())
        # The queue keeps working after the scan.
        late = make_message("late", "After the corrupt ones.\r\n")
        sq.submit(late, ["bob@example.net"], sender=SENDER)
        exim.wait_messages(4)
        sq.wait_queue_empty()
        self.assertStoppedCleanly(sq)


class BodyChangedInQueueTest(harness.IntegrationTest):
    """sendqd reads a body to the size the queue index took when it
    queued the message (no fstat, no read for the end of file): a file
    that is shorter or longer by then fails that delivery."""

    def changed_body(self, change, word):
        # The server refuses MAIL (451) until healed: the message is
        # queued and tried once, then changed, then tried again.
        fake = FakeServer(self.dir, ["--mail-reply", "451 4.3.0 later"],
                          "none", self.certs)
        self.addCleanup(fake.stop)
        sh = {"host": "127.0.0.1", "port": fake.port, "tls": "none",
              "max_connections": 1}
        sh.update(TIMEOUTS)
        sq = self.new_sendq(sh, name="fake")
        (qid,) = sq.fill(1, make_message(
            "changed", "A line of the body.\r\n" * 200, sender=SENDER,
            to=("bob@example.net",)))
        path = os.path.join(sq.queue_dir(), qid + ".msg")
        size = os.path.getsize(path)
        sq.start()
        wait_for(lambda: sq.delivery_lines("deferred"), timeout=WAIT,
                 what="the first deferred delivery line (451 to MAIL)")
        change(path, size)
        fake.heal()
        # The second attempt's line (a message sent as if whole would
        # say sent).
        line = wait_for(
            lambda: sq.delivery_lines("sent") or
            [d for d in sq.delivery_lines("deferred")
             if "changed in the queue" in d.get("reply", "")],
            timeout=WAIT, what="a deferral naming the changed file")[0]
        self.assertEqual(line.get("result"), "deferred", line["line"])
        self.assertIn("%s than its %d bytes" % (word, size), line["reply"],
                      line["line"])
        self.assertEqual(line["msgid"], qid)
        # Nothing was sent as a whole message, nothing was bounced: the
        # message waits in the queue.
        self.assertEqual(fake.saved(), [])
        self.assertEqual(sq.delivery_lines("sent"), [])
        self.assertEqual(sq.delivery_lines("failed"), [])
        self.assertIn(qid, sq.queued())
        self.assertStoppedCleanly(sq)

    def test_a_body_cut_short_in_the_queue_is_not_sent(self):
        self.changed_body(lambda path, size: os.truncate(path, size // 2),
                          "shorter")

    def test_a_body_grown_in_the_queue_is_not_sent(self):
        def grow(path, size):
            with open(path, "ab") as f:
                f.write(b"Appended after queueing.\n")
        self.changed_body(grow, "longer")


if __name__ == "__main__":
    harness.main()
