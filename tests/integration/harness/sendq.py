"""harness.sendq - one sendq installation: configuration, spool, sendqd."""

import atexit
import json
import os
import re
import shlex
import shutil
import tempfile
import time

from .daemon import Daemon
from .proc import (BUILD_DIR, DEFAULT_TIMEOUT, HarnessError, SOURCE_DIR, run,
                   unix_socket_accepts, unix_socket_request, wait_for)


# The helper script harness.Sendq points SENDQ_DROP_HELPER at (a symlink).
DROP_HELPER = os.path.join(SOURCE_DIR, "tests", "tools", "drop-helper")


def valgrind_prefix():
    """With SENDQ_VALGRIND=1 sendqd runs under valgrind memcheck (a build
    without sanitizers): any invalid access or definite leak makes it exit
    99, which the tests' clean-stop checks report."""
    if os.environ.get("SENDQ_VALGRIND") != "1":
        return []
    supp = os.path.join(SOURCE_DIR, "tests", "valgrind.supp")
    return ["valgrind", "--quiet", "--error-exitcode=99",
            "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--track-fds=no",
            "--suppressions=" + supp]


def sendq_binary(name):
    path = os.path.join(BUILD_DIR, name)
    if not os.access(path, os.X_OK):
        raise HarnessError("%s not built (looked in %s; set "
                           "SENDQ_BUILD_DIR)" % (name, BUILD_DIR))
    return path


def parse_kv(line):
    """key=value pairs of a log line; values may be "double quoted"
    with backslash escapes."""
    out = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', line):
        if m.group(3) is not None:
            out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(3))
        else:
            out[m.group(1)] = m.group(2)
    return out


