"""soak.py - reliability run of sendq under faults (run by scripts/soak).

N messages (mixed sizes, some with many recipients) are injected by
several threads, half through `sendq` and half through the SMTP listener
(an acknowledgement is sendq's exit 0 or the 250 after DATA), while the
run:
  - kills sendqd with SIGKILL at random moments and restarts it,
  - takes the smarthost (a private Exim) away and brings it back,
  - lets the smarthost answer 4xx and stall at random (Exim ACL randint),
  - fills the spool's filesystem (a size-limited tmpfs) and frees it.
At the end it
checks, from what Exim received and from the spool: every acknowledged
message arrived at least once (duplicates are counted), none arrived that
was not acknowledged, the spool is empty, no tmp/ leftovers, and sendqd's
memory and file descriptors stayed flat.  The last line is the summary:

  soak: acked=N delivered=N lost=0 duplicates=D kills=K rss_max=..MB fds_max=..

Exit status 0 when nothing was lost and nothing unacknowledged arrived.
Usage: soak.py [--messages N] [--kills K] [--threads T] [--seed S]
SENDQ_KEEP_TMP=1 keeps the work directory (sendqd.log, Exim's spool and
log) to see where duplicates came from.
"""
import argparse
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import harness  # noqa: E402

SOAK_ID = re.compile(rb"^X-Soak-Id: (\S+)", re.M)


class FaultyExim(harness.Exim):
    """Exim that defers ~4% of recipients and stalls ~1% of them."""

    def _reject_acl(self):
        return ("  defer condition = ${if <{${randint:100}}{4}}\n"
                "        message = 451 4.3.0 soak: random temporary "
                "failure\n"
                "  warn  condition = ${if <{${randint:100}}{1}}\n"
                "        delay = 6s\n")


class SoakSendq(harness.Sendq):
    """sendq with the SMTP listener on a loopback port."""

    def __init__(self, workdir, smarthost, listen_port, **kw):
        self.listen_port = listen_port
        super().__init__(workdir, smarthost, **kw)

    def config_text(self):
        return super().config_text() + (
            "\n[intake]\nlisten = 127.0.0.1:%d\nmax_clients = 64\n" %
            self.listen_port)


