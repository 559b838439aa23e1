#!/usr/bin/env python3
"""Crash recovery (issue 4): 1,000 messages are queued through sendqd
(streamed over the control socket, 16 at once, sharing group commits:
one in 20 by `sendq`, the others by the test itself with the frames
`sendq` sends, since 1,000 sanitized `sendq` processes cost more CPU
than the rest of the run) while its smarthost, a private Exim, is not up
yet; Exim starts, and sendqd, relaying them, is killed with SIGKILL once
about a third have arrived (the wait is on Exim's count, not on time), then
started again.  Delivery is at-least-once: every message must arrive, each
copy complete and byte for byte what was submitted (nothing half-written
is ever sent); the few that were in flight at the kill may arrive twice,
and those duplicates are counted and printed.  Afterwards the spool holds
nothing: no tmp/ leftovers, an empty queue/, nothing in failed/."""

import concurrent.futures
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import crlf_to_lf, make_message, wait_for  # noqa: E402
from test_submit import ENV, frames, raw_submit  # noqa: E402

SENDER = "alice@example.org"
COUNT = 1000
PREFIX = "crash"


def message(i):
    return make_message("%s %d" % (PREFIX, i),
                        "Message %d of %d.\r\n.A dotted line.\r\n%s\r\n" %
                        (i, COUNT, "x" * (i % 700)),
                        msgid="<crash.%d.%d@sendq.test>" % (i, os.getpid()))


def stream_all(sq, messages, threads=16):
    """Submit each message over sendqd's control socket as `sendq` does
    (ENV: alice@example.org to bob@example.net), `threads` at once;
    every answer must be "ok ID"."""
    def one(m):
        return raw_submit(sq.control_socket, frames(ENV, m), timeout=60)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(one, messages))
    bad = [a for a in answers if not re.match(r"ok [0-9A-F]+\n$", a)]
    if bad:
        raise AssertionError("%d of %d submissions refused, first: %r" % (
            len(bad), len(messages), bad[0]))


class CrashRecovery(harness.IntegrationTest):

    def test_kill_9_mid_run_then_restart_delivers_every_message(self):
        started = time.monotonic()
        exim = self.new_exim()          # ports chosen, not started
        # retry_max bounds the probes of the down relay (the backoff over
        # its failures in a row), so sendqd finds Exim soon once it is up.
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            log_level="info",
                            extra_queue={"retry_max": "2s"})
        sq.start()
        pid = sq.pid()
        wait_for(lambda: os.path.exists(sq.control_socket),
                 what="the control socket")
        sent = {i: message(i) for i in range(COUNT)}
        stream_all(sq, [sent[i] for i in range(COUNT) if i % 20])
        sq.submit_many([(sent[i], ["bob@example.net"], SENDER)
                        for i in range(0, COUNT, 20)], threads=4)
        self.assertEqual(len(sq.queued()), COUNT)
        self.assertEqual(sq.maildrop_files(), [])
        self.assertEqual(exim.message_ids(), [])
        queued_at = time.monotonic()

        exim.start()
        wait_for(lambda: len(exim.message_ids()) >= COUNT // 3,
                 timeout=harness.scaled(60), interval=0.005,
                 what=lambda: "a third of the messages at Exim (has %d)" %
                 len(exim.message_ids()))
        self.assertEqual(sq.kill(), -9, "sendqd (pid %d) was not killed "
                         "by SIGKILL" % pid)
        at_kill = len(exim.message_ids())
        left = len(sq.queued()) + len(sq.maildrop_files())
        print("\nkilled sendqd pid %d with %d message(s) at Exim, %d still "
              "queued" % (pid, at_kill, left), file=sys.stderr)
        self.assertGreater(left, 0, "everything was delivered before the "
                           "kill: nothing left to recover")

        sq.start()
        sq.wait_queue_empty(timeout=harness.scaled(60))
        wait_for(lambda: not sq.spool_subdir_files("queue") and
                 not sq.spool_subdir_files("tmp") and
                 not sq.maildrop_files(),
                 what=lambda: "empty queue/ and tmp/ (spool: %s)" %
                 sq.spool_files())
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        self.assertStoppedCleanly(sq)
        self.assertEqual(sq.exit_codes, [-9, 0])

        # What Exim holds: every message at least once, every copy intact.
        copies = {}
        bad = []
        rx = re.compile(r"^%s (\d+)$" % PREFIX)
        for m in exim.messages():
            mm = rx.match(m.header("subject") or "")
            if not mm or int(mm.group(1)) not in sent:
                bad.append("unexpected message %s subject %r" %
                           (m.id, m.header("subject")))
                continue
            i = int(mm.group(1))
            copies[i] = copies.get(i, 0) + 1
            if m.sender != SENDER or m.recipients != ["bob@example.net"]:
                bad.append("%s (%s): envelope <%s> -> %s" % (
                    m.id, i, m.sender, m.recipients))
            if m.as_received() != crlf_to_lf(sent[i]):
                bad.append("%s (%s): content differs from what was "
                           "submitted (%d bytes, expected %d)" % (
                               m.id, i, len(m.as_received()),
                               len(crlf_to_lf(sent[i]))))
        missing = sorted(set(sent) - set(copies))
        dups = {i: c for i, c in sorted(copies.items()) if c > 1}
        print("crash run: %d submitted, %d arrived (%d distinct), "
              "%d duplicated%s; queueing %.1fs, total %.1fs" % (
                  COUNT, sum(copies.values()), len(copies), len(dups),
                  (": " + ", ".join("%d x%d" % kv for kv in dups.items()))
                  if dups else "", queued_at - started,
                  time.monotonic() - started), file=sys.stderr)
        self.assertEqual(bad, [])
        self.assertEqual(missing, [], "messages never delivered")
        # At-least-once allows duplicates of what was in flight at the
        # kill; more than a couple of connections' worth would mean the
        # spool forgot deliveries that were long done.
        self.assertLessEqual(len(dups), 100, dups)


if __name__ == "__main__":
    harness.main()