class Sendq(Daemon):
    """One sendq installation in workdir: config, spool, daemon.

    smarthost: dict of [smarthost NAME] keys (host, port, tls, trust,
    ca_file ...); name is the NAME.
    """

    def __init__(self, workdir, smarthost, name="exim", extra_sendq=None,
                 extra_queue=None, log_level="debug", more_smarthosts=()):
        self.dir = workdir
        self.spool = os.path.join(workdir, "sendq-spool")
        self.config = os.path.join(workdir, "sendq.ini")
        self.name = name
        self.smarthost = dict(smarthost)
        self.extra_sendq = extra_sendq or {}
        self.extra_queue = extra_queue or {}
        self.log_level = log_level
        # [(NAME, {key: value})]: more [smarthost NAME] sections, written
        # after the first one, in this order.
        self.more_smarthosts = [(n, dict(sh)) for n, sh in more_smarthosts]
        self._init_daemon(os.path.join(workdir, "sendqd.log"))
        self.transcript = []            # sendq runs, for diagnostics
        # A control socket of its own (never the system's
        # /run/sendq/control.sock), on a path short enough for sun_path.
        if "control_socket" not in self.extra_sendq:
            sock = os.path.join(workdir, "control.sock")
            if len(sock) > 100:
                d = tempfile.mkdtemp(prefix="sq-ctl-")
                atexit.register(shutil.rmtree, d, ignore_errors=True)
                sock = os.path.join(d, "control.sock")
            self.extra_sendq["control_socket"] = sock
        self.control_socket = self.extra_sendq["control_socket"]
        self.write_config()
        self.drop_helper = self.write_drop_helper()

    def write_drop_helper(self, config=None, name="sendq-drop-helper",
                          asan_options=None):
        """The SENDQ_DROP_HELPER for sendq: a symlink (path name in this
        installation's folder) to tests/tools/drop-helper, which runs the
        build tree's sendq-drop-testing with this installation's config
        and, when given, asan_options as ASAN_OPTIONS (sendq runs the
        helper with an empty environment: they are in the file PATH.env
        beside the symlink, written first, atomically).  The harness
        writes no executable of its own: with test threads forking, the
        fd of a script being written leaks into a child not yet exec'ed
        and sendq's execve of it fails with ETXTBSY."""
        path = os.path.join(self.dir, name)
        with open(path + ".env.tmp", "w") as f:
            f.write("SENDQ_DROP_TEST_CONFIG=%s\nBINARY=%s\n" % (
                shlex.quote(config or self.config),
                shlex.quote(sendq_binary("sendq-drop-testing"))))
            if asan_options is not None:
                f.write("ASAN_OPTIONS=%s\n" % shlex.quote(asan_options))
        os.rename(path + ".env.tmp", path + ".env")
        if not os.path.islink(path):
            os.symlink(DROP_HELPER, path)
        return path

    def sendq_env(self):
        """The environment sendq runs with: the drop helper of the build
        tree.  Before sendqd has ever run, the spool and its maildrop are
        made as systemd/sendq.tmpfiles makes them on an install (sendq
        and its helper never create them)."""
        if not os.path.exists(self.spool):
            os.makedirs(os.path.join(self.spool, "maildrop", "tmp"))
            os.chmod(self.spool, 0o711)
            os.chmod(os.path.join(self.spool, "maildrop"), 0o1730)
            os.chmod(os.path.join(self.spool, "maildrop", "tmp"), 0o1730)
        return dict(os.environ, SENDQ_DROP_HELPER=self.drop_helper)

    def maildrop_files(self):
        """Published files in maildrop/ (not tmp/, rejected/)."""
        d = os.path.join(self.spool, "maildrop")
        try:
            return sorted(n for n in os.listdir(d)
                          if os.path.isfile(os.path.join(d, n)))
        except FileNotFoundError:
            return []

    def config_text(self):
        lines = ["[sendq]",
                 "spool_dir = %s" % self.spool,
                 "hostname = localhost",
                 "log_level = %s" % self.log_level]
        lines += ["%s = %s" % kv for kv in self.extra_sendq.items()]
        lines += ["", "[queue]", "retry_min = 1s"]
        lines += ["%s = %s" % kv for kv in self.extra_queue.items()]
        lines += ["", "[smarthost %s]" % self.name]
        lines += ["%s = %s" % kv for kv in self.smarthost.items()]
        for name, sh in self.more_smarthosts:
            lines += ["", "[smarthost %s]" % name]
            lines += ["%s = %s" % kv for kv in sh.items()]
        return "\n".join(lines) + "\n"

    def write_config(self, smarthost=None):
        if smarthost is not None:
            self.smarthost = dict(smarthost)
        with open(self.config, "w") as f:
            f.write(self.config_text())

    # -- the sendq command
    def sendq(self, args, message=b"", config=None, timeout=60):
        """Run `sendq -C CONFIG ARGS < message`; CompletedProcess."""
        argv = [sendq_binary("sendq"), "-C", config or self.config]
        p = run(argv + list(args), input=message, timeout=timeout,
                env=self.sendq_env())
        self.transcript.append("$ %s  (%d bytes in) -> exit %d%s" % (
            " ".join(argv[1:]), len(message), p.returncode,
            ("\n  " + p.stderr.decode(errors="replace").strip())
            if p.stderr.strip() else ""))
        return p

    def submit(self, message, recipients, sender=None, args=()):
        """sendq a message that must be queued (exit 0); returns the
        CompletedProcess."""
        argv = list(args)
        if sender is not None:
            argv += ["-f", sender]
        p = self.sendq(argv + list(recipients), message)
        if p.returncode != 0:
            raise AssertionError("sendq exited %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace")))
        return p

    def submit_many(self, items, threads=4, env=None):
        """Queue many messages fast: items are (message, recipients,
        sender) tuples, each run as one `sendq -f SENDER RCPT...` by a pool
        of `threads` threads, with env added to sendq's environment.  Every
        run must exit 0 (AssertionError naming the failures otherwise).
        Only failures go to the transcript.

        In a sanitizer build, the first run (and the drop helper it may
        start) is leak-checked as every sendq run is; the others, the same
        code path over and over, skip LeakSanitizer's exit scan (60 ms of
        CPU per process, most of what a bulk submission costs): a leak
        still fails the first run.  Every other check of ASan and UBSan
        stays on for all of them."""
        import concurrent.futures
        argv0 = [sendq_binary("sendq"), "-C", self.config]
        env = dict(self.sendq_env(), **(env or {}))
        asan = env.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "detect_leaks=0"
        quiet_env = dict(env, ASAN_OPTIONS=asan)
        if env.get("SENDQ_DROP_HELPER") == self.drop_helper:
            quiet_env["SENDQ_DROP_HELPER"] = self.write_drop_helper(
                name="sendq-drop-helper-noleak", asan_options=asan)

        def one(numbered):
            i, (message, recipients, sender) = numbered
            argv = argv0 + ["-f", sender] + list(recipients)
            return argv, run(argv, input=message,
                             env=quiet_env if i else env)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            runs = list(pool.map(one, enumerate(items)))
        failures = []
        for argv, p in runs:
            if p.returncode != 0:
                failures.append("$ %s -> exit %d: %s" % (
                    " ".join(argv[1:]), p.returncode,
                    p.stderr.decode(errors="replace").strip()))
        self.transcript.append("submit_many: %d messages, %d failed" % (
            len(items), len(failures)))
        self.transcript.extend(failures)
        if failures:
            raise AssertionError("%d of %d sendq runs failed, first: %s" % (
                len(failures), len(items), failures[0]))

    # -- the spool
    def queue_dir(self):
        return os.path.join(self.spool, "queue")

    def queued_files(self):
        """Ids of the messages whose queue/ID.env exists."""
        try:
            names = os.listdir(self.queue_dir())
        except FileNotFoundError:
            return []
        return sorted(n[:-4] for n in names if n.endswith(".env"))

    def daemon_queued(self):
        """Ids of the queued messages as sendqd lists them (`list` on its
        control socket), which includes the messages it holds in memory
        without files yet; None when it does not answer."""
        try:
            data = unix_socket_request(self.control_socket,
                                       b"list --json\n")
        except OSError:
            return None
        status, _, rest = data.partition(b"\n")
        if status.strip() != b"ok":
            return None
        return sorted(e["id"] for e in json.loads(rest))

    def fill(self, n, message):
        """Put n copies of message (bytes) in queue/ with bench_tool fill
        (sendqd down: as found after a reboot); returns their ids."""
        path = os.path.join(self.dir, "fill.eml")
        with open(path, "wb") as f:
            f.write(message)
        run([os.path.join(BUILD_DIR, "bench_tool"), "fill", self.spool,
             str(n), path], check=True)
        ids = set(self.queued())
        if len(ids) != n:
            raise HarnessError("fill: %d messages queued, not %d"
                               % (len(ids), n))
        return ids

    def queued(self):
        """Ids of queued messages.  While sendqd runs: as it lists them,
        once each has its files in queue/ (a message sendqd holds in
        memory gets them within about a second, spool.h), so that a test
        may read them; else those whose queue/ID.env exists."""
        if not self.running():
            return self.queued_files()
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while True:
            listed = self.daemon_queued()
            if listed is None:
                return self.queued_files()
            on_disk = set(self.queued_files())
            if all(i in on_disk for i in listed) or \
                    time.monotonic() >= deadline:
                return listed
            time.sleep(0.02)  # poll the condition until the deadline

    def one_queued(self):
        """The id of the only queued message (AssertionError otherwise).
        While sendqd runs and a dropped file waits in maildrop/ (sendq
        submitted it while sendqd was down), wait for its pick-up."""
        if self.running():
            wait_for(lambda: self.queued() or not self.maildrop_files(),
                     what="the maildrop picked up")
        ids = self.queued()
        if len(ids) != 1:
            raise AssertionError("expected 1 queued message, found %d "
                                 "(spool: %s)" % (len(ids),
                                                  self.spool_files()))
        return ids[0]

    def spool_files(self):
        """Every file under the spool, relative paths (for diagnostics)."""
        out = []
        for root, _, files in os.walk(self.spool):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f),
                                           self.spool))
        return sorted(out)

    def spool_subdir_files(self, subdir):
        """Names of the files in spool_dir/SUBDIR (tmp, queue, failed
        ...), sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(os.path.join(self.spool, subdir)))
        except FileNotFoundError:
            return []

    def failed_envs(self):
        """Paths of the failed/ID.N.env files (held recipients)."""
        d = os.path.join(self.spool, "failed")
        return [os.path.join(d, n) for n in self.spool_subdir_files("failed")
                if re.match(r".+\.\d+\.env$", n)]

    def queued_envelope(self, msgid):
        """The text of queue/ID.env once it exists: sendqd may hold a new
        message in memory for up to a second before it has files
        (spool.h, spool_set_memory_age)."""
        path = os.path.join(self.queue_dir(), msgid + ".env")
        wait_for(lambda: os.path.exists(path), what=path)
        with open(path, "rb") as f:
            return f.read().decode()

    def queued_message(self, msgid):
        with open(os.path.join(self.queue_dir(), msgid + ".msg"), "rb") as f:
            return f.read()

    # -- the daemon
    def start(self):
        """Start `sendqd -C CONFIG` in the foreground, stderr to a log."""
        self._spawn(valgrind_prefix() +
                    [sendq_binary("sendqd"), "-C", self.config])
        return self

    def wait_ready(self):
        """Wait until sendqd answers on its control socket: its spool is
        open and a `sendq` now hands mail to it, not to the drop helper."""
        wait_for(lambda: unix_socket_accepts(self.control_socket),
                 what="sendqd to listen on %s" % self.control_socket)
        return self

    def delivery_lines(self, result=None):
        """Parsed `delivery` log lines ({key: value}, plus "line")."""
        out = []
        for ln in self.log_text().splitlines():
            if " delivery " not in ln and not ln.startswith("delivery "):
                continue
            kv = parse_kv(ln)
            kv["line"] = ln
            if result is None or kv.get("result") == result:
                out.append(kv)
        return out

    def wait_queue_empty(self, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: not self.queued(), timeout=timeout,
                 what=lambda: "the sendq queue to empty (left: %s)" %
                 self.queued())