def make_message(rng, soak_id):
    r = rng.random()
    if r < 0.85:
        size = rng.randint(1024, 8 * 1024)
    elif r < 0.98:
        size = rng.randint(8 * 1024, 128 * 1024)
    else:
        size = rng.randint(128 * 1024, 1024 * 1024)
    nrcpt = 1 if rng.random() < 0.9 else rng.randint(2, 20)
    rcpts = ["u%d-%d@example.net" % (i, rng.randint(0, 999))
             for i in range(nrcpt)]
    head = ("From: soak@example.org\nTo: %s\nSubject: soak %s\n"
            "X-Soak-Id: %s\n\n" % (rcpts[0], soak_id, soak_id))
    line = "The quick brown fox jumps over the lazy dog. 0123456789\n"
    body = (line * (size // len(line) + 1))[:size]
    return (head + body).encode(), rcpts


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="sendq-soak-")
        self.lock = threading.Lock()
        self.acked = set()
        self.nrcpt = {}           # soak id -> distinct recipients
        self.in_doubt = set()     # refused while sendqd was being killed
        self.refused = 0          # sendq exit 75 (not acknowledged)
        self.kills = 0
        self.outages = 0
        self.fills = 0
        self.rss = []             # (kB) samples
        self.fds = []
        self.next_id = 0
        self.stop = threading.Event()
        self.mount = os.path.join(self.tmp, "fs")
        self.mounted = False
        self.sq = self.exim = None  # set by start()

    # -- set-up
    def start(self):
        os.makedirs(self.mount)
        # The spool lives on its own small filesystem, so it can be
        # filled without touching the machine's.
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%dm" % self.args.fs_mb, "tmpfs", self.mount],
                       check=True)
        self.mounted = True
        certs = harness.Certs(os.path.join(self.tmp, "certs"))
        self.exim = FaultyExim(os.path.join(self.tmp, "exim"), *certs.good)
        os.makedirs(self.exim.dir)
        self.exim.start()
        sqdir = os.path.join(self.tmp, "sq")
        os.makedirs(sqdir)
        self.listen_port = harness.free_port()
        self.sq = SoakSendq(sqdir, dict(
            host="127.0.0.1", port=self.exim.implicit_port, tls="implicit",
            trust="ca_file", ca_file=certs.ca.cert,
            max_connections="4", timeout_command="3s",
            timeout_data_end="3s"), self.listen_port,
            extra_sendq={"control_socket": os.path.join(sqdir, "ctl.sock")},
            extra_queue={"retry_max": "2s", "min_free_space": "0"},
            log_level="info")
        self.sq.spool = os.path.join(self.mount, "spool")
        self.sq.write_config()
        self.sq.start()
        harness.wait_for(lambda: harness.port_accepts(self.listen_port),
                         what="the SMTP listener")

    # -- injection
    def submit_smtp(self, msg, rcpts):
        """One message over the listener; 0 when the final reply to DATA
        was 250 (acknowledged), 75 otherwise."""
        try:
            with smtplib.SMTP("127.0.0.1", self.listen_port,
                              timeout=60) as c:
                c.sendmail("soak@example.org", rcpts, msg)
            return 0
        except (smtplib.SMTPException, OSError):
            return 75

    def inject(self):
        while not self.stop.is_set():
            with self.lock:
                if self.next_id >= self.args.messages:
                    return
                self.next_id += 1
                soak_id = "s%06d" % self.next_id
                msg, rcpts = make_message(self.rng, soak_id)
            kills_before = self.kills
            via_smtp = int(soak_id[1:]) % 2 == 0
            if via_smtp:
                rc = self.submit_smtp(msg, rcpts)
            else:
                p = self.sq.sendq(["-f", "soak@example.org", "-i"] + rcpts,
                                  msg, timeout=120)
                rc = p.returncode
            with self.lock:
                if rc == 0:
                    self.acked.add(soak_id)
                    self.nrcpt[soak_id] = len(set(rcpts))
                elif rc == 75:
                    self.refused += 1
                    # Killed between the durable commit and the answer:
                    # the client cannot know (RFC 5321 4.1.1.4); such a
                    # message may arrive, and that is not an error.
                    if self.kills != kills_before:
                        self.in_doubt.add(soak_id)
                else:
                    print("soak: sendq exit %d: %s" % (
                        rc, p.stderr.decode(errors="replace")),
                        file=sys.stderr)
                    self.refused += 1

    # -- observation
    def sample(self):
        pid = self.sq.pid()
        if pid is None:
            return
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.rss.append(int(line.split()[1]))
            self.fds.append(len(os.listdir("/proc/%d/fd" % pid)))
        except OSError:
            pass

    # -- faults
    def kill_and_restart(self):
        self.sq.kill()
        self.kills += 1
        self.sq.start()

    def outage(self):
        self.exim.stop()
        self.outages += 1
        harness.wait_for(lambda: self.sq.delivery_lines("deferred"),
                         timeout=30, what="a deferral during the outage")
        self.exim.start()

    def fill_disk(self):
        filler = os.path.join(self.mount, "filler")
        chunk = b"\0" * (1024 * 1024)
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:     # until ENOSPC: the spool is full
                    f.write(chunk)
            except OSError:
                pass
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        self.fills += 1
        # Let some submissions meet the full disk (they exit 75).
        before = self.refused
        try:
            harness.wait_for(lambda: self.refused > before, timeout=10,
                             what="a refused submission")
        except AssertionError:
            pass
        os.unlink(filler)

    def run(self):
        self.start()
        threads = [threading.Thread(target=self.inject)
                   for _ in range(self.args.threads)]
        for t in threads:
            t.start()
        n = self.args.messages
        # Faults at random points of the injection progress.
        plan = sorted(self.rng.sample(range(n // 20, n - n // 20),
                                      self.args.kills + 2))
        faults = ["kill"] * self.args.kills + ["outage", "fill"]
        self.rng.shuffle(faults)
        for at, what in zip(plan, faults):
            harness.wait_for(lambda: len(self.acked) + self.refused >= at
                             or not any(t.is_alive() for t in threads),
                             timeout=600, interval=0.05,
                             what="injection progress %d" % at)
            self.sample()
            getattr(self, {"kill": "kill_and_restart", "outage": "outage",
                           "fill": "fill_disk"}[what])()
            self.sample()
        for t in threads:
            t.join()
        # Drain: everything acknowledged must arrive.
        deadline = time.monotonic() + self.args.drain
        while time.monotonic() < deadline:
            self.sample()
            if not self.sq.queued():
                break
            time.sleep(0.5)  # polling the spool, with a deadline
        # An empty queue as sendqd lists it may still have removals in
        # flight (the removal thread unlinks a delivered message's files
        # after an fsync of queue/): leftovers are what remains once the
        # same deadline has passed.
        while time.monotonic() < deadline and self.spool_leftovers():
            time.sleep(0.1)  # polling the spool, with a deadline
        return self.report()

    def spool_leftovers(self):
        """Files left in queue/ and tmp/."""
        return [f for f in self.sq.spool_files()
                if f.startswith(("queue/", "tmp/"))]

    def delivered(self):
        """{soak id: {recipient: times}} from what Exim holds.  A message
        whose recipients were deferred one by one arrives in several
        transactions: only the same recipient twice is a duplicate."""
        got = {}
        for mid in self.exim.message_ids():
            try:
                with open(os.path.join(self.exim.input_dir, mid + "-H"),
                          "rb") as f:
                    h = harness.parse_exim_h(f.read())
            except (OSError, ValueError):
                continue
            text = b"".join(t if isinstance(t, bytes) else t.encode()
                            for _, t in h["headers"])
            m = SOAK_ID.search(text)
            if not m:
                continue
            per = got.setdefault(m.group(1).decode(), {})
            for r in h["recipients"]:
                per[r] = per.get(r, 0) + 1
        return got

    def report(self):
        got = self.delivered()
        delivered = set(got)
        # Acknowledged means every recipient: a message is lost when any
        # of its recipients never got it.
        lost = sorted(sid for sid in self.acked
                      if sid not in got or
                      len(got[sid]) < self.nrcpt.get(sid, 1))
        unacked = sorted(delivered - self.acked - self.in_doubt)
        doubtful = len((delivered - self.acked) & self.in_doubt)
        dups = sum(c - 1 for per in got.values() for c in per.values()
                   if c > 1)
        leftovers = self.spool_leftovers()
        q = max(len(self.rss) // 4, 1)
        rss_early = max(self.rss[:q] or [0])
        rss_max = max(self.rss or [0])
        fds_max = max(self.fds or [0])
        print("soak: refused(75)=%d outages=%d disk_fills=%d "
              "rss_early_max=%.1fMB spool_leftovers=%d unacked_delivered=%d "
              "in_doubt_delivered=%d"
              % (self.refused, self.outages, self.fills, rss_early / 1024,
                 len(leftovers), len(unacked), doubtful))
        if lost:
            print("soak: LOST: %s" % " ".join(lost[:50]))
        if unacked:
            print("soak: arrived without acknowledgement: %s" %
                  " ".join(unacked[:50]))
        if leftovers:
            print("soak: spool leftovers: %s" % " ".join(leftovers[:20]))
        print("soak: acked=%d delivered=%d lost=%d duplicates=%d kills=%d "
              "rss_max=%.1fMB fds_max=%d" % (
                  len(self.acked), len(delivered & self.acked), len(lost),
                  dups, self.kills, rss_max / 1024, fds_max))
        return 0 if not lost and not unacked and not leftovers else 1

    def cleanup(self):
        # Also after a start() that failed half-way: what was made goes.
        try:
            if self.sq is not None and self.sq.running():
                self.sq.stop()
        except Exception:  # noqa: BLE001 - best effort at the end
            if self.sq.pid():
                os.kill(self.sq.pid(), signal.SIGKILL)
        try:
            if self.exim is not None:
                self.exim.stop()
        except Exception:  # noqa: BLE001
            pass
        if self.mounted:
            subprocess.run(["umount", "-l", self.mount])
        if os.environ.get("SENDQ_KEEP_TMP"):
            print("soak: kept %s (SENDQ_KEEP_TMP)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--fs-mb", type=int, default=1024)
    ap.add_argument("--drain", type=int, default=600)
    args = ap.parse_args()
    print("soak: seed=%d messages=%d kills=%d" % (args.seed, args.messages,
                                                  args.kills))
    s = Soak(args)
    try:
        rc = s.run()
    finally:
        s.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
