#!/usr/bin/env python3
"""Queue policies of the queue engine (issue 4) against real servers on
loopback, what test_queue_engine.py and test_crash.py do not cover:

- a smarthost that is down (421 at the greeting) is probed by one
  connection at a time, not by every queued message: 20 queued messages,
  retry_min = 1s, and the server sees a handful of connections over
  several seconds, never more than max_connections at once;
  `sendqctl status` names it DOWN with the 421 as its last error;
- `sendqctl --json status`: per smarthost name, state, connections,
  queued and last_error are right while one smarthost is down;
- rate = 5/s: 20 messages arrive at the server no faster than the token
  bucket allows (counted per 1-second window at the server, from the
  arrival times of the saved messages; only bounds that follow from the
  limit are asserted, never how fast it went);
- bounce = admin: the DSN for a 550 recipient goes to admin_address, not
  to the sender;
- delay_warning: a recipient answered 451 at every attempt gets exactly
  one "delayed" DSN (Action: delayed) to the sender, and stays queued;
- max_age: a message older than max_age (its envelope's created time is
  backdated in the spool before sendqd starts) to a smarthost that is down
  fails with a DSN (Status 4.4.7, Action failed) routed to a healthy
  smarthost, and leaves the queue; the same for several such messages
  that wait in the down smarthost's queue (this one finds a scheduler
  bug, see test_every_expired_message_waiting_for_a_down_relay_...).

Nothing waits a fixed time: every wait polls a condition with a deadline.
Everything started is stopped by its PID (servers started in-process are
threads, closed by the test)."""

import email
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

SENDER = "alice@example.org"
GOOD = "good@example.net"
BAD = "bad@example.net"
SLOW = "slow@example.net"
ADMIN = "postmaster@example.org"
FAKE = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                    "fake_smtp_server.py")
CHECK_DSN = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                         "check_dsn.py")
GREETING_421 = "421 4.3.2 Service not available, closing channel"


def numbered(prefix, i, sender=SENDER, to=("bob@example.net",)):
    """A message whose Subject is "PREFIX I"."""
    return make_message("%s %d" % (prefix, i), "Message %s %d.\r\n" %
                        (prefix, i), sender=sender, to=to,
                        msgid="<%s.%d.%d@sendq.test>" % (
                            re.sub(r"\W", "", prefix), i, os.getpid()))


def env_lines(sq, qid):
    """The lines of queue/QID.env ([] when it is gone)."""
    try:
        with open(os.path.join(sq.queue_dir(), qid + ".env"),
                  errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def env_value(sq, qid, key):
    for ln in env_lines(sq, qid):
        k, _, v = ln.partition(" ")
        if k == key:
            return v
    return None


def backdate(sq, qid, seconds):
    """Make queued message QID look `seconds` older: rewrite the created
    line of its envelope (sendqd must not be running)."""
    path = os.path.join(sq.queue_dir(), qid + ".env")
    with open(path) as f:
        text = f.read()
    m = re.search(r"^created (\d+)$", text, re.M)
    if not m:
        raise harness.HarnessError("no created line in %s" % path)
    text = text[:m.start(1)] + str(int(m.group(1)) - seconds) + \
        text[m.end(1):]
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


class DownServer:
    """An SMTP server on 127.0.0.1 that is "down": every connection gets
    GREETING_421 and is closed once the client has gone.  It records, per
    connection, when it was accepted, when it ended (monotonic) and how
    many other connections were open at that moment."""

    def __init__(self):
        self.lock = threading.Lock()
        # [accepted, ended or None, others_open, socket]
        self.conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept_loop,
                                         daemon=True)
        self.acceptor.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                others = sum(1 for c in self.conns
                             if c[1] is None and not self._peer_closed(c))
                rec = [time.monotonic(), None, others, conn]
                self.conns.append(rec)
            t = threading.Thread(target=self._serve, args=(conn, rec),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _peer_closed(rec):
        """The client closed this connection (its FIN is queued), even if
        the thread serving it has not run since: the kernel's view, not a
        thread's, which a loaded machine may schedule late."""
        conn = rec[3]
        try:
            # select first: recv on a socket with a timeout would wait.
            if not select.select([conn], [], [], 0)[0]:
                return False
            return conn.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):   # closed by its thread meanwhile
            return True

    def _serve(self, conn, rec):
        try:
            conn.settimeout(30)
            conn.sendall((GREETING_421 + "\r\n").encode())
            while conn.recv(4096):      # until the client closes
                pass
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                rec[1] = time.monotonic()

    def snapshot(self):
        with self.lock:
            return [c[:3] for c in self.conns]

    def stop(self):
        self.stopping = True
        self.acceptor.join()
        self.sock.close()
        for t in self.threads:
            t.join(timeout=35)


