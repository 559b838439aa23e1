#!/usr/bin/env python3
"""Server faults a real SMTP server will not produce, against the real
sendqd: stalls at every stage, a server that drips bytes, missing or
refused STARTTLS, bytes injected after the STARTTLS 220, malformed and
oversized replies, a close or reset right after the final dot, 421, TLS
alerts, a 554 greeting.  (What the policy makes permanent or makes the
relay rest, 550 5.7.1 and 530 to MAIL, is in test_policy.py.)

Every case runs the same script: sendq one message (sendqd is down, so
it waits in maildrop/), start sendqd against
tests/tools/fake_smtp_server.py doing the fault (it picks the message up
and queues it), and wait for the first result=deferred delivery line.  Then the message must still be queued,
nothing may be logged as sent (or failed), and the reason must be named.
Then the fake server is healed (a file it checks at every accept) and the
next retry, with the same configuration, must deliver the message intact.
Finally every faulty connection must have produced exactly one deferred
delivery line, each naming the reason.

Timeouts are set low in the config (2s) so a stall ends quickly; the
cases run in parallel threads (each with its own server, spool and
sendqd) to keep the file short in wall time.  Nothing waits a fixed time:
every wait polls a condition with a deadline.
"""

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import threading
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

FAKE = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                    "fake_smtp_server.py")
SENDER = "alice@example.org"
RCPT = "bob@example.net"
WAIT = max(harness.DEFAULT_TIMEOUT, 40)

# Low timeouts for every case: a stall ends after 2s.  Under valgrind
# (SENDQ_VALGRIND=1) sendqd runs some 20 times slower, a TLS handshake
# takes seconds: the same stalls, four times the patience.
SLOW = 4 if harness.valgrind_prefix() else 1
TIMEOUTS = {
    "timeout_connect": "%ds" % (5 * SLOW),
    "timeout_tls": "%ds" % (3 * SLOW),
    "timeout_greeting": "%ds" % (2 * SLOW),
    "timeout_command": "%ds" % (2 * SLOW),
    "timeout_data_block": "%ds" % (2 * SLOW),
    "timeout_data_end": "%ds" % (2 * SLOW),
}


class Case:
    """One fault.  args: fake server options; tls: transport; reason: a
    regex the deferred delivery lines must match; big: send a message
    large enough to fill the socket buffers; config: extra smarthost
    keys (override TIMEOUTS); reuse: the fault refuses one message but
    leaves the connection usable (each refused MAIL is an attempt)."""

    def __init__(self, name, args, reason, tls="none", big=False,
                 config=None, reuse=False):
        self.name = name
        self.reuse = reuse
        self.args = args
        self.reason = reason
        self.tls = tls
        self.big = big
        self.config = config or {}


CASES = [
    Case("stall_at_greeting", ["--stall", "greeting"],
         r"timeout after \d+s waiting for the greeting"),
    Case("stall_after_ehlo", ["--stall", "ehlo"],
         r"timeout after \d+s waiting for reply to EHLO"),
    Case("stall_after_mail", ["--stall", "mail"],
         r"timeout after \d+s waiting for reply to MAIL"),
    Case("stall_after_data_354", ["--stall", "body", "--rcvbuf", "4096"],
         r"timeout after \d+s sending the message body", big=True),
    Case("stall_after_final_dot", ["--stall", "end"],
         r"timeout after \d+s waiting for reply to end of DATA"),
    Case("stall_in_tls_handshake", ["--stall", "tls"],
         r"timeout after \d+s in the TLS handshake", tls="implicit"),
    Case("stall_in_starttls_handshake", ["--stall", "tls"],
         r"timeout after \d+s in the TLS handshake", tls="starttls"),
    Case("drip_greeting_cut_by_greeting_timeout", ["--drip", "greeting"],
         r"timeout after \d+s waiting for the greeting"),
    Case("drip_greeting_cut_by_session_max", ["--drip", "greeting"],
         r"session_max of \d+s exceeded before the session was ready "
         r"\(still waiting for the greeting",
         config={"timeout_greeting": "1m",
                 "session_max": "%ds" % (3 * SLOW)}),
    Case("drip_final_reply_cut_by_session_max", ["--drip", "end"],
         r"session_max of \d+s exceeded sending the message \(still waiting "
         r"for reply to end of DATA",
         config={"timeout_data_end": "1m", "session_max": "%ds" % (3 * SLOW)}),
    Case("no_starttls_offered", ["--no-starttls"],
         r"STARTTLS not offered", tls="starttls"),
    Case("starttls_refused_454",
         ["--starttls-reply", "454 4.7.0 TLS not available"],
         r"STARTTLS failed: 454", tls="starttls"),
    Case("bytes_injected_after_starttls_220",
         ["--inject", "250 2.0.0 injected\\r\\n"],
         r"(?i)inject", tls="starttls"),
    Case("malformed_reply", ["--malformed", "ehlo"],
         r"protocol error"),
    Case("malformed_reply_before_250_to_final_dot", ["--malformed", "end"],
         r"protocol error"),
    Case("oversized_reply_line", ["--oversized-line", "ehlo"],
         r"protocol error"),
    Case("oversized_multiline_reply", ["--oversized-reply", "ehlo"],
         r"protocol error"),
    Case("close_after_final_dot_without_reply", ["--drop", "end"],
         r"connection closed by"),
    Case("reset_after_final_dot_without_reply", ["--reset", "end"],
         r"(?i)(reset|connection closed by)"),
    Case("421_at_greeting",
         ["--greeting", "421 4.3.2 Service not available"], r"421"),
    Case("421_to_mail", ["--mail-reply", "421 4.3.0 Try again later"],
         r"421"),
    Case("554_greeting_is_not_permanent",
         ["--greeting", "554 5.7.1 No SMTP service here"],
         r"554 5.7.1 No SMTP service"),
    Case("tls_alert_instead_of_server_hello", ["--tls-alert"],
         r"(?i)(handshake|alert|tls)", tls="implicit"),
    Case("tls_alert_after_starttls_220", ["--tls-alert"],
         r"(?i)(handshake|alert|tls)", tls="starttls"),
]


