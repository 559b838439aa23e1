#!/usr/bin/env python3
"""test_systemd.py - sendqd as a systemd Type=notify service, without
systemd: the test plays the service manager.

It creates a real NOTIFY_SOCKET (AF_UNIX, SOCK_DGRAM), starts sendqd with
NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the PID is sendqd's own:
a shell exports $$ and execs sendqd) and reads what sendqd says: READY=1
once the spool is recovered and the listeners are up, STATUS= with the
queue depth and relay states (again when they change), WATCHDOG=1 at
half the interval, RELOADING=1 + MONOTONIC_USEC= then READY=1 around a
SIGHUP reload, STOPPING=1 on SIGTERM.  Socket activation: the test holds
a listening socket and hands it to sendqd as fd 3 (LISTEN_FDS=1,
LISTEN_PID), as systemd does for sendq.socket, and across a restart of
sendqd no client is refused: a connection made while no sendqd runs
waits in the socket's backlog and is served by the next one.
"""

import os
import signal
import smtplib
import socket
import subprocess
import time

import harness
from harness import (DEFAULT_TIMEOUT, IntegrationTest, closed_port,
                     make_message, sendq_binary, valgrind_prefix, wait_for)


class Notify:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []      # each a {key: value} dict, in order

    def poll(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            fields = {}
            for line in data.decode().split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            self.messages.append(fields)

    def wait(self, pred, what, timeout=DEFAULT_TIMEOUT, start=0):
        """Wait for a message (from index start on) for which pred(msg)
        holds; return its index."""
        def found():
            self.poll()
            for i in range(start, len(self.messages)):
                if pred(self.messages[i]):
                    return i + 1        # true even for index 0
            return None
        return wait_for(found, timeout=timeout,
                        what=lambda: "%s (received: %s)" % (
                            what, self.messages)) - 1

    def wait_key(self, key, value=None, start=0, timeout=DEFAULT_TIMEOUT):
        return self.wait(lambda m: key in m and
                         (value is None or m[key] == value),
                         "%s=%s" % (key, value or "*"), timeout, start)

    def close(self):
        self.sock.close()


# Exports $$ (sendqd's PID once exec'd) as LISTEN_PID and WATCHDOG_PID,
# as systemd sets them; "$1" is the fd to hand over as fd 3 (or "-").
WRAPPER = r'''
fd=$1; shift
[ -n "$SQ_SET_LISTEN_PID" ] && export LISTEN_PID=$$
[ -n "$SQ_SET_WATCHDOG_PID" ] && export WATCHDOG_PID=$$
if [ "$fd" = - ] || [ "$fd" = 3 ]; then exec "$@"; fi
eval "exec \"\$@\" 3<&$fd $fd<&-"
'''


def maps_libsystemd(pid):
    """Whether libsystemd is mapped into process pid (service.c loads it
    only when systemd is there)."""
    with open("/proc/%d/maps" % pid) as f:
        return "/libsystemd.so" in f.read()


def start_sendqd(sq, env_extra, listen_fd=None, watchdog_pid=True):
    """Start sendqd for sq (a harness.Sendq) with env_extra added to the
    environment; listen_fd is handed over as fd 3 with LISTEN_FDS=1."""
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
              "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(k, None)
    env.update(env_extra)
    if watchdog_pid:
        env["SQ_SET_WATCHDOG_PID"] = "1"
    pass_fds = ()
    if listen_fd is not None:
        env["LISTEN_FDS"] = "1"
        env["SQ_SET_LISTEN_PID"] = "1"
        pass_fds = (listen_fd,)
    sq._log_file = open(sq.daemon_log, "ab")
    sq.proc = subprocess.Popen(
        ["/bin/sh", "-c", WRAPPER, "sh",
         str(listen_fd) if listen_fd is not None else "-"] +
        valgrind_prefix() + [sendq_binary("sendqd"), "-C", sq.config],
        env=env, pass_fds=pass_fds, stdin=subprocess.DEVNULL,
        stdout=sq._log_file, stderr=sq._log_file, start_new_session=True)
    return sq


class SystemdNotifyTest(IntegrationTest):

    def notify_socket(self):
        n = Notify(os.path.join(self.dir, "notify.sock"))
        self.addCleanup(n.close)
        return n

    def down_smarthost(self):
        """A smarthost nobody listens on: the relay goes DOWN."""
        return {"host": "127.0.0.1", "port": closed_port(), "tls": "none"}

    def new_sq(self, smarthost, **kw):
        return self.new_sendq(smarthost, extra_sendq={
            "control_socket": os.path.join(self.dir, "control.sock")}, **kw)

    def test_ready_status_stopping(self):
        n = self.notify_socket()
        sq = self.new_sq(self.down_smarthost())
        start_sendqd(sq, {"NOTIFY_SOCKET": n.path})
        i = n.wait_key("READY", "1")
        ready = n.messages[i]
        self.assertTrue(maps_libsystemd(sq.pid()))
        # READY comes after the spool recovery and the listeners.
        self.assertIn("queue recovered", sq.log_text())
        self.assertIn(" started: ", sq.log_text())
        self.assertEqual(ready.get("STATUS"),
                         "queued 0; relays: exim up", ready)
        # A message the smarthost cannot take: the status follows the
        # queue depth and the relay state.
        sq.submit(make_message("status", "body\n"), ["bob@example.org"])
        n.wait(lambda m: m.get("STATUS") == "queued 1; relays: exim DOWN",
               "STATUS=queued 1; relays: exim DOWN", start=i + 1)
        self.assertTrue(sq.running())
        sq.proc.send_signal(signal.SIGTERM)
        j = n.wait_key("STOPPING", "1", start=i + 1)
        self.assertIn("stopping", n.messages[j].get("STATUS", ""))
        self.assertEqual(sq.proc.wait(timeout=DEFAULT_TIMEOUT), 0)
        self.assertStoppedCleanly(sq)
        # Nothing lost: the message stays queued for the next start.
        self.assertEqual(len(sq.queued()), 1)

    def test_status_is_sent_only_on_change(self):
        n = self.notify_socket()
        sq = self.new_sq(self.down_smarthost())
        start_sendqd(sq, {"NOTIFY_SOCKET": n.path})
        i = n.wait_key("READY", "1")
        sq.submit(make_message("one", "body\n"), ["bob@example.org"])
        j = n.wait(lambda m: m.get("STATUS", "").startswith("queued 1;")
                   and m.get("STATUS", "").endswith("DOWN"),
                   "STATUS=queued 1 ... DOWN", start=i + 1)
        sq.proc.send_signal(signal.SIGTERM)
        k = n.wait_key("STOPPING", "1", start=j)
        statuses = [m["STATUS"] for m in n.messages[:k] if "STATUS" in m]
        for a, b in zip(statuses, statuses[1:]):
            self.assertNotEqual(a, b, "STATUS repeated: %s" % statuses)
        self.assertEqual(sq.proc.wait(timeout=DEFAULT_TIMEOUT), 0)
        self.assertStoppedCleanly(sq)

    def test_watchdog(self):
        n = self.notify_socket()
        sq = self.new_sq(self.down_smarthost())
        # 0.4 s: a ping every 0.2 s.
        start_sendqd(sq, {"NOTIFY_SOCKET": n.path,
                          "WATCHDOG_USEC": "400000"})
        i = n.wait_key("READY", "1")
        for _ in range(3):
            i = n.wait_key("WATCHDOG", "1", start=i + 1)
        self.assertIn("watchdog every 200ms", sq.log_text())
        self.assertStoppedCleanly(sq)

    def test_watchdog_for_another_pid_is_not_ours(self):
        n = self.notify_socket()
        sq = self.new_sq(self.down_smarthost())
        start_sendqd(sq, {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "400000",
                          "WATCHDOG_PID": "1"}, watchdog_pid=False)
        n.wait_key("READY", "1")
        # The watchdog is armed before READY=1: it was not armed.
        self.assertNotIn("watchdog every", sq.log_text())
        self.assertStoppedCleanly(sq)
        n.poll()
        self.assertFalse([m for m in n.messages if "WATCHDOG" in m])

    def test_reload_notifies_reloading_then_ready(self):
        n = self.notify_socket()
        sq = self.new_sq(self.down_smarthost())
        start_sendqd(sq, {"NOTIFY_SOCKET": n.path})
        i = n.wait_key("READY", "1")
        before = time.monotonic()
        os.kill(sq.pid(), signal.SIGHUP)
        j = n.wait_key("RELOADING", "1", start=i + 1)
        after = time.monotonic()
        usec = int(n.messages[j]["MONOTONIC_USEC"])
        self.assertLessEqual(before * 1e6 - 1, usec)
        self.assertLessEqual(usec, after * 1e6 + 1)
        n.wait_key("READY", "1", start=j + 1)
        self.assertTrue(sq.running(), "SIGHUP must not stop sendqd")
        # An invalid configuration: refused with FILE:LINE, still running.
        with open(sq.config, "a") as f:
            f.write("no_such_key = 1\n")
        os.kill(sq.pid(), signal.SIGHUP)
        k = n.wait_key("RELOADING", "1", start=j + 1)
        n.wait_key("READY", "1", start=k + 1)
        m = sq.wait_log(r"reload refused.*%s:\d+" % sq.config)
        self.assertIn("error", m.string)
        self.assertTrue(sq.running())
        self.assertStoppedCleanly(sq)

    def test_reload_applies_log_level(self):
        sq = self.new_sq(self.down_smarthost(), log_level="info")
        start_sendqd(sq, {})
        sq.wait_log(r" started: ")
        sq.log_level = "debug"
        sq.write_config()
        os.kill(sq.pid(), signal.SIGHUP)
        sq.wait_log(r"reload: .* applied")
        self.assertNotIn(": debug: ", sq.log_text())
        # A message whose delivery fails: now its debug lines show.
        sq.submit(make_message("verbose", "body\n"), ["bob@example.org"])
        sq.wait_log(r": debug: ")
        self.assertStoppedCleanly(sq)

    def test_without_notify_socket_nothing_changes(self):
        sq = self.new_sq(self.down_smarthost())
        start_sendqd(sq, {})
        sq.wait_log(r" started: ")
        # Not even loaded: about 1 MiB of resident memory with what it
        # links (service.c).
        self.assertFalse(maps_libsystemd(sq.pid()))
        os.kill(sq.pid(), signal.SIGHUP)
        sq.wait_log(r"reload: .* applied")
        self.assertTrue(sq.running())
        self.assertStoppedCleanly(sq)


class SocketActivationTest(IntegrationTest):

    def smtp_send(self, sock_or_port, subject):
        """One message over SMTP; sock_or_port is a port or an already
        connected socket (its greeting not read yet)."""
        msg = make_message(subject, "socket activation\n")
        if isinstance(sock_or_port, int):
            s = smtplib.SMTP("127.0.0.1", sock_or_port,
                             timeout=DEFAULT_TIMEOUT)
        else:
            s = smtplib.SMTP(timeout=DEFAULT_TIMEOUT)
            s.sock = sock_or_port
            s.file = None
            code, _ = s.getreply()
            self.assertEqual(code, 220)
        try:
            s.ehlo("client.example.org")
            s.sendmail("alice@example.org", ["bob@example.org"], msg)
        finally:
            s.quit()

    def test_restart_keeps_the_socket(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim), extra_sendq={
            "control_socket": os.path.join(self.dir, "control.sock")})
        # The test is systemd: it binds and listens, sendqd inherits.
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]

        start_sendqd(sq, {}, listen_fd=lsock.fileno())
        sq.wait_log(r"intake: listening on systemd fd 3")
        self.smtp_send(port, "first")
        exim.wait_messages(1)
        # sendqd has read the smarthost's 250 (a stop before that would
        # leave "first" queued: sent again after the restart).
        sq.wait_log(r"delivery msgid=\S+ .*result=sent")

        # Restart: between the two sendqd the port still accepts (the
        # connection waits in the backlog of the socket the test holds).
        self.assertEqual(sq.stop(), 0)
        waiting = socket.create_connection(("127.0.0.1", port),
                                           timeout=DEFAULT_TIMEOUT)
        start_sendqd(sq, {}, listen_fd=lsock.fileno())
        self.smtp_send(waiting, "while restarting")
        self.smtp_send(port, "after")
        exim.wait_messages(3)
        subjects = sorted(m.header("Subject") for m in exim.messages())
        self.assertEqual(len(subjects), 3, subjects)
        self.assertStoppedCleanly(sq)

    def test_listen_pid_of_another_process_is_ignored(self):
        exim = self.start_exim()
        sq = self.new_sendq(self.smarthost_for(exim), extra_sendq={
            "control_socket": os.path.join(self.dir, "control.sock")})
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        sq._log_file = open(sq.daemon_log, "ab")
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
        sq.proc = subprocess.Popen(
            valgrind_prefix() + [sendq_binary("sendqd"), "-C", sq.config],
            env=env, stdin=subprocess.DEVNULL, stdout=sq._log_file,
            stderr=sq._log_file, start_new_session=True)
        sq.wait_log(r" started: ")
        self.assertNotIn("systemd fd", sq.log_text())
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
