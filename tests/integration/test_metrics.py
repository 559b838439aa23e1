#!/usr/bin/env python3
"""[sendq] metrics_listen: Prometheus metrics of sendqd (issue 12 item 4).

One sendqd with four smarthosts, each a tests/tools/fake_smtp_server.py
playing a part: "ok" accepts (delivered, a second message on the same
connection: reused), "slow" answers RCPT 450 (deferred), "reject"
answers RCPT 550 (bounced), "tlsbad" is plain text where sendq expects
implicit TLS (a TLS handshake failure, relay down), plus an OAuth
smarthost "oauth" without a refresh token (held).  Messages come in
by each intake path: maildrop (queued while sendqd is down), submit (sendq
while it runs) and smtp (the [intake] listener).  The scrape is checked
with `promtool check metrics` (Debian's prometheus package) before and
after, and every counter must have moved by what the scenario did; the
same over a unix socket.  A reload that changes metrics_listen is refused
and the old endpoint keeps answering.  Every wait polls a condition."""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
OK_FROM = "alice@example.org"
SLOW_FROM = "slow@example.org"
REJECT_FROM = "reject@example.org"
TLSBAD_FROM = "tls@example.org"




def parse(text):
    """{(name, frozenset(labels.items())): value} of an exposition."""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', ln)
        if not m:
            raise AssertionError("malformed sample line: %r" % ln)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                 m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTest(harness.IntegrationTest):

    def fake(self, args=()):
        f = harness.FakeSmtp(args)
        self.addCleanup(f.stop)
        return f

    def scrape_tcp(self, port, path="/metrics"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), \
                r.read().decode()
        finally:
            c.close()

    def promtool(self, text):
        self.assertTrue(os.path.exists(PROMTOOL), "promtool missing: apt "
                        "install prometheus (scripts/setup)")
        p = subprocess.run([PROMTOOL, "check", "metrics"],
                           input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + text)
        self.assertEqual(p.stdout.decode().strip(), "", "promtool lint")

    def setup_sendq(self, metrics_listen):
        ok = self.fake()
        slow = self.fake(["--rcpt-reply", "450 4.2.0 later"])
        reject = self.fake(["--rcpt-reply", "550 5.1.1 no such user"])
        state = os.path.join(self.dir, "state")
        os.makedirs(os.path.join(state, "oauth"), mode=0o700)
        self.smtp_port = harness.free_port()
        d = tempfile.mkdtemp(prefix="sq-met-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        # Idle connections stay open for the whole test (the reuse
        # counter must move, however slow the machine).
        sh = {"host": "127.0.0.1", "tls": "none", "idle_timeout": "10m"}
        more = [
            ("slow", dict(sh, port=slow.port, match_sender=SLOW_FROM)),
            ("reject", dict(sh, port=reject.port,
                            match_sender=REJECT_FROM)),
            ("tlsbad", dict(sh, port=ok.port, tls="implicit",
                            trust="insecure", match_sender=TLSBAD_FROM)),
            ("oauth", dict(sh, port=ok.port, user="u@example.org",
                           oauth_token_endpoint="https://127.0.0.1:9/t",
                           oauth_client_id="sendq-test",
                           match_sender="nobody@example.org")),
        ]
        sq = self.new_sendq(
            dict(sh, port=ok.port), name="ok",
            extra_sendq={"control_socket": os.path.join(d, "c.sock"),
                         "state_dir": state,
                         "metrics_listen": metrics_listen},
            more_smarthosts=more)
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % self.smtp_port)
        return sq

    def test_every_metric_moves_and_promtool_accepts_them(self):
        port = harness.free_port()
        sq = self.setup_sendq("127.0.0.1:%d" % port)
        # maildrop: queued while sendqd is down.
        sq.submit(make_message("dropped", "x\r\n"), ["bob@example.net"],
                  sender=OK_FROM)
        sq.start()
        wait_for(lambda: harness.port_accepts(port), what="metrics port")
        status, ctype, text = self.scrape_tcp(port)
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        self.promtool(text)
        before = parse(text)
        self.assertEqual(self.scrape_tcp(port, "/")[0], 404)

        wait_for(lambda: sq.queued() == [], what="the dropped message out")
        # submit, twice to ok (the second on the same connection).
        sq.submit(make_message("one", "x\r\n"), ["bob@example.net"],
                  sender=OK_FROM)
        wait_for(lambda: sq.queued() == [], what="one delivered")
        sq.submit(make_message("two", "x\r\n"), ["bob@example.net"],
                  sender=OK_FROM)
        # smtp: through the listener.
        wait_for(lambda: harness.port_accepts(self.smtp_port),
                 what="the SMTP listener")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as c:
            c.sendmail(OK_FROM, ["carol@example.net"],
                       make_message("three", "x\r\n"))
        for frm, subj in ((SLOW_FROM, "slow"), (REJECT_FROM, "reject"),
                          (TLSBAD_FROM, "tls")):
            sq.submit(make_message(subj, "x\r\n", sender=frm),
                      ["dave@example.net"], sender=frm)

        def moved():
            s = parse(self.scrape_tcp(port)[2])
            return (val(s, "sendq_recipients_delivered_total",
                        relay="ok") >= 4 and
                    val(s, "sendq_recipients_deferred_total",
                        relay="slow") >= 1 and
                    val(s, "sendq_recipients_bounced_total",
                        relay="reject") >= 1 and
                    val(s, "sendq_tls_handshake_failures_total",
                        relay="tlsbad", reason="handshake") >= 1 and s)
        after = wait_for(moved, what="every counter moved")
        status, _, text = self.scrape_tcp(port)
        self.promtool(text)

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)
        for path in ("maildrop", "submit", "smtp"):
            self.assertGreaterEqual(val(after, "sendq_messages_accepted_"
                                    "total", path=path), 1, path)
        self.assertGreaterEqual(delta("sendq_messages_accepted_total",
                                      path="submit"), 5)
        # ok's connection may have been opened for the dropped message,
        # before the first scrape; it stays open (idle_timeout 10m).
        self.assertGreaterEqual(val(after, "sendq_connections_opened_total",
                                    relay="ok"), 1)
        self.assertGreaterEqual(delta("sendq_connections_reused_total",
                                      relay="ok"), 1)
        self.assertGreaterEqual(delta("sendq_connections_opened_total",
                                      relay="tlsbad"), 1)
        self.assertGreaterEqual(delta("sendq_delivery_latency_seconds_count",
                                      relay="ok"), 4)
        self.assertEqual(val(after, "sendq_delivery_latency_seconds_bucket",
                             relay="ok", le="+Inf"),
                         val(after, "sendq_delivery_latency_seconds_count",
                             relay="ok"))
        # Gauges.
        self.assertGreaterEqual(val(after, "sendq_queue_messages"), 2)
        self.assertGreaterEqual(val(after, "sendq_queue_oldest_age_seconds"),
                                0)
        self.assertGreater(val(after, "sendq_spool_free_bytes"), 0)
        # The messages came through the write-ahead log, held in memory.
        self.assertGreaterEqual(delta("sendq_spool_log_messages_total"), 5)
        self.assertGreaterEqual(delta("sendq_spool_held_messages_total"), 5)
        self.assertGreaterEqual(val(after, "sendq_spool_log_syncs_total"), 1)
        self.assertIn(("sendq_spool_held_messages", frozenset()), after,
                      "the held-messages gauge")
        self.assertEqual(val(after, "sendq_relay_up", relay="ok"), 1)
        self.assertEqual(val(after, "sendq_relay_up", relay="tlsbad"), 0)
        # No refresh token stored: authsrc holds the relay at start.
        self.assertEqual(val(after, "sendq_oauth_token_state",
                             relay="oauth", state="held"), 1)
        for state in ("valid", "expired", "no_token"):
            self.assertEqual(val(after, "sendq_oauth_token_state",
                                 relay="oauth", state=state), 0, state)
        self.assertEqual(val(after, "sendq_relay_up", relay="oauth"), 0)
        self.assertNotIn(("sendq_oauth_token_state", frozenset(
            {"relay": "ok", "state": "valid"}.items())), after)

        # A reload that changes metrics_listen is refused; the endpoint
        # stays where it was.
        other = harness.free_port()
        with open(sq.config) as f:
            text = f.read()
        with open(sq.config, "w") as f:
            f.write(text.replace("metrics_listen = 127.0.0.1:%d" % port,
                                 "metrics_listen = 127.0.0.1:%d" % other))
        p = subprocess.run([harness.sendq_binary("sendqctl"), "-C",
                            sq.config, "reload"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"metrics_listen changed: a reload cannot apply it",
                      p.stderr)
        self.assertEqual(self.scrape_tcp(port)[0], 200)
        self.assertFalse(harness.port_accepts(other))
        self.assertRegex(sq.log_text(), r"reload refused, the running "
                         r"configuration stays: .*metrics_listen changed")
        self.assertStoppedCleanly(sq)

    def test_unix_socket_endpoint(self):
        d = tempfile.mkdtemp(prefix="sq-mu-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "metrics.sock")
        sq = self.setup_sendq("unix:" + path)
        sq.start()
        wait_for(lambda: os.path.exists(path), what="the metrics socket")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o660)
        data = harness.unix_socket_request(
            path, b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n", timeout=10)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200") or
                        head.startswith(b"HTTP/1.1 200"), head)
        self.promtool(body.decode())
        self.assertIn(b'sendq_relay_up{relay="ok"} 1', body)
        self.assertStoppedCleanly(sq)
        self.assertFalse(os.path.exists(path), "socket removed at exit")

    def test_bad_metrics_listen_is_a_configuration_error(self):
        sq = self.setup_sendq("localhost")
        sq.start()
        wait_for(lambda: not sq.running(), what="sendqd to exit")
        self.assertEqual(sq.stop(), 78)
        self.assertIn("metrics_listen: \"localhost\" is not ADDRESS:PORT",
                      sq.log_text())


if __name__ == "__main__":
    harness.main()