class FakeServer:
    """tests/tools/fake_smtp_server.py in workdir, faulty until heal()."""

    def __init__(self, workdir, args, tls, certs):
        self.received = os.path.join(workdir, "received")
        self.conn_log = os.path.join(workdir, "fake-conns.log")
        self.heal_file = os.path.join(workdir, "healed")
        self.stderr_path = os.path.join(workdir, "fake.stderr")
        os.makedirs(self.received)
        argv = [sys.executable, FAKE, "--port", "0", "--save",
                self.received, "--conn-log", self.conn_log,
                "--heal-file", self.heal_file, "--verbose"]
        if tls != "none":
            cert, key = certs.good
            argv += ["--tls", tls, "--cert", cert, "--key", key]
        argv += args
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=self._stderr,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.stop()
            raise harness.HarnessError("fake server did not start: %r"
                                       % line)
        self.port = int(m.group(1))

    def heal(self):
        with open(self.heal_file, "w"):
            pass

    def events(self):
        try:
            with open(self.conn_log) as f:
                return [ln.split() for ln in f]
        except FileNotFoundError:
            return []

    def connections(self):
        """{n: "fault" | "normal"} of the accepted connections.  A
        session accepted faulty that healed at its EHLO or MAIL (the heal
        came while sendqd was connecting) never met its fault: normal.
        (The server never heals a session in the middle of a transaction,
        where a pipelining client's RCPT and DATA follow a fault it has
        already met.)"""
        out = {}
        for e in self.events():
            if e[1] in ("fault", "normal"):
                out[int(e[0])] = e[1]
            elif e[1] == "healed":
                out[int(e[0])] = "normal"
        return out

    def mail_replies(self):
        """Codes of the replies to MAIL, in order."""
        return [e[2] for e in self.events() if e[1] == "mail"]

    def saved(self):
        """Message bytes the server received (DATA up to the dot)."""
        out = []
        for name in sorted(os.listdir(self.received)):
            if name.endswith(".eml"):
                with open(os.path.join(self.received, name), "rb") as f:
                    out.append(f.read())
        return out

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()[-4000:]

    def stop(self):
        if self.proc is not None:
            harness.stop_pid(self.proc.pid)
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
            self._stderr.close()


class Observed:
    """What one case saw, for the test method to check."""
    error = None
    qid = None
    queued_while_faulty = None
    sent_while_faulty = None
    failed_while_faulty = None
    first_deferred = None
    deferred = ()
    sent = ()
    failed = ()
    queued_after = None
    connections = None
    mail_replies = ()
    saved = ()
    message = None
    exit_code = None
    log = ""
    fake_stderr = ""


