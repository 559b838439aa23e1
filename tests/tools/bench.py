"""bench.py - measure sendq against a private Exim (run by scripts/bench).

Phase 1: N messages through `sendq` with sendqd stopped (each accept is
durable: data and directory fsynced before exit 0).
Phase 2: start sendqd and time until Exim holds all N and the queue is
empty; count the SMTP connections Exim saw; read sendqd's peak RSS.
Phase 3: parallel injection, 8 injectors and 400 messages, once with
sendqd stopped (each sendq fsyncs its own message: 3 syncs each) and once
with sendqd running (sendq hands the message over, sendqd group-commits
what arrives together: 2 syncs per group); messages/s for both, and the
syncs per message taken from sendqd's "group commit" debug lines.
"""
import re
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import harness  # noqa: E402


def parallel_phase(tmp, exim, certs, already):
    """Phase 3; already: messages Exim holds before it."""
    n, injectors = 400, 8
    d = os.path.join(tmp, "sq-par")
    os.makedirs(d)
    sockdir = tempfile.mkdtemp(prefix="sq-bench-")
    sq = harness.Sendq(d, dict(
        host="127.0.0.1", port=exim.implicit_port, tls="implicit",
        trust="ca_file", ca_file=certs.ca.cert), log_level="debug",
        extra_sendq={"control_socket": os.path.join(sockdir, "c.sock")})
    body = ("Subject: bench\nFrom: a@example.org\nTo: b@example.net\n"
            "\n" + "0123456789abcdef" * 60 + "\n").encode()
    items = [(body, ["b@example.net"], "a@example.org")] * n

    def timed():
        t0 = time.monotonic()
        sq.submit_many(items, threads=injectors)
        return time.monotonic() - t0
    try:
        t_alone = timed()
        sq.start()
        exim.wait_messages(already + n, timeout=600)
        sq.wait_queue_empty(timeout=600)
        harness.wait_for(lambda: os.path.exists(
            os.path.join(sockdir, "c.sock")), what="control socket")
        t_group = timed()
        exim.wait_messages(already + 2 * n, timeout=600)
        sq.wait_queue_empty(timeout=600)
        groups = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
            r"group commit: (\d+) messages, (\d+) syncs", sq.log_text())]
        msgs = sum(g[0] for g in groups)
        syncs = sum(g[1] for g in groups)
        print("parallel: %d injectors, %d messages: sendqd stopped %.0f "
              "msg/s (3 syncs/msg); sendqd running (group commit) %.0f "
              "msg/s (%d groups, %.2f syncs/msg, largest group %d)" % (
                  injectors, n, n / t_alone, n / t_group, len(groups),
                  syncs / msgs if msgs else float("nan"),
                  max([g[0] for g in groups] or [0])))
        sq.stop()
    finally:
        if sq.running():
            sq.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    return already + 2 * n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    tmp = tempfile.mkdtemp(prefix="sendq-bench-")
    exim = sq = None
    try:
        certs = harness.Certs(os.path.join(tmp, "certs"))
        exim = harness.Exim(os.path.join(tmp, "exim"), *certs.good)
        os.makedirs(exim.dir)
        exim.start()
        os.makedirs(os.path.join(tmp, "sq"))
        sq = harness.Sendq(os.path.join(tmp, "sq"), dict(
            host="127.0.0.1", port=exim.implicit_port, tls="implicit",
            trust="ca_file", ca_file=certs.ca.cert), log_level="info")
        body = ("Subject: bench\nFrom: a@example.org\nTo: b@example.net\n"
                "\n" + "0123456789abcdef" * 60 + "\n").encode()
        t0 = time.monotonic()
        for i in range(n):
            sq.submit(body, ["b@example.net"], sender="a@example.org")
        t_accept = time.monotonic() - t0
        print("accept:  %d messages via sendq in %.2fs = %.0f msg/s "
              "(%.2f ms each, process start + fsync)" % (
                  n, t_accept, n / t_accept, 1000 * t_accept / n))
        t0 = time.monotonic()
        sq.start()
        exim.wait_messages(n, timeout=600)
        sq.wait_queue_empty(timeout=600)
        t_relay = time.monotonic() - t0
        rss = "?"
        with open("/proc/%d/status" % sq.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss = line.split(None, 1)[1].strip()
        conns = exim.log_text().count("SMTP connection from")
        print("relay:   %d messages to Exim over implicit TLS in %.2fs = "
              "%.0f msg/s, %d connection(s), sendqd peak RSS %s" % (
                  n, t_relay, n / t_relay, conns, rss))
        sq.stop()
        parallel_phase(tmp, exim, certs, n)
    finally:
        if sq is not None and sq.running():
            sq.stop()
        if exim is not None:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
