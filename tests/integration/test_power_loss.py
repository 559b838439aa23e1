#!/usr/bin/env python3
"""Power loss (issue 14): the spool on LazyFS, a FUSE file system that
keeps every byte not fsynced in its own cache and drops it on command
(`lazyfs::clear-cache`): what a power cut does to the page cache, which a
plain kill -9 cannot show (the kernel still writes back after SIGKILL).

Each round mounts LazyFS over the spool's real directory, submits through
every intake path (sendq with sendqd down; then, with sendqd running,
sendq, the SMTP listener and the drop directory in parallel threads),
and at a random instant (mid-batch as often as not) kills sendqd with
SIGKILL and cuts the power; then unmounts, so the directory holds only
what reached the disk.  In every other round the smarthost (a private
Exim) is up, so deliveries and the removals after them are cut too.  The
next round restarts sendqd on what survived.  At the end sendqd runs
with Exim up until the queue and the drop directory are empty: every
message acknowledged before a cut (sendq's exit 0, the 250 after DATA,
the drop file renamed and its directory fsynced) must have arrived,
byte for byte (duplicates are allowed: the documented window).

SENDQ_POWER_LOSS_ROUNDS sets the number of rounds (default 3; scripts/soak
runs more).  Needs /dev/fuse, root and LazyFS (built once into
.cache/lazyfs from ../shared/tools/lazyfs, or SENDQ_LAZYFS=PATH); skipped
when they are missing.
"""
import fcntl
import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import crlf_to_lf, make_message, remove_headers, wait_for  # noqa

ROUNDS = int(os.environ.get("SENDQ_POWER_LOSS_ROUNDS", "3"))
PL_ID = re.compile(rb"^X-PL-Id: (\S+)", re.M)
RCPT = "bob@example.net"
SENDER = "alice@example.org"


