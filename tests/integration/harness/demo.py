"""harness.demo - the command line: demo, selftest, exim."""

import os
import shutil
import sys
import tempfile

from .ca import Certs
from .exim import Exim, exim_binary
from .message import crlf_to_lf, make_message
from .proc import HarnessError, run
from .sendq import Sendq


def selftest():
    """Check the harness itself: a private Exim accepts swaks messages over
    STARTTLS and implicit TLS and the spool parser returns them."""
    if not shutil.which("swaks"):
        raise HarnessError("swaks not found (apt-get install swaks)")
    tmp = tempfile.mkdtemp(prefix="sendq-selftest-")
    exim = None
    try:
        certs = Certs(os.path.join(tmp, "certs"))
        exim = Exim(os.path.join(tmp, "exim"), *certs.good)
        os.makedirs(exim.dir)
        exim.start()
        print("exim pid %d, STARTTLS port %d, implicit TLS port %d" % (
            exim.pid, exim.starttls_port, exim.implicit_port))
        for mode, port in (("--tls", exim.starttls_port),
                           ("--tlsc", exim.implicit_port)):
            body = "Subject: selftest %s\n\n.leading dot\nline two\n" % mode
            p = run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                     mode, "--tls-verify", "--tls-ca-path", certs.ca.cert,
                     "--from", "swaks@example.org",
                     "--to", "one@example.net,two@example.net",
                     "--auth", "PLAIN", "--auth-user", "sendq",
                     "--auth-password", "secret",
                     "--data", "-"], input=body.encode())
            if p.returncode != 0:
                raise HarnessError("swaks %s failed:\n%s" % (
                    mode, p.stdout.decode(errors="replace")))
        msgs = exim.wait_messages(2, timeout=10)
        for m in msgs:
            print("message %s from <%s> to %s" % (m.id, m.sender,
                                                  m.recipients))
            print("  headers: %s" % m.header_names())
            print("  body: %r" % m.body)
        for ln in exim.arrival_lines():
            print("  log: " + ln)
        def check(cond, what):
            if not cond:
                raise HarnessError("selftest: " + what)
        check(len(msgs) == 2, "expected 2 messages, got %d" % len(msgs))
        for m in msgs:
            check(m.sender == "swaks@example.org", "sender %r" % m.sender)
            check(m.recipients == ["one@example.net", "two@example.net"],
                  "recipients %r" % m.recipients)
            # swaks ends --data with one more line end of its own.
            check(m.body.rstrip(b"\n") == b".leading dot\nline two",
                  "body %r" % m.body)
            check(m.original_headers()[0].startswith(b"Subject: selftest"),
                  "headers %r" % m.headers)
        check(len(exim.arrival_lines()) == 2 and
              all(" X=TLS1.3:" in ln for ln in exim.arrival_lines()),
              "exim log lacks X=TLS1.3")
        print("selftest ok")
    finally:
        if exim:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def demo():
    """scripts/demo: one message from sendq through sendqd to Exim."""
    tmp = tempfile.mkdtemp(prefix="sendq-demo-")
    exim = sq = None
    ok = False
    try:
        print("== throwaway CA and server certificate (certtool) in %s"
              % tmp)
        certs = Certs(os.path.join(tmp, "certs"))
        exim = Exim(os.path.join(tmp, "exim"), *certs.good)
        os.makedirs(exim.dir)
        exim.start()
        print("== private Exim (pid %d): implicit TLS on 127.0.0.1:%d, "
              "STARTTLS on 127.0.0.1:%d" % (exim.pid, exim.implicit_port,
                                           exim.starttls_port))
        sq = Sendq(tmp, {"host": "localhost", "port": exim.implicit_port,
                         "tls": "implicit", "trust": "ca_file",
                         "ca_file": certs.ca.cert}, name="demo",
                   log_level="info")
        print("== sendq configuration %s:\n%s" % (sq.config,
                                                  sq.config_text()))
        sq.start()
        print("== sendqd started (pid %d)" % sq.proc.pid)
        msg = make_message("Hello from sendq", "This message went from "
                           "sendq through sendqd to Exim over TLS.\r\n"
                           ".A line starting with a dot.\r\n",
                           to=("bob@example.net",))
        p = sq.submit(msg, ["bob@example.net"], sender="alice@example.org")
        print("== sendq -f alice@example.org bob@example.net: exit %d"
              % p.returncode)
        msgs = exim.wait_messages(1)
        sq.wait_queue_empty()
        m = msgs[0]
        print("== the message as Exim received it (id %s, envelope "
              "<%s> -> %s):" % (m.id, m.sender, ", ".join(m.recipients)))
        sys.stdout.write(b"".join(t for _, t in m.headers).decode(
            errors="replace") + "\n" + m.body.decode(errors="replace"))
        print("== sendqd log:")
        for d in sq.delivery_lines():
            print("  " + d["line"])
        print("== Exim log:")
        for ln in exim.arrival_lines():
            print("  " + ln)
        same = m.as_received() == crlf_to_lf(msg)
        print("== byte-for-byte equal to what was sent: %s" %
              ("yes" if same else "NO"))
        rc = sq.stop()
        sq = None
        print("== sendqd stopped, exit %s" % rc)
        ok = same and rc == 0
    finally:
        if sq is not None:
            print("== sendqd log:\n" + sq.log_text())
            sq.stop()
        if exim is not None:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("== demo %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def cli(argv):
    """python3 tests/integration/harness demo | selftest | exim"""
    cmd = argv[1] if len(argv) > 1 else ""
    try:
        if cmd == "selftest":
            selftest()
            return 0
        if cmd == "demo":
            return demo()
        if cmd == "exim":
            print(exim_binary())
            return 0
    except (HarnessError, AssertionError) as e:
        print("harness: %s" % e, file=sys.stderr)
        return 1
    print("usage: harness demo | selftest | exim", file=sys.stderr)
    return 64

