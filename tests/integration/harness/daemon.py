"""harness.daemon - a daemon a test started: its log file, stop by PID.

Sendq (a build tree's sendqd with -C) and installed.Installed (an
installed sendqd run as user sendq) both derive from Daemon.
"""

import os
import re
import signal
import subprocess

from .proc import DEFAULT_TIMEOUT, HarnessError, wait_for


class Daemon:
    """self.daemon_log must be set before start(); _spawn starts the
    process with its stdout and stderr appended to that log."""

    proc = None
    _log_file = None

    def _init_daemon(self, daemon_log):
        self.daemon_log = daemon_log
        self.proc = None
        self._log_file = None
        self.exit_codes = []

    def _spawn(self, argv, **popen_kw):
        if self.proc is not None:
            raise HarnessError("sendqd already running")
        self._log_file = open(self.daemon_log, "ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=self._log_file, start_new_session=True, **popen_kw)
        return self.proc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        """PID of the running daemon (None when not started)."""
        return self.proc.pid if self.proc is not None else None

    def _reap(self, sig, timeout):
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log_file.close()
        self._log_file = None
        self.exit_codes.append(proc.returncode)
        return proc.returncode

    def kill(self):
        """SIGKILL the daemon (by its PID) and reap it, as a crash would
        end it; start() may then be called again.  Returns its exit
        code."""
        return self._reap(signal.SIGKILL, None)

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM the daemon and wait; returns its exit code (negative
        for a signal; SIGKILL after timeout)."""
        return self._reap(signal.SIGTERM, timeout)

    def log_text(self):
        try:
            with open(self.daemon_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.daemon_log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        """The log after byte offset ("" when there is no log yet)."""
        try:
            with open(self.daemon_log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=DEFAULT_TIMEOUT, since=0):
        """Wait for a daemon log line (after byte offset since) matching
        regex pattern; return the match object."""
        rx = re.compile(pattern)

        def found():
            for ln in self.log_since(since).splitlines():
                m = rx.search(ln)
                if m:
                    return m
            return None
        return wait_for(found, timeout=timeout,
                        what="sendqd log line /%s/" % pattern)