def find_lazyfs():
    """Path of the lazyfs binary, building it when needed; None if it
    cannot be had.  Under .cache/lazyfs.lock, which scripts/test's
    background build holds: this waits for that build to end."""
    if os.environ.get("SENDQ_LAZYFS"):
        return os.environ["SENDQ_LAZYFS"]
    src = os.environ.get("SENDQ_SOURCE_DIR",
                         os.path.join(os.path.dirname(__file__), "..", ".."))
    os.makedirs(os.path.join(src, ".cache"), exist_ok=True)
    with open(os.path.join(src, ".cache", "lazyfs.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _find_lazyfs(src)


def _find_lazyfs(src):
    out = os.path.join(src, ".cache", "lazyfs")
    if os.access(os.path.join(out, "lazyfs"), os.X_OK):
        return os.path.join(out, "lazyfs")
    for rel in ("../shared/tools/lazyfs", "../../shared/tools/lazyfs"):
        build = os.path.join(src, rel, "build")
        if os.access(build, os.X_OK):
            p = subprocess.run([build, out], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            if p.returncode == 0:
                return p.stdout.strip().splitlines()[-1]
            print(p.stderr, file=sys.stderr)
    return None


class LazyFS:
    """LazyFS mounted at mnt over root, with its fault FIFO."""

    def __init__(self, binary, workdir, root):
        self.binary = binary
        self.root = root
        self.mnt = os.path.join(workdir, "mnt")
        self.fifo = os.path.join(workdir, "faults.fifo")
        self.cfg = os.path.join(workdir, "lazyfs.toml")
        self.log = os.path.join(workdir, "lazyfs.log")
        self.proc = None
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(root, exist_ok=True)
        with open(self.cfg, "w") as f:
            f.write('[faults]\nfifo_path="%s"\n[cache]\napply_eviction='
                    'false\n[cache.simple]\ncustom_size="128mb"\n'
                    'blocks_per_page=1\n[filesystem]\nlog_all_operations='
                    'false\nlogfile=""\n' % self.fifo)

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(ln.split()[1] == self.mnt and
                       ln.split()[2] == "fuse.lazyfs" for ln in f)

    def mount(self):
        logf = open(self.log, "ab")
        # The config path is given relative to its directory: LazyFS
        # ignores a --config-path containing "-o" anywhere (main.cpp takes
        # it for the next option), and the test's folder is named
        # "test_...-RANDOM", so one run in ~30 got "-o..." and LazyFS
        # exited looking for config/default.toml.
        self.proc = subprocess.Popen(
            [self.binary, self.mnt, "--config-path",
             os.path.basename(self.cfg),
             "-o", "allow_other", "-o", "modules=subdir",
             "-o", "subdir=" + self.root, "-f"],
            cwd=os.path.dirname(self.cfg),
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            start_new_session=True)
        logf.close()
        wait_for(lambda: self.mounted() or self.proc.poll() is not None,
                 timeout=60, what="the LazyFS mount")
        if not self.mounted():
            # The log's text, not its path: the test's folder is removed.
            with open(self.log, errors="replace") as f:
                text = f.read()[-4000:]
            raise harness.HarnessError("lazyfs did not mount (exit %s, %s):"
                                       "\n%s" % (self.proc.poll(),
                                                  self.binary, text))

    def fault(self, cmd):
        fd = os.open(self.fifo, os.O_WRONLY)
        try:
            os.write(fd, (cmd + "\n").encode())
        finally:
            os.close(fd)

    def power_cut(self):
        """Drop every byte not fsynced."""
        self.fault("lazyfs::clear-cache")

    def unmount(self):
        if self.proc is None:
            return
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", self.mnt])
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        self.unmount()


class PowerSendq(harness.Sendq):
    """sendq whose spool is under a LazyFS mount, with the listener."""

    def __init__(self, workdir, smarthost, spool, listen_port, sock):
        self.listen_port = listen_port
        # LazyFS reports no free space: no reserve.
        super().__init__(workdir, smarthost, log_level="info",
                         extra_sendq={"control_socket": sock},
                         extra_queue={"min_free_space": "0"})
        self.spool = spool
        self.sock = sock
        self.write_config()

    def config_text(self):
        text = super().config_text().replace(
            "spool_dir = %s" % os.path.join(self.dir, "sendq-spool"),
            "spool_dir = %s" % self.spool)
        return text + ("\n[intake]\nlisten = 127.0.0.1:%d\nmax_clients = "
                       "64\n" % self.listen_port)


class Round:
    """One round's injectors; records what was acknowledged before the
    cut."""

    def __init__(self, test, sq, acked, seq):
        self.t = test
        self.sq = sq
        self.acked = acked
        self.seq = seq
        self.lock = threading.Lock()
        self.cut = False
        self.stop = threading.Event()

    def new_message(self, path):
        with self.lock:
            self.seq[0] += 1
            n = self.seq[0]
        pid = "%s-%d" % (path, n)
        body = "".join("line %d of %s: %s\r\n" % (i, pid, "x" * (i * 7 % 90))
                       for i in range(random.randint(1, 60)))
        msg = make_message("power %s" % pid, body + ".dot\r\n",
                           extra_headers=["X-PL-Id: %s" % pid],
                           msgid="<%s.%d@sendq.test>" % (pid, os.getpid()))
        return pid, msg

    def ack(self, pid, msg):
        with self.lock:
            if not self.cut:
                self.acked[pid] = msg

    def by_sendq(self):
        while not self.stop.is_set():
            pid, msg = self.new_message("sendq")
            p = self.sq.sendq(["-f", SENDER, RCPT], msg, timeout=30)
            if p.returncode == 0:
                self.ack(pid, msg)

    def by_smtp(self):
        while not self.stop.is_set():
            try:
                c = smtplib.SMTP("127.0.0.1", self.sq.listen_port, timeout=10)
                while not self.stop.is_set():
                    pid, msg = self.new_message("smtp")
                    c.sendmail(SENDER, [RCPT], msg)
                    self.ack(pid, msg)
            except (OSError, smtplib.SMTPException):
                self.stop.wait(0.01)    # the daemon is gone: until stop

    def by_drop(self):
        # Paced (at most ~100 files a second): unpaced, the drop files
        # came faster than LazyFS lets sendqd pick them up, and pickup's
        # batches took the event loop from the SMTP sessions, whose
        # messages then never reached their 250 before the cut.
        drop = os.path.join(self.sq.spool, "maildrop")
        while not self.stop.is_set():
            pid, msg = self.new_message("drop")
            if drop_file(drop, pid, msg):
                self.ack(pid, msg)
            self.stop.wait(0.01)

    def run(self, delay):
        threads = [threading.Thread(target=f) for f in
                   (self.by_sendq, self.by_sendq, self.by_smtp,
                    self.by_smtp, self.by_drop)]
        for th in threads:
            th.start()
        # The cut comes at a random instant: nothing sets stop before it.
        self.stop.wait(delay)
        return threads

    def finish(self, threads):
        self.stop.set()
        for th in threads:
            th.join(timeout=60)


def drop_file(drop, pid, msg):
    """Publish a drop file as a durable writer does; True once its
    rename is on disk."""
    tmp = os.path.join(drop, "tmp", pid)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, b"X-Sendq-Recipient: " + RCPT.encode() + b"\n" +
                     msg)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(drop, pid))
        dfd = os.open(drop, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True
    except OSError:
        return False


def expected(msg):
    return remove_headers(crlf_to_lf(msg), ["Received"])


@harness.unittest.skipUnless(os.geteuid() == 0 and
                             os.path.exists("/dev/fuse"),
                             "needs root and /dev/fuse")
class PowerLoss(harness.IntegrationTest):

    def test_every_acknowledged_message_survives_power_cuts(self):
        binary = find_lazyfs()
        if binary is None:
            self.skipTest("LazyFS not available")
        seed = int(os.environ.get("SENDQ_POWER_LOSS_SEED",
                                  str(int(time.time()))))
        random.seed(seed)
        print("\npower loss: %d rounds, seed %d" % (ROUNDS, seed),
              file=sys.stderr)
        root = os.path.join(self.dir, "disk")
        fs = LazyFS(binary, self.dir, root)
        self._started.append(fs)
        exim = self.new_exim()
        run = os.path.join(self.dir, "run")
        os.makedirs(run)
        sq = PowerSendq(self.dir, self.smarthost_for(exim),
                        os.path.join(fs.mnt, "spool"), harness.free_port(),
                        os.path.join(run, "c.sock"))
        self._started.append(sq)
        acked, seq = {}, [0]
        for r in range(ROUNDS):
            fs.mount()
            if r % 2 == 1:
                exim.start()
            # sendq with sendqd down
            for _ in range(5):
                rd = Round(self, sq, acked, seq)
                pid, msg = rd.new_message("down")
                if sq.sendq(["-f", SENDER, RCPT], msg).returncode == 0:
                    acked[pid] = msg
            sq.start()
            wait_for(lambda: os.path.exists(sq.sock) and
                     harness.port_accepts(sq.listen_port),
                     what="sendqd's sockets")
            rd = Round(self, sq, acked, seq)
            threads = rd.run(random.uniform(0.3, 2.0))
            with rd.lock:
                rd.cut = True
                sq.kill()
                fs.power_cut()
            rd.finish(threads)
            fs.power_cut()      # what the injectors did after the cut
            fs.unmount()
            if exim.running():
                exim.stop()
            print("round %d: %d acknowledged so far" % (r, len(acked)),
                  file=sys.stderr)
        fs.mount()
        exim.start()
        sq.start()
        drop = os.path.join(sq.spool, "maildrop")

        def drained():
            # An empty drop file is one published after the cut, whose
            # data the cut took (never acknowledged): pickup leaves it.
            def size(n):
                try:
                    return os.path.getsize(os.path.join(drop, n))
                except FileNotFoundError:
                    return 0
            left = [n for n in os.listdir(drop) if n not in
                    ("tmp", "rejected") and size(n) > 0]
            return not sq.queued() and not left
        wait_for(drained, timeout=harness.scaled(240),
                 what="the queue to empty")
        got = {}
        for m in exim.messages():
            ident = PL_ID.search(m.as_received())
            if ident:
                got.setdefault(ident.group(1).decode(), []).append(m)
        lost = sorted(p for p in acked if p not in got)
        paths = {}
        for p in lost:
            paths[p.split("-")[0]] = paths.get(p.split("-")[0], 0) + 1
        self.assertEqual(lost, [], "%d of %d acknowledged messages lost "
                         "(by path: %s)" % (len(lost), len(acked), paths))
        for p, msg in acked.items():
            for m in got[p]:
                self.assertEqual(remove_headers(m.as_received(),
                                                ["Received"]),
                                 expected(msg), "message %s altered" % p)
        dups = sum(len(v) - 1 for v in got.values())
        print("power loss: %d acknowledged, all delivered intact, %d "
              "duplicates" % (len(acked), dups), file=sys.stderr)
        # What sendqd commits goes through the spool's write-ahead log
        # (spool.h): after each kill the next start replayed it, and
        # the files it rewrote are what the cut took from queue/.
        replays = re.findall(r"write-ahead log replayed: (\d+) records, "
                             r"(\d+) files rewritten", sq.log_text())
        print("power loss: %d replays of the write-ahead log, %d records, "
              "%d files rewritten" % (
                  len(replays), sum(int(a) for a, _ in replays),
                  sum(int(b) for _, b in replays)), file=sys.stderr)
        by_path = {}
        for p in acked:
            by_path[p.split("-")[0]] = by_path.get(p.split("-")[0], 0) + 1
        print("power loss: acknowledged by path: %s" % ", ".join(
            "%s %d" % kv for kv in sorted(by_path.items())), file=sys.stderr)
        # Each path must have had messages acknowledged, or the test
        # proved nothing about it.
        self.assertEqual(sorted(by_path), ["down", "drop", "sendq", "smtp"],
                         by_path)
        self.assertGreater(len(replays), 0, "the log was never replayed")
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
