#!/usr/bin/env python3
"""Submission (issue 10 items 1-2): with sendqd running, `sendq` streams
the envelope and the message over the control socket and sendqd names,
writes and commits the message, recording the uid the kernel gives
(SO_PEERCRED), never what the client claims; a client that stops before
"end" leaves nothing behind.  With sendqd down, or gone before its
answer, `sendq` pipes a drop file to the setgid helper sendq-drop (here
the build tree's sendq-drop-testing, run as root), which takes no options
and ignores its caller's environment.  sendqd's refusals map to sendq's
exit codes: too large 65, not allowed 77, others 75."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

SENDER = "alice@example.org"
NOBODY = 65534
ENV = (b"sendq-envelope 1\nid 0065A1B2C3000010000\ncreated 1\nuid 0\n"
       b"sender alice@example.org\nrcpt bob@example.net\nend\n")


def frames(env, message, chunk=65536, end=True):
    out = b"submit %d\n" % len(env) + env
    for i in range(0, len(message), chunk):
        part = message[i:i + chunk]
        out += b"data %d\n" % len(part) + part
    return out + (b"end\n" if end else b"")


def raw_submit(path, data, timeout=10):
    """Send data on the control socket; the whole answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(data)
    answer = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    s.close()
    return answer.decode(errors="replace")


