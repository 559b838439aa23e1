#!/usr/bin/env python3
"""test_reload.py - SIGHUP reloads the configuration of a running sendqd.

  - 500 messages queued for a smarthost that is down; a reload whose
    routing sends them to another smarthost (a real Exim): each arrives
    exactly once, nothing stays queued (routing changed where the config
    changed it, nothing lost or duplicated);
  - a reload that changes a smarthost's address takes effect for new
    connections;
  - an invalid file (FILE:LINE) and a changed smarthost list are refused,
    and the running configuration keeps working;
  - `sendqctl reload` does the same and reports the outcome (exit 0 and
    "configuration reloaded", or exit 1 and the reason).
"""

import os
import signal
import smtplib
import socket
import threading

import harness
from harness import (DEFAULT_TIMEOUT, IntegrationTest, closed_port,
                     free_port, make_message, run, sendq_binary)

N = 500


class StallingServer:
    """A minimal plain SMTP server on loopback that holds its answer to
    the end of DATA until release() (a delivery stays in flight), then
    answers 250.  Keeps the Subject of every message it accepted."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.stalled = 0
        self.subjects = []
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._session, args=(c,),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _session(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 stall.example ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd == b"DATA":
                    c.sendall(b"354 go on\r\n")
                    subject = None
                    while True:
                        ln = f.readline()
                        if not ln or ln == b".\r\n":
                            break
                        if subject is None and \
                                ln.lower().startswith(b"subject:"):
                            subject = ln[8:].strip().decode()
                    with self.lock:
                        self.stalled += 1
                    self.released.wait(DEFAULT_TIMEOUT * 4)
                    with self.lock:
                        self.subjects.append(subject)
                    c.sendall(b"250 2.0.0 accepted\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            return
        finally:
            f.close()
            c.close()

    def stop(self):
        self.released.set()
        self.lsock.close()


class ReloadTest(IntegrationTest):

    def new_sq(self, smarthost, more=(), listen_port=None):
        extra = {"control_socket": os.path.join(self.dir, "control.sock")}
        sq = self.new_sendq(smarthost, name="first", extra_sendq=extra,
                            more_smarthosts=more)
        if listen_port is not None:
            with open(sq.config, "a") as f:
                f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % listen_port)
        return sq

    def reload(self, sq):
        """SIGHUP; returns the log line that says how it ended."""
        before = len(sq.log_text())
        os.kill(sq.pid(), signal.SIGHUP)

        def done():
            tail = sq.log_text()[before:]
            for ln in tail.splitlines():
                if "reload: " in ln and "applied" in ln or \
                        "reload refused" in ln:
                    return ln
            return None
        return harness.wait_for(done, what="the end of the reload")

    def queue_over_smtp(self, port, n):
        s = smtplib.SMTP("127.0.0.1", port, timeout=DEFAULT_TIMEOUT)
        try:
            for i in range(n):
                s.sendmail("alice@example.org", ["bob@example.org"],
                           make_message("reload %03d" % i, "n=%d\n" % i))
        finally:
            s.quit()

    def test_500_queued_rerouted_by_reload_exactly_once(self):
        exim = self.start_exim()
        down = {"host": "127.0.0.1", "port": closed_port(), "tls": "none",
                "match_recipient": "*@example.org"}
        second = self.smarthost_for(exim)
        port = free_port()
        sq = self.new_sq(down, more=[("second", second)], listen_port=port)
        sq.start()
        sq.wait_log(r" started: ")
        self.queue_over_smtp(port, N)
        harness.wait_for(lambda: len(sq.queued()) == N,
                         what=lambda: "%d queued (have %d)" %
                         (N, len(sq.queued())))
        self.assertEqual(exim.message_ids(), [])
        # The new routing: "first" takes nothing of example.org any more.
        sq.smarthost["match_recipient"] = "*@nowhere.invalid"
        sq.write_config()
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % port)
        ln = self.reload(sq)
        self.assertIn("applied", ln)
        exim.wait_messages(N, timeout=harness.scaled(180))
        sq.wait_queue_empty(timeout=harness.scaled(180))
        subjects = sorted(m.header("Subject").strip()
                          for m in exim.messages())
        self.assertEqual(subjects, ["reload %03d" % i for i in range(N)])
        self.assertStoppedCleanly(sq)

    def test_changed_listener_is_refused_and_the_old_one_kept(self):
        """A reload cannot move a listening socket: a changed [intake]
        listen is refused with a message that names it, and the listener
        keeps accepting where it was."""
        port, other = free_port(), free_port()
        sq = self.new_sq({"host": "127.0.0.1", "port": closed_port(),
                          "tls": "none"}, listen_port=port)
        sq.start()
        sq.wait_log(r" started: ")
        sq.write_config()
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % other)
        ln = self.reload(sq)
        self.assertIn("reload refused", ln)
        self.assertIn("[intake] listen changed: a reload cannot apply it",
                      ln)
        self.assertIn("restart sendqd", ln)
        self.assertTrue(harness.port_accepts(port))
        self.assertFalse(harness.port_accepts(other))
        self.queue_over_smtp(port, 1)
        harness.wait_for(lambda: len(sq.queued()) == 1,
                         what="the message through the old listener")
        self.assertStoppedCleanly(sq)

    def test_reload_with_a_delivery_in_flight(self):
        """500 queued, one delivery in flight (the smarthost holds its
        answer): the reload reroutes the queue to Exim, the message in
        flight finishes on its old connection; every message arrives
        exactly once, at one of the two."""
        exim = self.start_exim()
        stall = StallingServer()
        self.addCleanup(stall.stop)
        first = {"host": "127.0.0.1", "port": stall.port, "tls": "none",
                 "max_connections": 1, "match_recipient": "*@example.org"}
        second = self.smarthost_for(exim)
        port = free_port()
        sq = self.new_sq(first, more=[("second", second)], listen_port=port)
        sq.start()
        sq.wait_log(r" started: ")
        self.queue_over_smtp(port, N)
        harness.wait_for(lambda: stall.stalled >= 1,
                         what="a delivery in flight")
        self.assertEqual(len(sq.queued()), N)
        sq.smarthost["match_recipient"] = "*@nowhere.invalid"
        sq.write_config()
        with open(sq.config, "a") as f:
            f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % port)
        self.assertIn("applied", self.reload(sq))
        stall.released.set()
        sq.wait_queue_empty(timeout=harness.scaled(180))
        at_exim = [m.header("Subject").strip() for m in exim.messages()]
        with stall.lock:
            at_stall = list(stall.subjects)
        self.assertGreaterEqual(len(at_stall), 1)
        self.assertEqual(sorted(at_exim + at_stall),
                         ["reload %03d" % i for i in range(N)])
        self.assertStoppedCleanly(sq)

    def test_new_address_for_new_connections(self):
        exim = self.start_exim()
        sh = {"host": "127.0.0.1", "port": closed_port(), "tls": "none"}
        sq = self.new_sq(sh)
        sq.start()
        sq.wait_log(r" started: ")
        sq.submit(make_message("moved", "body\n"), ["bob@example.org"])
        sq.wait_log(r"result=deferred")
        sq.write_config(self.smarthost_for(exim))
        self.assertIn("applied", self.reload(sq))
        exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertStoppedCleanly(sq)

    def test_refused_reloads_keep_the_running_configuration(self):
        exim = self.start_exim()
        sq = self.new_sq(self.smarthost_for(exim))
        sq.start()
        sq.wait_log(r" started: ")
        good = sq.config_text()
        # A syntax error: FILE:LINE.
        with open(sq.config, "a") as f:
            f.write("no_such_key = 1\n")
        ln = self.reload(sq)
        self.assertRegex(ln, r"error: reload refused.*%s:\d+" % sq.config)
        # Another smarthost: needs a restart.
        with open(sq.config, "w") as f:
            f.write(good + "\n[smarthost extra]\nhost = 127.0.0.1\n"
                    "port = %d\ntls = none\n" % closed_port())
        ln = self.reload(sq)
        self.assertRegex(ln, r"reload refused.*number of smarthosts "
                         r"changed.*restart")
        # The running configuration still delivers.
        sq.submit(make_message("still works", "body\n"), ["bob@example.org"])
        exim.wait_messages(1)
        self.assertTrue(sq.running())
        self.assertStoppedCleanly(sq)

    def sendqctl(self, sq, *args):
        return run([sendq_binary("sendqctl"), "-C", sq.config] + list(args))

    def test_sendqctl_reload_reports_the_outcome(self):
        exim = self.start_exim()
        sh = {"host": "127.0.0.1", "port": closed_port(), "tls": "none"}
        sq = self.new_sq(sh)
        sq.start()
        sq.wait_log(r" started: ")
        sq.submit(make_message("via sendqctl", "body\n"), ["bob@example.org"])
        sq.wait_log(r"result=deferred")
        # An invalid file: sendqctl reads it first and says FILE:LINE
        # (exit 78, as every sendq tool for a bad configuration).
        good = sq.config_text()
        with open(sq.config, "a") as f:
            f.write("no_such_key = 1\n")
        p = self.sendqctl(sq, "reload")
        self.assertEqual(p.returncode, 78, p)
        self.assertRegex(p.stderr.decode(), r"%s:\d+" % sq.config)
        # A valid file sendqd refuses: its reason, exit 1.
        with open(sq.config, "w") as f:
            f.write(good + "\n[smarthost extra]\nhost = 127.0.0.1\n"
                    "port = %d\ntls = none\n" % closed_port())
        p = self.sendqctl(sq, "reload")
        self.assertEqual(p.returncode, 1, p)
        self.assertRegex(p.stderr.decode(), r"number of smarthosts changed")
        self.assertTrue(sq.running())
        # Applied: the queued message goes to the new address.
        sq.write_config(self.smarthost_for(exim))
        p = self.sendqctl(sq, "reload")
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"configuration reloaded", p.stdout)
        exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertNotEqual(good, sq.config_text())
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
