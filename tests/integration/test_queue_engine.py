#!/usr/bin/env python3
"""The queue engine (issue 4) against real Exim servers on loopback:

- connection pools: 500 messages over max_connections = 2 all arrive,
  each exactly once, over a handful of connections (counted by Exim);
- a queue found at start (300 messages in queue/): each sent once;
- routing by sender: [smarthost alerts] match_sender goes to one Exim,
  the default smarthost to another, and nothing crosses over;
- failover: the primary's port is closed, fallback = backup takes the
  message and the log says relay=backup;
- a smarthost down then up: 20 messages stay queued, then all arrive;
- a 550 recipient: the other recipient gets the message, the sender gets
  an RFC 3464 DSN (from <>) that Python's email package reads as
  multipart/report with the right Final-Recipient, Action and Status, and
  the original leaves the queue;
- no DSN for the null sender, nor with bounce = none: failed/ keeps it.

Every message carries a numbered Subject, so what Exim stored tells which
ones arrived and how often."""

import email
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

SENDER = "alice@example.org"
GOOD = "good@example.net"
BAD = "bad@example.net"
CHECK_DSN = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                         "check_dsn.py")


def numbered(prefix, i, sender=SENDER, to=("bob@example.net",)):
    """A message whose Subject is "PREFIX I"."""
    return make_message("%s %d" % (prefix, i), "Message %s %d.\r\n" %
                        (prefix, i), sender=sender, to=to,
                        msgid="<%s.%d.%d@sendq.test>" % (
                            re.sub(r"\W", "", prefix), i, os.getpid()))


def subject_counts(exim, prefix):
    """{I: how many copies of "PREFIX I" Exim holds}."""
    counts = {}
    rx = re.compile(r"^%s (\d+)$" % re.escape(prefix))
    for m in exim.messages():
        mm = rx.match(m.header("subject") or "")
        if mm:
            n = int(mm.group(1))
            counts[n] = counts.get(n, 0) + 1
    return counts


def spool_dir_files(sq, sub):
    return sq.spool_subdir_files(sub)


def queued_errors(sq):
    """The last_error values recorded in the queued envelopes."""
    out = []
    for qid in sq.queued():
        try:
            with open(os.path.join(sq.queue_dir(), qid + ".env"),
                      errors="replace") as f:
                text = f.read()
        except FileNotFoundError:       # delivered meanwhile
            continue
        out += [ln.split(" ", 1)[1] for ln in text.splitlines()
                if ln.startswith("last_error ")]
    return out


