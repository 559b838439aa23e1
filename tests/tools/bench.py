"""bench.py - measure sendq against a private Exim (run by scripts/bench).

Phase 1: N messages through `sendq` with sendqd stopped (each accept is
durable: data and directory fsynced before exit 0).
Phase 2: start sendqd and time until Exim holds all N and the queue is
empty; count the SMTP connections Exim saw; read sendqd's peak RSS.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import harness  # noqa: E402


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
    finally:
        if sq is not None and sq.running():
            sq.stop()
        if exim is not None:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
