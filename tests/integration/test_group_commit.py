#!/usr/bin/env python3
"""Group commit: with sendqd running, `sendq` streams its message to the
daemon over the control socket ("submit", control.h), and submissions
that end together share one fdatasync of the spool's write-ahead log
(spool.h, wal.h).  Without
sendqd, `sendq` hands the message to the drop helper (maildrop/), and
sendqd queues it when it starts."""

import ctypes
import errno
import os
import re
import shutil
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message  # noqa: E402

SENDER = "alice@example.org"
N_PARALLEL = 50

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000


class ThreadHold:
    """Stops ONE thread of another process (PTRACE_SEIZE, then
    PTRACE_INTERRUPT: the other threads run on) until release().  The
    calls must all come from the thread that made the hold (ptrace
    tracers are threads)."""

    def __init__(self, tid):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.restype = ctypes.c_long
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long,
                                     ctypes.c_void_p, ctypes.c_void_p]
        self.tid = tid
        self.held = False
        self._call(PTRACE_SEIZE)
        self.held = True
        self._call(PTRACE_INTERRUPT)
        _, status = os.waitpid(tid, WALL)
        if not os.WIFSTOPPED(status):
            raise AssertionError("thread %d did not stop: status %#x"
                                 % (tid, status))

    def _call(self, req):
        if self.libc.ptrace(req, self.tid, None, None) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "ptrace(%d, %d): %s" % (req, self.tid,
                                                     os.strerror(e)))

    def release(self):
        if self.held:
            self.held = False
            self._call(PTRACE_DETACH)


def thread_named(pid, name):
    """The id of pid's thread called name, or None."""
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except FileNotFoundError:
        return None
    for t in tids:
        try:
            with open(os.path.join(base, t, "comm")) as f:
                if f.read().strip() == name:
                    return int(t)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ESRCH):
                raise
    return None