class FakeServer:
    """tests/tools/fake_smtp_server.py (plain SMTP) saving every message
    in a directory; stopped by its PID."""

    def __init__(self, workdir, args=()):
        self.received = os.path.join(workdir, "received")
        os.makedirs(self.received)
        self.stderr_path = os.path.join(workdir, "fake.stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--save", self.received]
            + list(args), stdout=subprocess.PIPE, stderr=self._stderr,
            stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.stop()
            raise harness.HarnessError("fake server did not start: %r"
                                       % line)
        self.port = int(m.group(1))

    def saved(self):
        """[(mtime_ns, bytes)] of the saved messages, oldest first.  The
        server writes a message before it answers the final dot, so the
        time is when the message arrived."""
        out = []
        for name in os.listdir(self.received):
            if not name.endswith(".eml"):
                continue
            path = os.path.join(self.received, name)
            with open(path, "rb") as f:
                out.append((os.stat(path).st_mtime_ns, f.read()))
        return sorted(out)

    def stop(self):
        if self.proc is not None:
            harness.stop_pid(self.proc.pid)
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
            self._stderr.close()


class QueuePoliciesTest(harness.IntegrationTest):

    # ------------------------------------------------------------ helpers

    def control_socket(self):
        """A short path for the control socket (self.dir is too long for
        a unix socket), removed at cleanup."""
        d = tempfile.mkdtemp(prefix="sq-pol-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        return os.path.join(d, "control.sock")

    def down_server(self):
        srv = DownServer()
        self.addCleanup(srv.stop)
        return srv

    def fake_server(self, args=()):
        d = tempfile.mkdtemp(prefix="fake-", dir=self.dir)
        srv = FakeServer(d, args)
        self.addCleanup(srv.stop)
        return srv

    def closed_port(self):
        port = harness.closed_port()
        self.assertFalse(harness.port_accepts(port))
        return port

    def ctl(self, sq, *args):
        """`sendqctl -C CONFIG ARGS`: CompletedProcess with .out (text)."""
        argv = [harness.sendq_binary("sendqctl"), "-C", sq.config]
        p = subprocess.run(argv + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        sq.transcript.append("$ sendqctl %s -> exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.out, p.err))
        return p

    def status_json(self, sq):
        """status --json; exit 0 (OK) or 2 (CRITICAL: a relay down)."""
        p = self.ctl(sq, "--json", "status")
        st = json.loads(p.out)
        self.assertEqual(p.returncode, st["check"]["exit"], p.err)
        self.assertEqual(p.returncode, 2 if any(
            h["state"] != "up" for h in st["smarthosts"]) else 0, p.out)
        return st

    def wait_control(self, sq, sock):
        wait_for(lambda: os.path.exists(sock), what="the control socket")

    def dsns(self, exim):
        """Messages Exim holds from the null sender."""
        return [m for m in exim.messages() if m.sender == ""]

    def check_dsn(self, data, final_recipient, status, action):
        """tests/tools/check_dsn.py on data: multipart/report with the
        three parts and the given recipient fields."""
        path = os.path.join(self.dir, "dsn-%d.eml" % time.monotonic_ns())
        with open(path, "wb") as f:
            f.write(data)
        argv = [sys.executable, CHECK_DSN, path, "--final-recipient",
                final_recipient, "--action", action]
        if status is not None:
            argv += ["--status", status]
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, "check_dsn.py: %s" %
                         p.stdout.decode(errors="replace"))

    # ------------------------------------------------------------ probing

    def test_down_smarthost_is_probed_by_one_connection_not_per_message(
            self):
        srv = self.down_server()
        sock = self.control_socket()
        n = 20
        sq = self.new_sendq({"host": "127.0.0.1", "port": srv.port,
                             "tls": "none", "max_connections": 2},
                            name="downhost",
                            extra_sendq={"control_socket": sock},
                            extra_queue={"retry_max": "2s"})
        # All 20 dropped before sendqd starts: its first pickup queues
        # them all, all due at once.
        sq.submit_many([(numbered("probe", i), ["bob@example.net"],
                         SENDER) for i in range(n)])
        self.assertEqual(len(sq.maildrop_files()), n)
        sq.start()
        wait_for(lambda: len(sq.queued()) == n and not sq.maildrop_files(),
                 what=lambda: "%d messages picked up (queued %d)" % (
                     n, len(sq.queued())))
        want = 6

        def seen():
            c = srv.snapshot()
            return len(c) >= want and all(x[1] is not None
                                          for x in c[:want]) and c
        conns = wait_for(seen, timeout=harness.scaled(60),
                         what=lambda: "%d connections to the down server "
                         "(has %d)" % (want, len(srv.snapshot())))
        accepts = [c[0] - conns[0][0] for c in conns]
        print("down smarthost: connections at +%s s" % ", +".join(
            "%.2f" % a for a in accepts), file=sys.stderr)
        # Once the relay is known down (after the first max_connections
        # connections at most), it is probed by one connection after a
        # backoff of at least retry_min = 1s (the scheduler counts in
        # whole seconds: each probe opens in a later wall-clock second
        # than the previous connection ended).  So the 6th connection is
        # at least 3 s after the first.  Were every due message given its
        # own connection, 20 messages would make 6 connections at once.
        self.assertGreaterEqual(accepts[want - 1], 2.5,
                                "connections at %s" % accepts)
        # Never more than max_connections at once (as the server sees
        # it: a connection counts as open until the server reads EOF).
        self.assertLessEqual(max(c[2] for c in conns) + 1, 2, conns)
        # Nothing was lost or failed meanwhile.
        self.assertEqual(len(sq.queued()), n)
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        # Every connection is one attempt of one message: the attempts
        # recorded in the envelopes add up to the connections made (and
        # the messages that never got a connection have none).
        def attempts():
            return sum(int(env_value(sq, q, "attempts") or 0)
                       for q in sq.queued())
        total = len(srv.snapshot())
        self.assertLessEqual(attempts(), total)
        self.assertLess(total, n, "every message got its own connection")
        # sendqctl status names the smarthost DOWN with the 421.
        self.wait_control(sq, sock)
        p = self.ctl(sq, "status")
        self.assertEqual(p.returncode, 2, p.err)       # CRITICAL
        self.assertRegex(p.out, r"^CRITICAL: relay downhost DOWN \(421 ")
        self.assertRegex(p.out, r"smarthost downhost \(127\.0\.0\.1:%d\): "
                         r"DOWN" % srv.port)
        self.assertRegex(p.out, r"last error: [^\n]*421")
        self.assertRegex(p.out, r"queued %d\b" % n)
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ status

    def test_status_json_fields_per_smarthost_while_one_is_down(self):
        srv = self.down_server()
        sock = self.control_socket()
        unused_port = self.closed_port()
        n = 3
        sq = self.new_sendq({"host": "127.0.0.1", "port": srv.port,
                             "tls": "none", "max_connections": 2},
                            name="downhost",
                            extra_sendq={"control_socket": sock},
                            extra_queue={"retry_max": "2s"},
                            more_smarthosts=[("spare", {
                                "host": "127.0.0.1", "port": unused_port,
                                "tls": "none", "max_connections": 3,
                                "match_sender": "nobody@example.com"})])
        sq.submit_many([(numbered("json", i), ["bob@example.net"], SENDER)
                        for i in range(n)])
        sq.start()
        self.wait_control(sq, sock)

        def down():
            st = self.status_json(sq)
            hosts = {h["name"]: h for h in st["smarthosts"]}
            return hosts["downhost"]["state"] == "down" and st
        st = wait_for(down, what="downhost state down in status --json")
        self.assertEqual(st["queued"], n)
        self.assertEqual([h["name"] for h in st["smarthosts"]],
                         ["downhost", "spare"])
        d, s = st["smarthosts"]
        self.assertEqual(d["state"], "down")
        self.assertEqual(d["queued"], n)
        self.assertEqual(d["host"], "127.0.0.1")
        self.assertEqual(d["port"], srv.port)
        self.assertEqual(d["max_connections"], 2)
        # Down: at most the one probe is open.
        self.assertIn(d["connections"], (0, 1), d)
        self.assertIn("421", d["last_error"])
        self.assertIn("Service not available", d["last_error"])
        self.assertRegex(d["last_error_at"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # The other smarthost: untouched, up, nothing queued, no error.
        self.assertEqual((s["state"], s["connections"], s["queued"],
                          s["last_error"], s["max_connections"],
                          s["port"]), ("up", 0, 0, "", 3, unused_port))
        # The values follow the server: connections never exceed one
        # while it is down, and the queue count stays n.
        for _ in range(5):
            h = self.status_json(sq)["smarthosts"][0]
            if h["state"] == "down":
                self.assertLessEqual(h["connections"], 1, h)
            self.assertEqual(h["queued"], n)
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ rate

    def test_rate_limit_spaces_arrivals_at_the_server(self):
        rate = 5
        n = 20
        srv = self.fake_server()
        sq = self.new_sendq({"host": "127.0.0.1", "port": srv.port,
                             "tls": "none", "max_connections": 1,
                             "rate": "%d/s" % rate, "idle_timeout": "30s"},
                            name="capped")
        sent = [numbered("rate", i) for i in range(n)]
        sq.submit_many([(m, ["bob@example.net"], SENDER) for m in sent])
        sq.start()
        got = wait_for(lambda: len(srv.saved()) >= n and srv.saved(),
                       timeout=harness.scaled(60),
                       what=lambda: "%d messages at the server "
                       "(has %d)" % (n, len(srv.saved())))
        sq.wait_queue_empty()
        self.assertEqual(len(got), n)
        subjects = sorted(re.search(rb"Subject: rate (\d+)", b).group(1)
                          for _, b in got)
        self.assertEqual(subjects, sorted(str(i).encode()
                                          for i in range(n)))
        t = [ns / 1e9 for ns, _ in got]
        rel = [x - t[0] for x in t]
        print("rate %d/s: arrivals at +%s s" % (rate, ", +".join(
            "%.2f" % x for x in rel)), file=sys.stderr)
        # A token bucket of N tokens refilled at N/s lets at most N + N*W
        # messages start in any W seconds.  With one connection a message
        # starts only after the previous one arrived, so between arrivals
        # i and j lie the starts i+1..j: at most N + N*W + 1 arrivals in
        # any window of W = 1 s.  Without the limit all 20 would arrive
        # within a fraction of a second.
        most = max(sum(1 for y in t if x <= y < x + 1.0) for x in t)
        self.assertLessEqual(most, 2 * rate + 1,
                             "arrivals in one second; at %s" % rel)
        # The same bound over the whole run: starts 2..20 lie between the
        # first and the last arrival, so that takes at least
        # (n - 1 - N) / N = 2.8 s (a lower bound only; slack for the
        # file time granularity).
        self.assertGreaterEqual(rel[-1], (n - 1 - rate) / rate - 0.3,
                                "arrivals at %s" % rel)
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ bounces

    def test_bounce_admin_sends_the_dsn_to_admin_address_not_the_sender(
            self):
        exim = self.start_exim(reject_recipients=[BAD])
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            extra_queue={"bounce": "admin",
                                         "admin_address": ADMIN})
        sq.start()
        sent = make_message("admin bounce", "One of us is unknown.\r\n",
                            to=(GOOD, BAD))
        sq.submit(sent, [GOOD, BAD], sender=SENDER)
        msgs = exim.wait_messages(2)
        sq.wait_queue_empty()
        self.assertEqual(len(exim.message_ids()), 2,
                         [(m.sender, m.recipients) for m in msgs])
        (copy,) = [m for m in msgs if m.sender == SENDER]
        (dsn,) = self.dsns(exim)
        self.assertEqual(copy.recipients, [GOOD])
        self.assertArrivedIntact(copy, sent)
        # The DSN: from <>, to the admin only, never to the sender.
        self.assertEqual(dsn.recipients, [ADMIN])
        self.assertNotIn(SENDER, [r for m in msgs for r in m.recipients])
        self.assertIn(ADMIN, dsn.header("to") or "")
        self.assertNotIn(SENDER, dsn.header("to") or "")
        self.check_dsn(dsn.as_received(), BAD, "5.1.1", "failed")
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        self.assertRegex(sq.log_text(), r"dsn msgid=\S+ action=failed "
                         r"about=\S+ to=%s" % re.escape(ADMIN))
        self.assertStoppedCleanly(sq)

    def test_delay_warning_is_sent_once_and_the_message_stays_queued(self):
        exim = self.start_exim(defer_recipients=[SLOW])
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            extra_queue={"retry_max": "2s",
                                         "delay_warning": "2s"})
        sent = make_message("slow one", "One of us is busy.\r\n",
                            to=(GOOD, SLOW))
        sq.submit(sent, [GOOD, SLOW], sender=SENDER)
        sq.start()      # sendq dropped it: sendqd queues it at start
        qid = sq.one_queued()
        # GOOD gets the message at once; after 2 s of 451s for SLOW the
        # sender gets one "delayed" DSN.
        wait_for(lambda: self.dsns(exim), timeout=harness.scaled(40),
                 what="the delay warning at Exim")
        (copy,) = [m for m in exim.messages() if m.sender == SENDER]
        self.assertEqual(copy.recipients, [GOOD])
        self.assertArrivedIntact(copy, sent)

        def deferred():
            return [d for d in sq.delivery_lines("deferred")
                    if d.get("msgid") == qid]
        # Two more attempts after the warning: still one warning.
        after = len(deferred())
        wait_for(lambda: len(deferred()) >= after + 2,
                 timeout=harness.scaled(40),
                 what="two more attempts after the warning")
        dsns = self.dsns(exim)
        self.assertEqual(len(dsns), 1, [(m.recipients, m.header("subject"))
                                        for m in dsns])
        (dsn,) = dsns
        self.assertEqual(dsn.recipients, [SENDER])
        self.check_dsn(dsn.as_received(), SLOW, "4.2.1", "delayed")
        # Only the recipient still waiting is reported.
        parts = email.message_from_bytes(dsn.as_received()).get_payload()
        self.assertEqual(parts[1].get_content_type(),
                         "message/delivery-status")
        self.assertNotIn(GOOD, parts[1].as_string())
        self.assertIn(SLOW, parts[1].as_string())
        warnings = re.findall(r"dsn msgid=\S+ action=(\w+) about=%s "
                              % re.escape(qid), sq.log_text())
        self.assertEqual(warnings, ["delayed"])
        # Still queued, marked warned, only SLOW left, never failed.
        self.assertEqual(sq.queued(), [qid])
        self.assertEqual(env_value(sq, qid, "warned"), "1")
        self.assertEqual([ln for ln in env_lines(sq, qid)
                          if ln.startswith("rcpt ")], ["rcpt " + SLOW])
        self.assertEqual(sq.delivery_lines("failed"), [])
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        for d in deferred():
            self.assertIn("451", d.get("reply", ""), d["line"])
        self.assertStoppedCleanly(sq)

    # ------------------------------------------------------------ max_age

    def expiry_setup(self, n, max_connections=2):
        """n messages to bob@example.net, each older than max_age = 1m
        (backdated in the spool), routed by match_recipient to a
        smarthost whose port is closed; everything else (the DSNs to the
        sender at example.org) goes to a healthy Exim.  They are queued
        through sendqd (only sendqd writes queue/), which is stopped
        before they are backdated; the caller starts it again.  Returns
        (sq, exim, qids)."""
        exim = self.start_exim()
        down = {"host": "127.0.0.1", "port": self.closed_port(),
                "tls": "none", "max_connections": max_connections,
                "match_recipient": "example.net"}
        sq = self.new_sendq(down, name="down",
                            extra_queue={"max_age": "1m",
                                         "retry_max": "2s"},
                            more_smarthosts=[("healthy", self.smarthost_for(
                                exim, tls="implicit"))])
        sq.start()
        wait_for(lambda: os.path.exists(sq.control_socket),
                 what="the control socket")
        sq.submit_many([(numbered("old", i), ["bob@example.net"], SENDER)
                        for i in range(n)], threads=1)
        qids = sq.queued()
        self.assertEqual(len(qids), n)
        self.assertEqual(sq.stop(), 0)
        self.assertEqual(sq.queued(), qids)
        self.assertEqual(exim.messages(), [])
        for q in qids:
            backdate(sq, q, 120)
        return sq, exim, qids

    def assertExpiredWithDsns(self, sq, exim, qids):
        n = len(qids)
        # A DSN is queued before the message it reports on leaves the
        # queue, so an empty queue means every DSN has been relayed.
        sq.wait_queue_empty(timeout=harness.scaled(40))
        dsns = exim.messages()
        self.assertEqual(len(dsns), n, [(m.sender, m.recipients)
                                         for m in dsns])
        subjects = []
        for dsn in dsns:
            self.assertEqual(dsn.sender, "")
            self.assertEqual(dsn.recipients, [SENDER])
            self.check_dsn(dsn.as_received(), "bob@example.net", "4.4.7",
                           "failed")
            m = re.search(rb"Subject: old (\d+)", dsn.body)
            self.assertIsNotNone(m, "the original headers are quoted")
            subjects.append(int(m.group(1)))
        self.assertEqual(sorted(subjects), list(range(n)))
        abouts = re.findall(r"dsn msgid=\S+ action=failed about=(\S+)",
                            sq.log_text())
        self.assertEqual(sorted(abouts), sorted(qids))
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        # Only the DSNs were sent (by the healthy relay), none of the
        # expired messages.
        sent = sq.delivery_lines("sent")
        self.assertEqual([d for d in sent if d.get("msgid") in qids or
                          d.get("relay") != "healthy"], [])

    def test_message_older_than_max_age_fails_with_a_4_4_7_dsn(self):
        sq, exim, qids = self.expiry_setup(1)
        sq.start()
        self.assertExpiredWithDsns(sq, exim, qids)
        self.assertRegex(sq.log_text(), r"msgid=%s: expired" % qids[0])
        self.assertStoppedCleanly(sq)

    def test_every_expired_message_waiting_for_a_down_relay_gets_a_dsn(
            self):
        # Regression: expired messages waiting in a down relay's due
        # queue were settled as delivered (fate zero-filled) and vanished
        # without a DSN.  Three expired messages, one connection: every
        # one must produce its 4.4.7 DSN.
        sq, exim, qids = self.expiry_setup(3, max_connections=1)
        sq.start()
        self.assertExpiredWithDsns(sq, exim, qids)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
