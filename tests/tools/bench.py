"""bench.py - sendq measured beside its baselines (run by scripts/bench).

Everything relays ~2.2 KiB messages over verified STARTTLS to tls_sink
(tests/tools/tls_sink.c), a sink of the project's own that counts
messages and connections and records the time of its last acceptance.
Rows (each a separate phase, one run):

  inject-1 / inject-8   the `sendq` (sendmail) command from 1 and from 8
                        parallel injectors, sendqd running and relaying;
                        beside the two baselines run the same way: a
                        do-nothing command (bench_tool none) and one that
                        writes + fsyncs + renames + fsyncs the directory
                        (bench_tool fsync)
  smtp-close / smtp-reuse
                        the SMTP listener, 8 sessions, a connection per
                        message / connections kept and MAIL, RCPT, DATA
                        pipelined; end to end (until the sink has them);
                        beside the same load sent straight to the sink
  drain                 sendqd started on a full queue (bench_tool fill),
                        until the sink has every message; connections
  latency-smtp / latency-sendq
                        one message at a time on an idle sendqd, from the
                        start of the submission to the sink's acceptance:
                        median and p99
  commit-model          no sendqd: two ways of making groups of 1 and
                        of 8 messages durable on the spool's file system
                        (bench_tool commit-model): the spool's shape (a
                        body and an envelope per message, fdatasync'ed,
                        renamed, the directory fsync'ed) beside one
                        journal file with one fdatasync per group; runs
                        interleaved
  backlog               sendqd started on BACKLOG queued messages after
                        dropping the page cache (when allowed): time until
                        the first delivery attempt (the sink's first
                        connection) and the first delivery; RSS per
                        queued message

CPU per message: sendqd's from /proc/PID/stat (utime+stime), the
injectors' from getrusage(RUSAGE_CHILDREN).  Peak RSS: sendqd's VmHWM.
Prints one table and writes JSON (OUT, with the commit measured).
Nothing here asserts a timing.

Usage: bench.py [--quick] [--out FILE] [--messages N] [--backlog N]
"""
import argparse
import json
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import concurrent.futures

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import harness  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MAX_CONNECTIONS = 4     # per smarthost: the drain's "at most 4"
BODY = ("From: bench@example.org\nTo: sink@example.net\nSubject: bench\n"
        "Message-ID: <bench@example.org>\nDate: Mon, 7 Dec 2026 00:00:00 "
        "+0000\n\n" + ("0123456789abcdef" * 4 + "\n") * 32).encode()


def tool(name):
    return os.path.join(os.environ["SENDQ_BUILD_DIR"], name)