class QueueEngineTest(harness.IntegrationTest):

    def closed_port_smarthost(self):
        """A smarthost whose port nobody listens on (connection refused)."""
        port = harness.closed_port()
        self.assertFalse(harness.port_accepts(port))
        return {"host": "127.0.0.1", "port": port, "tls": "implicit",
                "trust": "ca_file", "ca_file": self.certs.ca.cert}

    def assertExactlyOnce(self, exim, prefix, n):
        counts = subject_counts(exim, prefix)
        missing = sorted(set(range(n)) - set(counts))
        dups = {i: c for i, c in counts.items() if c > 1}
        extra = sorted(set(counts) - set(range(n)))
        self.assertEqual((missing, dups, extra), ([], {}, []),
                         "missing / duplicated {n: copies} / unexpected")

    def assertNothingLeft(self, sq):
        """Queue empty, no tmp/ leftovers, nothing held in failed/."""
        sq.wait_queue_empty()
        wait_for(lambda: not spool_dir_files(sq, "queue") and
                 not spool_dir_files(sq, "tmp"),
                 what=lambda: "empty queue/ and tmp/ (spool: %s)" %
                 sq.spool_files())
        self.assertEqual(spool_dir_files(sq, "failed"), [])

    # ------------------------------------------------------------ pools

    def test_500_messages_over_two_connections_all_arrive_once(self):
        n = 500
        exim = self.start_exim()
        sh = self.smarthost_for(exim, tls="implicit")
        # A long idle_timeout: a slow (sanitizer) submission loop must
        # not make the pool close and reopen connections between batches.
        # messages_per_connection keeps its default (500): with the old
        # 100 these 500 messages needed at least 5 connections.
        sh.update(max_connections=2, idle_timeout="30s")
        sq = self.new_sendq(sh)
        items = [(numbered("pool", i), ["bob@example.net"], SENDER)
                 for i in range(n)]
        # Half queued before sendqd starts (recovery), half while it runs
        # (new messages while connections are busy).
        sq.submit_many(items[:n // 2])
        sq.start()
        sq.submit_many(items[n // 2:])
        exim.wait_messages(n, timeout=harness.scaled(90))
        self.assertNothingLeft(sq)
        self.assertExactlyOnce(exim, "pool", n)
        self.assertEqual(len(exim.message_ids()), n)
        conns = exim.connection_count()
        print("500 messages: %d connection(s), at most %d at once" % (
            conns, exim.max_concurrent_connections()), file=sys.stderr)
        self.assertGreaterEqual(conns, 1)
        self.assertLessEqual(conns, 4, "\n".join(exim.connection_lines()))
        # Exim's "connection count" (printed above) is not asserted: it
        # drops only when Exim reaps the child, so a connection closed just
        # before a new one opens still counts and it can read high.
        self.assertStoppedCleanly(sq)

    def test_a_queue_found_at_start_is_indexed_and_sent_once(self):
        # 300 messages in queue/ before sendqd starts (recovery, not the
        # maildrop): indexed in chunks of 128 while the list of their ids
        # is given back as it is indexed (scheduler_shrink_ids).
        n = 300
        exim = self.start_exim()
        sh = self.smarthost_for(exim, tls="implicit")
        sh.update(max_connections=2, idle_timeout="30s")
        sq = self.new_sendq(sh)
        ids = sq.fill(n, numbered("found", 0))
        sq.start()
        exim.wait_messages(n, timeout=harness.scaled(90))
        self.assertNothingLeft(sq)
        self.assertEqual(len(exim.message_ids()), n)
        sent = [d["msgid"] for d in sq.delivery_lines(result="sent")]
        self.assertEqual(sorted(sent), sorted(ids), "each sent once")
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ routing

    def test_routing_by_sender_reaches_the_right_server_only(self):
        alerts_exim = self.start_exim()
        default_exim = self.start_exim()
        alerts = dict(self.smarthost_for(alerts_exim, tls="implicit"),
                      match_sender="alerts@example.org")
        sq = self.new_sendq(alerts, name="alerts", more_smarthosts=[
            ("default", self.smarthost_for(default_exim, tls="implicit"))])
        sq.start()
        n = 5
        items = []
        for i in range(n):
            items.append((numbered("alert", i, sender="alerts@example.org"),
                          ["ops@example.net"], "alerts@example.org"))
            items.append((numbered("plain", i), ["bob@example.net"],
                          SENDER))
        sq.submit_many(items, threads=1)
        alerts_exim.wait_messages(n)
        default_exim.wait_messages(n)
        self.assertNothingLeft(sq)
        self.assertExactlyOnce(alerts_exim, "alert", n)
        self.assertExactlyOnce(default_exim, "plain", n)
        self.assertEqual({m.sender for m in alerts_exim.messages()},
                         {"alerts@example.org"})
        self.assertEqual({m.sender for m in default_exim.messages()},
                         {SENDER})
        self.assertEqual(len(alerts_exim.message_ids()), n)
        self.assertEqual(len(default_exim.message_ids()), n)
        sent = wait_for(lambda: len(sq.delivery_lines("sent")) >= 2 * n and
                        sq.delivery_lines("sent"),
                        what="%d result=sent lines" % (2 * n))
        self.assertEqual(sorted(d.get("relay") for d in sent),
                         ["alerts"] * n + ["default"] * n)
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ failover

    def test_failover_to_the_fallback_when_the_primary_port_is_closed(self):
        backup_exim = self.start_exim()
        primary = dict(self.closed_port_smarthost(), fallback="backup")
        sq = self.new_sendq(primary, name="primary", more_smarthosts=[
            ("backup", self.smarthost_for(backup_exim, tls="implicit"))])
        sent = numbered("failover", 0)
        # Dropped while sendqd is down; sendqd picks it up (and names it)
        # at start, then relays it at once, so its id is read from the
        # pickup line, not from a queue/ that may already be empty.
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        self.assertEqual(len(sq.maildrop_files()), 1)
        sq.start()
        (m,) = backup_exim.wait_messages(1)
        self.assertArrivedIntact(m, sent)
        self.assertNothingLeft(sq)
        qid = sq.wait_log(r"pickup file=\S+ uid=\d+ msgid=(\S+)").group(1)
        (d,) = wait_for(lambda: sq.delivery_lines("sent"),
                        what="a result=sent log line")
        qid = re.search(r"pickup file=\S+ uid=\d+ msgid=(\S+)",
                        sq.log_text()).group(1)
        self.assertEqual(d.get("msgid"), qid, d["line"])
        self.assertIn("msgid=%s: relay primary unreachable, handing it to "
                      "fallback backup" % qid, sq.log_text())
        self.assertEqual(d.get("relay"), "backup", d["line"])
        self.assertTrue(d.get("host", "").endswith(
            ":%d" % backup_exim.implicit_port), d["line"])
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ retries

    def test_smarthost_down_then_up_delivers_everything(self):
        exim = self.new_exim()          # ports chosen, not started
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            extra_queue={"retry_max": "2s"})
        sq.start()
        n = 20
        sq.submit_many([(numbered("downup", i), ["bob@example.net"],
                         SENDER) for i in range(n)])
        # At least one attempt failed (a result=deferred line, or a
        # last_error recorded in a queued envelope: a down smarthost may
        # be probed by one connection rather than once per message);
        # every message is still queued.
        wait_for(lambda: sq.delivery_lines("deferred") or
                 queued_errors(sq), what="a failed delivery attempt")
        self.assertEqual(len(sq.queued()), n)
        self.assertTrue(sq.running())
        self.assertEqual(spool_dir_files(sq, "failed"), [])
        exim.start()
        exim.wait_messages(n)
        self.assertNothingLeft(sq)
        self.assertExactlyOnce(exim, "downup", n)
        self.assertEqual(len(exim.message_ids()), n)
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ bounces

    def dsn_check(self, dsn_bytes, final_recipient, status, action):
        """Parse a DSN with the email package and check it; also run
        tests/tools/check_dsn.py on it."""
        msg = email.message_from_bytes(dsn_bytes)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertTrue(msg.is_multipart())
        parts = msg.get_payload()
        types = [p.get_content_type() for p in parts]
        self.assertGreaterEqual(len(parts), 2, types)
        self.assertEqual(types[0], "text/plain", types)
        self.assertEqual(types[1], "message/delivery-status", types)
        # The email package splits message/delivery-status into field
        # blocks: the per-message fields, then one per recipient.
        blocks = parts[1].get_payload()
        self.assertGreaterEqual(len(blocks), 2, "no per-recipient block")
        self.assertTrue(blocks[0].get("Reporting-MTA"), "Reporting-MTA")
        rcpts = blocks[1:]
        self.assertEqual(len(rcpts), 1, [dict(b) for b in rcpts])
        r = rcpts[0]
        kind, _, addr = (r.get("Final-Recipient") or "").partition(";")
        self.assertEqual(kind.strip().lower(), "rfc822")
        self.assertEqual(addr.strip().lower(), final_recipient.lower())
        self.assertEqual((r.get("Action") or "").strip().lower(), action)
        self.assertEqual((r.get("Status") or "").strip(), status)
        path = os.path.join(self.dir, "dsn.eml")
        with open(path, "wb") as f:
            f.write(dsn_bytes)
        p = subprocess.run([sys.executable, CHECK_DSN, path,
                            "--final-recipient", final_recipient,
                            "--status", status, "--action", action],
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, "check_dsn.py: %s" %
                         p.stdout.decode(errors="replace"))
        return msg, parts

    def test_550_recipient_gets_a_dsn_and_the_other_gets_the_message(self):
        exim = self.start_exim(reject_recipients=[BAD])
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sq.start()
        sent = make_message("half refused", "One of us is unknown.\r\n",
                            to=(GOOD, BAD))
        sq.submit(sent, [GOOD, BAD], sender=SENDER)
        msgs = exim.wait_messages(2)
        self.assertNothingLeft(sq)
        copies = [m for m in msgs if m.sender == SENDER]
        dsns = [m for m in msgs if m.sender == ""]
        self.assertEqual(len(msgs), 2, [(m.sender, m.recipients)
                                         for m in msgs])
        (copy,) = copies
        (dsn,) = dsns
        self.assertEqual(copy.recipients, [GOOD])
        self.assertArrivedIntact(copy, sent)
        # The DSN: from the null sender, to the original sender.
        self.assertEqual(dsn.recipients, [SENDER])
        msg, parts = self.dsn_check(dsn.as_received(), BAD, "5.1.1",
                                    "failed")
        self.assertIn(SENDER, msg.get("To", ""))
        self.assertEqual(msg.get("Auto-Submitted", "").strip().lower(),
                         "auto-replied")
        # The good recipient is not reported; the original's headers are.
        self.assertNotIn(GOOD, parts[1].as_string())
        if len(parts) > 2:
            self.assertIn(parts[2].get_content_type(),
                          ("text/rfc822-headers", "message/rfc822"))
            self.assertIn("Subject: half refused",
                          parts[2].as_string())
        # Exim refused bad@ exactly as configured (the DSN's source).
        self.assertRegex(exim.log_text(), r"rejected RCPT <%s>: 550 5\.1\.1"
                         % re.escape(BAD))
        self.assertStoppedCleanly(sq)

    def assertHeldWithoutDsn(self, sq, exim):
        """A message to BAD ends in failed/, no DSN reaches Exim: a
        control message sent after it arrives and is the only one."""
        envs = wait_for(sq.failed_envs, what=lambda: "a failed/ID.N.env "
                        "(spool: %s)" % sq.spool_files())
        self.assertEqual(len(envs), 1, envs)
        with open(envs[0], errors="replace") as f:
            held = [ln.split(" ", 1)[1] for ln in f.read().splitlines()
                    if ln.startswith("rcpt ")]
        self.assertEqual(held, [BAD])
        # A DSN would be queued before the original leaves the queue: an
        # empty queue means none exists.
        sq.wait_queue_empty()
        control = numbered("control", 0)
        sq.submit(control, [GOOD], sender=SENDER)
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertEqual(m.header("subject"), "control 0")
        self.assertEqual(len(exim.message_ids()), 1,
                         [(x.sender, x.recipients) for x in exim.messages()])
        self.assertEqual(len(sq.failed_envs()), 1)

    def test_null_sender_message_is_never_bounced(self):
        exim = self.start_exim(reject_recipients=[BAD])
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"))
        sq.start()
        sq.submit(make_message("a bounce itself", "Undeliverable.\r\n",
                               to=(BAD,)), [BAD], sender="<>")
        self.assertHeldWithoutDsn(sq, exim)
        self.assertStoppedCleanly(sq)

    def test_bounce_none_holds_the_failure_without_a_dsn(self):
        exim = self.start_exim(reject_recipients=[BAD])
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            extra_queue={"bounce": "none"})
        sq.start()
        sq.submit(make_message("no bounce wanted", "Refused.\r\n",
                               to=(BAD,)), [BAD], sender=SENDER)
        self.assertHeldWithoutDsn(sq, exim)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
