#!/usr/bin/env python3
"""Spool corruption: an envelope that is garbage, truncated (no "end"
line) or without its message file is moved to spool_dir/corrupt/ with a
reason file when sendqd starts; the good messages around it are
delivered and sendqd keeps running."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

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


if __name__ == "__main__":
    harness.main()