def run_case(case, basedir, certs):
    obs = Observed()
    workdir = tempfile.mkdtemp(prefix=case.name + "-", dir=basedir)
    fake = sq = None
    try:
        tls = case.tls
        fake = FakeServer(workdir, case.args, tls, certs)
        sh = {"host": "127.0.0.1", "port": fake.port, "tls": tls}
        if tls != "none":
            sh.update(trust="ca_file", ca_file=certs.ca.cert)
        sh.update(TIMEOUTS)
        sh.update(case.config)
        sq = harness.Sendq(workdir, sh, name="fake")
        body = "Fault case %s.\r\n" % case.name
        if case.big:
            # Far more than the socket buffers hold, so the body writes
            # block while the server does not read.
            body += ("x" * 998 + "\r\n") * 8000
        obs.message = make_message("fault %s" % case.name, body)
        sq.submit(obs.message, [RCPT], sender=SENDER)
        sq.start()      # sendq dropped it: sendqd queues it at start
        obs.qid = sq.one_queued()
        obs.first_deferred = harness.wait_for(
            lambda: sq.delivery_lines("deferred"), timeout=WAIT,
            what="a deferred delivery line")[0]
        # While the server misbehaves: still queued, never sent.
        obs.queued_while_faulty = sq.queued()
        obs.sent_while_faulty = sq.delivery_lines("sent")
        obs.failed_while_faulty = sq.delivery_lines("failed")
        fake.heal()
        harness.wait_for(lambda: sq.delivery_lines("sent"), timeout=WAIT,
                         what="a sent delivery line after healing")
        sq.wait_queue_empty(timeout=WAIT)
        obs.queued_after = sq.queued()
        obs.deferred = sq.delivery_lines("deferred")
        obs.sent = sq.delivery_lines("sent")
        obs.failed = sq.delivery_lines("failed")
        obs.exit_code = sq.stop()
        obs.connections = fake.connections()
        obs.mail_replies = fake.mail_replies()
        obs.saved = fake.saved()
    except Exception:                   # reported by the test method
        obs.error = traceback.format_exc()
    finally:
        if sq is not None:
            try:
                sq.stop()
            except Exception:
                pass
            obs.log = sq.log_text()
        if fake is not None:
            fake.stop()
            obs.fake_stderr = fake.stderr()
    return obs


class Faults(harness.IntegrationTest):
    """One test per case; all cases run at once in threads, started by
    the first test that needs a result."""

    _lock = threading.Lock()
    _pool = None
    _futures = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._futures = None

    @classmethod
    def tearDownClass(cls):
        if cls._pool is not None:
            cls._pool.shutdown(wait=True)
            cls._pool = None
        super().tearDownClass()

    @classmethod
    def result(cls, name):
        with cls._lock:
            if cls._futures is None:
                cls._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=len(CASES))
                cls._futures = {
                    c.name: cls._pool.submit(run_case, c, cls.class_dir,
                                             cls.certs)
                    for c in CASES}
        return cls._futures[name].result()

    def check(self, case):
        obs = self.result(case.name)
        try:
            self.check_observed(case, obs)
        except AssertionError as e:
            raise AssertionError("%s\n---- sendqd log\n%s\n---- fake server"
                                 "\n%s" % (e, obs.log, obs.fake_stderr))

    def check_observed(self, case, obs):
        self.assertIsNone(obs.error)
        # While faulty: queued, nothing sent or failed, reason named.
        self.assertEqual(obs.queued_while_faulty, [obs.qid])
        self.assertEqual(obs.sent_while_faulty, [])
        self.assertEqual(obs.failed_while_faulty, [])
        d = obs.first_deferred
        self.assertEqual(d.get("msgid"), obs.qid, d["line"])
        self.assertRegex(d.get("reply", ""), case.reason)
        # Healed: delivered once, intact, queue empty, clean stop.
        self.assertEqual(obs.queued_after, [])
        self.assertEqual(len(obs.sent), 1, obs.sent)
        self.assertEqual(obs.sent[0].get("msgid"), obs.qid)
        self.assertEqual(obs.failed, [])
        self.assertEqual(obs.exit_code, 0, "sendqd did not exit 0")
        self.assertIn(obs.message, obs.saved)
        # One deferred line per attempt, each with the reason.  An
        # attempt is a faulty connection, or with reuse a refused MAIL
        # (the connection stays usable and carries the retries).
        if case.reuse:
            refused = [c for c in obs.mail_replies if c[0] != "2"]
            self.assertGreaterEqual(len(refused), 1)
            self.assertEqual(len(obs.deferred), len(refused),
                             [x["line"] for x in obs.deferred])
        else:
            faulty = [n for n, w in obs.connections.items()
                      if w == "fault"]
            self.assertGreaterEqual(len(faulty), 1)
            self.assertEqual(len(obs.deferred), len(faulty),
                             [x["line"] for x in obs.deferred])
            # Every connection after the healing was a normal one.
            normal = [n for n, w in obs.connections.items()
                      if w == "normal"]
            self.assertEqual(len(normal), 1, obs.connections)
        for x in obs.deferred:
            self.assertEqual(x.get("msgid"), obs.qid, x["line"])
            self.assertRegex(x.get("reply", ""), case.reason)


def _make_test(case):
    def test(self):
        self.check(case)
    test.__name__ = "test_" + case.name
    test.__doc__ = "%s: deferred, kept, then delivered" % case.name
    return test


for _case in CASES:
    setattr(Faults, "test_" + _case.name, _make_test(_case))


if __name__ == "__main__":
    harness.main()