class Sink:
    """tls_sink on two ephemeral loopback ports."""

    def __init__(self, cert, key):
        self.proc = subprocess.Popen([tool("tls_sink"), cert, key],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise harness.HarnessError("tls_sink did not start")
        kv = dict(x.split("=") for x in ready[1:])
        self.starttls_port = int(kv["starttls"])
        self.implicit_port = int(kv["implicit"])
        self.lock = threading.Lock()

    def stats(self):
        with self.lock:
            self.proc.stdin.write("s\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        kv = dict(x.split("=") for x in line.split())
        return dict(msgs=int(kv["msgs"]), conns=int(kv["conns"]),
                    bytes=int(kv["bytes"]), last=float(kv["last"]))

    def wait_msgs(self, n, timeout=600):
        return harness.wait_for(
            lambda: (lambda s: s if s["msgs"] >= n else None)(self.stats()),
            timeout=timeout, interval=0.005,
            what="the sink to hold %d messages" % n)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class BenchSendq(harness.Sendq):
    def __init__(self, workdir, smarthost, listen_port, sockdir):
        self.listen_port = listen_port
        super().__init__(workdir, smarthost, log_level="info",
                         extra_sendq={"control_socket":
                                      os.path.join(sockdir, "c.sock")})

    def config_text(self):
        return super().config_text() + (
            "\n[intake]\nlisten = 127.0.0.1:%d\nmax_clients = 64\n" %
            self.listen_port)

    def start_ready(self):
        self.start()
        sock = self.extra_sendq["control_socket"]
        harness.wait_for(lambda: os.path.exists(sock) and
                         harness.port_accepts(self.listen_port),
                         what="sendqd's sockets")
        return self


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_ctxsw(pid):
    """Context switches of every thread of pid so far (voluntary and
    not): counts, steady on a noisy machine where rates are not, and on
    a paravirtualised one each costs as much as a small system call."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def proc_mem(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def inject(argv, n, threads, msg=BODY):
    """Run argv n times (stdin: msg) from threads threads; seconds and
    the injectors' CPU seconds.  Every run must exit 0."""
    def one(_):
        return subprocess.run(argv, input=msg, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    c0 = children_cpu()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(n)))
    dt = time.monotonic() - t0
    bad = [r for r in results if r.returncode != 0]
    if bad:
        raise AssertionError("%d of %d runs of %s failed, first: %s" % (
            len(bad), n, argv[0], bad[0].stderr.decode(errors="replace")))
    return dt, children_cpu() - c0


def smtp_load(port, sessions, n, mode, msgfile):
    p = subprocess.run([tool("bench_tool"), "smtp", "127.0.0.1", str(port),
                        str(sessions), str(n), mode, msgfile],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=900)
    if p.returncode != 0:
        raise AssertionError("bench_tool smtp: %s %s" % (p.stdout, p.stderr))
    kv = dict(x.split("=") for x in p.stdout.split())
    return float(kv["seconds"])


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sendq-bench-")
        self.rows = []
        self.sink = self.sq = None

    def row(self, name, **kw):
        kw["path"] = name
        self.rows.append(kw)
        print("  %-14s %s" % (name, " ".join(
            "%s=%s" % (k, ("%.4g" % v) if isinstance(v, float) else v)
            for k, v in kw.items() if k != "path")), flush=True)

    def new_sendq(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return BenchSendq(d, dict(
            host="127.0.0.1", port=self.sink.starttls_port, tls="starttls",
            trust="ca_file", ca_file=self.certs.ca.cert,
            max_connections=MAX_CONNECTIONS), harness.free_port(), self.tmp)

    def settle(self, sq, expect):
        self.sink.wait_msgs(expect)
        sq.wait_queue_empty(timeout=600)

    # -- the sendq command, with both baselines
    def phase_inject(self, sq, threads, n):
        d = os.path.join(self.tmp, "fsync-%d" % threads)
        os.makedirs(os.path.join(d, "tmp"))
        os.makedirs(os.path.join(d, "new"))
        t_none, c_none = inject([tool("bench_tool"), "none"], n, threads)
        t_fs, c_fs = inject([tool("bench_tool"), "fsync", d], n, threads)
        shutil.rmtree(d)
        before = self.sink.stats()["msgs"]
        cpu0 = proc_cpu(sq.pid())
        cs0 = proc_ctxsw(sq.pid())
        argv = [harness.sendq_binary("sendq"), "-C", sq.config,
                "-f", "bench@example.org", "sink@example.net"]
        t_sq, c_sq = inject(argv, n, threads)
        self.settle(sq, before + n)
        d_cpu = proc_cpu(sq.pid()) - cpu0
        d_cs = proc_ctxsw(sq.pid()) - cs0
        self.row("inject-%d" % threads, messages=n,
                 none_per_s=n / t_none, fsync_per_s=n / t_fs,
                 sendq_per_s=n / t_sq, vs_fsync=t_fs / t_sq,
                 vs_none=t_none / t_sq,
                 injector_ms_per_msg=1000 * c_sq / n,
                 fsync_injector_ms_per_msg=1000 * c_fs / n,
                 sendqd_ms_per_msg=1000 * d_cpu / n,
                 sendqd_ctxsw_per_msg=d_cs / n)

    # -- the SMTP listener, beside the sink alone
    def phase_smtp(self, sq, mode, n, sessions=8):
        msgfile = os.path.join(self.tmp, "msg.eml")
        t_sink = smtp_load(self.sink.starttls_port, sessions, n, mode,
                           msgfile)
        s0 = self.sink.stats()
        before = s0["msgs"]
        cpu0 = proc_cpu(sq.pid())
        cs0 = proc_ctxsw(sq.pid())
        t0 = time.monotonic()
        t_acc = smtp_load(sq.listen_port, sessions, n, mode, msgfile)
        s = self.sink.wait_msgs(before + n)
        t_e2e = s["last"] - t0
        sq.wait_queue_empty(timeout=600)
        d_cpu = proc_cpu(sq.pid()) - cpu0
        d_cs = proc_ctxsw(sq.pid()) - cs0
        self.row("smtp-" + mode, messages=n, sessions=sessions,
                 sink_alone_per_s=n / t_sink, accept_per_s=n / t_acc,
                 e2e_per_s=n / t_e2e, sendqd_ms_per_msg=1000 * d_cpu / n,
                 sendqd_ctxsw_per_msg=d_cs / n,
                 relay_conns=s["conns"] - s0["conns"])

    # -- idle latency
    def phase_latency(self, sq, samples):
        out = {}
        # The baseline of the sendq path: starting a do-nothing command
        # the same way (its stdin the message), at idle too.
        spawn = []
        for _ in range(samples):
            time.sleep(0.05)
            t0 = time.monotonic()
            subprocess.run([tool("bench_tool"), "none"], input=BODY,
                           stdout=subprocess.DEVNULL, check=True)
            spawn.append(1000 * (time.monotonic() - t0))
        for path in ("smtp", "sendq"):
            lat = []
            client = None
            if path == "smtp":
                client = smtplib.SMTP("127.0.0.1", sq.listen_port)
                client.ehlo("bench.example")
            for _ in range(samples):
                before = self.sink.stats()["msgs"]
                time.sleep(0.05)        # idle: nothing in flight
                t0 = time.monotonic()
                if client is not None:
                    client.sendmail("bench@example.org",
                                    ["sink@example.net"], BODY)
                else:
                    sq.submit(BODY, ["sink@example.net"],
                              sender="bench@example.org")
                s = self.sink.wait_msgs(before + 1, timeout=60)
                lat.append(1000 * (s["last"] - t0))
            if client is not None:
                client.quit()
            lat.sort()
            out[path] = lat
            extra = {}
            if path == "sendq":
                extra["do_nothing_start_median_ms"] = statistics.median(
                    spawn)
            self.row("latency-" + path, samples=samples,
                     median_ms=statistics.median(lat),
                     p99_ms=lat[min(len(lat) - 1,
                                    int(round(0.99 * (len(lat) - 1))))],
                     **extra)
        return out

    # -- the drain from a full queue
    def phase_drain(self, n):
        sq = self.new_sendq("drain")
        fill(sq.spool, n)
        s0 = self.sink.stats()
        t0 = time.monotonic()
        sq.start_ready()
        s = self.sink.wait_msgs(s0["msgs"] + n)
        sq.wait_queue_empty(timeout=600)
        cpu = proc_cpu(sq.pid())
        cs = proc_ctxsw(sq.pid())
        hwm = proc_mem(sq.pid(), "VmHWM")
        sq.stop()
        self.row("drain", messages=n, per_s=n / (s["last"] - t0),
                 relay_conns=s["conns"] - s0["conns"],
                 sendqd_ctxsw_per_msg=cs / n,
                 sendqd_ms_per_msg=1000 * cpu / n, peak_rss_mib=hwm / 2**20)

    # -- recovery with a deep backlog
    def phase_backlog(self, n):
        empty = self.new_sendq("empty")
        empty.start_ready()
        base_rss = proc_mem(empty.pid(), "VmRSS")
        empty.stop()
        sq = self.new_sendq("backlog")
        t = time.monotonic()
        fill(sq.spool, n)
        fill_s = time.monotonic() - t
        cold = drop_caches()
        s0 = self.sink.stats()
        t0 = time.monotonic()
        sq.start()
        first_conn = harness.wait_for(
            lambda: (lambda s: time.monotonic()
                     if s["conns"] > s0["conns"] else None)(
                         self.sink.stats()),
            timeout=600, interval=0.002, what="a first relay connection")
        s = self.sink.wait_msgs(s0["msgs"] + 1)
        rss = proc_mem(sq.pid(), "VmRSS")
        hwm = proc_mem(sq.pid(), "VmHWM")
        sq.kill()
        shutil.rmtree(sq.spool, ignore_errors=True)
        self.row("backlog", queued=n, cold_cache=cold,
                 first_attempt_s=first_conn - t0,
                 first_delivery_s=s["last"] - t0,
                 rss_mib=rss / 2**20, peak_rss_mib=hwm / 2**20,
                 bytes_per_msg=(hwm - base_rss) / n,
                 empty_rss_mib=base_rss / 2**20, fill_s=fill_s)

    # -- how the commit's shape bounds it (no sendqd)
    def phase_commit_model(self, n, rounds=2):
        secs = {}
        for _ in range(rounds):
            for shape in ("files", "journal"):
                for group in (1, 8):
                    d = os.path.join(self.tmp, "model")
                    with open(os.path.join(self.tmp, "msg.eml"), "rb") as f:
                        p = subprocess.run(
                            [tool("bench_tool"), "commit-model", d, shape,
                             str(group), str(max(1, n // group))],
                            stdin=f, stdout=subprocess.PIPE, text=True,
                            check=True)
                    shutil.rmtree(d)
                    kv = dict(x.split("=") for x in p.stdout.split())
                    secs.setdefault((shape, group), []).append(
                        int(kv["messages"]) / float(kv["seconds"]))
        self.row("commit-model", messages=n, rounds=rounds, **{
            "%s_%d_per_s" % k: statistics.median(v)
            for k, v in sorted(secs.items())})

    def run(self):
        a = self.args
        want = a.only or set(PHASES)
        self.certs = harness.Certs(os.path.join(self.tmp, "certs"))
        with open(os.path.join(self.tmp, "msg.eml"), "wb") as f:
            f.write(BODY)
        self.sink = Sink(*self.certs.good)
        sq = None
        try:
            print("bench: %d messages per phase, backlog %d, commit %s%s" % (
                a.messages, a.backlog, commit(),
                "" if a.only is None else
                ", only " + ",".join(p for p in PHASES if p in want)),
                flush=True)
            if want & set(PHASES_ON_ONE_SENDQD):
                sq = self.new_sendq("main")
                sq.start_ready()
            if "inject-1" in want:
                self.phase_inject(sq, 1, a.messages)
            if "inject-8" in want:
                self.phase_inject(sq, 8, a.messages)
            if "smtp-close" in want:
                self.phase_smtp(sq, "close", a.messages * 2)
            if "smtp-reuse" in want:
                self.phase_smtp(sq, "reuse", a.messages * 4)
            if "latency" in want:
                self.phase_latency(sq, a.samples)
            if sq is not None:
                hwm = proc_mem(sq.pid(), "VmHWM")
                self.row("peak-rss", sendqd_mib=hwm / 2**20)
                sq.stop()
            if "drain" in want:
                self.phase_drain(a.messages * 4)
            if "backlog" in want:
                self.phase_backlog(a.backlog)
            if "commit-model" in want:
                self.phase_commit_model(a.messages)
        finally:
            if sq is not None and sq.running():
                sq.stop()
            self.sink.stop()
        return self.rows

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def fill(spool, n):
    msg = os.path.join(os.path.dirname(spool), "fill.eml")
    with open(msg, "wb") as f:
        f.write(b"Received: from bench\n" + BODY)
    p = subprocess.run([tool("bench_tool"), "fill", spool, str(n), msg],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        raise AssertionError("bench_tool fill: " + p.stderr)


def drop_caches():
    """Write back and drop the page cache; False when not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def commit():
    src = os.environ.get("SENDQ_SOURCE_DIR", ".")
    try:
        rev = subprocess.run(["git", "-C", src, "rev-parse", "--short=12",
                              "HEAD"], stdout=subprocess.PIPE, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain",
                                "--untracked-files=no"],
                               stdout=subprocess.PIPE, text=True).stdout
        return rev + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("%.0f" % v if abs(v) >= 100 else "%.2f" % v) + unit
    return "%s%s" % (v, unit)


def table(rows):
    """The one table: path | baseline | sendq | cpu/msg | notes."""
    r = {x["path"]: x for x in rows}
    lines = ["| path | baseline | sendq | sendqd CPU/msg | notes |",
             "|---|---|---|---|---|"]
    for k in ("inject-1", "inject-8"):
        if k in r:
            x = r[k]
            lines.append(
                "| `sendq` command, %s injector%s | do-nothing %s/s; "
                "write+fsync %s/s | %s/s (%s× write+fsync, %s× "
                "do-nothing) | %s ms | injector CPU %s ms/msg (write+fsync"
                " %s); sendqd %s context switches/msg |" % (k[7:], "" if k == "inject-1" else "s",
                            fmt(x["none_per_s"]), fmt(x["fsync_per_s"]),
                            fmt(x["sendq_per_s"]), fmt(x["vs_fsync"]),
                            fmt(x["vs_none"]), fmt(x["sendqd_ms_per_msg"]),
                            fmt(x["injector_ms_per_msg"]),
                            fmt(x["fsync_injector_ms_per_msg"]),
                            fmt(x["sendqd_ctxsw_per_msg"])))
    for k, what in (("smtp-close", "a connection per message"),
                    ("smtp-reuse", "reusing connections, pipelined")):
        if k in r:
            x = r[k]
            lines.append(
                "| SMTP listener, %d sessions, %s | sink alone %s/s | "
                "%s/s end to end (accepted %s/s) | %s ms | %d relay "
                "connections; sendqd %s context switches/msg |" % (
                    x["sessions"], what,
                                   fmt(x["sink_alone_per_s"]),
                                   fmt(x["e2e_per_s"]),
                                   fmt(x["accept_per_s"]),
                                   fmt(x["sendqd_ms_per_msg"]),
                                   x["relay_conns"],
                                   fmt(x["sendqd_ctxsw_per_msg"])))
    if "drain" in r:
        x = r["drain"]
        lines.append("| drain of %d queued (started on a full queue) | – |"
                     " %s/s over %d connections (at most %d at once) | %s ms "
                     "| peak RSS %s MiB; sendqd %s context switches/msg "
                     "|" % (x["messages"], fmt(x["per_s"]),
                            x["relay_conns"], MAX_CONNECTIONS,
                            fmt(x["sendqd_ms_per_msg"]),
                            fmt(x["peak_rss_mib"]),
                            fmt(x["sendqd_ctxsw_per_msg"])))
    lat = [r.get("latency-smtp"), r.get("latency-sendq")]
    if all(lat):
        lines.append("| idle latency to the sink, median / p99 | starting a"
                     " do-nothing command: %s ms | SMTP %s / %s ms; `sendq`"
                     " %s / %s ms | – | %d samples; the `sendq` path "
                     "includes starting it |" % (
                         fmt(lat[1]["do_nothing_start_median_ms"]),
                         fmt(lat[0]["median_ms"]), fmt(lat[0]["p99_ms"]),
                         fmt(lat[1]["median_ms"]), fmt(lat[1]["p99_ms"]),
                         lat[0]["samples"]))
    if "peak-rss" in r:
        lines.append("| peak memory (phases above) | – | %s MiB | – | "
                     "VmHWM of sendqd |" % fmt(r["peak-rss"]["sendqd_mib"]))
    if "backlog" in r:
        x = r["backlog"]
        lines.append(
            "| start-up with %d queued (%s page cache) | – | first attempt"
            " %s s, first delivery %s s | – | RSS %s MiB, %s B per queued "
            "message |" % (x["queued"], "cold" if x["cold_cache"] else
                           "warm", fmt(x["first_attempt_s"]),
                           fmt(x["first_delivery_s"]), fmt(x["rss_mib"]),
                           fmt(x["bytes_per_msg"])))
    if "commit-model" in r:
        x = r["commit-model"]
        lines.append(
            "| commit shape alone (no sendqd), groups of 1 / of 8 | the "
            "spool's shape (2 files a message): %s / %s msgs/s | one "
            "journal file: %s / %s msgs/s | – | median of %d interleaved "
            "rounds of %d messages |" % (
                fmt(x["files_1_per_s"]), fmt(x["files_8_per_s"]),
                fmt(x["journal_1_per_s"]), fmt(x["journal_8_per_s"]),
                x["rounds"], x["messages"]))
    return "\n".join(lines)


# The phases, in the order they run; --only picks some.  Those of the
# first tuple share one sendqd (peak-rss is its VmHWM after those that
# ran); the others start their own.
PHASES_ON_ONE_SENDQD = ("inject-1", "inject-8", "smtp-close", "smtp-reuse",
                        "latency", "peak-rss")
PHASES = PHASES_ON_ONE_SENDQD + ("drain", "backlog", "commit-model")


def only_phases(text):
    """--only's comma-separated phase names, as a set."""
    names = {p.strip() for p in text.split(",") if p.strip()}
    bad = sorted(names - set(PHASES))
    if bad or not names:
        raise argparse.ArgumentTypeError(
            "unknown phase %s (phases: %s)" % (", ".join(bad) or "''",
                                               ", ".join(PHASES)))
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="a few hundred messages (scripts/test)")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--backlog", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", type=only_phases, default=None,
                    metavar="PHASE,...",
                    help="run only these phases: " + ", ".join(PHASES))
    a = ap.parse_args()
    if a.messages is None:
        a.messages = 50 if a.quick else 2000
    if a.backlog is None:
        a.backlog = 300 if a.quick else 100000
    if a.samples is None:
        a.samples = 5 if a.quick else 100
    b = Bench(a)
    try:
        rows = b.run()
    finally:
        b.cleanup()
    text = table(rows)
    print("\n" + text)
    out = a.out or os.path.join(os.environ["SENDQ_BUILD_DIR"], "bench.json")
    with open(out, "w") as f:
        json.dump({"commit": commit(), "time": int(time.time()),
                   "quick": a.quick,
                   "only": sorted(a.only) if a.only else None,
                   "rows": rows, "table": text}, f,
                  indent=1)
    print("bench: wrote %s" % out)


if __name__ == "__main__":
    main()
