"""harness.base - IntegrationTest: a temp dir per test, cleanup, diagnostics,
assertions.
"""

import os
import shutil
import signal
import sys
import tempfile
import unittest

from .ca import Certs
from .exim import Exim
from .message import crlf_to_lf, remove_headers
from .postfix import Postfix
from .sendq import Sendq


# Tests between setUp and their cleanup: what the SIGTERM handler of
# main() stops.
_live = []


def _on_sigterm(signum, frame):
    """ctest ends a test program that runs past its TIMEOUT with SIGTERM.
    The servers a test started are daemons of their own (Exim, Postfix
    detach): stop them by PID, else they outlive the run, holding ports
    and CPU; then end as an interrupt would (atexit handlers run)."""
    for test in list(_live):
        for obj in reversed(test._started):
            try:
                obj.stop()
            except Exception:           # keep stopping the others
                pass
    raise KeyboardInterrupt("SIGTERM")


class IntegrationTest(unittest.TestCase):
    """Base class: a temp dir per test, cleanup of everything started, and
    logs printed when a test fails."""

    keep = bool(os.environ.get("SENDQ_KEEP_TMP"))

    @classmethod
    def setUpClass(cls):
        cls.class_dir = tempfile.mkdtemp(prefix="sendq-it-")
        cls.certs = Certs(os.path.join(cls.class_dir, "certs"))

    @classmethod
    def tearDownClass(cls):
        if not cls.keep:
            shutil.rmtree(cls.class_dir, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=self._testMethodName + "-",
                                    dir=self.class_dir)
        self._started = []
        self._diag = ""
        _live.append(self)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        # Stop everything (last started first), then keep the logs for
        # run() to print if the test failed; files go in tearDownClass.
        if self in _live:
            _live.remove(self)
        for obj in reversed(self._started):
            try:
                obj.stop()
            except Exception as e:      # keep stopping the others
                print("cleanup: %r" % e, file=sys.stderr)
        parts = []
        for obj in self._started:
            if isinstance(obj, Sendq):
                if obj.transcript:
                    parts.append("---- sendq runs\n" +
                                 "\n".join(obj.transcript))
                if os.path.exists(obj.daemon_log):
                    parts.append("---- sendqd log (%s), exit codes %s\n%s"
                                 % (obj.daemon_log, obj.exit_codes,
                                    obj.log_text()))
                parts.append("---- sendq spool: %s" % obj.spool_files())
            elif isinstance(obj, Exim):
                if os.path.exists(obj.mainlog):
                    parts.append("---- exim mainlog (%s)\n%s%s" % (
                        obj.mainlog, obj.log_text(), obj.panic_text()))
            elif isinstance(obj, Postfix):
                if os.path.exists(obj.maillog):
                    parts.append("---- postfix maillog (%s)\n%s" % (
                        obj.maillog, obj.log_text()))
        self._diag = "\n".join(parts)

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        ret = super().run(result)
        if len(result.failures) + len(result.errors) > before and \
                self._diag_text():
            sys.stderr.write("\n==== diagnostics for %s\n%s\n" % (
                self.id(), self._diag_text()))
        return ret

    def _diag_text(self):
        return getattr(self, "_diag", "")

    # -- helpers for tests
    def start_exim(self, cert=None, **kw):
        cert, key = cert or self.certs.good
        exim = Exim(os.path.join(self.dir, "exim-%d" % len(self._started)),
                    cert, key, **kw)
        os.makedirs(exim.dir, exist_ok=True)
        self._started.append(exim)
        return exim.start()

    def new_exim(self, cert=None, **kw):
        """An Exim configured (ports chosen) but not started (kw as for
        Exim, e.g. reject_recipients)."""
        cert, key = cert or self.certs.good
        exim = Exim(os.path.join(self.dir, "exim-%d" % len(self._started)),
                    cert, key, **kw)
        exim.ports_fixed = True         # the test configures them now
        os.makedirs(exim.dir, exist_ok=True)
        self._started.append(exim)
        return exim

    def smarthost_for(self, exim, tls="implicit", host="127.0.0.1",
                      trust="ca_file", ca_file=None):
        sh = {"host": host,
              "port": exim.implicit_port if tls == "implicit"
              else exim.starttls_port,
              "tls": tls, "trust": trust}
        if trust == "ca_file":
            sh["ca_file"] = ca_file or self.certs.ca.cert
        return sh

    def start_postfix(self, cert=None, **kw):
        """A private Postfix (see class Postfix), started."""
        cert, key = cert or self.certs.good
        pf = Postfix(os.path.join(self.dir, "postfix-%d" %
                                  len(self._started)), cert, key, **kw)
        os.makedirs(pf.dir, exist_ok=True)
        self._started.append(pf)
        return pf.start()

    def smarthost_for_postfix(self, pf, host="localhost", trust="ca_file",
                              ca_file=None):
        sh = {"host": host, "port": pf.port, "tls": "starttls",
              "trust": trust}
        if trust == "ca_file":
            sh["ca_file"] = ca_file or self.certs.ca.cert
        return sh

    def new_sendq(self, smarthost, **kw):
        sq = Sendq(self.dir, smarthost, **kw)
        self._started.append(sq)
        return sq

    def assertStoppedCleanly(self, sq):
        rc = sq.stop()
        self.assertEqual(rc, 0, "sendqd did not exit 0 on SIGTERM")

    def assertArrivedIntact(self, received, sent, drop_headers=()):
        """received (EximMessage) equals sent bytes after line-end
        normalisation, minus headers named in drop_headers."""
        expected = crlf_to_lf(sent)
        if drop_headers:
            expected = remove_headers(expected, drop_headers)
        self.assertEqual(received.as_received(), expected)


def main():
    """unittest.main() for a test file; exit status non-zero on failure.
    On SIGTERM the servers of the running test are stopped first."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    unittest.main(verbosity=2)