class FakeDaemon:
    """A control socket that reads a submission and then answers with
    `answer` (None: closes without a word)."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        self.got = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        # The message ends in CRLF: its last frame, then "end".
        while not self.got.endswith(b"\r\nend\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            self.got += chunk
        if self.answer is not None:
            conn.sendall(self.answer)
        conn.close()

    def close(self):
        if self.sock is None:
            return
        self.thread.join(10)
        self.sock.close()
        self.sock = None
        os.unlink(self.path)


class Submit(harness.IntegrationTest):

    def short_dir(self, mode=0o700):
        d = tempfile.mkdtemp(prefix="sq-sub-")
        os.chmod(d, mode)
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        return d

    def daemon(self, exim=None, intake=None, sock_mode=0o700):
        sock = os.path.join(self.short_dir(sock_mode), "control.sock")
        sh = (self.smarthost_for(exim, tls="implicit") if exim else
              {"host": "127.0.0.1", "port": 1, "tls": "implicit",
               "trust": "system"})
        sq = self.new_sendq(sh, extra_sendq={"control_socket": sock})
        if intake:
            with open(sq.config, "a") as f:
                f.write("\n[intake]\n" + "".join(
                    "%s = %s\n" % kv for kv in intake.items()))
        return sq

    def start(self, sq):
        sq.start()
        wait_for(lambda: os.path.exists(sq.control_socket),
                 what="the control socket")

    def env_of(self, sq, qid):
        return sq.queued_envelope(qid)

    # -- through sendqd

    def test_streamed_messages_arrive_byte_exact(self):
        exim = self.start_exim()
        sq = self.daemon(exim)
        self.start(sq)
        big = "".join("line %06d \u00e9t\u00e9 %s\r\n" % (i, "x" * (i % 90))
                      for i in range(4000))       # > 300 KB: many frames
        sent = [make_message("small", "one line\r\n"),
                make_message("large", big)]
        for m in sent:
            p = sq.submit(m, ["bob@example.net"], sender=SENDER,
                          args=["-v"])
            self.assertIn(b"via sendqd", p.stderr)
        got = {m.header("subject"): m for m in exim.wait_messages(2)}
        self.assertArrivedIntact(got["small"], sent[0])
        self.assertArrivedIntact(got["large"], sent[1])
        sq.wait_queue_empty()
        ok = [harness.parse_kv(ln) for ln in sq.log_text().splitlines()
              if "command=submit" in ln and "result=ok" in ln]
        self.assertEqual(len(ok), 2)
        self.assertEqual({kv["uid"] for kv in ok}, {str(os.getuid())})
        self.assertEqual(sq.spool_subdir_files("tmp"), [])
        self.assertEqual(sq.maildrop_files(), [])
        self.assertStoppedCleanly(sq)

    def test_the_daemon_names_the_message(self):
        sq = self.daemon()
        self.start(sq)
        answer = raw_submit(sq.control_socket,
                            frames(ENV, make_message("named", "x\r\n")))
        m = re.match(r"ok ([0-9A-F]+)\n$", answer)
        self.assertTrue(m, answer)
        qid = m.group(1)
        self.assertNotEqual(qid, "0065A1B2C3000010000")
        self.assertEqual(sq.queued(), [qid])
        self.assertIn("id %s\n" % qid, self.env_of(sq, qid))
        # created is the daemon's clock, not the client's "created 1".
        created = int(re.search(r"^created (\d+)$", self.env_of(sq, qid),
                                re.M).group(1))
        self.assertGreater(created, 1000000000)
        self.assertStoppedCleanly(sq)

    def test_uid_is_the_kernels_not_the_clients(self):
        sq = self.daemon(sock_mode=0o755)
        self.start(sq)
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX)\n"
                "s.connect(sys.argv[1])\n"
                "s.sendall(sys.stdin.buffer.read())\n"
                "a=b''\n"
                "while True:\n"
                " c=s.recv(4096)\n"
                " if not c: break\n"
                " a+=c\n"
                "sys.stdout.write(a.decode())\n")
        # The envelope says uid 0; the client runs as nobody.
        # reachable for nobody (scripts/setup installs python3)
        python = harness.require_tool("/usr/bin/python3", "python3")
        p = subprocess.run(
            [python, "-c", code, sq.control_socket],
            input=frames(ENV, make_message("forged", "x\r\n")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
            preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))
        answer = p.stdout.decode()
        self.assertTrue(answer.startswith("ok "), answer + p.stderr.decode())
        qid = answer.split()[1]
        self.assertIn("\nuid %d\n" % NOBODY, self.env_of(sq, qid))
        sq.wait_log(r"command=submit msgid=%s uid=%d .*result=ok" %
                    (qid, NOBODY))
        self.assertStoppedCleanly(sq)

    def test_a_client_killed_mid_stream_leaves_nothing(self):
        sq = self.daemon()
        self.start(sq)
        part = frames(ENV, b"Subject: half\r\n\r\n" + b"y" * 100000,
                      end=False)[:-5000]
        code = ("import os,signal,socket,sys\n"
                "s=socket.socket(socket.AF_UNIX)\n"
                "s.connect(sys.argv[1])\n"
                "s.sendall(sys.stdin.buffer.read())\n"
                "os.kill(os.getpid(), signal.SIGKILL)\n")
        p = subprocess.run([sys.executable, "-c", code, sq.control_socket],
                           input=part, timeout=30)
        self.assertEqual(p.returncode, -signal.SIGKILL)
        sq.wait_log(r"command=submit msgid=\w+ uid=\d+ result=aborted")
        wait_for(lambda: sq.queued() == [],
                 what="the spool to empty")
        # sendqd logs "aborted" just before it unlinks the file in tmp/
        # (daemon/control.c): seen in tmp/ once under ctest -j3.
        wait_for(lambda: sq.spool_subdir_files("tmp") == [],
                 what=lambda: "tmp/ to empty: %s" %
                 sq.spool_subdir_files("tmp"))
        self.assertTrue(sq.running())
        self.assertStoppedCleanly(sq)

    def test_too_large_is_refused_by_sendqd_exit_65(self):
        sq = self.daemon(intake={"max_message_size": "64K"})
        self.start(sq)
        # A client configured with a larger limit than sendqd's: sendqd
        # refuses while the message streams in.
        loose = os.path.join(sq.dir, "loose.ini")
        with open(sq.config) as f:
            text = f.read().replace("64K", "1M")
        with open(loose, "w") as f:
            f.write(text)
        msg = make_message("big", "z" * 200000 + "\r\n")
        p = sq.sendq(["-f", SENDER, "bob@example.net"], msg, config=loose)
        self.assertEqual(p.returncode, 65, p.stderr)
        self.assertIn(b"too large", p.stderr)
        sq.wait_log(r"command=submit .*result=error reason=\"5\.3\.4")
        # The same through sendq's own config: refused before sending.
        p = sq.sendq(["-f", SENDER, "bob@example.net"], msg)
        self.assertEqual(p.returncode, 65, p.stderr)
        wait_for(lambda: sq.queued() == [],
                 what="the spool to empty")
        self.assertEqual(sq.spool_subdir_files("tmp"), [])
        self.assertEqual(sq.maildrop_files(), [])
        # A raw client too: an error answer, then the daemon closes.
        answer = raw_submit(sq.control_socket,
                            frames(ENV, b"Subject: x\r\n\r\n" + b"q" * 70000))
        self.assertTrue(answer.startswith("error: 5.3.4 "), answer)
        self.assertStoppedCleanly(sq)

    def test_sendqd_makes_the_spool_and_maildrop_modes(self):
        sq = self.daemon()
        self.start(sq)
        modes = {d: stat.S_IMODE(os.stat(os.path.join(sq.spool, d)).st_mode)
                 for d in ("", "tmp", "queue", "maildrop", "maildrop/tmp",
                           "maildrop/rejected")}
        # tmp/ and queue/ are shared with sendq-showq's group when the
        # group sendq-queue exists (test_local_users.py makes it while it
        # runs): either pair, never a mix.
        shared = {"tmp": 0o2700, "queue": 0o750}
        private = {"tmp": 0o700, "queue": 0o700}
        got = {d: modes.pop(d) for d in ("tmp", "queue")}
        self.assertIn(got, (shared, private))
        self.assertEqual(modes, {"": 0o711, "maildrop": 0o1730,
                                 "maildrop/tmp": 0o1730,
                                 "maildrop/rejected": 0o700})
        self.assertEqual(stat.S_IMODE(os.stat(sq.control_socket).st_mode),
                         0o666)
        self.assertStoppedCleanly(sq)
        # An older install's modes are put right at the next start.
        os.chmod(os.path.join(sq.spool, "maildrop"), 0o3730)
        self.start(sq)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(
            sq.spool, "maildrop")).st_mode), 0o1730)
        sq.wait_log(r"pickup: .*/maildrop: mode 1730 \(was 3730\)")
        self.assertStoppedCleanly(sq)

    def test_sendqd_maps_no_nss_module_for_its_group_lookups(self):
        # The groups sendq-queue and sendq-drop are looked up at start;
        # where /etc/group lacks them the look-up goes on to the other
        # NSS sources (libnss_systemd on Debian), which glibc never
        # unloads: it runs in a child, and sendqd maps no NSS module.
        sq = self.daemon()
        self.start(sq)     # the control socket: after both look-ups
        with open("/proc/%d/maps" % sq.pid()) as f:
            nss = sorted({line.split()[-1] for line in f
                          if "/libnss_" in line})
        self.assertEqual(nss, [])
        self.assertStoppedCleanly(sq)

    # -- sendqd's answers, from a fake daemon

    def fake(self, sq, answer):
        d = FakeDaemon(sq.control_socket, answer)
        self.addCleanup(d.close)
        return d

    def test_refusals_map_to_exit_codes(self):
        for answer, code in ((b"error: 5.7.1 uid 7 may not submit\n", 77),
                             (b"error: 5.3.4 message too large\n", 65),
                             (b"error: 4.3.0 disk full\n", 75),
                             (b"error: 5.5.2 bad envelope\n", 75)):
            with self.subTest(answer=answer):
                sq = self.daemon()
                d = self.fake(sq, answer)
                p = sq.sendq(["-f", SENDER, "bob@example.net"],
                             make_message("refused", "x\r\n"))
                d.thread.join(10)
                self.assertEqual(p.returncode, code, p.stderr)
                self.assertIn(answer.decode().split(" ", 2)[2].strip(),
                              p.stderr.decode())
                self.assertTrue(d.got.startswith(b"submit "), d.got[:40])
                self.assertEqual(sq.maildrop_files(), [])

    def test_sendqd_gone_before_its_answer_means_the_maildrop(self):
        exim = self.start_exim()
        sq = self.daemon(exim)
        d = self.fake(sq, None)
        sent = make_message("no answer", "x\r\n")
        p = sq.submit(sent, ["bob@example.net"], sender=SENDER,
                      args=["-v"])
        d.thread.join(10)
        self.assertTrue(d.got.endswith(b"end\n"))
        self.assertIn(b"duplicate is possible", p.stderr)
        self.assertIn(b"into the maildrop", p.stderr)
        self.assertEqual(len(sq.maildrop_files()), 1)
        d.close()
        self.start(sq)
        (m,) = exim.wait_messages(1)
        self.assertArrivedIntact(m, sent)
        self.assertStoppedCleanly(sq)

    # -- the drop helper

    def helper_env_script(self, sq, out):
        """A SENDQ_DROP_HELPER that records its arguments and environment
        in out, then runs the real (testing) helper."""
        path = os.path.join(sq.dir, "spy-helper")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n{ echo \"argc=$#\"; env; } > '%s'\n"
                    "exec '%s' \"$@\"\n" % (out, sq.drop_helper))
        os.chmod(path, 0o755)
        return path

    def test_sendq_runs_the_helper_bare(self):
        sq = self.daemon()
        out = os.path.join(sq.dir, "helper-env")
        env = dict(sq.sendq_env(), SENDQ_DROP_HELPER=self.helper_env_script(
            sq, out), SENDQ_MARKER="leak", LD_PRELOAD="", TMPDIR="/x")
        p = harness.run([harness.sendq_binary("sendq"), "-C", sq.config,
                         "-f", SENDER, "bob@example.net"],
                        input=make_message("bare", "x\r\n"), env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            seen = f.read()
        self.assertIn("argc=0\n", seen)
        for name in ("SENDQ_MARKER", "LD_PRELOAD", "TMPDIR", "HOME",
                     "SENDQ_DROP_HELPER"):
            self.assertNotIn(name + "=", seen)
        self.assertEqual(len(sq.maildrop_files()), 1)

    def run_helper(self, args, data=b"", env=None, binary="sendq-drop-testing",
                   config=None, prefix=()):
        e = {} if env is None else env
        if config is not None:
            e["SENDQ_DROP_TEST_CONFIG"] = config
        return harness.run(list(prefix) + [harness.sendq_binary(binary)] +
                           args, input=data, env=e)

    def test_helper_takes_no_options(self):
        sq = self.daemon()
        sq.sendq_env()          # the spool and maildrop, as installed
        for args in (["-C", sq.config], ["-t"], ["x"], ["--help", "x"],
                     ["--config=/etc/passwd"]):
            with self.subTest(args=args):
                p = self.run_helper(args, b"To: a@b.example\n\nx\n",
                                    config=sq.config)
                self.assertEqual(p.returncode, 64, p.stderr)
        self.assertEqual(sq.maildrop_files(), [])
        p = self.run_helper(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"usage: sendq-drop", p.stdout)
        p = self.run_helper(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^sendq-drop \d+\.\d+")

    def test_installed_helper_reads_only_its_compiled_in_config(self):
        # The real helper has no test hook: the variable is ignored and it
        # reads CONFIG_DEFAULT_PATH (missing here, or hidden from it when
        # sendq is installed on this machine: exit 78 naming it).
        sq = self.daemon()
        sq.sendq_env()
        compiled = re.search(rb"of (/\S+)'s spool_dir",
                             self.run_helper(["--help"], binary="sendq-drop")
                             .stdout.replace(b"\n", b" ")).group(1)
        p = self.run_helper([], b"To: a@b.example\n\nx\n",
                            binary="sendq-drop", config=sq.config,
                            prefix=harness.hiding_path(compiled.decode()))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn(compiled, p.stderr)
        self.assertEqual(sq.maildrop_files(), [])

    def test_helper_writes_a_0644_file_and_refuses_too_large(self):
        sq = self.daemon(intake={"max_message_size": "64K"})
        sq.sendq_env()
        p = self.run_helper([], b"X-Sendq-Recipient: <bob@example.net>\n"
                            b"Subject: drop\n\nbody\n", config=sq.config)
        self.assertEqual(p.returncode, 0, p.stderr)
        (name,) = sq.maildrop_files()
        st = os.stat(os.path.join(sq.spool, "maildrop", name))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual(st.st_uid, os.getuid())
        p = self.run_helper([], b"Subject: big\n\n" + b"b" * 70000,
                            config=sq.config)
        self.assertEqual(p.returncode, 65, p.stderr)
        self.assertIn(b"too large", p.stderr)
        self.assertEqual(sq.maildrop_files(), [name])
        self.assertEqual(sq.spool_subdir_files("maildrop/tmp"), [])
        p = self.run_helper([], b"x", config=os.path.join(sq.dir, "none"))
        self.assertEqual(p.returncode, 78, p.stderr)
        # maildrop/tmp a symlink: not followed, nothing written.
        tmp = os.path.join(sq.spool, "maildrop", "tmp")
        os.rmdir(tmp)
        elsewhere = self.short_dir()
        os.symlink(elsewhere, tmp)
        p = self.run_helper([], b"Subject: s\n\nx\n", config=sq.config)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertEqual(os.listdir(elsewhere), [])

    def test_helper_syncs_its_file_twice_never_the_filesystem(self):
        """The rename is made durable by an fsync of the renamed file
        (sendq_drop.c), not by syncfs(), which flushes the whole
        filesystem: fsync, rename, fsync, and no syncfs or sync."""
        strace = harness.require_tool("strace", "strace")
        sq = self.daemon()
        sq.sendq_env()
        trace = os.path.join(sq.dir, "drop.strace")
        p = harness.run([strace, "-f", "-qq", "-o", trace, "-e",
                         "trace=fsync,fdatasync,syncfs,sync,rename,"
                         "renameat,renameat2",
                         harness.sendq_binary("sendq-drop-testing")],
                        input=b"X-Sendq-Recipient: <bob@example.net>\n"
                        b"Subject: durable\n\nbody\n",
                        env={"SENDQ_DROP_TEST_CONFIG": sq.config,
                             # LeakSanitizer cannot run under ptrace.
                             "ASAN_OPTIONS": "detect_leaks=0"})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(trace) as f:
            calls = [re.sub(r"^\d+\s+", "", ln).split("(")[0]
                     for ln in f if "(" in ln]
        self.assertNotIn("syncfs", calls)
        self.assertNotIn("sync", calls)
        calls = ["rename" if c.startswith("rename") else c
                 for c in calls]
        self.assertEqual(calls, ["fsync", "rename", "fsync"])
        self.assertEqual(len(sq.maildrop_files()), 1)


if __name__ == "__main__":
    harness.main()