class GroupCommitTest(harness.IntegrationTest):

    def control_socket(self):
        """A short path for the control socket (self.dir is too long)."""
        d = tempfile.mkdtemp(prefix="sq-gc-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        return os.path.join(d, "control.sock")

    def new_daemon_sendq(self, exim):
        sock = self.control_socket()
        sq = self.new_sendq(self.smarthost_for(exim, tls="implicit"),
                            extra_sendq={"control_socket": sock})
        return sq, sock

    def group_sizes(self, sq):
        """(N, M) of every "group commit: N messages (L by the log),
        M syncs" line, with L == N checked: every message of a submission
        is small enough for the spool's write-ahead log."""
        out = []
        for ln in sq.log_text().splitlines():
            m = re.search(r"group commit: (\d+) messages \((\d+) by the "
                          r"log\), (\d+) syncs", ln)
            if m:
                self.assertEqual(m.group(1), m.group(2), ln)
                out.append((int(m.group(1)), int(m.group(3))))
        return out

    def most_waiting(self, sq):
        """The most submissions seen waiting for the commit thread."""
        return max([int(n) for n in re.findall(
            r"waits for the commit thread \((\d+) waiting\)",
            sq.log_text())] or [0])

    def test_parallel_submissions_share_syncs_and_all_arrive(self):
        exim = self.start_exim()
        sq, sock = self.new_daemon_sendq(exim)
        sq.start()
        harness.wait_for(lambda: os.path.exists(sock),
                         what="the control socket")
        sent = [make_message("group %d" % i, "Group commit %d.\r\n" % i)
                for i in range(N_PARALLEL)]
        # Submissions that end while the commit thread is busy wait for
        # its next round together.  Whether N clients overlap by
        # themselves depends on the disk and the load, so the commit
        # thread (named sq-commit, spool.c) is held: every submission
        # parks, then one round must take them all, with one batch of
        # syncs.
        commit_tid = harness.wait_for(
            lambda: thread_named(sq.pid(), "sq-commit"),
            what="sendqd's commit thread")
        hold = ThreadHold(commit_tid)
        self.addCleanup(hold.release)
        errors = []

        def submit_all():
            try:
                sq.submit_many([(m, ["bob@example.net"], SENDER)
                                for m in sent], threads=N_PARALLEL)
            except BaseException as e:  # reported below
                errors.append(e)
        submitter = threading.Thread(target=submit_all)
        submitter.start()
        try:
            harness.wait_for(
                lambda: self.most_waiting(sq) >= N_PARALLEL or errors,
                timeout=harness.scaled(50),
                what=lambda: "%d submissions waiting for the commit "
                "thread (now %d)" % (N_PARALLEL, self.most_waiting(sq)))
        finally:
            hold.release()
            submitter.join()
        if errors:
            raise errors[0]
        msgs = exim.wait_messages(N_PARALLEL)
        sq.wait_queue_empty()
        self.assertEqual(sorted(m.as_received() for m in msgs),
                         sorted(harness.crlf_to_lf(s) for s in sent))
        # Every message went through the daemon, none by the fallback.
        ok = [ln for ln in sq.log_text().splitlines()
              if "command=submit" in ln and "result=ok" in ln]
        self.assertEqual(len(ok), N_PARALLEL)
        groups = self.group_sizes(sq)
        self.assertEqual(sum(n for n, _ in groups), N_PARALLEL, groups)
        # One sync per group: the fdatasync of the write-ahead log (no
        # message file, no fsync of queue/).
        self.assertTrue(all(s == 1 for n, s in groups if n > 0), groups)
        # One round took every held submission: 1 sync for N messages.
        self.assertEqual(max(n for n, _ in groups), N_PARALLEL, groups)
        self.assertEqual(sq.spool_subdir_files("tmp"), [])
        self.assertStoppedCleanly(sq)

    def test_without_sendqd_the_helper_drops_it_and_sendqd_queues_it(self):
        exim = self.start_exim()
        sq, sock = self.new_daemon_sendq(exim)
        sent = make_message("fallback", "No daemon running.\r\n")
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        # sendq wrote nothing into the spool; the helper's file waits in
        # maildrop/, published (nothing left in maildrop/tmp/).
        harness.wait_for(lambda: sq.queued() == [],
                          what="the spool to empty")
        self.assertEqual(sq.spool_subdir_files("tmp"), [])
        self.assertEqual(len(sq.maildrop_files()), 1)
        self.assertEqual(sq.spool_subdir_files("maildrop/tmp"), [])
        sq.start()
        (m,) = exim.wait_messages(1)
        sq.wait_queue_empty()
        self.assertArrivedIntact(m, sent)
        self.assertNotIn("command=submit", sq.log_text())
        self.assertIn("pickup file=", sq.log_text())
        self.assertEqual(sq.maildrop_files(), [])
        self.assertStoppedCleanly(sq)

    def submit_raw(self, sock, data):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(data)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        s.close()
        return answer.decode(errors="replace")

    def test_bad_submissions_get_an_error_and_the_daemon_goes_on(self):
        exim = self.start_exim()
        sq, sock = self.new_daemon_sendq(exim)
        sq.start()
        harness.wait_for(lambda: os.path.exists(sock),
                         what="the control socket")
        env = (b"sendq-envelope 1\nid new\ncreated 1\nuid 0\n"
               b"sender a@b.example\nrcpt c@d.example\nend\n")
        state = env.replace(b"end\n", b"attempts 3\nend\n")
        cases = [
            (b"submit\n", "bad submit frame"),
            (b"submit 0001 5\nhello", "bad submit frame"),
            (b"submit 0\n", "length"),
            (b"submit 99999999\n", "length"),
            (b"submit 5\nhello", "bad envelope"),
            # Delivery state is not the client's to give.
            (b"submit %d\n" % len(state) + state, "delivery state"),
            # No address checks on the client's word: refused.
            (b"submit %d\n" % len(env.replace(b"c@d.example", b"c> X")) +
             env.replace(b"c@d.example", b"c> X"), "recipient"),
            # A frame that is not one, after a good envelope.
            (b"submit %d\n" % len(env) + env + b"quit\n", "bad submit"),
            (b"submit %d\n" % len(env) + env + b"data 70000\n",
             "length"),
        ]
        for data, why in cases:
            answer = self.submit_raw(sock, data)
            self.assertTrue(answer.startswith("error: "), answer)
            self.assertIn(why, answer)
        harness.wait_for(lambda: sq.queued() == [],
                          what="the spool to empty")
        self.assertTrue(sq.running())
        # And a real submission still works.
        sent = make_message("after errors", "Still working.\r\n")
        sq.submit(sent, ["bob@example.net"], sender=SENDER)
        (m,) = exim.wait_messages(1)
        self.assertArrivedIntact(m, sent)
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
